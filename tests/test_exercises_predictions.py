"""The predict-then-measure exercises of chapters 4, 6 and 7, and their checker.

A learner predicts a number by reasoning (``my_prediction = ...``); the checker compares it
with what the library measures and names the usual wrong reasoning. The exercise contract
(tests/exercise_contract.py) hands a checker its answers as functions, a stub that raises
NotImplementedError, and answers that return odd things or raise; a prediction is a value, so
:func:`predicting` turns each such function into the value a learner would have written: what
it returns, ``...`` for the stub, and the error itself for one that raises (not a number,
which the checker must refuse without raising).

The closed forms the worked answers use are held against the library's measurements:
``sparsity.crossover_density`` and the bytes of real CSR arrays, ``distillation.soften`` and
SciPy's softmax, ``measure.count_macs`` and torch's FLOP counter.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.special
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from compresskit import measure
from compresskit import sparsity as S
from compresskit.course import predict, progress
from compresskit.course.exercises import distillation, sparsity, superres
from compresskit.distillation import soften
from exercise_contract import HOSTILE, contract_tests


def predicting(check):
    """A checker of a value, as the contract calls a checker of a function."""
    def run(answer):
        try:
            value = answer()
        except NotImplementedError:
            value = ...  # the untouched stub
        except Exception as exc:  # noqa: BLE001 - an answer that raises: its error is the value
            value = exc
        return check(value)
    return run


def value(x):
    return lambda: x


def stub():
    raise NotImplementedError


# --- the worked answers, by hand --------------------------------------------------------------

R, C = 256, 64  # fc1.weight of chapter 4's MLP
# CSR in float16 / int16: (R + 1) * 2 + nnz * (2 + 2) bytes < R * C * 2; the largest such nnz:
CSR_NNZ = (R * C * 2 - (R + 1) * 2 - 1) // 4
CSR_DENSITY = CSR_NNZ / (R * C)  # 8063 / 16384
# ten logits (ln 81, 0, ..., 0): at T = 4 the label weighs 81 ** (1/4) = 3 against 1 for each of nine
DARK_T1, DARK_T4 = 9 / (9 + 81), 9 / (9 + 3)
# FSRCNN(56, 12, 4): per LR pixel 5x5x1x56 + 1x1x56x12 + 4 x 3x3x12x12 + 1x1x12x56 + 9x9x56x1 (the deconvolution)
FSRCNN_PER_LR_PIXEL = 25 * 56 + 56 * 12 + 4 * 9 * 12 * 12 + 12 * 56 + 81 * 56  # = 12,464
FSRCNN = (FSRCNN_PER_LR_PIXEL / 4, FSRCNN_PER_LR_PIXEL / 9)  # per output pixel at x2, x3

WRONG = {
    "csr_crossover_prediction": (predicting(sparsity.check_csr_crossover_prediction), value(CSR_DENSITY), [
        (value(0.5), "leaves out the row pointers"),
        (value(1 - CSR_DENSITY), "that is the sparsity"),
        (value(round(1 - CSR_DENSITY, 3)), "that is the sparsity"),
        (value(0.498), "you counted 65 row pointers"),
        (value(2 / 3), "kept float32 values"),
        (value(0.66), "kept float32 values"),
        (value(1 / 3), "float16 values with int32 indices"),
        (value(49.2), "that is a percentage"),
        (value(50), "that is a percentage"),
        (value(0.99), "you compared with a float32 dense matrix"),
        (value(0.4), "hint: CSR stores (rows + 1) row pointers"),
    ]),
    "dark_knowledge_prediction": (predicting(distillation.check_dark_knowledge_prediction), value(DARK_T4), [
        (value(DARK_T1), "that is the off-label mass at T = 1"),
        (value(4 * DARK_T1), "does not grow in proportion to T"),
        (value(0.25), "the label's own probability"),
        (value(DARK_T4 / 9), "one other digit's probability"),
        (value(0.9), "the limit T -> infinity"),
        (value(0.0), "you multiplied the logits by T"),
        (value(0.87), "you divided the logits by T^2"),
        (value(0.5), "hint: softmax(z / T)"),
    ]),
    "fsrcnn_macs_prediction": (predicting(superres.check_fsrcnn_macs_prediction), value(FSRCNN), [
        (value((FSRCNN[0], 7928 / 9 + 81 * 56)), "as if each output pixel read a whole 9x9 window"),
        (value((7928 / 4 + 81 * 56, FSRCNN[1])), "as if each output pixel read a whole 9x9 window"),
        (value((FSRCNN_PER_LR_PIXEL, FSRCNN_PER_LR_PIXEL)), "that is per low-resolution pixel"),
        (value(((FSRCNN_PER_LR_PIXEL - 2 * 672) / 4, FSRCNN[1])), "you left out the 1x1 shrinking"),
        (value((2 * FSRCNN[0], 2 * FSRCNN[1])), "that counts FLOPs"),
        (value((FSRCNN[0], FSRCNN[0])), "that is the x2 count"),
        (value(((FSRCNN_PER_LR_PIXEL - 3 * 1296) / 4, FSRCNN[1])), "you counted one 3x3 mapping layer"),
        (value((FSRCNN[0], (FSRCNN_PER_LR_PIXEL - 81 * 55) / 9)), "81 x 56 products per LR pixel, not 81"),
        (value(3116), "write two numbers"),
        (value((3116, 1384.9, 600)), "write two numbers"),
    ]),
}

globals().update(contract_tests(WRONG, stub))


# --- each closed form is what the library measures ---------------------------------------------

def test_csr_crossover_closed_form_equals_the_library_and_real_arrays():
    assert S.crossover_density("csr", (R, C), value_bytes=2, index_bytes=2) == CSR_DENSITY
    # the bytes of real float16 / int16 CSR arrays: below dense at CSR_NNZ non-zeros, not one more
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(R * C, generator=gen)
    for nnz, smaller in ((CSR_NNZ, True), (CSR_NNZ + 1, False)):
        M = torch.zeros(R * C, dtype=torch.float16)
        M[order[:nnz]] = torch.rand(nnz, generator=gen).half() + 1
        M = M.reshape(R, C)
        csr = S.to_csr(M, index_dtype=torch.int16)
        assert csr.values.dtype == torch.float16 and csr.crow_indices.dtype == torch.int16
        assert S.nbytes(csr) == (R + 1) * 2 + nnz * 4 == S.format_bytes("csr", (R, C), nnz, value_bytes=2, index_bytes=2)
        assert (S.nbytes(csr) < M.numel() * M.element_size()) is smaller


def test_csr_crossover_is_the_same_for_float32_and_int32_and_moves_when_only_one_halves():
    """Why 0.5 (the large-matrix limit) is not the answer, and halving both sizes moves nothing."""
    assert S.crossover_density("csr", (R, C)) == CSR_DENSITY
    assert S.crossover_density("csr", (R, C), value_bytes=4, index_bytes=2) > 0.66
    assert S.crossover_density("csr", (R, C), value_bytes=2, index_bytes=4) < 0.33
    assert 0.5 - CSR_DENSITY > 0.005 * 0.5  # the row pointers matter beyond the checker's tolerance


def test_dark_knowledge_closed_form_equals_soften_and_scipy():
    logits = torch.zeros(1, 10, dtype=torch.float64)
    logits[0, 0] = math.log(81)
    for temperature, off in ((1.0, DARK_T1), (4.0, DARK_T4)):
        assert abs(1 - float(soften(logits, temperature)[0, 0]) - off) < 1e-12
        assert abs(1 - scipy.special.softmax(logits.numpy()[0] / temperature)[0] - off) < 1e-12


def test_fsrcnn_macs_closed_form_equals_count_macs():
    assert FSRCNN_PER_LR_PIXEL == 12464  # (9 m s^2 + 2 s d + 106 d) in Dong et al. 2016, Sec. 3.3
    for scale in (2, 3, 4):
        assert superres.fsrcnn_macs_per_output_pixel(scale) == FSRCNN_PER_LR_PIXEL / scale**2
        assert superres.fsrcnn_macs_per_output_pixel(scale, lr_size=7) == FSRCNN_PER_LR_PIXEL / scale**2


def test_fsrcnn_output_is_scale_times_the_input_and_its_sizes_are_the_papers():
    for scale in (2, 3):
        model = superres._fsrcnn(scale)
        assert model(torch.zeros(1, 1, 10, 7)).shape == (1, 1, 10 * scale, 7 * scale)
        convs = [m for m in model if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        assert [m.kernel_size[0] for m in convs] == [5, 1, 3, 3, 3, 3, 1, 9]
        assert [m.out_channels for m in convs] == [56, 12, 12, 12, 12, 12, 56, 1]


def test_fsrcnn_macs_leave_the_global_generator_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    superres.fsrcnn_macs_per_output_pixel(2)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("c_in, c_out, k, stride, padding, groups", [
    (56, 1, 9, 2, 4, 1), (56, 1, 9, 3, 4, 1), (8, 6, 3, 2, 1, 2), (4, 4, 4, 2, 0, 4), (3, 5, 2, 1, 0, 1),
])
def test_count_macs_of_a_transposed_convolution_agrees_with_torch_flop_counter(c_in, c_out, k, stride, padding, groups):
    """A deconvolution costs c_out / groups * k^2 per *input* element; count_macs counted it per
    output element, as a convolution, r^2 times too much at stride r (fixed with this test)."""
    layer = nn.ConvTranspose2d(c_in, c_out, k, stride=stride, padding=padding, groups=groups)
    x = torch.zeros(2, c_in, 6, 5)
    with FlopCounterMode(display=False) as counter:
        layer(x)
    assert 2 * measure.count_macs(layer, x) * 2 == counter.get_total_flops()
    assert measure.count_macs(layer, x) == c_in * 6 * 5 * (c_out // groups) * k * k


# --- the prediction checker itself ---------------------------------------------------------------

@pytest.mark.parametrize("given", [0.75, 3 / 4, Fraction(3, 4), np.float32(0.75), np.float64(0.75), torch.tensor(0.75),
                                   torch.tensor([0.75], dtype=torch.float64), np.array(0.75), 0.76])
def test_check_prediction_accepts_numbers_of_every_kind(given, capsys):
    assert predict.check_prediction("p", given, 0.75, rel_tol=0.02) is True
    assert "checks pass" in capsys.readouterr().out


@pytest.mark.parametrize("given", [3, np.int64(3), torch.tensor(3)])
def test_check_prediction_accepts_integers(given, capsys):
    assert predict.check_prediction("p", given, 3.0, rel_tol=0.01) is True


@pytest.mark.parametrize("given, words", [
    ("0.75", "without quotes"), (True, "the bool"), (np.bool_(True), "the bool"), (None, "got None"),
    ([0.75], "got list [0.75]"), ((0.75,), "one number"), (0.75 + 0j, "a real one"), (float("nan"), "a finite one"),
    (float("inf"), "a finite one"), (torch.tensor([0.75, 0.75]), "one number"), (torch.tensor(0.75 + 0j), "one number"),
    (torch.tensor(True), "one number"), (np.array(["0.75"]), "one number"), (torch.zeros(1).expand(10**7, 10**7), "one number"),
    (torch.ones(1).to_sparse(), "sparse"), (ValueError("x"), "ValueError"), ({"x2": 1}, "one number"),
])
def test_check_prediction_refuses_what_is_not_one_number(given, words, capsys):
    assert predict.check_prediction("p", given, 0.75, rel_tol=0.02) is False
    out = capsys.readouterr().out
    assert "checks failed" in out and words in out, out


def test_check_prediction_never_raises_on_an_object_that_breaks():
    class Broken:
        def __repr__(self):
            raise RuntimeError("no repr")

        def __float__(self):
            raise RuntimeError("no float")

    assert predict.check_prediction("p", Broken(), 0.75, rel_tol=0.02) is False
    assert isinstance(predict.as_number(Broken()), str)


def test_check_prediction_stub_is_not_attempted(capsys):
    assert predict.check_prediction("p", ..., 0.75, rel_tol=0.02) is False
    out = capsys.readouterr().out
    assert "not attempted yet" in out and "checks" not in out


def test_check_prediction_names_the_nearest_mistake_that_fits_and_never_the_right_answer(capsys):
    mistakes = {0.75: "the right answer listed as a mistake", 0.5: "far", 0.499: "near"}
    assert predict.check_prediction("p", 0.4991, 0.75, rel_tol=0.01, mistakes=mistakes) is False
    assert "near" in capsys.readouterr().out
    assert predict.check_prediction("p", 0.5, 0.75, rel_tol=0.01, mistakes=mistakes) is False
    assert ": far" in capsys.readouterr().out
    assert predict.check_prediction("p", 0.751, 0.75, rel_tol=0.01, mistakes=mistakes) is True
    assert "mistake" not in capsys.readouterr().out


def test_check_prediction_gives_the_hint_only_when_no_mistake_fits(capsys):
    predict.check_prediction("p", 0.5, 0.75, rel_tol=0.01, mistakes={0.5: "half"}, hint="think again")
    out = capsys.readouterr().out
    assert "half" in out and "think again" not in out
    predict.check_prediction("p", 0.3, 0.75, rel_tol=0.01, mistakes={0.5: "half"}, hint="think again")
    out = capsys.readouterr().out
    assert "you predicted 0.3, the measurement is 0.75" in out and "hint: think again" in out


def test_check_prediction_tolerance_is_relative_with_an_absolute_floor():
    assert predict.check_prediction("p", 0.0, 1e-7, rel_tol=0.01) is False
    assert predict.check_prediction("p", 0.0, 1e-7, rel_tol=0.01, abs_tol=1e-3) is True
    assert predict.check_prediction("p", 101, 100, rel_tol=0.01) is True
    assert predict.check_prediction("p", 102, 100, rel_tol=0.01) is False


def test_the_outcomes_are_recorded_under_the_exercise(progress_file, capsys):
    sparsity.check_csr_crossover_prediction(...)
    distillation.check_dark_knowledge_prediction(0.1)
    superres.check_fsrcnn_macs_prediction(FSRCNN)
    rows = {(r.topic, r.exercise): r for r in progress.summary()}
    assert rows[("sparsity", "csr_crossover_prediction")].status == progress.NOT_ATTEMPTED
    assert rows[("distillation", "dark_knowledge_prediction")].status == progress.FAILED
    assert "T = 1" in rows[("distillation", "dark_knowledge_prediction")].message
    assert rows[("superres", "fsrcnn_macs_prediction")].status == progress.PASSED


def test_a_later_right_answer_replaces_every_earlier_outcome(progress_file, capsys):
    """The pair checker records every outcome under its two parts, so a stub or a wrong shape
    run earlier does not stay in the learner's table once the right pair passes."""
    def status():
        return {(r.topic, r.exercise): r for r in progress.summary()}[("superres", "fsrcnn_macs_prediction")].status

    superres.check_fsrcnn_macs_prediction(...)
    assert status() == progress.NOT_ATTEMPTED
    superres.check_fsrcnn_macs_prediction(3116)
    assert status() == progress.FAILED
    superres.check_fsrcnn_macs_prediction(FSRCNN)
    assert status() == progress.PASSED


