"""Exercise checkers for chapter 1 (concepts): counting, bytes, MACs and ratios.

Each ``check_*`` runs the learner's function against the reference on several inputs,
prints which input failed (expected vs got), prints "not attempted yet" for an untouched
stub, never raises, and returns a bool. Where a wrong answer is one a learner often writes
(counting ``weight_orig``, FLOPs instead of MACs, the fraction kept instead of the fraction
saved, ...), the line names that mistake: every expected value carries the values of the
common mistakes (:class:`Expected`).

* :func:`check_count_nonzero`: ``count_nonzero(model) -> int``, parameters that are not 0 in
  the forward pass (a layer pruned with ``torch.nn.utils.prune`` counts ``weight``, not
  ``weight_orig``).
* :func:`check_tensor_bytes`: ``tensor_bytes(numel, dtype) -> int``, raw bytes of a tensor.
* :func:`check_layer_macs`: ``layer_macs(layer, input_shape) -> int``, multiply-accumulates of
  one ``nn.Linear`` or ``nn.Conv2d`` for one sample, from the shapes alone.
* :func:`check_ratio_and_saving`: ``ratio_and_saving(before, after) -> (ratio, saving)``,
  "how many times smaller or faster" and "what fraction was saved".
* :func:`check_int8_claims`: the second part of exercise 4, the ratio and saving of the int8
  file of chapter 1 and the ratio that "saves about a third" would be.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn.utils import prune

from compresskit import measure, models
from compresskit._validation import check_real
from compresskit.course.checker import (Case, Expected, check_function, check_value, close, describe, naming_mistakes,
                                        report_failure)

Compare = Callable[[Any, Any], "str | None"]


def exact_count(expected: int, got: object) -> str | None:
    """None when ``got`` is a whole number equal to ``expected`` (a count has no tolerance)."""
    if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, numbers.Integral):
        return f"expected an int, got {type(got).__name__} {describe(got)}"
    return None if int(got) == expected else f"expected {expected}, got {int(got)}"


# --- exercise 1: count the non-zero parameters -------------------------------------------

def _model_with_zeros(seed: int = 1) -> nn.Module:
    """A small MLP with every other row of ``fc1`` and all of ``fc2``'s bias set to zero."""
    model = models.mlp((32, 16), seed=seed)
    with torch.no_grad():
        model.fc1.weight[::2] = 0.0
        model.fc2.bias.zero_()
    return model


def _magnitude_pruned() -> nn.Module:
    """A small MLP pruned to 70% zeros with ``torch.nn.utils.prune``, then made permanent."""
    model = models.mlp((32,), seed=2)
    for layer in (model.fc1, model.fc2):
        prune.l1_unstructured(layer, "weight", amount=0.7)
        prune.remove(layer, "weight")
    return model


def _masked() -> nn.Module:
    """The model with zero rows, pruned to 60% with its mask still attached: ``fc1`` and
    ``fc2`` hold ``weight_orig`` (a parameter, with the zero rows) and ``weight_mask``."""
    model = _model_with_zeros(seed=3)
    for layer in (model.fc1, model.fc2):
        prune.l1_unstructured(layer, "weight", amount=0.6)
    with torch.no_grad():  # recompute `weight` outside autograd, so the model can be deep-copied
        model(torch.zeros(1, 64))
    return model


def _nonzero(tensors) -> int:
    return sum(int(torch.count_nonzero(t.detach())) for t in tensors)


def _count_nonzero_expected(model: nn.Module) -> Expected:
    """``measure.count_nonzero(model)``, and what the usual mistakes count instead."""
    forward = dict(measure.effective_parameters(model))
    return Expected(measure.count_nonzero(model), mistakes=(
        (_nonzero(model.parameters()),
         "that counts `weight_orig`, the weights before the pruning mask (model.parameters() "
         "yields it): count the masked `weight` that the forward pass uses"),
        (sum(p.numel() for p in model.parameters()),
         "that is every parameter, zeros included: count only the entries != 0"),
        (sum(int((p > 0).sum()) for p in forward.values()),
         "that counts only the positive entries: negative weights are not zero either"),
        (_nonzero(p for name, p in forward.items() if not name.endswith("bias")),
         "that leaves out the biases: they are parameters too"),
        (_nonzero(p for name, p in forward.items() if name.endswith("weight")),
         "that counts only the tensors named `weight`: biases count too"),
        (_nonzero(m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))),
         "that counts only the weights of Linear and Conv layers: biases and BatchNorm's "
         "parameters count too"),
        (_nonzero(model.state_dict().values()),
         "that counts the state dict, buffers included (BatchNorm's running statistics, "
         "pruning masks): count parameters only"),
    ))


