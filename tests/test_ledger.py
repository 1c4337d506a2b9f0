"""The course's ledger (compresskit.training.ledger): promised ratios from counting, real bytes on
disk checked against formulas and against files rebuilt independently (scipy's CSR arrays),
the caller's model left alone, clear errors on bad input, and timings that come only from
compresskit.measure's clock (under COMPRESSKIT_CLOCK=random the ledger still runs and judges)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse
import torch
from torch import nn

from compresskit import data, measure, models, pruning, train
from compresskit.course import verdict
from compresskit.training.ledger import Ledger, LedgerRow, ledger

pytestmark = pytest.mark.usefixtures("one_thread")

KEYS = ["dense", "masked", "masks_removed", "units", "int8", "csr", "nm_2of4", "ensemble", "student", "superres", "qat4",
        "deep_compression"]
# The digits MLP 64-256-256-10, counted by hand.
WEIGHTS = 64 * 256 + 256 * 256 + 256 * 10  # 84,480
BIASES = 256 + 256 + 10  # 522
PARAMS = WEIGHTS + BIASES  # 85,002
LAYERS = 3
NNZ_90 = WEIGHTS - round(0.9 * WEIGHTS)  # torch's pruning rounds the count: 8,448 weights kept


def trained_mlp(seed: int = 0) -> nn.Sequential:
    model = models.mlp(seed=seed)
    train.fit(model, data.digits_loaders(seed=seed)[0], epochs=10, progress=False)
    return model


@pytest.fixture(scope="module")
def split():
    return data.load_digits_split()


@pytest.fixture(scope="module")
def model():
    return trained_mlp()


@pytest.fixture(scope="module")
def run(model, split):
    """One ledger of the trained MLP, and the caller's model as it was before and after."""
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    result = ledger(model, split, seed=0)
    return result, before, torch.equal(torch.get_rng_state(), rng)


@pytest.fixture(scope="module")
def led(run) -> Ledger:
    return run[0]


def nonzero_weights(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(m.weight)) for m in model if isinstance(m, nn.Linear))


def save_size(tensors: dict, folder, key: str) -> int:
    """Bytes of ``torch.save(tensors)`` at ``folder/key/model.pt``, the name the ledger uses."""
    path = folder / key / "model.pt"
    path.parent.mkdir()
    torch.save(tensors, path)
    return path.stat().st_size


# --- the rows --------------------------------------------------------------------------------


def test_one_row_per_technique_in_the_course_order(led):
    assert led.keys() == KEYS
    assert all(isinstance(r, LedgerRow) for r in led.rows)
    chapters = [r.chapter for r in led.rows]
    assert chapters == sorted(chapters) and set(chapters) == {1, 2, 3, 4, 5, 6, 7, 8}
    assert led["csr"].technique == "pruned 90%, CSR"
    with pytest.raises(KeyError, match="no ledger row 'qat'"):
        led["qat"]


def test_super_resolution_row_says_it_does_not_apply_with_no_numbers(led):
    row = led["superres"]
    assert row.chapter == 7 and "does not apply" in row.why
    numbers = (row.promised_ratio, row.file_bytes, row.payload_bytes, row.disk_ratio, row.accuracy, row.latency, row.speedup, row.claim)
    assert all(v is None for v in numbers)


def test_promised_ratios_come_from_counting_parameters_and_bits(led):
    half = 64 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10  # the MLP with half its hidden units: 26,122
    expected = {
        "dense": 1.0,
        "masked": PARAMS / (NNZ_90 + BIASES),
        "masks_removed": PARAMS / (NNZ_90 + BIASES),
        "csr": PARAMS / (NNZ_90 + BIASES),
        "units": PARAMS / half,
        "int8": 32 / 8,
        "nm_2of4": PARAMS / (WEIGHTS / 2 + BIASES),
        "ensemble": 1 / 3,
        "student": PARAMS / (64 * 32 + 32 + 32 * 10 + 10),
        "qat4": 32 / 4,
        "deep_compression": 32 * PARAMS / (5 * nonzero_weights(led["deep_compression"].model) + 32 * BIASES),  # 5-bit indices
    }
    for key, value in expected.items():
        assert led[key].promised_ratio == pytest.approx(value, rel=1e-12), key
    assert round(led["masked"].promised_ratio, 2) == 9.48 and round(led["student"].promised_ratio, 1) == 35.3


# --- bytes on disk ---------------------------------------------------------------------------------


