"""AWQ: activation-aware weight quantization by per-input-channel scales searched on a grid.

Weights that meet large activations matter most. Scaling input channel j of W up by s_j before
quantizing (and its input down by s_j) shrinks that channel's relative rounding error::

    Q(W · diag(s)) · (diag(s)⁻¹ X)                                       Eq. (3)-(4) in [1]

The scales follow the mean activation magnitude, ``s = s_X^α`` with ``s_X = mean |x|`` per channel,
and α is searched on a grid in [0, 1] to minimise the output error of the quantized layer(s) that
share the input::

    α* = argmin_α || Q(W · diag(s_X^α)) (diag(s_X^α)⁻¹ X) - W X ||      Eq. (5) in [1]

As in the reference code (``auto_scale.py``), s is normalised by ``sqrt(max(s) · min(s))`` and
clamped below at 1e-4. α = 0 gives s = 1: round-to-nearest, so the chosen α is never worse than
RTN on the calibration data. The division by s is folded into the layer before
(:func:`~compresskit.llm.folding.fold_scales`). The reference's second step, a search of
clipping ranges (``auto_clip.py``), is left out.

References
----------
[1] Lin, Tang, Tang, Yang, Chen, Wang, Xiao, Dang, Gan, Han. "AWQ: Activation-aware Weight
    Quantization for LLM Compression and Acceleration", 2023, arXiv:2306.00978.
    Code: github.com/mit-han-lab/llm-awq (awq/quantize/auto_scale.py).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch

from compresskit._validation import check_int, check_real, check_tensor
from compresskit.llm.groupwise import _groups, quantize_rtn

__all__ = ["AWQSearch", "awq_scales", "awq_search"]


@dataclasses.dataclass(frozen=True)
class AWQSearch:
    """The grid search: ``scales`` (in,) at the chosen ``alpha``, and the output error at every α in ``alphas``."""

    scales: torch.Tensor
    alpha: float
    alphas: torch.Tensor
    errors: torch.Tensor


def awq_scales(inputs: torch.Tensor, alpha: float) -> torch.Tensor:
    """``s = s_X^α`` (s_X = mean |x| per input channel), clamped at 1e-4 and normalised by sqrt(max · min)."""
    check_tensor("inputs", inputs, floating=True, finite=True)
    alpha = check_real("alpha", alpha, 0.0, 1.0)
    s_X = inputs.detach().reshape(-1, inputs.shape[-1]).abs().float().mean(0)
    s = s_X.pow(alpha).clamp(min=1e-4)  # Eq. (5) in [1]
    return s / (s.max() * s.min()).sqrt()


def _output_error(weights: Sequence[torch.Tensor], X: torch.Tensor, s: torch.Tensor, bits: int, group_size: int, symmetric: bool) -> float:
    """Mean squared output error of the quantized, scaled layers against the float ones, Eq. (4) in [1]."""
    error = 0.0
    for W in weights:
        W_hat = quantize_rtn(W * s, bits, group_size, symmetric).dequantize() / s  # Q(W diag(s)) diag(s)^-1
        error += float((X @ (W_hat - W).T).pow(2).mean())
    return error


def awq_search(
    weights: torch.Tensor | Sequence[torch.Tensor],
    inputs: torch.Tensor,
    bits: int,
    group_size: int | None = None,
    symmetric: bool = False,
    n_grid: int = 20,
) -> AWQSearch:
    """Search α on ``n_grid`` points of [0, 1] for the layers ``weights`` (out_i, in) that share ``inputs`` (..., in)."""
    weights = [weights] if isinstance(weights, torch.Tensor) else list(weights)
    if not weights:
        raise ValueError("`weights` must hold at least one weight; got an empty sequence")
    for i, W in enumerate(weights):
        check_tensor(f"weights[{i}]", W, ndim=2, floating=True, finite=True)
    check_tensor("inputs", inputs, floating=True, finite=True)
    if any(W.shape[1] != inputs.shape[-1] for W in weights):
        raise ValueError(f"`inputs` must have in_features={weights[0].shape[1]} columns; got shape {tuple(inputs.shape)}")
    g = _groups(weights[0], group_size)
    n_grid = check_int("n_grid", n_grid, 2)
    X = inputs.detach().reshape(-1, inputs.shape[-1]).float()
    Ws = [W.detach().float() for W in weights]
    alphas = torch.linspace(0, 1, n_grid)
    errors = torch.tensor([_output_error(Ws, X, awq_scales(X, float(a)), bits, g, symmetric) for a in alphas])
    best = int(torch.argmin(errors))  # the first minimum: α = 0 (RTN) wins a tie
    return AWQSearch(awq_scales(X, float(alphas[best])), float(alphas[best]), alphas, errors)