def check_count_nonzero(fn: Callable[[nn.Module], int]) -> bool:
    """``fn(model)`` must return how many parameters of ``model`` are not exactly zero in the
    forward pass; for a layer pruned with ``torch.nn.utils.prune`` that is the masked
    ``weight``, not ``weight_orig``."""
    all_zero = nn.Linear(4, 3)
    nn.init.zeros_(all_zero.weight)
    nn.init.zeros_(all_zero.bias)
    cases = [
        Case("the digits MLP (no zeros)", (models.mlp(),)),
        Case("the digits CNN (BatchNorm has parameters too)", (models.cnn(),)),
        Case("an MLP with some rows and a bias set to zero", (_model_with_zeros(),)),
        Case("an MLP pruned to 70% zeros and made permanent (prune.remove)", (_magnitude_pruned(),)),
        Case("an MLP pruned with torch.nn.utils.prune, mask still attached", (_masked(),)),
        Case("a Linear(4, 3) that is all zeros", (all_zero,)),
    ]
    return check_function(
        fn, _count_nonzero_expected, cases, name="count_nonzero", compare=naming_mistakes(exact_count),
        hint="count the entries != 0 (negative ones too) of every tensor the forward pass uses: "
        "loop over model.modules() and module.named_parameters(recurse=False); for a parameter "
        "named `weight_orig` (a pruned layer) count getattr(module, 'weight') instead",
    )


# --- exercise 2: raw bytes of a tensor ----------------------------------------------------

def _tensor_bytes_expected(numel: int, dtype: torch.dtype) -> Expected:
    right = measure.tensor_bytes(numel, dtype)
    return Expected(right, mistakes=(
        (4 * numel, "that is 4 bytes per element whatever the dtype: each dtype has its own size"),
        (8 * right, "that is bits, not bytes: a byte is 8 bits"),
        (numel, "that is the number of elements, one byte each: multiply by the bytes of one element"),
    ))


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
        fn, _tensor_bytes_expected, cases, name="tensor_bytes", compare=naming_mistakes(exact_count),
        expect_errors=errors,
        hint="torch.empty((), dtype=dtype).element_size() (or dtype.itemsize) is the bytes of one "
        "element; raise ValueError if numel < 0",
    )


# --- exercise 3: MACs of one layer from its shapes ----------------------------------------

def _reference_layer_macs(layer: nn.Module, input_shape: tuple[int, ...]) -> int:
    """What :func:`compresskit.measure.count_macs` measures on one sample of ``input_shape``."""
    return measure.count_macs(layer, torch.zeros(1, *input_shape))


def _conv_macs(conv: nn.Conv2d, input_shape: tuple[int, ...], *, groups: int | None = None,
               stride: tuple[int, int] | None = None, padding: tuple[int, int] | None = None,
               rounding: Callable[[float], int] = math.floor, positions: bool = True) -> int:
    """The shape formula with one of its parts changed, to name a learner's mistake."""
    _, h, w = input_shape
    groups = conv.groups if groups is None else groups
    stride = conv.stride if stride is None else stride
    padding = conv.padding if padding is None else padding
    sizes = [rounding((n + 2 * p - k) / s) + 1 for n, p, k, s in zip((h, w), padding, conv.kernel_size, stride)]
    out = conv.out_channels * (sizes[0] * sizes[1] if positions else 1)
    return out * conv.in_channels // groups * conv.kernel_size[0] * conv.kernel_size[1]


def _layer_macs_expected(layer: nn.Module, input_shape: tuple[int, ...]) -> Expected:
    right = _reference_layer_macs(layer, input_shape)
    flops = (2 * right, "that is FLOPs (a multiply and an add each): count multiply-accumulates")
    if isinstance(layer, nn.Linear):
        return Expected(right, mistakes=(flops, (
            right + layer.out_features, "that adds the bias: a bias is an addition, not a multiply-accumulate")))
    outputs = right // (layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1])
    return Expected(right, mistakes=(
        flops,
        (right + outputs, "that adds the bias: a bias is an addition, not a multiply-accumulate"),
        (_conv_macs(layer, input_shape, groups=1),
         "that ignores `groups`: each output sees only C_in / groups input channels"),
        (_conv_macs(layer, input_shape, stride=(1, 1)),
         "that ignores `stride`: H_out = (H + 2 * padding - kernel) // stride + 1"),
        (_conv_macs(layer, input_shape, padding=(0, 0)),
         "that ignores `padding`: H_out = (H + 2 * padding - kernel) // stride + 1"),
        (_conv_macs(layer, input_shape, rounding=math.ceil),
         "that rounds the output size up: PyTorch rounds (H + 2 * padding - kernel) / stride down"),
        (_conv_macs(layer, input_shape, positions=False),
         "that is one output position: multiply by the H_out * W_out positions the kernel visits"),
    ))


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
        fn, _layer_macs_expected, cases, name="layer_macs", compare=naming_mistakes(exact_count),
        hint="Linear: in_features * out_features. Conv2d: (out elements C_out * H_out * W_out) * "
        "(C_in / groups) * k_h * k_w, with H_out = (H + 2 * padding - kernel) // stride + 1",
    )


