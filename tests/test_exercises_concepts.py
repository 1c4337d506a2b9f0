"""Chapter 1's exercise checkers: each accepts an independent worked answer, rejects the wrong
answers a learner plausibly writes (each with a line that names the mistake), and reports an
untouched stub as not attempted."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from exercise_contract import contract_tests
import torch
from torch import nn
from torch.nn.utils import prune

from compresskit import measure, models
from compresskit.course.exercises import concepts


# --- worked answers, written without the checkers' references (measure.*) -------------------

def count_nonzero(model: nn.Module) -> int:
    """Parameters as named; a pruned `X_orig` is multiplied by its `X_mask` buffer by hand."""
    total = 0
    for name, p in model.named_parameters():
        if name.endswith("_orig"):
            owner, _, attr = name.rpartition(".")
            mask_name = f"{owner}.{attr[:-len('_orig')]}_mask" if owner else f"{attr[:-len('_orig')]}_mask"
            p = p * model.get_buffer(mask_name)
        total += int((p != 0).sum())
    return total


def tensor_bytes(numel: int, dtype: torch.dtype) -> int:
    if numel < 0:
        raise ValueError(f"`numel` must be >= 0; got {numel}")
    bits = torch.finfo(dtype).bits if dtype.is_floating_point else torch.iinfo(dtype).bits
    return numel * bits // 8


def conv_formula(layer: nn.Module, input_shape: tuple[int, ...], *, groups: bool = True, stride: bool = True,
                 padding: bool = True, rounding=math.floor, positions: bool = True, bias: bool = False) -> int:
    """The shape formula of exercise 3; switching a part off gives a learner's mistake."""
    if isinstance(layer, nn.Linear):
        return layer.in_features * layer.out_features + (layer.out_features if bias else 0)
    c_in, h, w = input_shape
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    sh, sw = (sh, sw) if stride else (1, 1)
    ph, pw = (ph, pw) if padding else (0, 0)
    h_out = rounding((h + 2 * ph - kh) / sh) + 1
    w_out = rounding((w + 2 * pw - kw) / sw) + 1
    outputs = layer.out_channels * (h_out * w_out if positions else 1)
    per_output = (c_in // layer.groups if groups else c_in) * kh * kw
    return outputs * per_output + (outputs if bias else 0)


def layer_macs(layer: nn.Module, input_shape: tuple[int, ...]) -> int:
    return conv_formula(layer, input_shape)


def ratio_and_saving(before: float, after: float) -> tuple[float, float]:
    if before <= 0 or after <= 0:
        raise ValueError(f"`before` and `after` must be > 0; got {before} and {after}")
    return before / after, (before - after) / before


def stub(*args):
    raise NotImplementedError  # your code here


MASKED = "an MLP pruned with torch.nn.utils.prune, mask still attached"


# --- plausible wrong answers, and the words the checker must print for each ----------------

def positives(model):
    return sum(int((p > 0).sum()) for _, p in measure.effective_parameters(model))


def state_dict_entries(model):
    return sum(int((t != 0).sum()) for t in model.state_dict().values())


def weights_only(model):
    return sum(int((m.weight != 0).sum()) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))


def via_parameters(model):  # the hint of old: counts `weight_orig`, which has no zeros from the mask
    return sum(int((p != 0).sum()) for p in model.parameters())


def zeroes_the_model_it_counts(model):  # counts, then "cleans up" the caller's model
    n = count_nonzero(model)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return n


def _bits(dtype):
    return torch.finfo(dtype).bits if dtype.is_floating_point else torch.iinfo(dtype).bits


def tb_bits(numel, dtype):
    if numel < 0:
        raise ValueError("negative")
    return numel * _bits(dtype)


def tb_elements(numel, dtype):
    if numel < 0:
        raise ValueError("negative")
    return torch.zeros(numel, dtype=dtype).numel()


def tb_true_division(numel, dtype):
    if numel < 0:
        raise ValueError("negative")
    return numel * _bits(dtype) / 8


