"""Per-input-channel scales folded into the layer before, so the float function does not change.

A Linear ``y = W x`` whose input ``x`` is the output of a LayerNorm ``x = γ ⊙ x̂ + β`` (or of a
Linear ``x = V u + c``) computes the same function after::

    W ← W · diag(s),    γ ← γ / s,  β ← β / s     (or  V ← diag(1/s) · V,  c ← c / s)

since ``W diag(s) (x / s) = W x``. AWQ [1] chooses s to protect salient weights, SmoothQuant [2]
to move activation outliers into the weights; both fold it this way (``scale_ln_fcs`` and
``scale_fc_fc`` in [1]'s code, ``smooth_ln_fcs`` in [2]'s).

References
----------
[1] Lin, Tang, Tang, Yang, Chen, Wang, Xiao, Dang, Gan, Han. "AWQ: Activation-aware Weight
    Quantization for LLM Compression and Acceleration", 2023, arXiv:2306.00978.
[2] Xiao, Lin, Seznec, Wu, Demouth, Han. "SmoothQuant: Accurate and Efficient Post-Training
    Quantization for Large Language Models", 2022, arXiv:2211.10438.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from compresskit._validation import check_tensor, check_type

__all__ = ["fold_scales"]


def _check_fold(prev: nn.Module, linears: Sequence[nn.Linear], s: torch.Tensor) -> None:
    check_type("prev", prev, (nn.LayerNorm, nn.Linear), "an nn.LayerNorm or nn.Linear")
    if isinstance(linears, nn.Module) or not isinstance(linears, Sequence) or not linears:
        raise TypeError(f"`linears` must be a non-empty sequence of nn.Linear; got {type(linears).__name__}")
    for i, fc in enumerate(linears):
        check_type(f"linears[{i}]", fc, nn.Linear)
    check_tensor("s", s, ndim=1, floating=True, finite=True)
    width = prev.out_features if isinstance(prev, nn.Linear) else prev.normalized_shape[-1]
    if isinstance(prev, nn.LayerNorm) and (len(prev.normalized_shape) != 1 or not prev.elementwise_affine):
        raise ValueError("`prev` must be a LayerNorm over one dimension with elementwise_affine=True (a weight to fold into)")
    if s.shape[0] != width or any(fc.in_features != width for fc in linears):
        raise ValueError(f"`s` must have one scale per channel of `prev` ({width}) and every linear's in_features; got {s.shape[0]}"
                         f" and in_features {[fc.in_features for fc in linears]}")
    if not bool((s > 0).all()):
        raise ValueError(f"`s` must be positive; got minimum {float(s.min())}")


def _scale(module: nn.Module, name: str, factor: torch.Tensor) -> None:
    """Multiply a parameter by ``factor``; on a layer pruned with torch.nn.utils.prune, its ``_orig`` (the mask stays)."""
    param = getattr(module, name + "_orig", None)
    if param is None:
        param = getattr(module, name)
    if param is None:
        return
    param.mul_(factor.to(param.dtype))
    if hasattr(module, name + "_mask"):
        setattr(module, name, param * getattr(module, name + "_mask"))


@torch.no_grad()
def fold_scales(prev: nn.LayerNorm | nn.Linear, linears: Sequence[nn.Linear], s: torch.Tensor) -> None:
    """In place: divide ``prev``'s output channels by ``s``, multiply the ``linears``' input columns by ``s``.

    Everything is checked before anything changes. A layer pruned with torch.nn.utils.prune is
    scaled through its ``weight_orig``, so its mask and zeros stay.
    """
    _check_fold(prev, linears, s)
    s = s.detach()
    _scale(prev, "weight", 1 / s if isinstance(prev, nn.LayerNorm) else (1 / s)[:, None])  # γ / s, or rows of V / s
    _scale(prev, "bias", 1 / s)
    for fc in linears:
        _scale(fc, "weight", s[None, :])  # W · diag(s)
