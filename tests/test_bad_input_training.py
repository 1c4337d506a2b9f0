"""Every public function and class of compresskit.training and compresskit.coding refuses bad input
with an error that names the argument, the rule and the value received; a call that fails changes
no model (parameters, buffers such as BatchNorm statistics and activation observers, pruning
hooks, training flags); and every function that takes a model works on a model pruned with
torch.nn.utils.prune, or refuses it saying what to do.

One row per (function, bad call), as in tests/test_bad_input.py: the error type and the words its
message must contain. A completeness test checks that every public name has a row or a reason.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from bad_input_harness import Bad, a, assert_refused, lazy, snapshot
from compresskit import coding, data, models, pruning, training
from compresskit.training import deep_compression as DC


def mlp() -> nn.Sequential:
    return models.mlp((8,), seed=0)


def pruned_mlp() -> nn.Sequential:
    """fc1 pruned with torch.nn.utils.prune, its weight left a non-leaf (a forward with gradients):
    copy.deepcopy refuses such a model."""
    model = mlp()
    pruning.l1_unstructured(model.fc1, "weight", 0.5)
    model(torch.rand(2, 1, 8, 8)).sum().backward()
    return model


def bn_qat() -> nn.Module:
    """A QAT model with BatchNorm statistics and activation observers that have seen one batch."""
    torch.manual_seed(0)
    model = training.prepare_qat(nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10)),
                                 weight_bits=4, act_bits=8)
    model(torch.rand(8, 1, 8, 8))
    return model


def shared_mlp() -> nn.Sequential:
    return training.share_weights(mlp(), 2)


X = torch.rand(8, 1, 8, 8)
Y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
LOADER = [(X[:4], Y[:4]), (X[4:], Y[4:])]
NAN = torch.tensor([1.0, float("nan")])
F = training.fit_compressed
CODE = {"a": "0", "b": "10", "c": "11"}


class NoLength(torch.utils.data.IterableDataset):
    def __iter__(self):
        return iter(zip(X, Y))


class Teacher7(nn.Module):
    """A teacher with 7 classes: the student has 10."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 7)

    def forward(self, x):
        return self.fc(x.flatten(1))