def tb_off_by_three(numel, dtype):  # a count has no tolerance: 340011 is not 340008
    return tensor_bytes(numel, dtype) + (3 if numel == 85002 else 0)


def tb_no_check(numel, dtype):
    return numel * dtype.itemsize


def tb_numpy_integer_off_by_one(numel, dtype):  # a numpy integer is judged on its value, not refused for its type
    return np.int64(tensor_bytes(numel, dtype)) + (1 if numel == 1000 else 0)


def _macs_with(**mistake):
    return lambda layer, input_shape: conv_formula(layer, input_shape, **mistake)


def _ratio_then(change):
    return lambda before, after: change(*ratio_and_saving(before, after), before, after)


def rs_unchecked(before, after):
    return before / after, 1 - after / before


WRONG = {
    "count_nonzero": (concepts.check_count_nonzero, count_nonzero, [
        (positives, "the digits MLP (no zeros): expected 85002, got"),
        (positives, "that counts only the positive entries"),
        (state_dict_entries, "the digits CNN (BatchNorm has parameters too): expected 9978, got"),
        (state_dict_entries, "buffers included"),
        (lambda model: float(count_nonzero(model)), "expected an int, got float"),
        (weights_only, "the digits MLP (no zeros): expected 85002, got 84480: that leaves out the biases"),
        (via_parameters, f"{MASKED}: expected 1226, got 1738: that counts `weight_orig`"),
        (measure.count_parameters, "a Linear(4, 3) that is all zeros: expected 0, got 15: that is every parameter, zeros included"),
        (zeroes_the_model_it_counts, "your function changed its argument `model`"),
    ]),
    "tensor_bytes": (concepts.check_tensor_bytes, tensor_bytes, [
        (tb_bits, "1000 float32: expected 4000, got 32000: that is bits, not bytes"),
        (tb_elements, "1000 float16: expected 2000, got 1000: that is the number of elements"),
        (tb_true_division, "1000 float32: expected an int, got float 4000.0"),
        (tb_off_by_three, "expected 340008, got 340011"),
        (tb_no_check, "numel = -1: expected ValueError, but nothing was raised"),
        (tb_numpy_integer_off_by_one, "expected 4000, got 4001"),
    ]),
    "layer_macs": (concepts.check_layer_macs, layer_macs, [
        (_macs_with(groups=False), "(depthwise) on 32x8x8: expected 18432, got 589824: that ignores `groups`"),
        (_macs_with(stride=False), "Conv2d(16, 32, 3, stride=2, padding=1) on 16x8x8: expected 73728, got 294912: that ignores `stride`"),
        (_macs_with(padding=False), "Conv2d(1, 16, 3, padding=1) on 1x8x8: expected 9216, got 5184: that ignores `padding`"),
        (_macs_with(rounding=math.ceil), "Conv2d(16, 32, 3, stride=2, padding=1) on 16x8x8: expected 73728, got 115200: that rounds the output size up"),
        (_macs_with(positions=False), "Conv2d(1, 16, 3, padding=1) on 1x8x8: expected 9216, got 144: that is one output position"),
        (_macs_with(bias=True), "Linear(64, 256): expected 16384, got 16640: that adds the bias"),
        (lambda layer, shape: 2 * layer_macs(layer, shape), "Linear(64, 256): expected 16384, got 32768: that is FLOPs"),
    ]),
    "ratio_and_saving": (concepts.check_ratio_and_saving, ratio_and_saving, [
        (_ratio_then(lambda r, s, b, a: (1 / r, s)), "fp32 -> int8 bytes: 4000 -> 1000: ratio: expected 4.0, got 0.25: that is after / before"),
        (_ratio_then(lambda r, s, b, a: (r, a / b)), "saving: expected 0.75, got 0.25: that is the fraction kept"),
        (_ratio_then(lambda r, s, b, a: (r, 100 * s)), "saving: expected 0.75, got 75.0: that is a percentage"),
        (_ratio_then(lambda r, s, b, a: (r, (b - a) / a)), "saving: expected 0.75, got 3.0: that divides by `after`"),
        (_ratio_then(lambda r, s, b, a: (r, abs(s))), "it got bigger: 2.0 -> 3.0: saving: expected -0.5, got 0.5: a model that got bigger"),
        (rs_unchecked, "after = 0: expected ValueError, got ZeroDivisionError"),
        (rs_unchecked, "before = -1: expected ValueError, but nothing was raised"),
    ]),
}

