"""Exercise checkers for chapter 3, quantization.

Each ``check_*`` runs the learner's function against the reference in
:mod:`compresskit.quantization` on several inputs, prints what fails, and returns a bool. A
stub that raises ``NotImplementedError`` is reported as not attempted.

The inputs are chosen so that each plausible mistake fails a case whose description names
it: ties and negative fractions where truncation, floor and round-half-up differ from
PyTorch's round-half-to-even, grids where ``2**b`` and ``2**b - 1`` steps differ, non-zero
zero points, values beyond the grid, and empty k-means clusters. Integer results must have
the dtype the reference returns (int64, not int32).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from compresskit.course.checker import Case, check_function, close
from compresskit.quantization import calculate_qparams, fake_quantize, fixed_point_encode, kmeans_quantize


def same_dtype(expected: Any, got: Any) -> str | None:
    """Like :func:`~compresskit.course.checker.close`, but a tensor must also have the
    expected dtype exactly (int64 codes returned as int32 are a mistake here)."""
    if isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor) and got.dtype != expected.dtype:
        return f"dtype: expected {expected.dtype}, got {got.dtype}"
    reason = close(expected, got)
    if reason and isinstance(expected, torch.Tensor) and "entries differ" in reason and expected.numel() <= 12:
        reason += f": expected {expected.tolist()}, got {got.tolist()}"  # small: show both
    return reason


def _scale_and_zero_point(expected: Any, got: Any) -> str | None:
    """Compare ``(scale, zero_point)`` pairs, naming the item that differs."""
    reason = close(expected, got)
    if reason:
        reason = reason.replace("item 0:", "scale:").replace("item 1:", "zero_point:")
    return reason


# --- 1. scale and zero point --------------------------------------------------------------

def reference_scale_zero_point(min_val: float, max_val: float, quant_min: int, quant_max: int) -> tuple[float, int]:
    """Affine ``(scale, zero_point)`` as PyTorch's MinMaxObserver computes them."""
    scale, zero_point = calculate_qparams(min_val, max_val, quant_min, quant_max, "affine")
    return float(scale), int(zero_point)


def check_scale_zero_point(fn: Callable[[float, float, int, int], tuple[float, int]]) -> bool:
    """``fn(min_val, max_val, quant_min, quant_max) -> (scale, zero_point)``, affine."""
    cases = [
        Case("range [-1, 2] on [0, 15]: 16 levels are 15 steps, scale = 3 / 15", (-1.0, 2.0, 0, 15)),
        Case("range [-0.5, 1.5] on [0, 255]: min / scale = -63.75 rounds to -64, zero_point 64 "
             "(truncation gives 63)", (-0.5, 1.5, 0, 255)),
        Case("range [-3, 1] on [-128, 127]: min / scale = -191.25 rounds to -191, zero_point 63 "
             "(floor gives 64)", (-3.0, 1.0, -128, 127)),
        Case("range [-0.75, 0.25] on [0, 2]: min / scale = -1.5, a tie, rounds half to even (-2), "
             "zero_point 2", (-0.75, 0.25, 0, 2)),
        Case("all positive [2, 4]: the range must include 0", (2.0, 4.0, 0, 255)),
        Case("all negative [-4, -1]: the range must include 0", (-4.0, -1.0, 0, 255)),
    ]
    return check_function(
        fn, reference_scale_zero_point, cases, name="scale_zero_point", compare=_scale_and_zero_point,
        hint="widen the range to include 0; scale = (max - min) / (quant_max - quant_min); "
        "zero_point = quant_min - round(min / scale), rounded half to even (Python's round), as an int",
    )


# --- 2. fake quantization -----------------------------------------------------------------

def reference_fake_quantize(x: torch.Tensor, scale: float, zero_point: int, quant_min: int, quant_max: int) -> torch.Tensor:
    return fake_quantize(x, scale, zero_point, quant_min, quant_max)