CASES = [
    # --- fit_compressed and its callbacks ------------------------------------------------------------
    Bad(F, lazy(lambda: ((mlp(), torch.utils.data.DataLoader(NoLength(), batch_size=4)),
                         {"epochs": 2, "lr": 1e-3, "callbacks": [training.PruneWhileTraining(0.5, 0, 4, every=1)]})),
        ValueError, ["`steps_per_epoch`", "no length", "None"], watch=0),
    Bad(F, lazy(lambda: ((mlp(), torch.utils.data.DataLoader(NoLength(), batch_size=4)),
                         {"epochs": 2, "lr": 1e-3, "steps_per_epoch": 3, "callbacks": [training.PruneWhileTraining(0.5, 0, 6, every=1)]})),
        ValueError, ["`steps_per_epoch`", "got 3", "had 2"], watch=0),
    Bad(F, lazy(lambda: ((mlp(), LOADER), {"epochs": 1, "lr": 1e-3, "steps_per_epoch": 0})), ValueError, ["`steps_per_epoch`", "0"], watch=0),
    Bad(F, lazy(lambda: ((bn_qat(), LOADER), {"epochs": 1, "lr": 1e-3, "callbacks": [training.Distill(Teacher7())]})),
        ValueError, ["`teacher`", "(4, 10)", "(4, 7)"], watch=0),
    Bad(F, lazy(lambda: ((pruned_mlp(), LOADER), {"epochs": 1, "lr": 1e-3, "callbacks": [type("W", (), {"on_step": lambda self, m: None})()]})),
        TypeError, ["`callbacks[0].on_step`", "(model, step)", "(m)"], watch=0),
    Bad(F, lazy(lambda: ((mlp(), LOADER), {"epochs": 1, "lr": 1e-3, "callbacks": training.PruneWhileTraining(0.5, 0, 2)})),
        TypeError, ["`callbacks`", "list", "PruneWhileTraining"], watch=0),
    Bad(F, lazy(lambda: ((mlp(), LOADER), {"epochs": 1, "lr": 1e-3, "callbacks": [training.PruneWhileTraining(0.5, 0, 3)]})),
        ValueError, ["`end_step`", "(2)", "end_step=3"], watch=0),
    Bad(F, lazy(lambda: ((mlp(), LOADER), {"epochs": 1, "lr": float("nan")})), ValueError, ["`lr`", "nan"], watch=0),
    Bad(F, lazy(lambda: ((mlp(), LOADER), {"epochs": 1, "lr": 1e-3, "loss_fn": print})), TypeError, ["`loss_fn`", "callback"], watch=0),
    Bad(F, lazy(lambda: ((mlp(), [(X[:4] * float("nan"), Y[:4])]), {"epochs": 1, "lr": 1e-3})), ValueError, ["`train_loader`", "NaN"], watch=0),
    Bad(F, a("model", LOADER, epochs=1, lr=1e-3), TypeError, ["`model`", "'model'"]),
    Bad(training.PruneWhileTraining, a(1, 0, 10), TypeError, ["`amount`", "int 1"]),
    Bad(training.PruneWhileTraining, a(0.5, 10, 10), ValueError, ["`end_step`", "10"]),
    Bad(training.PruneWhileTraining, a(0.5, 0, 10, every=0), ValueError, ["`every`", "0"]),
    Bad(training.Distill, a(mlp(), temperature=0.0), ValueError, ["`temperature`", "0.0"]),
    Bad(training.Distill, a(mlp(), alpha=float("nan")), ValueError, ["`alpha`", "nan"]),
    Bad(training.Distill, a(lambda x: x), TypeError, ["`teacher`", "function"]),
    # --- QAT -----------------------------------------------------------------------------------------
    Bad(training.fake_quantize_ste, a(NAN, 0.1, 0, -8, 7), ValueError, ["`x`", "NaN"]),
    Bad(training.fake_quantize_ste, a(torch.rand(3), 0.1, 0, -8, 7, axis=3), ValueError, ["`axis`", "3"]),
    Bad(training.fake_quantize_ste, a(torch.rand(3), -0.1, 0, -8, 7), ValueError, ["`scale`", "-0.1"]),
    Bad(training.fake_quantize_ste, a(torch.tensor([1, 2]), 0.1, 0, -8, 7), TypeError, ["`x`", "torch.int64"]),
    Bad(training.lsq_fake_quantize, a(torch.rand(3), torch.tensor([0.0]), -8, 7), ValueError, ["`step`", "0.0"]),
    Bad(training.lsq_fake_quantize, a(torch.rand(3), torch.tensor([0.1, 0.2]), -8, 7), ValueError, ["`step`", "one positive number", "[0.10000"]),
    Bad(training.lsq_fake_quantize, a(torch.rand(3), torch.tensor(0.1), 1, 7), ValueError, ["`quant_min`", "1"]),
    Bad(training.lsq_fake_quantize, a(torch.rand(3), torch.tensor(0.1), -8, 7, grad_scale=float("nan")), ValueError, ["`grad_scale`", "nan"]),
    Bad(training.weight_qrange, a(1), ValueError, ["`weight_bits`", "1"]),
    Bad(training.weight_qrange, a(4.0), TypeError, ["`weight_bits`", "4.0"]),
    Bad(training.WeightFakeQuantize, a(bits=16), ValueError, ["`bits`", "[2, 8]", "16"]),
    Bad(training.WeightFakeQuantize, a(per_channel=1), TypeError, ["`per_channel`", "1"]),
    Bad(training.ActivationFakeQuantize, a(bits=0), ValueError, ["`bits`", "[1, 8]", "0"]),
    Bad(training.ActivationFakeQuantize, a(ranges="learnt"), ValueError, ["`ranges`", "'learnt'"]),
    Bad(training.ActivationFakeQuantize, a(averaging_constant=1.5), ValueError, ["`averaging_constant`", "1.5"]),
    Bad(training.QATLinear, a(4, 3, weight_bits=16), ValueError, ["`weight_bits`", "16"]),
    Bad(training.QATLinear, a(4, 3, act_bits=0), ValueError, ["`act_bits`", "0"]),
    Bad(training.QATLinear, a(4, 3, ranges="observd"), ValueError, ["`ranges`", "'observd'"]),
    Bad(training.QATLinear.forward, lazy(lambda: ((training.QATLinear(4, 3), torch.rand(2, 5)), {})), ValueError, ["`x`", "4 features", "(2, 5)"], watch=0),
    Bad(training.QATLinear.forward, lazy(lambda: ((training.QATLinear(4, 3), torch.tensor([[1.0, 2.0, float("nan"), 0.0]])), {})),
        ValueError, ["`x`", "NaN"], watch=0),
    Bad(training.QATConv2d, a(1, 2, 3, weight_bits=0), ValueError, ["`weight_bits`", "0"]),
    Bad(training.QATConv2d, a(1, 2, 3, per_channel="no"), TypeError, ["`per_channel`", "'no'"]),
    Bad(training.QATConv2d.forward, lazy(lambda: ((training.QATConv2d(2, 3, 3), torch.rand(1, 1, 6, 6)), {})), ValueError, ["`x`", "(1, 1, 6, 6)"], watch=0),
    Bad(training.prepare_qat, lazy(lambda: ((pruned_mlp(),), {"weight_bits": 1})), ValueError, ["`weight_bits`", "1"], watch=0),
    Bad(training.prepare_qat, lazy(lambda: ((pruned_mlp(),), {"ranges": "learnt"})), ValueError, ["`ranges`", "'learnt'"], watch=0),
    Bad(training.prepare_qat, lazy(lambda: ((bn_qat(),), {})), ValueError, ["`model`", "QAT layers"], watch=0),
    Bad(training.prepare_qat, a(nn.Sequential(nn.ReLU())), ValueError, ["`model`", "nn.Linear"]),
    Bad(training.ptq, lazy(lambda: ((pruned_mlp(), 4, 8, X.flatten(1)[:, :10]), {})), ValueError, ["`calibration`", "(8, 10)"], watch=0),
    Bad(training.ptq, lazy(lambda: ((pruned_mlp(), 4, 8, X * float("nan")), {})), ValueError, ["`calibration`", "NaN"], watch=0),
    Bad(training.ptq, lazy(lambda: ((pruned_mlp(), 4, 9, X), {})), ValueError, ["`act_bits`", "9"], watch=0),
    Bad(training.qat_to_float, lazy(lambda: ((pruned_mlp(),), {})), ValueError, ["`qat_model`", "QAT layers"], watch=0),
    Bad(training.export_onnx, lazy(lambda: ((bn_qat().eval(), "/tmp/x.onnx", X.flatten(1)[:, :10]), {})), ValueError, ["`example`", "(8, 10)"], watch=0),
    Bad(training.export_onnx, lazy(lambda: ((bn_qat().eval(), "/nonexistent/x.onnx", X), {})), ValueError, ["`path`", "/nonexistent"], watch=0),
    Bad(training.export_onnx, lazy(lambda: ((bn_qat().eval(), 7, X), {})), TypeError, ["`path`", "int"], watch=0),
    Bad(training.export_onnx, lazy(lambda: ((pruned_mlp(), "/tmp/x.onnx", X), {})), ValueError, ["`qat_model`", "QAT layers"], watch=0),
    Bad(training.onnx_predict, a("/nonexistent.onnx", X), ValueError, ["`path`", "does not exist"]),
    Bad(training.onnx_predict, a("/tmp", X), ValueError, ["`path`", "'/tmp'"]),
    Bad(training.onnx_predict, a(__file__, X, optimize=1), TypeError, ["`optimize`", "1"]),
    Bad(training.onnx_predict, lazy(lambda: ((onnx_file(), np.random.rand(2, 10).astype(np.float32)), {})), ValueError, ["`X`", "(N, 64)", "(2, 10)"]),
    Bad(training.onnx_predict, lazy(lambda: ((onnx_file(), np.zeros((0, 64), np.float32)), {})), ValueError, ["`X`", "empty", "(0, 64)"]),
    Bad(training.onnx_predict, lazy(lambda: ((onnx_file(), np.full((1, 64), np.nan, np.float32)), {})), ValueError, ["`X`", "NaN"]),
    Bad(training.WeightFakeQuantize.forward, a(training.WeightFakeQuantize(4), torch.tensor([[1.0, float("nan")]])), ValueError, ["`weight`", "NaN"]),
    Bad(training.ActivationFakeQuantize.forward, a(training.ActivationFakeQuantize(4), torch.tensor([1, 2])), TypeError, ["`x`", "torch.int64"]),
    # --- Deep Compression ------------------------------------------------------------------------------
    Bad(training.kmeans_1d, a(NAN, 2), ValueError, ["`w`", "NaN"]),
    Bad(training.kmeans_1d, a(torch.rand(2, 3), 2), ValueError, ["`w`", "(2, 3)"]),
    Bad(training.kmeans_1d, a(torch.rand(0), 2), ValueError, ["`w`", "(0,)"]),
    Bad(training.kmeans_1d, a(torch.rand(5), 0), ValueError, ["`k`", "0"]),
    Bad(training.kmeans_1d, a(torch.rand(5), 2, init="kmeans++"), ValueError, ["`init`", "'kmeans++'"]),
    Bad(training.share_weights, lazy(lambda: ((pruned_mlp(), 9), {})), ValueError, ["`bits`", "9"], watch=0),
    Bad(training.share_weights, lazy(lambda: ((pruned_mlp(), {"fc1": 3}), {})), ValueError, ["`bits`", "missing", "fc2"], watch=0),
    Bad(training.share_weights, lazy(lambda: ((pruned_mlp(), 3), {"bias_bits": 0})), ValueError, ["`bias_bits`", "0"], watch=0),
    Bad(training.share_weights, lazy(lambda: ((pruned_mlp(), 3.0), {})), TypeError, ["`bits`", "3.0"], watch=0),
    Bad(training.zero_dead_units, lazy(lambda: ((pruned_mlp(),), {})), ValueError, ["`model`", "pruning masks", "remove_masks"], watch=0),
    Bad(training.zero_dead_units, a(nn.Sequential(nn.Linear(4, 3), nn.Linear(5, 2))), ValueError, ["`model`", "3 outputs into 5"]),
    Bad(training.CentroidFineTune, lazy(lambda: ((pruned_mlp(),), {})), ValueError, ["`model`", "pruning mask", "remove_masks"], watch=0),
    Bad(training.CentroidFineTune, lazy(lambda: ((mlp(),), {})), ValueError, ["`model`", "share_weights"], watch=0),
    Bad(training.CentroidFineTune, lazy(lambda: ((shared_mlp(),), {"lr": 0.0})), ValueError, ["`lr`", "0.0"], watch=0),
    Bad(training.CentroidFineTune.on_step, lazy(lambda: ((training.CentroidFineTune(shared_mlp()), mlp(), 1), {})), ValueError, ["`model`", "built from"], watch=1),
    Bad(training.deep_compression, lazy(lambda: ((pruned_mlp(), LOADER, X, Y[:3]), {"epochs": 1})), ValueError, ["`X_test` and `y_test`", "8 and 3"], watch=0),
    Bad(training.deep_compression, lazy(lambda: ((pruned_mlp(), LOADER, X, Y + 5), {"epochs": 1})), ValueError, ["`y_test`", "[0, 9]", "5 to 12"], watch=0),
    Bad(training.deep_compression, lazy(lambda: ((pruned_mlp(), LOADER, X.flatten(1)[:, :9], Y), {"epochs": 1})), ValueError, ["`X_test`", "(8, 9)"], watch=0),
    Bad(training.deep_compression, lazy(lambda: ((pruned_mlp(), iter(LOADER), X, Y), {"epochs": 1})), TypeError, ["`train_loader`", "length"], watch=0),
    Bad(training.deep_compression, lazy(lambda: ((pruned_mlp(), LOADER, X, Y), {"lr": -1.0})), ValueError, ["`lr`", "-1.0"], watch=0),
    Bad(training.deep_compression, lazy(lambda: ((pruned_mlp(), LOADER, X, Y), {"directory": __file__})), ValueError, ["`directory`", "not a folder"], watch=0),
    Bad(training.deep_compression, lazy(lambda: ((models.cnn(), LOADER, X, Y), {})), TypeError, ["`model`", "Conv2d"], watch=0),
    Bad(training.round_to_half, lazy(lambda: ((big_mlp(),), {})), ValueError, ["`model` layer `fc2`", "fp16's range", "70000.0"], watch=0),
    Bad(training.round_to_half, lazy(lambda: ((nan_mlp(),), {})), ValueError, ["`model` layer `fc2`", "finite", "nan"], watch=0),
    Bad(training.save_compressed, lazy(lambda: ((pruned_mlp(), "/tmp"), {})), ValueError, ["`path`", "folder", "'/tmp'"], watch=0),
    Bad(training.save_compressed, lazy(lambda: ((pruned_mlp(), "/nonexistent/m.ckdc"), {})), ValueError, ["`path`", "/nonexistent"], watch=0),
    Bad(training.save_compressed, lazy(lambda: ((pruned_mlp(), "/tmp/m.ckdc"), {"coding": "arithmetic"})), ValueError, ["`coding`", "'arithmetic'"], watch=0),
    Bad(training.save_compressed, lazy(lambda: ((bn_qat(), "/tmp/m.ckdc"), {})), TypeError, ["`model`", "Flatten, Linear and ReLU", "QATLinear"], watch=0),
    Bad(training.load_compressed, a("/tmp"), ValueError, ["`path`", "folder", "'/tmp'"]),
    Bad(training.load_compressed, a("/nonexistent.ckdc"), ValueError, ["`path`", "does not exist"]),
    Bad(training.load_compressed, a(b"CKDC"), TypeError, ["`path`", "bytes"]),
    # --- the ledger ----------------------------------------------------------------------------------
    Bad(training.ledger, lazy(lambda: ((pruned_mlp(), data.load_digits_split()), {})), ValueError, ["`model`", "pruning masks", "remove_masks"], watch=0),
    Bad(training.ledger, lazy(lambda: ((mlp(), "digits"), {})), TypeError, ["`split`", "'digits'"], watch=0),
    Bad(training.ledger, lazy(lambda: ((models.mlp((32,)), data.load_digits_split()), {"epochs": -1})), ValueError, ["`epochs`", "-1"], watch=0),
    Bad(training.Ledger.judge, lazy(lambda: ((training.Ledger((), 1), "judge"), {})), TypeError, ["`judge`", "str"]),
    # --- coding --------------------------------------------------------------------------------------
    Bad(coding.count_symbols, a(np.array([1.0, np.nan])), ValueError, ["`symbols`", "NaN"]),
    Bad(coding.count_symbols, a([torch.tensor(1), torch.tensor(1)]), TypeError, ["`symbols[0]`", "tensor"]),
    Bad(coding.count_symbols, a(3), TypeError, ["`symbols`", "int"]),
    Bad(coding.code_lengths, a({"a": 1.5}), TypeError, ["`counts['a']`", "1.5"]),
    Bad(coding.code_lengths, a({"a": -1}), ValueError, ["`counts['a']`", "-1"]),
    Bad(coding.code_lengths, a({}), ValueError, ["`counts`", "{}"]),
    Bad(coding.code_lengths, a([3, 1]), TypeError, ["`counts`", "list"]),
    Bad(coding.code_lengths, a({1: 2, "a": 3}), TypeError, ["`counts`", "sortable"]),
    Bad(coding.canonical_code, a({"a": 1, "b": 1, "c": 1}), ValueError, ["`lengths`", "Kraft", "1.5"]),
    Bad(coding.canonical_code, a({"a": 0}), ValueError, ["`lengths['a']`", "0"]),
    Bad(coding.canonical_code, a({}), ValueError, ["`lengths`", "{}"]),
    Bad(coding.huffman_code, a({"a": float("nan")}), TypeError, ["`counts['a']`", "nan"]),
    Bad(coding.entropy, a({"a": 0}), ValueError, ["`counts`", "positive"]),
    Bad(coding.mean_code_length, a(CODE, {"d": 1}), ValueError, ["`code`", "'d'"]),
    Bad(coding.mean_code_length, a({"a": "0", "b": "01"}, {"a": 1}), ValueError, ["`code`", "prefix", "'0'"]),
    Bad(coding.bit_length, a("abd", CODE), ValueError, ["`symbols`", "'d'"]),
    Bad(coding.bit_length, a(["a"], {"a": "2"}), ValueError, ["`code['a']`", "'2'"]),
    Bad(coding.encode, a("abz", CODE), ValueError, ["`symbols`", "'z'"]),
    Bad(coding.encode, a(5, CODE), TypeError, ["`symbols`", "int"]),
    Bad(coding.decode, a("0101", CODE, 2), TypeError, ["`data`", "str"]),
    Bad(coding.decode, a(b"\x00", CODE, -1), ValueError, ["`count`", "-1"]),
    Bad(coding.decode, a(b"\x00", CODE, 9), ValueError, ["`data`", "9 coded symbols"]),
    Bad(coding.decode, a(b"\x00\x00", CODE, 1), ValueError, ["`data`", "padding"]),
]