globals().update(contract_tests(WRONG, stub))  # the five contract tests: tests/exercise_contract.py


# --- every checker: beyond the contract ------------------------------------------------------

CHECKERS = [(check, solution) for check, solution, _ in WRONG.values()]


@pytest.mark.parametrize("checker, _", CHECKERS, ids=lambda f: getattr(f, "__name__", ""))
def test_checker_never_raises_on_a_crashing_answer(checker, _, capsys):
    def crashes(*args):
        raise RuntimeError("boom")

    assert checker(crashes) is False
    out = capsys.readouterr().out
    assert "raised RuntimeError: boom" in out


def test_checker_refuses_something_that_is_not_a_function(capsys):
    assert concepts.check_tensor_bytes(42) is False
    assert "expected a function" in capsys.readouterr().out


# --- exercise 1: count_nonzero ----------------------------------------------------------------


def test_count_nonzero_rejects_model_parameters_on_a_masked_model(capsys):
    """The hint of old recommended this; it counts `weight_orig`, which has no zeros from the mask."""
    def via_parameters(model):
        return sum(int((p != 0).sum()) for p in model.parameters())

    assert concepts.check_count_nonzero(via_parameters) is False
    out = capsys.readouterr().out
    assert f"{MASKED}: expected 1226, got 1738: that counts `weight_orig`" in out
    assert "1 of 6 checks failed" in out  # right on every model without a mask
    assert "getattr(module, 'weight')" in out  # the hint shows the way


def test_count_nonzero_rejects_counting_every_parameter(capsys):
    assert concepts.check_count_nonzero(measure.count_parameters) is False
    out = capsys.readouterr().out
    assert "a Linear(4, 3) that is all zeros: expected 0, got 15: that is every parameter, zeros included" in out
    assert "the digits MLP (no zeros)" not in out  # right there: no zeros to miss


def test_count_nonzero_rejects_forgetting_the_biases(capsys):
    def weights_only(model):
        return sum(int((m.weight != 0).sum()) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))

    assert concepts.check_count_nonzero(weights_only) is False
    out = capsys.readouterr().out
    assert "the digits MLP (no zeros): expected 85002, got 84480: that leaves out the biases" in out
    assert ("the digits CNN (BatchNorm has parameters too): expected 9978, got 9872: that counts only the "
            "weights of Linear and Conv layers") in out


def test_count_nonzero_accepts_an_integer_tensor_and_the_forward_weights(capsys):
    def as_tensor(model):
        total = torch.tensor(0)
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if name.endswith("_orig"):
                    p = getattr(module, name[: -len("_orig")])
                total = total + (p != 0).sum()
        return total

    assert concepts.check_count_nonzero(as_tensor) is True


def test_the_masked_case_really_holds_a_mask():
    """The case that catches `weight_orig` is a model whose mask is still attached."""
    model = concepts._masked()
    assert prune.is_pruned(model)
    assert {"fc1.weight_orig", "fc2.weight_orig"} <= {n for n, _ in model.named_parameters()}
    assert count_nonzero(model) == measure.count_nonzero(model) < sum(int((p != 0).sum()) for p in model.parameters())
    copy.deepcopy(model)  # the checker clones each input


def test_count_nonzero_checker_does_not_let_the_learner_change_its_models(monkeypatch, capsys):
    """The checker hands the learner a copy: a function that zeroes its model leaves the
    checker's own model as it was (without the copy this test fails), and is rejected for
    changing the model it was given."""
    shared = models.mlp(seed=0)
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    real_mlp = models.mlp
    monkeypatch.setattr(concepts.models, "mlp", lambda *a, **k: shared if not a and not k else real_mlp(*a, **k))

    def destructive(model):
        n = count_nonzero(model)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        return n

    assert concepts.check_count_nonzero(destructive) is False
    assert "your function changed its argument `model`" in capsys.readouterr().out
    assert all(torch.equal(before[k], v) for k, v in shared.state_dict().items())


