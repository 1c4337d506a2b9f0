"""Every public function of the core, pruning and quantization refuses bad input with an error
that names the argument and shows the value received; a call that fails changes no model.

One row per (function, bad call): the error type and the words its message must contain. A
completeness test checks that every public name has a row or a stated reason for having none.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from bad_input_harness import Bad, a, assert_refused, lazy
from compresskit import ensembles, measure, models, pruning, train
from compresskit import quantization as Q
from compresskit.quantization import ort


def mlp() -> nn.Sequential:
    return models.mlp((8,), seed=0)


def pruned_mlp() -> nn.Sequential:
    model = mlp()
    pruning.l1_unstructured(model.fc1, "weight", 0.5)
    return model


def nan_mlp() -> nn.Sequential:
    model = mlp()
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("nan")
    return model


X = torch.rand(4, 1, 8, 8)
Y = torch.tensor([0, 1, 2, 3])
NAN = torch.tensor([[1.0, float("nan")], [0.5, 0.25]])


def _fitted_tree():
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_depth=1).fit(np.array([[0.0, 1.0], [1.0, 0.0]]), [0, 1])


CASES = [
    # --- models ---------------------------------------------------------------------------------
    Bad(models.mlp, a(hidden=(8, -2)), ValueError, ["`hidden[1]`", "-2"]),
    Bad(models.mlp, a(hidden=(8,), seed=-5), ValueError, ["`seed`", "-5"]),
    Bad(models.cnn, a(channels=[4, 2.5]), TypeError, ["`channels[1]`", "2.5"]),
    Bad(models.cnn, a(num_classes=1), ValueError, ["`num_classes`", "1"]),
    Bad(models.copy_model, a("mlp"), TypeError, ["`model`", "'mlp'"]),
    Bad(models.dense_copy, a("mlp"), TypeError, ["`model`", "'mlp'"]),
    Bad(models.TinyLMConfig, a(n_head=3, d_model=128), ValueError, ["`d_model`", "`n_head`=3", "128"]),
    Bad(models.TinyLMConfig, a(n_layer=0), ValueError, ["`n_layer`", "0"]),
    Bad(models.TinyLM, a({"n_layer": 2}), TypeError, ["`config`", "dict"]),
    Bad(models.tiny_lm, a(seed=-1), ValueError, ["`seed`", "-1"]),
    Bad(lambda idx: models.tiny_lm(models.TinyLMConfig(n_layer=1, n_head=1, d_model=8, block_size=4))(idx),
        a(torch.zeros(1, 5, dtype=torch.long)), ValueError, ["`idx`", "block_size=4", "5"]),
    Bad(models.load_tiny_lm, a("mian"), ValueError, ["`name`", "'mian'"]),
    # --- train ----------------------------------------------------------------------------------
    Bad(train.fit, lazy(lambda: ((mlp(), [(X, Y)]), {"val_loader": [], "progress": False})), ValueError, ["`val_loader`", "empty list"], watch=0),
    Bad(train.fit, lazy(lambda: ((mlp(), [(X, Y)]), {"lr": -1.0, "progress": False})), ValueError, ["`lr`", "-1.0"], watch=0),
    Bad(train.fit, lazy(lambda: ((mlp(), [(X, Y)]), {"epochs": 2.0, "progress": False})), TypeError, ["`epochs`", "2.0"], watch=0),
    Bad(train.fit, lazy(lambda: ((mlp(), [(X * float("nan"), Y)]), {"progress": False})), ValueError, ["`train_loader`", "NaN"]),
    Bad(train.fit, lazy(lambda: ((mlp(), [(X, Y)]), {"seed": "0", "progress": False})), TypeError, ["`seed`", "'0'"], watch=0),
    Bad(train.fit, lazy(lambda: ((mlp(), [(X, Y)]), {"val_loader": [(X, torch.tensor([0, 1, 2, 10]))], "progress": False})),
        ValueError, ["`val_loader`", "labels in [0, 9]", "to 10"], watch=0),  # refused before the first step
    Bad(train.fit, lazy(lambda: ((mlp(), [(X, Y)]), {"val_loader": [(torch.rand(4, 1, 7, 7), Y)], "progress": False})),
        ValueError, ["`val_loader`", "does not fit `model`"], watch=0),
    Bad(train.predict, lazy(lambda: ((mlp(), X * float("nan")), {})), ValueError, ["`data`", "NaN"], watch=0),
    Bad(train.predict, a(nn.ReLU(), X), ValueError, ["`model`", "ReLU"]),
    Bad(measure.accuracy, lazy(lambda: ((mlp(), X, torch.tensor([0, 1, 2, 10])), {})), ValueError, ["`y`", "labels in [0, 9]", "to 10"], watch=0),
    Bad(measure.accuracy, lazy(lambda: ((mlp(), X, Y.float()), {})), TypeError, ["`y`", "integer class labels", "float32"], watch=0),
    Bad(measure.accuracy, lazy(lambda: ((mlp(), torch.rand(4, 1, 7, 7), Y), {})), ValueError, ["`X`", "does not fit `model`", "(4, 1, 7, 7)"], watch=0),
    Bad(train.predict, lazy(lambda: ((mlp(), torch.rand(4, 1, 7, 7)), {})), ValueError, ["`data`", "does not fit `model`", "(4, 1, 7, 7)"], watch=0),
    Bad(train.evaluate, lazy(lambda: ((mlp(), [(X, torch.tensor([0, 1, 2, 10]))]), {})), ValueError, ["`data`", "labels in [0, 9]", "to 10"], watch=0),
    Bad(train.evaluate, lazy(lambda: ((mlp(), [(X, Y.float())]), {})), ValueError, ["`data`", "integer class labels", "float32"], watch=0),
    Bad(train.evaluate, lazy(lambda: ((models.cnn(seed=0).train(), [(torch.rand(4, 1, 7, 7), Y)]), {})), ValueError, ["`data`", "does not fit `model`"], watch=0),
    Bad(train.evaluate, lazy(lambda: ((mlp(), X), {})), TypeError, ["`data`", "tensor of shape (4, 1, 8, 8)"], watch=0),
    Bad(train.evaluate, lazy(lambda: ((mlp(), [(X, Y)]), {"device": "gpu"})), ValueError, ["`device`", "'gpu'"], watch=0),
    Bad(train.soft_cross_entropy, a(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError, ["`targets`", "(2, 4)"]),
    Bad(train.soft_cross_entropy, a(torch.zeros(2, 2), NAN), ValueError, ["`targets`", "NaN"]),  # returned NaN
    # --- measure --------------------------------------------------------------------------------
    Bad(measure.count_parameters, a([1, 2]), TypeError, ["`model`", "[1, 2]"]),
    Bad(measure.count_nonzero, a("mlp"), TypeError, ["`model`", "'mlp'"]),
    Bad(measure.effective_parameters, a(3), TypeError, ["`model`", "3"], note="a generator: the check runs on first next()"),
    Bad(measure.sparsity, a(nn.ReLU()), ValueError, ["`model`", "none"]),
    Bad(measure.tensor_bytes, a(-1, torch.int8), ValueError, ["`numel`", "-1"]),
    Bad(measure.count_macs, lazy(lambda: ((mlp(), torch.zeros(2, 64, dtype=torch.int64)), {})), TypeError, ["`example`", "torch.int64"], watch=0),
    Bad(measure.measure_latency, a(lambda: None, repeats=0), ValueError, ["`repeats`", "0"]),
    Bad(measure.latency_ratio, a(lambda: None, 7), TypeError, ["`b`", "7"]),
    Bad(measure.accuracy, lazy(lambda: ((mlp(), X, Y[:3]), {})), ValueError, ["`X` and `y`", "4 and 3"], watch=0),
    # --- pruning: pure masks ---------------------------------------------------------------------
    Bad(pruning.magnitude_mask, a(torch.randn(3, 4), 1.5), ValueError, ["`amount`", "1.5"]),
    Bad(pruning.magnitude_mask, a(torch.randn(3, 4), 13), ValueError, ["`amount`", "13"]),
    Bad(pruning.threshold_mask, a(torch.randn(3), -0.1), ValueError, ["`threshold`", "-0.1"]),
    Bad(pruning.random_mask, a(torch.randn(3), 0.5, seed=-1), ValueError, ["`seed`", "-1"]),
    Bad(pruning.slice_norms, a(torch.randn(3, 4), 2, dim=2), ValueError, ["`dim`", "2"]),
    Bad(pruning.ln_structured_mask, a(torch.randn(5), 0.0), ValueError, ["`weight`", "(5,)"]),
    Bad(pruning.ln_structured_mask, a(torch.randn(3, 3), 0.5, n=0.5), ValueError, ["`n`", "0.5"]),
    Bad(pruning.global_magnitude_masks, a([], 0.5), ValueError, ["`weights`", "[]"]),
    Bad(pruning.global_magnitude_masks, a([torch.randn(3), NAN], 0.5), ValueError, ["`weights[1]`", "NaN"]),
    # --- pruning: torch's methods and adapters ------------------------------------------------------
    Bad(pruning.L1Unstructured, a(-1), ValueError, ["`amount`", "-1"]),
    Bad(pruning.RandomUnstructured, a(0.5, seed=1.5), TypeError, ["`seed`", "1.5"]),
    Bad(pruning.LnStructured, a(0.5, n="two"), ValueError, ["`n`", "'two'"]),
    Bad(pruning.ThresholdUnstructured, a(-2.0), ValueError, ["`threshold`", "-2.0"]),
    Bad(pruning.l1_unstructured, lazy(lambda: ((pruned_mlp().fc1, "weight", 300), {})), ValueError, ["`amount`", "300"], watch=0),
    Bad(pruning.l1_unstructured, lazy(lambda: ((mlp().fc1, "wieght", 0.5), {})), ValueError, ["`name`", "'wieght'"], watch=0),
    Bad(pruning.random_unstructured, lazy(lambda: ((pruned_mlp().fc1, "weight", 1.5), {})), ValueError, ["`amount`", "1.5"], watch=0),
    Bad(pruning.threshold_unstructured, lazy(lambda: ((mlp().fc1, "weight", float("nan")), {})), ValueError, ["`threshold`", "nan"], watch=0),
    Bad(pruning.ln_structured, lazy(lambda: ((mlp().fc1, "bias", 0.5, 2, 0), {})), ValueError, ["`Linear.bias`", "(8,)"], watch=0),
    Bad(pruning.ln_structured, lazy(lambda: ((pruned_mlp().fc1, "weight", 0.5, 2, 5), {})), ValueError, ["`dim`", "5"], watch=0),
    Bad(pruning.global_unstructured, lazy(lambda: ((pruning.prunable_parameters(mlp()), pruning.L1Unstructured), {"amount": 2.0})),
        ValueError, ["`amount`", "2.0"]),
    Bad(pruning.prunable_parameters, a(None), TypeError, ["`model`", "None"]),
    Bad(pruning.set_sparsity, lazy(lambda: (((m := mlp()), [(m.fc1, "weight"), (m.fc2, "wieght")], 0.5), {})), ValueError, ["`name`", "'wieght'"], watch=0,
        note="args[0] is the model: set_sparsity is called with args[1:]"),
    Bad(pruning.set_sparsity, lazy(lambda: (((m := mlp()), pruning.prunable_parameters(m), 0.5), {"scope": "row"})), ValueError, ["`scope`", "'row'"], watch=0),
    Bad(pruning.layer_sparsity, a(42), TypeError, ["`model`", "42"]),
    Bad(pruning.remove_masks, a("model"), TypeError, ["`model`", "'model'"]),
    Bad(pruning.copy_model, a(1.5), TypeError, ["`model`", "1.5"]),
    # --- pruning: units ----------------------------------------------------------------------------
    Bad(pruning.find_couplings, a(nn.Linear(2, 2)), TypeError, ["`model`", "Linear"]),
    Bad(pruning.unit_importance, a(torch.randn(5)), ValueError, ["`weight`", "(5,)"]),
    Bad(pruning.keep_units, a(torch.rand(4), 1.0), ValueError, ["`amount`", "1.0"]),
    Bad(pruning.mask_units, lazy(lambda: (((m := mlp()), pruning.find_couplings(m)[0], torch.tensor([0, 8])), {})), ValueError, ["`keep`", "[0, 8]"], watch=0),
    Bad(pruning.remove_units, lazy(lambda: (((m := pruned_mlp()), pruning.find_couplings(m)[0], [0, 1]), {})), TypeError, ["`keep`", "[0, 1]"], watch=0),
    Bad(pruning.remove_units, lazy(lambda: ((pruned_mlp(), pruning.Coupling("fc1", "fc2", None, 2), torch.tensor([0, 1])), {})),
        ValueError, ["`coupling`", "group 2", "'fc2' has 8 inputs"], watch=0),  # sliced 4 of fc2's 8 columns silently
    Bad(pruning.mask_units, lazy(lambda: ((pruned_mlp(), pruning.Coupling("fc1", "fc2", None, 3), torch.tensor([0, 1])), {})),
        ValueError, ["`coupling`", "group 3"], watch=0),
    Bad(pruning.remove_units, lazy(lambda: ((mlp(), pruning.Coupling("fc1", "fc2", None, 0), torch.tensor([0])), {})),
        ValueError, ["`coupling.group`", "0"], watch=0),
    Bad(ensembles.out_of_fold_predictions, lazy(lambda: ((_fitted_tree(), [[0.0]] * 9 + [["a"]], [0, 1] * 5), {"n_splits": 2})),
        TypeError, ["`X`", "numbers"]),  # numpy's "only integer scalar arrays" before
    Bad(ensembles.out_of_fold_predictions, lazy(lambda: ((_fitted_tree(), np.zeros((10, 2)), np.zeros((10, 2))), {"n_splits": 2})),
        ValueError, ["`y`", "1-D", "(10, 2)"]),
    Bad(train.soft_cross_entropy, a(torch.zeros(2, 2), torch.tensor([[-1.0, 2.0], [0.5, 0.5]])), ValueError, ["`targets`", "probability", "-1"]),
    Bad(train.soft_cross_entropy, a(torch.zeros(2, 2), torch.tensor([[3.0, 2.0], [0.5, 0.5]])), ValueError, ["`targets`", "sum 5"]),  # logits as targets
    Bad(ensembles.stack_columns, lazy(lambda: ((_fitted_tree(), np.zeros((3, 2)), "predict_prob", 2), {})),
        ValueError, ["`method`", "'predict_prob'"]),  # fell through to decision_function
    Bad(pruning.prune_units, lazy(lambda: ((pruned_mlp(), 0.5), {"layers": []})), ValueError, ["`layers`", "[]"], watch=0),
    Bad(pruning.prune_units, lazy(lambda: ((pruned_mlp(), 9), {})), ValueError, ["`amount`", "9"], watch=0),
    # --- pruning: schedules -------------------------------------------------------------------------
    Bad(pruning.cubic_sparsity, a(5, 1, 0, 10), TypeError, ["`final_sparsity`", "int 1"]),
    Bad(pruning.GradualPruner, a(pruning.prunable_parameters(mlp()), 0.9, 0, 10, frequency=0), ValueError, ["`frequency`", "0"]),
    Bad(pruning.iterative_pruning, lazy(lambda: ((pruned_mlp(), [0.5, 1.2], lambda m: None), {})), ValueError, ["`amounts[1]`", "1.2"], watch=0),
    Bad(pruning.hybrid_prune, lazy(lambda: ((pruned_mlp(), 0.5, 0.5), {"scope": "rows"})), ValueError, ["`scope`", "'rows'"], watch=0),
    Bad(pruning.sensitivity_scan, lazy(lambda: ((pruned_mlp(), [0.5], lambda m: 0.0), {"layers": []})), ValueError, ["`layers`", "[]"], watch=0),
    Bad(pruning.sensitivity_scan, lazy(lambda: ((pruned_mlp(), [0.5], "accuracy"), {})), TypeError, ["`score`", "str"], watch=0),
    # --- quantization: linear -----------------------------------------------------------------------
    Bad(Q.qrange, a(17, True), ValueError, ["`bits`", "17"]),
    Bad(Q.calculate_qparams, a(1.0, -1.0, 0, 255), ValueError, ["`min_val`", "1.0"]),
    Bad(Q.tensor_range, a(NAN), ValueError, ["`x`", "NaN"]),
    Bad(Q.quantize, a(torch.randn(4), 0.1, 2.5, 0, 255), TypeError, ["`zero_point`", "2.5"]),
    Bad(Q.quantize, a(torch.randn(4), 0.1, 300, 0, 255), ValueError, ["`zero_point`", "300"]),
    Bad(Q.fake_quantize, a(torch.randn(4), 0.1, -1, 0, 255), ValueError, ["`zero_point`", "-1"]),
    Bad(Q.fake_quantize, a(torch.randn(4), -0.1, 0, 0, 255), ValueError, ["`scale`", "-0.1"]),
    Bad(Q.dequantize, a(torch.randn(4), 0.1, 0), TypeError, ["`q`", "torch.float32"]),
    Bad(Q.quantize_tensor, a(torch.randn(4), 8, "log"), ValueError, ["`scheme`", "'log'"]),
    Bad(Q.pack_bits, a(torch.tensor([3, 20]), 0, 4), ValueError, ["`q`", "[3, 20]"]),
    Bad(Q.pack_bits, a(torch.tensor([1.5]), 0, 4), TypeError, ["`q`", "torch.float32"]),
    Bad(Q.unpack_bits, a(torch.zeros(2, dtype=torch.uint8), 0, 4, 5), ValueError, ["`numel`", "5"]),
    # --- quantization: calibration, non-linear, floating ---------------------------------------------
    Bad(Q.minmax_range, a(torch.ones(5)), ValueError, ["`x`", "1.0"]),
    Bad(Q.moving_average_range, a([torch.rand(3)], averaging_constant=0.0), ValueError, ["`averaging_constant`", "0.0"]),
    Bad(Q.percentile_range, a(torch.rand(10), percentile=101), ValueError, ["`percentile`", "101"]),
    Bad(Q.entropy_threshold, a(torch.rand(100), num_bins=10), ValueError, ["`num_bins`", "10"]),
    Bad(Q.entropy_range, a(torch.rand(100), bits=0), ValueError, ["`bits`", "0"]),
    Bad(Q.calibrate, a(torch.rand(10), "mean"), ValueError, ["`method`", "'mean'"]),
    Bad(Q.kmeans_quantize, a(torch.randn(10), n_iter=-1), ValueError, ["`n_iter`", "-1"]),
    Bad(Q.kmeans_dequantize, a(torch.randn(4), torch.tensor([0, 7])), ValueError, ["`indices`", "7"]),
    Bad(Q.power_of_two_encode, a(torch.randn(4), bits=1), ValueError, ["`bits`", "1"]),
    Bad(Q.power_of_two_decode, a(torch.tensor([1]), 500), ValueError, ["`e_max`", "500"]),
    Bad(Q.activation_ranges, lazy(lambda: ((mlp(), torch.rand(4, 1, 7, 7)), {})), ValueError, ["`calibration_data`", "64 features", "got 49"], watch=0),
    Bad(Q.power_of_two_decode, a(torch.tensor([1.5, -2.0]), 3), TypeError, ["`codes`", "integer", "float32"]),  # decoded 1.5
    Bad(Q.power_of_two_quantize, a(NAN), ValueError, ["`x`", "NaN"]),
    Bad(Q.float_format, a(torch.int8), TypeError, ["`dtype`", "torch.int8"]),
    Bad(Q.round_trip, a(torch.randn(3), "half"), TypeError, ["`dtype`", "'half'"]),
    Bad(Q.fixed_point_encode, a(torch.randn(3), 20, 20), ValueError, ["m=20", "n=20"]),
    Bad(Q.fixed_point_decode, a(torch.randn(3), 4), TypeError, ["`c`", "torch.float32"]),
    Bad(Q.fixed_point_range, a(-1, 4), ValueError, ["`m`", "-1"]),
    Bad(Q.HalfPrecision, lazy(lambda: ((pruned_mlp(), "float8"), {})), ValueError, ["`dtype`", "'float8'"], watch=0),
    # --- quantization: whole models and integer inference ----------------------------------------------
    Bad(Q.weights, a("model"), TypeError, ["`model`", "'model'"]),
    Bad(Q.weight_bytes, a([1, 2]), TypeError, ["`model_or_stored`", "list"]),
    Bad(Q.quantize_weights, lazy(lambda: ((nan_mlp(),), {})), ValueError, ["`fc2.weight`", "NaN"], watch=0),
    Bad(Q.quantize_weights, lazy(lambda: ((pruned_mlp(),), {"method": "huffman"})), ValueError, ["`method`", "'huffman'"], watch=0),
    Bad(Q.collect_activations, lazy(lambda: ((pruned_mlp(), X, ["fc9"]), {})), ValueError, ["`names`", "fc9"], watch=0),
    Bad(Q.fake_quantize_activations, lazy(lambda: ((pruned_mlp(), {"relu1": (1.0, 0.0)}), {})), ValueError, ["`ranges['relu1']`", "(1.0, 0.0)"], watch=0),
    Bad(Q.activation_ranges, lazy(lambda: ((nan_mlp(), X), {})), ValueError, ["`model.fc2.weight`", "NaN"], watch=0),
    Bad(Q.quantize_multiplier, a(-0.5), ValueError, ["`real_multiplier`", "-0.5"]),
    Bad(Q.requantize, a(torch.tensor([1.0]), torch.tensor(2**30), torch.tensor(0), 0, 0, 255), TypeError, ["`acc`", "torch.float32"]),
    Bad(Q.IntegerLinear.from_float, a(nn.Conv2d(1, 1, 1), (0.1, 0), (0.1, 0), True), TypeError, ["`linear`", "Conv2d"]),
    Bad(Q.IntegerLinear, a(torch.zeros(3, 4), torch.ones(3), torch.zeros(3, dtype=torch.int32), 0.1, 0, 0.1, 0,
                            torch.ones(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64), True), TypeError, ["`weight`", "torch.float32"]),
    Bad(Q.IntegerMLP, a([]), TypeError, ["`layers`", "[]"]),
    Bad(Q.IntegerMLP.from_float, lazy(lambda: ((models.cnn(), X), {})), TypeError, ["`model`", "Conv2d"], watch=0),
    Bad(lambda x: Q.IntegerMLP.from_float(mlp(), X)(x), a(torch.rand(4, 1, 7, 7)), ValueError, ["`x`", "64 features", "got 49"]),
    Bad(lambda x: Q.IntegerMLP.from_float(mlp(), X).simulate(x), a(torch.rand(4, 49)), ValueError, ["`x`", "64 features", "got 49"]),
    # --- quantization: ONNX Runtime ----------------------------------------------------------------------
    Bad(ort.export_onnx, lazy(lambda: ((pruned_mlp(), torch.zeros(2, 64, dtype=torch.int64)), {})), TypeError, ["`example`", "torch.int64"], watch=0),
    Bad(ort.quantize_onnx, a("model.onnx", X), TypeError, ["`onnx_model`", "str"]),
    Bad(ort.ort_session, a(b"", threads=0), ValueError, ["`threads`", "0"]),
    Bad(ort.ort_logits, a(object(), X), TypeError, ["`session`", "object"]),
    Bad(ort.ort_predict, a("session", X), TypeError, ["`session`", "str"]),
]

for case in CASES:
    case.id = f"{getattr(case.fn, '__qualname__', case.fn)}-{'-'.join(case.words)}"


def call(case: Bad, args: tuple, kwargs: dict) -> Any:
    if case.fn is pruning.set_sparsity:
        args = args[1:]  # the first element is only the model to watch
    result = case.fn(*args, **kwargs)
    if inspect.isgenerator(result):
        list(result)
    return result


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_and_the_value(case):
    assert_refused(case, call)  # tests/bad_input_harness.py: the error, its words, the watched model unchanged


# Public names with no row, and why.
NO_ROW = {
    "Coupling": "a frozen dataclass of names: find_couplings builds it, mask_units / remove_units check it",
    "QTensor": "a frozen dataclass that quantize_tensor builds",
    "History": "a dataclass that fit fills",
    "Latency": "a frozen dataclass that measure_latency builds",
    "LatencyRatio": "a frozen dataclass that latency_ratio builds",
    "CLOCK_ENV": "a constant",
    "clock": "takes no argument (its environment variable is checked: tests/test_random_clock.py)",
    "clock_is_random": "takes no argument",
    "machine_info": "takes no argument",
    "default_device": "takes no argument",
    "serialized_bytes": "accepts any object: it pickles what torch.save cannot write",
    "Block": "a layer TinyLM builds from its TinyLMConfig (checked there); rows for TinyLM and TinyLMConfig",
    "CausalSelfAttention": "a layer TinyLM builds from its TinyLMConfig (checked there); rows for TinyLM and TinyLMConfig",
    "MLP": "a layer TinyLM builds from its TinyLMConfig (checked there); rows for TinyLM and TinyLMConfig",
    "TINY_LM_CONFIGS": "a constant",
    "TINY_LM_FILES": "a constant",
    "cross_entropy_loss": "the default loss_fn, called every step; fit checks the model and torch checks the tensors",
}


def test_every_public_name_has_a_bad_input_row_or_a_reason():
    covered = {getattr(c.fn, "__qualname__", "").split(".")[0] for c in CASES}
    modules = [models, train, measure, pruning, Q]
    public = {name for module in modules for name in module.__all__}
    public |= {name for name in ("export_onnx", "quantize_onnx", "ort_session", "ort_logits", "ort_predict")}
    missing = sorted(public - covered - set(NO_ROW))
    assert not missing, f"public names without a bad-input row: {missing}"
    assert not set(NO_ROW) - public, "NO_ROW lists a name that is not public"