def check_fake_quantize(fn: Callable[..., torch.Tensor]) -> bool:
    """``fn(x, scale, zero_point, quant_min, quant_max) -> Tensor``: quantize, clamp, dequantize,
    in ``x``'s dtype."""
    x = torch.linspace(-2, 2, 17)  # shared by the first cases: an answer that writes into x is caught
    cases = [
        Case("8-bit affine, zero_point 100: values below -2 clamp at quant_min, and dequantizing "
             "subtracts the zero point", (x, 0.02, 100, 0, 255)),
        Case("4-bit signed, scale 0.1: x / scale = +-7.5 and +-2.5 round half to even "
             "(truncation and round-half-up do not), values beyond +-0.7 clamped", (x, 0.1, 0, -8, 7)),
        Case("zero_point 5 on [0, 15]: clamp round(x / scale) + zero_point, not round(x / scale), "
             "to the grid", (x, 0.25, 5, 0, 15)),
        Case("ties round half to even (0.25 / 0.5 = 0.5 -> 0)", (torch.tensor([0.25, 0.75, -0.25]), 0.5, 0, -8, 7)),
        Case("ties with an odd zero_point 3: round(x / scale) + zero_point, not round(x / scale + zero_point) "
             "(x / scale = 0.5 gives 0 + 3, but round(3.5) = 4); half away from zero rounds -0.5 to -1",
             (torch.tensor([0.25, 0.75, -0.25, -0.75, 1.25]), 0.5, 3, 0, 15)),
        Case("2-D input, zero_point 3", (torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), 0.05, 3, 0, 15)),
        Case("a float64 input: the result keeps x's dtype (float64), as torch.fake_quantize_per_tensor_affine does",
             (torch.tensor([-1.3, -0.2, 0.0, 0.33, 0.9, 2.5], dtype=torch.float64), 0.125, 2, 0, 15)),
    ]
    return check_function(
        fn, reference_fake_quantize, cases, name="fake_quantize", compare=same_dtype,
        hint="q = clamp(torch.round(x / scale) + zero_point, quant_min, quant_max); return (q - zero_point) * scale "
        "(in x's dtype)",
    )


# --- 3. a k-means codebook ----------------------------------------------------------------

def reference_kmeans_codebook(weight: torch.Tensor, bits: int, n_iter: int) -> torch.Tensor:
    return kmeans_quantize(weight, bits, n_iter)[0]


def check_kmeans_codebook(fn: Callable[[torch.Tensor, int, int], torch.Tensor]) -> bool:
    """``fn(weight, bits, n_iter) -> codebook`` of shape (2**bits,): linear init, Lloyd iterations."""
    g = torch.Generator().manual_seed(0)
    cases = [
        Case("two clear clusters, 1 bit: 2**bits = 2 centroids", (torch.tensor([0.0, 0.1, 0.2, 1.0, 1.2]), 1, 10)),
        Case("normal weights, 2 bits", (torch.randn(200, generator=g), 2, 20)),
        Case("a 2-D weight, 3 bits: cluster all its entries together", (torch.randn(16, 8, generator=g), 3, 20)),
        Case("an empty cluster keeps its centroid (the mean of no weights is NaN)", (torch.tensor([0.0, 0.05, 1.0]), 2, 5)),
        Case("n_iter = 0: the linear initialisation, no iteration", (torch.tensor([-1.0, 0.3, 2.0]), 2, 0)),
        Case("n_iter = 1: exactly one assignment and one update (a second one would move 2.1 to the lower centroid)",
             (torch.tensor([1.0, 1.9, 2.1, 3.0, 3.0, 3.0]), 1, 1)),
    ]
    return check_function(
        fn, reference_kmeans_codebook, cases, name="kmeans_codebook", compare=same_dtype,
        hint="start from torch.linspace(w.min(), w.max(), 2**bits); assign each weight to its nearest centroid; "
        "move each centroid to the mean of its weights (leave it where it is if it has none); repeat n_iter times",
    )


# --- 4. a Q-format converter --------------------------------------------------------------

def reference_to_fixed_point(x: torch.Tensor, m: int, n: int) -> torch.Tensor:
    return fixed_point_encode(x, m, n)


def check_to_fixed_point(fn: Callable[[torch.Tensor, int, int], torch.Tensor]) -> bool:
    """``fn(x, m, n) -> int64 codes`` of signed Qm.n: round to nearest (half to even), saturate."""
    x = torch.tensor([0.3, -0.3, 1.9, -2.5, 0.125, 0.0])  # shared by the first two cases
    fractions = torch.tensor([2.6, -2.6, 2.5, -2.5, 3.5, -0.4, -1.7]) / 16  # x * 2**4: the codes before rounding
    cases = [
        Case("Q1.2 (4 bits): saturate to [-8, 7]", (x, 1, 2)),
        Case("Q0.7 (8 bits, range [-1, 1))", (x, 0, 7)),
        Case("Q3.4, x * 16 = [2.6, -2.6, 2.5, -2.5, 3.5, -0.4, -1.7]: round to nearest, ties to even, "
             "gives [3, -3, 2, -2, 4, 0, -2] (truncation, floor and round-half-up do not)", (fractions, 3, 4)),
        Case("Q3.4, values in range", (torch.tensor([3.14159, -7.9, 0.0625]), 3, 4)),
        Case("Q7.8, large values saturate to [-32768, 32767] (1 sign bit + 15 bits)", (torch.tensor([300.0, -300.0]), 7, 8)),
    ]
    return check_function(
        fn, reference_to_fixed_point, cases, name="to_fixed_point", compare=same_dtype,
        hint="codes = torch.round(x * 2**n) (half to even), clamped to [-2**(m+n), 2**(m+n) - 1], as torch.int64",
    )