def test_payloads_equal_the_formulas(led):
    expected = {
        "dense": 4 * PARAMS,
        "masked": 4 * (2 * WEIGHTS + BIASES),  # weight_orig AND weight_mask, float32 both, and the biases
        "masks_removed": 4 * PARAMS,
        # CSR: a row pointer per row plus one, int32; per non-zero an int32 column and a float32 value; biases; shapes (2 int64)
        "csr": 4 * (BIASES + LAYERS) + 8 * NNZ_90 + 4 * BIASES + 16 * LAYERS,
        # 2:4: half the weights in float32, a 2-bit position each; biases; shapes
        "nm_2of4": 4 * WEIGHTS // 2 + WEIGHTS // 2 * 2 // 8 + 4 * BIASES + 16 * LAYERS,
        # int8 weights; per output channel a float32 scale, an int32 bias, int64 multiplier and shift; 4 qparams per layer
        "int8": WEIGHTS + BIASES * (4 + 4 + 8 + 8) + LAYERS * 4 * 8,
        "ensemble": 3 * 4 * PARAMS,
        "student": 4 * 2410,
        "qat4": WEIGHTS // 2 + 4 * BIASES + 4 * BIASES + 16 * LAYERS,  # two 4-bit codes a byte; float32 scales and biases
    }
    for key, value in expected.items():
        assert led[key].payload_bytes == value, key
    assert led["deep_compression"].payload_bytes is None  # one coded stream: no separate arrays to count


def test_files_are_their_payload_plus_bounded_headers(led):
    for row in led.rows:
        if row.payload_bytes is None:
            continue
        tensors = {"dense": 6, "masked": 9, "masks_removed": 6, "units": 6, "int8": 27, "csr": 15, "nm_2of4": 12,
                   "ensemble": 18, "student": 4, "qat4": 12}[row.key]
        assert row.payload_bytes < row.file_bytes <= row.payload_bytes + 1024 * tensors, row.key
        assert row.disk_ratio == led["dense"].file_bytes / row.file_bytes


def test_dense_file_is_torch_save_of_the_state_dict(led, model, tmp_path):
    assert led["dense"].file_bytes == save_size(model.state_dict(), tmp_path, "dense")
    assert led["dense"].disk_ratio == 1.0


def test_masks_double_the_file_and_removing_them_gives_back_the_dense_file(led):
    assert led["masked"].file_bytes > 1.9 * led["dense"].file_bytes
    assert led["masks_removed"].file_bytes == led["dense"].file_bytes  # the zeros cost 4 bytes each
    assert led["masked"].disk_ratio < 0.55 < 0.99 < led["masks_removed"].disk_ratio < 1.01


def test_the_pruned_model_keeps_exactly_the_promised_non_zeros(led):
    removed = led["masks_removed"].model
    weights = [m.weight for m in removed if isinstance(m, nn.Linear)]
    assert sum(int(torch.count_nonzero(w)) for w in weights) == NNZ_90
    assert not torch.nn.utils.prune.is_pruned(removed)


def test_csr_file_equals_one_rebuilt_from_scipys_arrays(led, tmp_path):
    """The CSR file holds exactly scipy's (indptr, indices, data) of the pruned weights, the biases and the shapes."""
    tensors, payload = {}, 0
    for name, m in led["masks_removed"].model.named_children():
        if isinstance(m, nn.Linear):
            csr = scipy.sparse.csr_matrix(m.weight.detach().numpy())
            payload += csr.indptr.nbytes + csr.indices.nbytes + csr.data.nbytes + m.bias.numel() * 4 + 16
            tensors |= {f"{name}.crow_indices": torch.from_numpy(csr.indptr.astype(np.int32)),
                        f"{name}.col_indices": torch.from_numpy(csr.indices.astype(np.int32)),
                        f"{name}.values": torch.from_numpy(csr.data), f"{name}.bias": m.bias.detach().clone(),
                        f"{name}.shape": torch.tensor(m.weight.shape, dtype=torch.int64)}
    assert led["csr"].payload_bytes == payload
    assert led["csr"].file_bytes == save_size(tensors, tmp_path, "csr")
    assert led["csr"].disk_ratio < led["csr"].promised_ratio / 2  # the indices cost half the promise and more


def test_csr_kernel_computes_the_pruned_model(led, split):
    X, _ = split.tensors("test")
    with torch.no_grad():
        assert torch.allclose(led["csr"].model(X), led["masks_removed"].model(X), atol=1e-4)
    assert led["csr"].accuracy == led["masks_removed"].accuracy == led["masked"].accuracy


def test_int8_file_is_the_integer_mlps_state_dict(led, model, tmp_path):
    from compresskit.quantization import IntegerMLP

    int_model = IntegerMLP.from_float(model, data.calibration_batch(256, seed=0))
    assert led["int8"].file_bytes == save_size(int_model.state_dict(), tmp_path, "int8")
    assert 3.0 < led["int8"].disk_ratio < 3.5 < 4.0 == led["int8"].promised_ratio  # metadata per channel


