"""A global skip over bicubic: the network learns only what bicubic upsampling misses.

    y = bicubic_r(x) + f(x)                                                      Eq. (1)

Kim, Lee and Lee (VDSR) showed that learning the residual over the interpolated image trains
far faster than learning the whole image; efficient SR networks since (e.g. FSRCNN-style
and sub-pixel networks with a bicubic skip) keep it. It adds no convolution, so the MACs of
``f`` are the MACs of the whole model, plus one bicubic upsampling (a few operations per pixel).

[1] J. Kim, J. K. Lee, K. M. Lee, "Accurate Image Super-Resolution Using Very Deep
    Convolutional Networks" (VDSR), CVPR 2016, arXiv:1511.04587.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compresskit._validation import check_int, check_module

__all__ = ["BicubicResidual", "bicubic_residual"]


class BicubicResidual(nn.Module):
    """``bicubic(x) + net(x)``, Eq. (1); ``net`` maps (N, C, h, w) to (N, C, h r, w r)."""

    def __init__(self, net: nn.Module, scale: int) -> None:
        super().__init__()
        self.net = check_module("net", net)
        self.scale = check_int("scale", scale, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        residual = self.net(x)
        if residual.shape != up.shape:
            raise ValueError(f"`net` must map x {tuple(x.shape)} to the bicubic upsampling's shape {tuple(up.shape)} "
                             f"(`scale` {self.scale}); got {tuple(residual.shape)}: was it built for another scale?")
        return up + residual  # Eq. (1)


def bicubic_residual(net: nn.Module, scale: int) -> BicubicResidual:
    """Wrap an SR network (``espcn(r)`` or ``srcnn(r)``) so it learns the residual over bicubic."""
    return BicubicResidual(net, scale)
