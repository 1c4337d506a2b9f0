"""Exercise checkers for chapter 1 (concepts): counting, bytes, MACs and ratios.

Each ``check_*`` runs the learner's function against the reference on several inputs,
prints which input failed (expected vs got), prints "not attempted yet" for an untouched
stub, never raises, and returns a bool.

* :func:`check_count_nonzero`: ``count_nonzero(model) -> int``, parameters that are not 0.
* :func:`check_tensor_bytes`: ``tensor_bytes(numel, dtype) -> int``, raw bytes of a tensor.
* :func:`check_layer_macs`: ``layer_macs(layer, input_shape) -> int``, multiply-accumulates of
  one ``nn.Linear`` or ``nn.Conv2d`` for one sample, from the shapes alone.
* :func:`check_ratio_and_saving`: ``ratio_and_saving(before, after) -> (ratio, saving)``,
  "how many times smaller or faster" and "what fraction was saved".
"""

from __future__ import annotations

import numbers
from typing import Callable

import torch
from torch import nn

from compresskit import measure, models
from compresskit._validation import check_real
from compresskit.course.checker import Case, check_function, describe


def exact_count(expected: int, got: object) -> str | None:
    """None when ``got`` is a whole number equal to ``expected`` (a count has no tolerance)."""
    if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, numbers.Integral):
        return f"expected an int, got {type(got).__name__} {describe(got)}"
    return None if int(got) == expected else f"expected {expected}, got {int(got)}"


# --- exercise 1: count the non-zero parameters -------------------------------------------

def _model_with_zeros() -> nn.Module:
    """The digits MLP with every other row of ``fc1`` and all of ``fc2``'s bias set to zero."""
    model = models.mlp((32, 16), seed=1)
    with torch.no_grad():
        model.fc1.weight[::2] = 0.0
        model.fc2.bias.zero_()
    return model


def _magnitude_pruned() -> nn.Module:
    """A small MLP pruned to 70% zeros with ``torch.nn.utils.prune``, then made permanent."""
    from torch.nn.utils import prune

    model = models.mlp((32,), seed=2)
    for layer in (model.fc1, model.fc2):
        prune.l1_unstructured(layer, "weight", amount=0.7)
        prune.remove(layer, "weight")
    return model


def check_count_nonzero(fn: Callable[[nn.Module], int]) -> bool:
    """``fn(model)`` must return how many parameters of ``model`` are not exactly zero."""
    all_zero = nn.Linear(4, 3)
    nn.init.zeros_(all_zero.weight)
    nn.init.zeros_(all_zero.bias)
    cases = [
        Case("the digits MLP (no zeros)", (models.mlp(),)),
        Case("the digits CNN (BatchNorm has parameters too)", (models.cnn(),)),
        Case("an MLP with some rows and a bias set to zero", (_model_with_zeros(),)),
        Case("an MLP pruned to 70% zeros and made permanent", (_magnitude_pruned(),)),
        Case("a Linear(4, 3) that is all zeros", (all_zero,)),
    ]
    return check_function(
        fn, measure.count_nonzero, cases, name="count_nonzero", compare=exact_count,
        hint="loop over model.parameters() and count entries != 0 (negative weights count too)",
    )


# --- exercise 2: raw bytes of a tensor ----------------------------------------------------

def check_tensor_bytes(fn: Callable[[int, torch.dtype], int]) -> bool:
    """``fn(numel, dtype)`` must return ``numel`` times the bytes of one ``dtype`` element,
    and raise ``ValueError`` for a negative ``numel``."""
    cases = [
        Case("1000 float32", (1000, torch.float32)),
        Case("1000 float16", (1000, torch.float16)),
        Case("1000 bfloat16", (1000, torch.bfloat16)),
        Case("1000 int8", (1000, torch.int8)),
        Case("1000 uint8", (1000, torch.uint8)),
        Case("1000 int64", (1000, torch.int64)),
        Case("7 float64", (7, torch.float64)),
        Case("85002 float32 (the digits MLP)", (85002, torch.float32)),
        Case("0 float32 (an empty tensor)", (0, torch.float32)),
    ]
    errors = [(Case("numel = -1", (-1, torch.float32)), ValueError)]
    return check_function(
        fn, measure.tensor_bytes, cases, name="tensor_bytes", compare=exact_count, expect_errors=errors,
        hint="torch.empty((), dtype=dtype).element_size() is the bytes of one element; "
        "raise ValueError if numel < 0",
    )


