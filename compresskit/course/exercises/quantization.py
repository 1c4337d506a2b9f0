"""Exercise checkers for chapter 3, quantization.

Each ``check_*`` runs the learner's function against the reference in
:mod:`compresskit.quantization` on several inputs (edge cases included), prints what fails,
and returns a bool. A stub that raises ``NotImplementedError`` is reported as not attempted.
"""

from __future__ import annotations

from typing import Callable

import torch

from compresskit.course.checker import Case, check_function
from compresskit.quantization import calculate_qparams, fake_quantize, fixed_point_encode, kmeans_quantize


def reference_scale_zero_point(min_val: float, max_val: float, quant_min: int, quant_max: int) -> tuple[float, int]:
    """Affine ``(scale, zero_point)`` as PyTorch's MinMaxObserver computes them."""
    scale, zero_point = calculate_qparams(min_val, max_val, quant_min, quant_max, "affine")
    return float(scale), int(zero_point)


def check_scale_zero_point(fn: Callable[[float, float, int, int], tuple[float, int]]) -> bool:
    """``fn(min_val, max_val, quant_min, quant_max) -> (scale, zero_point)``, affine."""
    cases = [
        Case("range [-1, 2] on [0, 15]", (-1.0, 2.0, 0, 15)),
        Case("range [-0.5, 1.5] on [0, 255]", (-0.5, 1.5, 0, 255)),
        Case("range [-3, 1] on [-128, 127]", (-3.0, 1.0, -128, 127)),
        Case("all positive [2, 4]: the range must include 0", (2.0, 4.0, 0, 255)),
        Case("all negative [-4, -1]: the range must include 0", (-4.0, -1.0, 0, 255)),
    ]
    return check_function(
        fn, reference_scale_zero_point, cases, name="scale_zero_point",
        hint="widen the range to include 0 first; zero_point = quant_min - round(min_val / scale), as an int",
    )


def reference_fake_quantize(x: torch.Tensor, scale: float, zero_point: int, quant_min: int, quant_max: int) -> torch.Tensor:
    return fake_quantize(x, scale, zero_point, quant_min, quant_max)


def check_fake_quantize(fn: Callable[..., torch.Tensor]) -> bool:
    """``fn(x, scale, zero_point, quant_min, quant_max) -> Tensor``: quantize, clamp, dequantize."""
    x = torch.linspace(-2, 2, 17)
    cases = [
        Case("8-bit affine", (x, 0.02, 100, 0, 255)),
        Case("4-bit signed, values clamped", (x, 0.1, 0, -8, 7)),
        Case("ties round half to even (0.25 / 0.5 = 0.5 -> 0)", (torch.tensor([0.25, 0.75, -0.25]), 0.5, 0, -8, 7)),
        Case("2-D input", (torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), 0.05, 3, 0, 15)),
    ]
    return check_function(
        fn, reference_fake_quantize, cases, name="fake_quantize",
        hint="q = clamp(torch.round(x / scale) + zero_point, quant_min, quant_max); return (q - zero_point) * scale",
    )


def reference_kmeans_codebook(weight: torch.Tensor, bits: int, n_iter: int) -> torch.Tensor:
    return kmeans_quantize(weight, bits, n_iter)[0]


def check_kmeans_codebook(fn: Callable[[torch.Tensor, int, int], torch.Tensor]) -> bool:
    """``fn(weight, bits, n_iter) -> codebook`` of shape (2**bits,): linear init, Lloyd iterations."""
    g = torch.Generator().manual_seed(0)
    cases = [
        Case("two clear clusters, 1 bit", (torch.tensor([0.0, 0.1, 0.2, 1.0, 1.2]), 1, 10)),
        Case("normal weights, 2 bits", (torch.randn(200, generator=g), 2, 20)),
        Case("a 2-D weight, 3 bits", (torch.randn(16, 8, generator=g), 3, 20)),
        Case("an empty cluster keeps its centroid", (torch.tensor([0.0, 0.05, 1.0]), 2, 5)),
        Case("no iterations: the linear initialisation", (torch.tensor([-1.0, 0.3, 2.0]), 2, 0)),
    ]
    return check_function(
        fn, reference_kmeans_codebook, cases, name="kmeans_codebook",
        hint="start from torch.linspace(w.min(), w.max(), 2**bits); assign each weight to its nearest centroid; "
        "move each centroid to the mean of its weights (leave it where it is if it has none)",
    )


def reference_to_fixed_point(x: torch.Tensor, m: int, n: int) -> torch.Tensor:
    return fixed_point_encode(x, m, n)


def check_to_fixed_point(fn: Callable[[torch.Tensor, int, int], torch.Tensor]) -> bool:
    """``fn(x, m, n) -> int64 codes`` of signed Qm.n: round to nearest (half to even), saturate."""
    x = torch.tensor([0.3, -0.3, 1.9, -2.5, 0.125, 0.0])
    cases = [
        Case("Q1.2 (4 bits)", (x, 1, 2)),
        Case("Q0.7 (8 bits, range [-1, 1))", (x, 0, 7)),
        Case("Q3.4, values in range", (torch.tensor([3.14159, -7.9, 0.0625]), 3, 4)),
        Case("Q7.8, large values saturate", (torch.tensor([300.0, -300.0]), 7, 8)),
    ]
    return check_function(
        fn, reference_to_fixed_point, cases, name="to_fixed_point",
        hint="codes = torch.round(x * 2**n), clamped to [-2**(m+n), 2**(m+n) - 1], as torch.int64",
    )