# --- exercise 2: tensor_bytes -----------------------------------------------------------------

def test_tensor_bytes_rejects_four_bytes_for_everything(capsys):
    def always_four(numel, dtype):
        if numel < 0:
            raise ValueError("negative")
        return 4 * numel

    assert concepts.check_tensor_bytes(always_four) is False
    out = capsys.readouterr().out
    assert "1000 int8: expected 1000, got 4000: that is 4 bytes per element whatever the dtype" in out
    assert "1000 float32" not in out


# --- exercise 4: ratio_and_saving ---------------------------------------------------------------

def test_ratio_and_saving_requires_errors_on_non_positive_input(capsys):
    def unchecked(before, after):
        return before / after, 1 - after / before

    assert concepts.check_ratio_and_saving(unchecked) is False
    out = capsys.readouterr().out
    assert "after = 0: expected ValueError, got ZeroDivisionError" in out
    assert "before = -1: expected ValueError, but nothing was raised" in out


# --- exercise 4, second part: the int8 file and "saves a third" --------------------------------

FILE_BYTES = {"float32": 342741, "float16": 172565, "int8 + scales": 89087}


def worked_int8_claims(file_bytes):
    fp32, int8 = file_bytes["float32"], file_bytes["int8 + scales"]
    return fp32 / int8, (fp32 - int8) / fp32, 1 / (1 - 1 / 3)


def test_int8_claims_accepts_the_worked_answer(capsys):
    assert concepts.check_int8_claims(FILE_BYTES, *worked_int8_claims(FILE_BYTES)) is True
    out = capsys.readouterr().out
    assert out.count("correct") == 3


def test_int8_claims_depend_on_the_file_bytes_given(capsys):
    """The expected ratio is computed from the learner's `file_bytes`, not stored."""
    other = {"float32": 4000, "int8 + scales": 1100}
    assert concepts.check_int8_claims(other, *worked_int8_claims(other)) is True
    assert concepts.check_int8_claims(other, *worked_int8_claims(FILE_BYTES)) is False


def test_int8_claims_reports_stubs_as_not_attempted(capsys):
    assert concepts.check_int8_claims(FILE_BYTES, ..., ..., ...) is False
    assert capsys.readouterr().out.count("not attempted yet") == 3


@pytest.mark.parametrize("answer, line", [
    ((89087 / 342741, None, None), "int8_ratio: expected 3.84726"),
    ((4.0, None, None), "got 4.0: 4.0 is the ratio of the raw numbers"),
    ((None, 89087 / 342741, None), "int8_saving: expected 0.74007"),
    ((None, 100 * (1 - 89087 / 342741), None), "that is a percentage"),
    ((None, None, 3.0), "third_ratio: expected 1.5, got 3.0: 'a third' is the saving, not the ratio"),
    ((None, None, 4 / 3), "1 + 1/3 is not it"),
    ((None, None, 2 / 3), "that is the fraction kept (after / before): the ratio is its inverse"),
])
def test_int8_claims_rejects_plausible_mistakes(answer, line, capsys):
    right = worked_int8_claims(FILE_BYTES)
    given_ = [r if a is None else a for a, r in zip(answer, right)]
    assert concepts.check_int8_claims(FILE_BYTES, *given_) is False
    out = capsys.readouterr().out
    assert line in out
    assert out.count("correct") == 2  # the other two values are still accepted


def test_int8_claims_names_the_inverted_ratio(capsys):
    concepts.check_int8_claims(FILE_BYTES, 89087 / 342741, 0.7, 1.5)
    out = capsys.readouterr().out
    assert "that is after / before" in out
    assert "int8_saving: expected 0.74007" in out and "int8_saving: correct" not in out