def test_two_of_four_model_is_two_of_four_sparse(led):
    from compresskit.sparsity import is_nm_sparse

    for m in led["nm_2of4"].model:
        if isinstance(m, nn.Linear):
            assert is_nm_sparse(m.weight.detach()) and int(torch.count_nonzero(m.weight)) == m.weight.numel() // 2


def test_structured_pruning_and_the_student_are_really_smaller(led):
    for key in ("units", "student"):
        row = led[key]
        assert led["dense"].payload_bytes / row.payload_bytes == pytest.approx(row.promised_ratio, rel=1e-12), key
        headers = row.file_bytes - row.payload_bytes  # the promise holds for the arrays; headers weigh more in a small file
        assert row.disk_ratio == led["dense"].file_bytes / (row.payload_bytes + headers) < row.promised_ratio, key
    assert led["units"].disk_ratio > 0.95 * led["units"].promised_ratio
    assert led["student"].disk_ratio > 0.75 * led["student"].promised_ratio
    assert [m.out_features for m in led["units"].model if isinstance(m, nn.Linear)] == [128, 128, 10]
    assert measure.count_parameters(led["student"].model) == 2410


def test_the_ensemble_is_bigger(led):
    row = led["ensemble"]
    assert len(row.model.members) == 3
    assert 2.99 < row.file_bytes / led["dense"].file_bytes < 3.0  # three times the bytes, one set of headers fewer
    assert row.disk_ratio < 0.34


def test_accuracies_at_seed_0(led):
    """Fine-tuned rows stay within 2 points of the dense model; the integer MLP within 1 (seed 0)."""
    dense = led["dense"].accuracy
    assert dense > 0.95
    for key in ("masked", "units", "nm_2of4", "ensemble", "student", "qat4", "deep_compression"):
        assert led[key].accuracy >= dense - 0.02, (key, led[key].accuracy, dense)
    assert led["int8"].accuracy >= dense - 0.01


def test_qat_weights_lie_on_a_4_bit_grid_per_channel(led):
    """Symmetric narrow 4-bit grid: each output channel holds at most 15 values, integer multiples of max|w| / 7."""
    for m in led["qat4"].model:
        if isinstance(m, nn.Linear):
            w = m.weight.detach().double()
            scale = w.abs().amax(dim=1, keepdim=True) / 7
            codes = w / scale
            assert torch.allclose(codes, codes.round(), atol=1e-4) and int(codes.round().abs().max()) == 7
            assert max(len(torch.unique(row)) for row in w) <= 15


def test_deep_compression_file_is_lossless_and_small(led, tmp_path):
    from compresskit.training.dcfile import save_compressed

    row = led["deep_compression"]
    assert save_compressed(row.model, tmp_path / "again.ckdc") == row.file_bytes  # what was read back is what was written
    for m in row.model:
        if isinstance(m, nn.Linear):
            assert len(torch.unique(m.weight[m.weight != 0])) <= 32  # 5-bit weight sharing
    assert nonzero_weights(row.model) <= NNZ_90
    assert row.disk_ratio > 30 and "fixed-width codes" in row.why


# --- the caller's model -------------------------------------------------------------------------


def test_the_callers_model_is_not_changed(run, model):
    _, before, rng_unchanged = run
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert model.training  # still in training mode: nothing put it in eval mode
    assert not torch.nn.utils.prune.is_pruned(model)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    assert rng_unchanged  # no draw from the global random state


# --- table and judging -----------------------------------------------------------------------------


def test_table_has_a_line_per_row_and_a_reason_per_row(led):
    text = led.table()
    lines = text.splitlines()
    assert lines[0].startswith("| ch | technique | promised") and lines[1].startswith("|---")
    body = lines[2: 2 + len(led.rows)]
    assert [line.split(" | ")[1] for line in body] == [r.technique for r in led.rows]
    assert "| 7 | super-resolution | n/a | n/a |" in text
    assert f"{led['masked'].file_bytes:,}" in text and "0.50x" in text
    notes = [line for line in lines if line.startswith("- ")]
    assert notes == [f"- {r.technique}: {r.why}" for r in led.rows]
    assert "weight_orig AND weight_mask" in led["masked"].why and "column index" in led["csr"].why
    assert led.table(why=False).count("\n") == len(led.rows) + 1


def test_judge_hands_every_claim_to_the_judge_and_never_asserts(led):
    calls = []

    def fake_judge(claim, value, *, above=None, below=None, why=None, hardware=()):
        calls.append((claim, value, above, below))
        return value

    out = led.judge(fake_judge)
    claimed = [r for r in led.rows if r.claim is not None]
    assert out == [r.speedup for r in claimed] and len(calls) == len(claimed) == len(led.claims())
    assert {r.key for r in claimed} == set(KEYS) - {"dense", "superres"}
    assert all((a is None) != (b is None) for _, _, a, b in calls)
    with pytest.raises(TypeError, match="`judge` must be callable"):
        led.judge("verdict.judge")