def onnx_file() -> str:
    import tempfile

    path = tempfile.NamedTemporaryFile(suffix=".onnx", delete=False).name
    qat = training.ptq(mlp(), 4, 8, X)
    return str(training.export_onnx(qat, path, X.flatten(1)))


def big_mlp() -> nn.Sequential:
    model = mlp()
    with torch.no_grad():
        model.fc2.weight[0, 0] = 7e4  # fp16's largest is 65504
    return model


def nan_mlp() -> nn.Sequential:
    model = mlp()
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("nan")
    return model


for case in CASES:
    case.id = f"{getattr(case.fn, '__qualname__', case.fn)}-{'-'.join(case.words)}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_the_rule_and_the_value(case):
    assert_refused(case)  # tests/bad_input_harness.py: the error, its words, the watched models unchanged


# Public names with no row, and why.
NO_ROW = {
    "Callback": "a typing.Protocol: documentation, never called (fit_compressed checks callbacks: rows above)",
    "CompressedFileError": "an exception class; every kind of bad file is refused with it in tests/test_deep_compression.py",
    "LedgerRow": "a frozen dataclass that ledger builds",
    "SpeedClaim": "a frozen dataclass that ledger builds",
    "Stage": "a NamedTuple that deep_compression builds",
}


def test_every_public_name_has_a_bad_input_row_or_a_reason():
    covered = {getattr(c.fn, "__qualname__", "").split(".")[0] for c in CASES}
    public = set(training.__all__) | set(coding.__all__)
    missing = sorted(public - covered - set(NO_ROW))
    assert not missing, f"public names without a bad-input row: {missing}"
    assert not set(NO_ROW) - public, "NO_ROW lists a name that is not public"