# --- exercise 3: MACs of one layer from its shapes ----------------------------------------

def _reference_layer_macs(layer: nn.Module, input_shape: tuple[int, ...]) -> int:
    """What :func:`compresskit.measure.count_macs` measures on one sample of ``input_shape``."""
    return measure.count_macs(layer, torch.zeros(1, *input_shape))


def check_layer_macs(fn: Callable[[nn.Module, tuple[int, ...]], int]) -> bool:
    """``fn(layer, input_shape)`` must return the multiply-accumulates of one sample through an
    ``nn.Linear`` (``input_shape = (in_features,)``) or ``nn.Conv2d`` (``(C, H, W)``)."""
    cases = [
        Case("Linear(64, 256)", (nn.Linear(64, 256), (64,))),
        Case("Linear(256, 10, bias=False)", (nn.Linear(256, 10, bias=False), (256,))),
        Case("Conv2d(1, 16, 3, padding=1) on 1x8x8", (nn.Conv2d(1, 16, 3, padding=1), (1, 8, 8))),
        Case("Conv2d(16, 32, 3, padding=1) on 16x8x8", (nn.Conv2d(16, 32, 3, padding=1), (16, 8, 8))),
        Case("Conv2d(3, 8, 3) on 3x10x10, no padding", (nn.Conv2d(3, 8, 3), (3, 10, 10))),
        Case("Conv2d(16, 32, 3, stride=2, padding=1) on 16x8x8", (nn.Conv2d(16, 32, 3, stride=2, padding=1), (16, 8, 8))),
        Case("Conv2d(8, 16, 1) (pointwise) on 8x5x7", (nn.Conv2d(8, 16, 1), (8, 5, 7))),
        Case("Conv2d(32, 32, 3, padding=1, groups=32) (depthwise) on 32x8x8",
             (nn.Conv2d(32, 32, 3, padding=1, groups=32), (32, 8, 8))),
        Case("Conv2d(8, 12, 3, groups=4) on 8x6x6", (nn.Conv2d(8, 12, 3, groups=4), (8, 6, 6))),
        Case("Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2)) on 4x9x9",
             (nn.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2)), (4, 9, 9))),
    ]
    return check_function(
        fn, _reference_layer_macs, cases, name="layer_macs", compare=exact_count,
        hint="Linear: in_features * out_features. Conv2d: (out elements C_out * H_out * W_out) * "
        "(C_in / groups) * k_h * k_w, with H_out = (H + 2 * padding - kernel) // stride + 1",
    )


# --- exercise 4: ratio and saving ---------------------------------------------------------

def _reference_ratio_and_saving(before: float, after: float) -> tuple[float, float]:
    """``before / after`` (times smaller or faster) and ``1 - after / before`` (fraction saved)."""
    before = check_real("before", before, 0.0, low_open=True)
    after = check_real("after", after, 0.0, low_open=True)
    return before / after, 1.0 - after / before


def check_ratio_and_saving(fn: Callable[[float, float], tuple[float, float]]) -> bool:
    """``fn(before, after)`` must return ``(before / after, 1 - after / before)`` and raise
    ``ValueError`` when either measurement is zero or negative."""
    cases = [
        Case("fp32 -> int8 bytes: 4000 -> 1000", (4000, 1000)),
        Case("'saves a third': 3.0 -> 2.0", (3.0, 2.0)),
        Case("fp32 -> fp16 bytes of the MLP: 342549 -> 172565", (342549, 172565)),
        Case("latency 0.50 ms -> 0.125 ms", (0.50e-3, 0.125e-3)),
        Case("nothing changed: 1.0 -> 1.0", (1.0, 1.0)),
        Case("it got bigger: 2.0 -> 3.0", (2.0, 3.0)),
    ]
    errors = [
        (Case("after = 0", (1.0, 0.0)), ValueError),
        (Case("before = -1", (-1.0, 1.0)), ValueError),
    ]
    return check_function(
        fn, _reference_ratio_and_saving, cases, name="ratio_and_saving", expect_errors=errors,
        hint="4x smaller means ratio 4.0 and saving 0.75; raise ValueError if before <= 0 or after <= 0",
    )
