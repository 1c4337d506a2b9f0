"""W8A8: SmoothQuant's smoothing, and LLM.int8()'s outlier decomposition beside it.

Activations of large language models have a few channels far larger than the rest, so one int8
scale per token (or per tensor) wastes most of its levels on them. SmoothQuant [1] moves the
difficulty into the weights with a per-channel scale folded into the LayerNorm before::

    s_j = max|X_j|^α / max|W_j|^(1-α),    Y = (X diag(s)⁻¹) (diag(s) W)       Eq. (4) in [1]

then quantizes activations (per tensor or per token, dynamic absmax) and weights (per output
channel) to int8. LLM.int8() [2] instead keeps every input column that holds an |x| above a
threshold (6.0) in float16 and multiplies the rest in int8 with vector-wise scales (one per row
of X, one per output channel of W)::

    Y = X_O W_Oᵀ (fp16)  +  s_X s_Wᵀ ⊙ (Q(X_R) Q(W_R)ᵀ) (int8, int32 sums)  Eq. (5)-(6) in [2]

``activation_outliers`` measures what both methods are for: per channel max |x| over the
calibration data, and the largest channel's ratio to the median channel.

References
----------
[1] Xiao, Lin, Seznec, Wu, Demouth, Han. "SmoothQuant: Accurate and Efficient Post-Training
    Quantization for Large Language Models", 2022, arXiv:2211.10438.
    Code: github.com/mit-han-lab/smoothquant (smoothquant/smooth.py, fake_quant.py).
[2] Dettmers, Lewis, Belkada, Zettlemoyer. "LLM.int8(): 8-bit Matrix Multiplication for
    Transformers at Scale", 2022, arXiv:2208.07339.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import nn

from compresskit._validation import check_choice, check_real, check_tensor

__all__ = ["Outliers", "W8A8Linear", "activation_outliers", "int8_decomposition", "smooth_scales", "w8a8_linear"]


@dataclasses.dataclass(frozen=True)
class Outliers:
    """Per channel max |x| (``channel_max``), and ``ratio``: the largest channel max over the median one."""

    channel_max: torch.Tensor
    ratio: float


def activation_outliers(inputs: torch.Tensor) -> Outliers:
    """Per input channel max |x| over every row of ``inputs`` (..., channels), and max / median of those."""
    check_tensor("inputs", inputs, floating=True, finite=True)
    channel_max = inputs.detach().reshape(-1, inputs.shape[-1]).abs().amax(0).float()
    median = float(channel_max.median())
    return Outliers(channel_max, float(channel_max.max()) / median if median > 0 else float("inf"))


def smooth_scales(act_max: torch.Tensor, weights: torch.Tensor | Sequence[torch.Tensor], alpha: float = 0.5) -> torch.Tensor:
    """``s_j = max|X_j|^α / max|W_j|^(1-α)`` (Eq. (4) in [1]); max|W_j| over every layer that reads the input."""
    check_tensor("act_max", act_max, ndim=1, floating=True, finite=True)
    weights = [weights] if isinstance(weights, torch.Tensor) else list(weights)
    if not weights:
        raise ValueError("`weights` must hold at least one weight; got an empty sequence")
    for i, W in enumerate(weights):
        check_tensor(f"weights[{i}]", W, ndim=2, floating=True, finite=True)
        if W.shape[1] != act_max.shape[0]:
            raise ValueError(f"`weights[{i}]` must have in_features={act_max.shape[0]} (one per `act_max`); got shape {tuple(W.shape)}")
    alpha = check_real("alpha", alpha, 0.0, 1.0)
    w_max = torch.stack([W.detach().abs().amax(0) for W in weights]).amax(0).float()
    s = act_max.detach().float().pow(alpha) / w_max.pow(1 - alpha)
    return s.clamp(min=1e-5)  # as the reference: an all-zero channel keeps a usable scale


def _absmax_int8(t: torch.Tensor, dim: int | None) -> torch.Tensor:
    """Symmetric int8 fake quantization with the absmax scale of each slice along ``dim`` (None: the whole tensor)."""
    amax = t.abs().amax() if dim is None else t.abs().amax(dim=dim, keepdim=True)
    scale = amax.clamp(min=1e-5) / 127
    return torch.round(t / scale).clamp(-127, 127) * scale


def w8a8_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, activations: str = "per_token") -> torch.Tensor:
    """``x Wᵀ + b`` with int8 fake-quantized weights (per output channel) and activations (per token or per tensor)."""
    check_tensor("x", x, floating=True, finite=True)
    check_tensor("weight", weight, ndim=2, floating=True, finite=True)
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"`x` must have in_features={weight.shape[1]} columns; got shape {tuple(x.shape)}")
    check_choice("activations", activations, ["per_token", "per_tensor"])
    x_q = _absmax_int8(x, -1 if activations == "per_token" else None)
    y = x_q @ _absmax_int8(weight.detach(), 1).T
    return y if bias is None else y + bias


def int8_decomposition(x: torch.Tensor, weight: torch.Tensor, threshold: float = 6.0) -> tuple[torch.Tensor, torch.Tensor]:
    """LLM.int8()'s ``x Wᵀ``: returns (y, outlier column mask). Outlier columns in float16, the rest int8 vector-wise."""
    check_tensor("x", x, ndim=2, floating=True, finite=True)
    check_tensor("weight", weight, ndim=2, floating=True, finite=True)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"`x` must have in_features={weight.shape[1]} columns; got shape {tuple(x.shape)}")
    threshold = check_real("threshold", threshold, 0.0, low_open=True)
    W = weight.detach()
    outlier = (x.abs() > threshold).any(dim=0)  # a column with any |x| above the threshold
    y_fp16 = (x[:, outlier].half().float() @ W[:, outlier].half().float().T)  # fp16 values, float32 sums
    X_R, W_R = x[:, ~outlier], W[:, ~outlier]
    s_X = X_R.abs().amax(1, keepdim=True).clamp(min=1e-8) / 127  # one scale per row of X, Eq. (5) in [2]
    s_W = W_R.abs().amax(1, keepdim=True).clamp(min=1e-8) / 127  # one per output channel of W
    C = torch.round(X_R / s_X).to(torch.int32) @ torch.round(W_R / s_W).to(torch.int32).T  # int32 sums
    return y_fp16 + C.float() * (s_X @ s_W.T), outlier  # Eq. (6) in [2]


class W8A8Linear(nn.Linear):
    """An nn.Linear whose forward is :func:`w8a8_linear` (int8 fake-quantized weights and activations)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activations: str = "per_token") -> None:
        super().__init__(in_features, out_features, bias)
        self.activations = check_choice("activations", activations, ["per_token", "per_tensor"])

    @classmethod
    def from_float(cls, linear: nn.Linear, activations: str = "per_token") -> "W8A8Linear":
        """A W8A8 copy of ``linear`` (its weight and bias copied; a pruned layer's masked weight)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"`linear` must be an nn.Linear; got {type(linear).__name__}")
        new = cls(linear.in_features, linear.out_features, linear.bias is not None, activations)
        with torch.no_grad():
            new.weight.copy_(linear.weight)
            if linear.bias is not None:
                new.bias.copy_(linear.bias)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return w8a8_linear(x, self.weight, self.bias, self.activations)