@pytest.fixture
def progress_file(tmp_path, monkeypatch):
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    return path


@pytest.mark.parametrize("pair", [(None, "x"), (float("nan"), float("inf")), (HOSTILE["returns an object whose == raises"](), FSRCNN[1]),
                                  (torch.zeros(1).expand(10**7, 10**7), FSRCNN[1]), (FSRCNN[0], None)])
def test_fsrcnn_pair_checker_never_raises_on_odd_items(pair, capsys):
    assert superres.check_fsrcnn_macs_prediction(pair) is False
    assert "checks failed" in capsys.readouterr().out


def test_fsrcnn_pair_checker_takes_a_list_and_numpy_numbers(capsys):
    assert superres.check_fsrcnn_macs_prediction([FSRCNN[0], FSRCNN[1]]) is True
    assert superres.check_fsrcnn_macs_prediction(np.array(FSRCNN, dtype=np.float32).tolist()) is True
    assert superres.check_fsrcnn_macs_prediction((np.int64(3116), np.float32(1385))) is True


def test_the_exercises_are_listed_and_each_chapter_and_solution_calls_its_own():
    import nbformat
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    listed = progress.exercises()
    for topic, check, notebook in (("sparsity", "check_csr_crossover_prediction", "04_sparsity.ipynb"),
                                   ("distillation", "check_dark_knowledge_prediction", "06_distillation.ipynb"),
                                   ("superres", "check_fsrcnn_macs_prediction", "07_super_resolution.ipynb")):
        assert listed[topic][-1] == check
        for folder in ("chapters", "solutions"):
            cells = [c.source for c in nbformat.read(repo / folder / notebook, as_version=4).cells if c.cell_type == "code"]
            calls = [i for i, s in enumerate(cells) if f"{check}(my_prediction)" in s]
            assert len(calls) == 1, (folder, notebook)
            stub_line = "my_prediction = ..." in cells[calls[0]]
            assert stub_line is (folder == "chapters"), (folder, notebook)
            assert "assert" in cells[calls[0] + 1], f"{folder}/{notebook}: the cell after the prediction measures and asserts"
