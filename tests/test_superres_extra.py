"""compresskit.superres.residual: the bicubic skip adds exactly F.interpolate's bicubic, and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compresskit import measure
from compresskit import superres as sr


class _Zero(nn.Module):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return torch.zeros(*x.shape[:-2], x.shape[-2] * self.scale, x.shape[-1] * self.scale)


@pytest.mark.parametrize("scale", [2, 3])
def test_a_zero_network_gives_bicubic_equal_to_our_upsampler(scale):
    x = torch.rand(2, 1, 7, 9, generator=torch.Generator().manual_seed(scale))
    out = sr.bicubic_residual(_Zero(scale), scale)(x)
    torch.testing.assert_close(out, sr.upsample_bicubic(x, scale), rtol=1e-5, atol=2e-6)


def test_residual_is_bicubic_plus_the_network_and_adds_no_macs():
    net = sr.espcn(2, n1=8, n2=4, seed=1)
    x = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    model = sr.bicubic_residual(net, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False) + net(x))
    assert measure.count_macs(model, x) == measure.count_macs(net, x)
    assert model.net is net  # wraps, does not copy: training the wrapper trains net


def test_bad_input():
    with pytest.raises(ValueError, match="`scale`"):
        sr.bicubic_residual(sr.espcn(2), 1)
    with pytest.raises(TypeError, match="`net`"):
        sr.bicubic_residual(lambda x: x, 2)