def test_latencies_are_read_from_measures_clock_only(model, split, monkeypatch):
    """A fake clock that ticks 1 ms per reading: every latency is exactly 1 ms and every ratio 1."""
    ticks = iter(range(10**9))
    monkeypatch.setattr(measure, "clock", lambda: next(ticks) * 1e-3)
    result = ledger(model, split, epochs=0, n_members=2, member_epochs=1, repeats=3)
    timed = [r for r in result.rows if r.latency is not None]
    assert len(timed) == len(result.rows) - 1
    for row in timed:
        assert row.latency.median == pytest.approx(1e-3) and row.speedup == pytest.approx(1.0), row.key
    assert result["ensemble"].technique == "ensemble of 2 MLPs" and result["ensemble"].promised_ratio == 0.5


def test_under_the_random_clock_bytes_hold_and_verdicts_are_only_printed(model, split, led, monkeypatch, capsys):
    """COMPRESSKIT_CLOCK=random:0: timings are noise, the ledger still runs, bytes are unchanged,
    and each claim is judged (printed), never asserted. ONNX Runtime's int8 row joins here."""
    monkeypatch.setenv(measure.CLOCK_ENV, "random:0")
    monkeypatch.setattr(measure, "_random_clock", None)
    result = ledger(model, split, epochs=0, n_members=3, member_epochs=1, repeats=3, onnx=True)
    assert result.keys() == KEYS[:5] + ["onnx_int8"] + KEYS[5:]
    assert result["deep_compression"].file_bytes < led["dense"].file_bytes / 30
    for key in ("dense", "masked", "masks_removed", "int8", "csr", "nm_2of4", "ensemble", "student", "qat4"):
        assert result[key].file_bytes == led[key].file_bytes, key  # bytes do not depend on the clock or the training
    verdicts = result.judge(verdict.judge)
    assert len(verdicts) == len(result.claims()) and all(v.random_clock for v in verdicts)
    assert "random test clock" in capsys.readouterr().out
    onnx = result["onnx_int8"]
    assert onnx.promised_ratio == 4.0 and onnx.payload_bytes < onnx.file_bytes < led["dense"].file_bytes / 2
    assert onnx.accuracy >= led["dense"].accuracy - 0.01


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, error, message", [
    ("model", TypeError, "`model` must be a torch.nn.Module"),
    (models.cnn(), TypeError, "`model` must be an MLP of Flatten, Linear and ReLU"),
    (models.mlp(()), ValueError, "at least one hidden layer"),
    (models.mlp(in_features=32), ValueError, "must map the split's 64 pixels to 10 classes; got 32 -> 10"),
    (models.mlp((30,)), ValueError, "divisible by 4 .*layer 1 has 30"),
])
def test_a_model_that_is_not_a_digits_mlp_is_refused(bad, error, message, split):
    with pytest.raises(error, match=message):
        ledger(bad, split)


def test_an_untrained_model_is_refused(split):
    with pytest.raises(ValueError, match=r"must be trained on the digits.*got \d+\.\d% on 360 test digits"):
        ledger(models.mlp(seed=0), split)


def test_a_pruned_or_broken_model_is_refused(model, split):
    pruned = models.copy_model(model)
    pruning.l1_unstructured(pruned.fc1, "weight", amount=0.5)
    with pytest.raises(ValueError, match="without pruning masks"):
        ledger(pruned, split)
    broken = models.copy_model(model)
    with torch.no_grad():
        broken.fc2.weight[0, 0] = math.nan
    with pytest.raises(ValueError, match="`fc2.weight` has NaN"):
        ledger(broken, split)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(seed=-1), ValueError, "`seed` must be an integer"),
    (dict(epochs=1.5), TypeError, "`epochs` must be an integer"),
    (dict(n_members=1), ValueError, r"`n_members` must be an integer in \[2, inf\]; got 1"),
    (dict(batch_size=0), ValueError, "`batch_size`"),
    (dict(repeats=0), ValueError, "`repeats`"),
    (dict(onnx="yes"), TypeError, "`onnx` must be bool"),
])
def test_bad_settings_are_refused_before_any_work(model, split, kwargs, error, message):
    with pytest.raises(error, match=message):
        ledger(model, split, **kwargs)


def test_a_split_that_is_not_a_digits_split_is_refused(model, split):
    with pytest.raises(TypeError, match="`split` must be a DigitsSplit"):
        ledger(model, split.tensors("train"))