# --- exercise 4: ratio and saving ---------------------------------------------------------

def _reference_ratio_and_saving(before: float, after: float) -> tuple[float, float]:
    """``before / after`` (times smaller or faster) and ``1 - after / before`` (fraction saved)."""
    before = check_real("before", before, 0.0, low_open=True)
    after = check_real("after", after, 0.0, low_open=True)
    return before / after, 1.0 - after / before


INVERTED = "that is after / before: the ratio is before / after (4x smaller is 4.0)"
KEPT = "that is the fraction kept (after / before): the saving is 1 - after / before"
PERCENT = "that is a percentage: give the saving as a fraction (0.75, not 75)"
PER_AFTER = "that divides by `after`: the saving is a fraction of `before`, 1 - after / before"
ABSOLUTE = "a model that got bigger saved a negative fraction: keep the sign"


def _ratio_and_saving_expected(before: float, after: float) -> tuple[Expected, Expected]:
    ratio, saving = _reference_ratio_and_saving(before, after)
    return (Expected(ratio, mistakes=((after / before, INVERTED),)),
            Expected(saving, mistakes=((after / before, KEPT), (100 * saving, PERCENT),
                                       (before / after - 1, PER_AFTER), (1 - before / after, PER_AFTER),
                                       (abs(saving), ABSOLUTE))))


def _compare_pair(expected: tuple[Expected, Expected], got: Any) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair (ratio, saving), got {describe(got)}"
    compare = naming_mistakes(close)
    for label, e, g in zip(("ratio", "saving"), expected, got):
        reason = compare(e, g)
        if reason:
            return f"{label}: {reason}"
    return None


def check_ratio_and_saving(fn: Callable[[float, float], tuple[float, float]]) -> bool:
    """``fn(before, after)`` must return ``(before / after, 1 - after / before)`` and raise
    ``ValueError`` when either measurement is zero or negative."""
    cases = [
        Case("fp32 -> int8 bytes: 4000 -> 1000", (4000, 1000)),
        Case("'saves a third': 3.0 -> 2.0", (3.0, 2.0)),
        Case("fp32 -> fp16 file of the MLP: 342741 -> 172565", (342741, 172565)),
        Case("latency 0.50 ms -> 0.125 ms", (0.50e-3, 0.125e-3)),
        Case("nothing changed: 1.0 -> 1.0", (1.0, 1.0)),
        Case("it got bigger: 2.0 -> 3.0", (2.0, 3.0)),
    ]
    errors = [
        (Case("after = 0", (1.0, 0.0)), ValueError),
        (Case("before = -1", (-1.0, 1.0)), ValueError),
    ]
    return check_function(
        fn, _ratio_and_saving_expected, cases, name="ratio_and_saving", compare=_compare_pair,
        expect_errors=errors,
        hint="4x smaller means ratio 4.0 and saving 0.75; raise ValueError if before <= 0 or after <= 0",
    )


def check_int8_claims(file_bytes: Mapping[str, int], int8_ratio: float, int8_saving: float,
                      third_ratio: float) -> bool:
    """Exercise 4, second part. ``file_bytes`` is chapter 1's dict of file sizes; the learner
    gives the int8 file's ratio and saving against float32, and ``third_ratio``, the ratio
    that "saves about a third" (the article's claim) would be. Prints one line per value."""
    try:
        before, after = int(file_bytes["float32"]), int(file_bytes["int8 + scales"])
    except (TypeError, KeyError, ValueError):
        report_failure("int8 claims", "`file_bytes` must be the dict of section 2.3, with the keys "
                       f"'float32' and 'int8 + scales'; got {describe(file_bytes)}")
        return False
    ratio, saving = _reference_ratio_and_saving(before, after)
    raw = "4.0 is the ratio of the raw numbers (4 bytes against 1): the files also hold a header and one scale per tensor; use file_bytes"
    compare = naming_mistakes(close)
    results = [
        check_value(int8_ratio, Expected(ratio, mistakes=((after / before, INVERTED), (4.0, raw))),
                    name="int8_ratio", compare=compare),
        check_value(int8_saving, Expected(saving, mistakes=(
            (after / before, KEPT), (100 * saving, PERCENT), (before / after - 1, PER_AFTER), (0.75, raw))),
                    name="int8_saving", compare=compare),
        check_value(third_ratio, Expected(1.5, mistakes=(
            (3.0, "'a third' is the saving, not the ratio: saving 1/3 leaves 2/3 of the bytes, "
                  "so the ratio is 1 / (2/3)"),
            (1 / 3, "that is the saving itself: the ratio is before / after = 1 / (1 - saving)"),
            (2 / 3, "that is the fraction kept (after / before): the ratio is its inverse"),
            (4 / 3, "1 + 1/3 is not it: the ratio is before / after = 1 / (1 - saving)"))),
                    name="third_ratio", compare=compare),
    ]
    return all(results)