def test_int8_claims_refuses_something_that_is_not_the_file_bytes(capsys):
    assert concepts.check_int8_claims({"float32": 1}, 4.0, 0.75, 1.5) is False
    assert "`file_bytes` must be the dict of section 2.3" in capsys.readouterr().out


# --- the references agree with independent computations -------------------------------------

def test_layer_macs_reference_matches_torch_flop_counter():
    """Our reference (measure.count_macs) against PyTorch's FLOP counter: 2 FLOPs per MAC."""
    from torch.utils.flop_counter import FlopCounterMode

    layers = [
        (nn.Conv2d(16, 32, 3, stride=2, padding=1), (16, 8, 8)),
        (nn.Conv2d(32, 32, 3, padding=1, groups=32), (32, 8, 8)),
        (nn.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2)), (4, 9, 9)),
        (nn.Linear(64, 256), (64,)),
    ]
    for layer, shape in layers:
        x = torch.zeros(1, *shape)
        with FlopCounterMode(display=False) as counter:
            layer(x)
        assert 2 * concepts._reference_layer_macs(layer, shape) == counter.get_total_flops()
        assert layer_macs(layer, shape) == concepts._reference_layer_macs(layer, shape)


def test_tensor_bytes_reference_matches_numpy():
    pairs = [(torch.float32, np.float32), (torch.float16, np.float16), (torch.int8, np.int8), (torch.int64, np.int64)]
    for t, n in pairs:
        assert measure.tensor_bytes(123, t) == np.zeros(123, dtype=n).nbytes


def test_ratio_and_saving_reference_by_hand():
    assert concepts._reference_ratio_and_saving(4.0, 1.0) == (4.0, 0.75)
    ratio, saving = concepts._reference_ratio_and_saving(3.0, 2.0)
    assert ratio == pytest.approx(1.5) and saving == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="`after` must be in \\(0, inf\\); got 0.0"):
        concepts._reference_ratio_and_saving(1.0, 0.0)
    with pytest.raises(TypeError, match="`before` must be a real number"):
        concepts._reference_ratio_and_saving("1", 1.0)


def test_exact_count():
    assert concepts.exact_count(3, 3) is None
    assert concepts.exact_count(3, np.int64(3)) is None
    assert concepts.exact_count(3, torch.tensor(3)) is None
    assert concepts.exact_count(3, 4) == "expected 3, got 4"
    assert "expected an int, got float" in concepts.exact_count(3, 3.0)
    assert "expected an int, got bool" in concepts.exact_count(1, True)
    assert "expected an int, got Tensor" in concepts.exact_count(3, torch.tensor(3.0))


def test_naming_mistakes_names_only_a_mistake_that_matches_and_is_wrong():
    compare = concepts.naming_mistakes(concepts.exact_count)
    expected = concepts.Expected(4, mistakes=((4, "not a mistake here"), (8, "doubled"), (8, "doubled again")))
    assert compare(expected, 4) is None
    assert compare(expected, 8) == "expected 4, got 8: doubled"
    assert compare(expected, 5) == "expected 4, got 5"


@settings(max_examples=40, deadline=None)
@given(
    groups=st.integers(1, 4),
    in_per_group=st.integers(1, 3),
    out_per_group=st.integers(1, 3),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    size=st.tuples(st.integers(4, 9), st.integers(4, 9)),
)
def test_hand_formula_equals_measured_macs_for_any_conv(groups, in_per_group, out_per_group, kernel, stride, padding, size):
    """The shape formula of exercise 3 and the hook-based measure.count_macs agree on any
    Conv2d whose output is not empty: two independent ways to the same count."""
    assume(all(s + 2 * p >= k for s, p, k in zip(size, padding, kernel)))  # else PyTorch refuses the input
    conv = nn.Conv2d(groups * in_per_group, groups * out_per_group, kernel, stride=stride, padding=padding, groups=groups)
    shape = (groups * in_per_group, *size)
    assert layer_macs(conv, shape) == concepts._reference_layer_macs(conv, shape)
