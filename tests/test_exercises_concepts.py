"""Chapter 1's exercise checkers: each accepts a correct answer, rejects plausible wrong ones
(printing the failing case), and reports an untouched stub as not attempted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
import torch
from torch import nn

from compresskit import measure
from compresskit.course.exercises import concepts


# --- worked answers, as a learner would write them (the same as solutions/01_concepts.ipynb)

def count_nonzero(model: nn.Module) -> int:
    return sum(int((p != 0).sum()) for p in model.parameters())


def tensor_bytes(numel: int, dtype: torch.dtype) -> int:
    if numel < 0:
        raise ValueError(f"`numel` must be >= 0; got {numel}")
    return numel * dtype.itemsize


def layer_macs(layer: nn.Module, input_shape: tuple[int, ...]) -> int:
    if isinstance(layer, nn.Linear):
        return layer.in_features * layer.out_features
    c_in, h, w = input_shape
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    h_out = (h + 2 * ph - kh) // sh + 1
    w_out = (w + 2 * pw - kw) // sw + 1
    return layer.out_channels * h_out * w_out * (c_in // layer.groups) * kh * kw


def ratio_and_saving(before: float, after: float) -> tuple[float, float]:
    if before <= 0 or after <= 0:
        raise ValueError(f"`before` and `after` must be > 0; got {before} and {after}")
    return before / after, 1 - after / before


def stub(*args):
    raise NotImplementedError  # your code here


# --- every checker: accepts, rejects, reports a stub ----------------------------------------

CHECKERS = [
    (concepts.check_count_nonzero, count_nonzero),
    (concepts.check_tensor_bytes, tensor_bytes),
    (concepts.check_layer_macs, layer_macs),
    (concepts.check_ratio_and_saving, ratio_and_saving),
]


@pytest.mark.parametrize("checker, solution", CHECKERS, ids=lambda f: getattr(f, "__name__", ""))
def test_checker_accepts_the_worked_answer(checker, solution, capsys):
    assert checker(solution) is True
    out = capsys.readouterr().out
    assert "all" in out and "checks pass" in out


@pytest.mark.parametrize("checker, _", CHECKERS, ids=lambda f: getattr(f, "__name__", ""))
def test_checker_reports_a_stub_as_not_attempted(checker, _, capsys):
    assert checker(stub) is False
    assert "not attempted yet" in capsys.readouterr().out


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


# --- plausible wrong answers, and the line that tells the learner -------------------------

def test_count_nonzero_rejects_counting_every_parameter(capsys):
    assert concepts.check_count_nonzero(measure.count_parameters) is False
    out = capsys.readouterr().out
    assert "an MLP pruned to 70% zeros" in out
    assert "a Linear(4, 3) that is all zeros: expected 0, got 15" in out
    assert "the digits MLP (no zeros)" not in out  # right there: no zeros to miss


def test_count_nonzero_rejects_counting_only_positive_weights(capsys):
    def positives(model):
        return sum(int((p > 0).sum()) for p in model.parameters())

    assert concepts.check_count_nonzero(positives) is False
    assert "the digits MLP (no zeros): expected 85002, got" in capsys.readouterr().out


def test_count_nonzero_rejects_a_float_count(capsys):
    def as_float(model):
        return float(count_nonzero(model))

    assert concepts.check_count_nonzero(as_float) is False
    assert "expected an int, got float" in capsys.readouterr().out


def test_count_nonzero_accepts_an_integer_tensor(capsys):
    def as_tensor(model):
        return sum((p != 0).sum() for p in model.parameters())

    assert concepts.check_count_nonzero(as_tensor) is True


def test_tensor_bytes_rejects_four_bytes_for_everything(capsys):
    def always_four(numel, dtype):
        if numel < 0:
            raise ValueError("negative")
        return 4 * numel

    assert concepts.check_tensor_bytes(always_four) is False
    out = capsys.readouterr().out
    assert "1000 int8: expected 1000, got 4000" in out
    assert "1000 float32" not in out


def test_tensor_bytes_rejects_an_answer_off_by_a_few_bytes(capsys):
    """A count has no tolerance: 340011 is not 340008."""
    def off_by_three(numel, dtype):
        return tensor_bytes(numel, dtype) + (3 if numel == 85002 else 0)

    assert concepts.check_tensor_bytes(off_by_three) is False
    assert "expected 340008, got 340011" in capsys.readouterr().out


def test_tensor_bytes_requires_the_error_on_negative_numel(capsys):
    def no_check(numel, dtype):
        return numel * dtype.itemsize

    assert concepts.check_tensor_bytes(no_check) is False
    assert "numel = -1: expected ValueError, but nothing was raised" in capsys.readouterr().out


def test_layer_macs_rejects_ignoring_groups(capsys):
    def no_groups(layer, input_shape):
        if isinstance(layer, nn.Conv2d):
            layer.groups = 1  # the learner's formula forgets groups
        return layer_macs(layer, input_shape)

    assert concepts.check_layer_macs(no_groups) is False
    out = capsys.readouterr().out
    assert "(depthwise) on 32x8x8: expected 18432, got 589824" in out
    assert "groups=4" in out


def test_layer_macs_rejects_ignoring_stride(capsys):
    def no_stride(layer, input_shape):
        if isinstance(layer, nn.Conv2d):
            layer.stride = (1, 1)
        return layer_macs(layer, input_shape)

    assert concepts.check_layer_macs(no_stride) is False
    out = capsys.readouterr().out
    assert "stride=2" in out and "stride=(2, 1)" in out


def test_layer_macs_rejects_flops(capsys):
    """FLOPs are 2 per MAC: a FLOP count is a classic wrong answer."""
    assert concepts.check_layer_macs(lambda layer, shape: 2 * layer_macs(layer, shape)) is False
    assert "Linear(64, 256): expected 16384, got 32768" in capsys.readouterr().out


def test_ratio_and_saving_rejects_the_inverted_ratio(capsys):
    def inverted(before, after):
        ratio, saving = ratio_and_saving(before, after)
        return 1 / ratio, saving

    assert concepts.check_ratio_and_saving(inverted) is False
    assert "fp32 -> int8 bytes: 4000 -> 1000: item 0: expected 4.0, got 0.25" in capsys.readouterr().out


def test_ratio_and_saving_rejects_saving_as_after_over_before(capsys):
    def kept_not_saved(before, after):
        return before / after, after / before

    assert concepts.check_ratio_and_saving(kept_not_saved) is False
    assert "item 1: expected 0.75, got 0.25" in capsys.readouterr().out


def test_ratio_and_saving_requires_errors_on_non_positive_input(capsys):
    def unchecked(before, after):
        return before / after, 1 - after / before

    assert concepts.check_ratio_and_saving(unchecked) is False
    out = capsys.readouterr().out
    assert "after = 0: expected ValueError, got ZeroDivisionError" in out
    assert "before = -1: expected ValueError, but nothing was raised" in out


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


def test_checkers_give_each_case_fresh_models():
    """A learner's function that zeroes the model it is given must not change what the
    reference sees (the checker clones every input)."""
    def destructive(model):
        n = count_nonzero(model)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        return n

    assert concepts.check_count_nonzero(destructive) is True


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