# --- a model pruned with torch.nn.utils.prune goes through every function that takes a model -------------
# (zero_dead_units, CentroidFineTune and ledger refuse it, saying what to do: rows above)


def pruned_qat() -> nn.Module:
    model = training.prepare_qat(pruned_mlp(), weight_bits=4)
    model(X).sum().backward()  # weight left a non-leaf, as after a training step
    return model


def same(a: tuple, b: tuple) -> bool:
    return a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and a[1:] == b[1:]


def mask_of(model: nn.Module) -> torch.Tensor:
    return model.fc1.weight_mask.clone()


@pytest.mark.parametrize("name, run", [
    ("fit_compressed", lambda m, tmp: training.fit_compressed(m, LOADER, epochs=1, lr=1e-2, callbacks=[training.PruneWhileTraining(0.6, 0, 2, every=1)])),
    ("Distill", lambda m, tmp: training.fit_compressed(mlp(), LOADER, epochs=1, lr=1e-2, callbacks=[training.Distill(m)])),
    ("prepare_qat", lambda m, tmp: training.prepare_qat(m, weight_bits=4)),
    ("ptq", lambda m, tmp: training.ptq(m, 4, 8, X)),
    ("share_weights", lambda m, tmp: training.share_weights(m, 2)),
    ("round_to_half", lambda m, tmp: training.round_to_half(m)),
    ("save_compressed", lambda m, tmp: training.load_compressed(tmp / "m.ckdc") if training.save_compressed(m, tmp / "m.ckdc") else None),
    ("deep_compression", lambda m, tmp: training.deep_compression(m, LOADER, X, Y, amount=0.5, bits=2, epochs=1, finetune_epochs=1)),
])
def test_a_pruned_model_goes_through(name, run, tmp_path):
    model = pruned_mlp()
    mask = mask_of(model)
    before = snapshot(model)
    out = run(model, tmp_path)
    assert prune.is_pruned(model) and torch.equal(model.fc1.weight, model.fc1.weight_orig * model.fc1.weight_mask)
    if name == "fit_compressed":  # trained in place: the old zeros stay zero, the mask only grows
        assert bool((model.fc1.weight_mask <= mask).all()) and float((model.fc1.weight == 0).float().mean()) >= 0.5
    elif name == "round_to_half":
        assert torch.equal(model.fc1.weight_orig, model.fc1.weight_orig.half().float())
    else:
        assert same(before, snapshot(model)), f"{name} changed the caller's pruned model"
    if name in ("prepare_qat", "ptq", "share_weights", "save_compressed"):  # a new model, read back for save_compressed
        assert bool((out.fc1.weight[mask == 0] == 0).all()), "the pruned weights must stay zero"


@pytest.mark.parametrize("run", [
    lambda q, tmp: training.qat_to_float(q),
    lambda q, tmp: training.onnx_predict(training.export_onnx(q.eval(), tmp / "q.onnx", X), X),
    lambda q, tmp: training.fit_compressed(q, LOADER, epochs=1, lr=1e-2),
])
def test_a_pruned_qat_model_goes_through(run, tmp_path):
    qat = pruned_qat()
    mask = qat.fc1.weight_mask.clone()
    out = run(qat, tmp_path)
    if isinstance(out, np.ndarray):
        assert out.shape == (8, 10) and np.isfinite(out).all()
    else:
        assert bool((out.fc1.weight[mask == 0] == 0).all())


def test_encode_and_bit_length_take_a_tensor_by_value():
    code = coding.huffman_code(coding.count_symbols(torch.tensor([3, 3, 3, 5, 7])))
    symbols = torch.tensor([3, 5, 7, 3])
    assert coding.bit_length(symbols, code) == coding.bit_length([3, 5, 7, 3], code) == 1 + 2 + 2 + 1
    assert coding.decode(coding.encode(symbols, code), code, 4) == [3, 5, 7, 3]
