"""SRCNN and ESPCN, and the training patches they learn from.

SRCNN [1] upsamples first (bicubic), then runs three convolutions at the high resolution:
patch extraction 9 x 9 (64 maps), non-linear mapping 1 x 1 (32), reconstruction 5 x 5.

ESPCN [2] runs its convolutions at the low resolution (5 x 5, 64; 3 x 3, 32; 3 x 3, r^2 maps
per channel) and only at the end rearranges the r^2 maps into an image r times larger, the
sub-pixel convolution (``nn.PixelShuffle``)::

    PS(T)[c, y, x] = T[c r^2 + (y mod r) r + (x mod r), floor(y / r), floor(x / r)]   Eq. (4) in [2]

Per output pixel, a layer with k x k kernels from C_in to C_out maps costs k^2 C_in C_out
multiply-accumulates at the high resolution, r^2 times less at the low resolution.

We pad every convolution ("same" size) so the output has exactly r times the input's size;
the papers use unpadded convolutions and compare on the centre.

[1] C. Dong, C. C. Loy, K. He, X. Tang, "Image Super-Resolution Using Deep Convolutional
    Networks", ECCV 2014 / TPAMI 2016, arXiv:1501.00092.
[2] W. Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
    Sub-Pixel Convolutional Neural Network", CVPR 2016, arXiv:1609.05158.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from compresskit._validation import check_int, check_seed, check_tensor
from compresskit.superres.metrics import _check_unit_interval
from compresskit.superres.resample import downscale

__all__ = ["espcn", "sample_patches", "srcnn"]


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2)


def srcnn(scale: int, *, channels: int = 1, n1: int = 64, n2: int = 32, seed: int = 0) -> nn.Sequential:
    """SRCNN 9-1-5 [1] with its bicubic upsampling as the first layer: low-resolution in,
    high-resolution out. Layers: ``upsample``, ``conv1``, ``relu1``, ``conv2``, ``relu2``, ``conv3``."""
    scale = check_int("scale", scale, 2)
    channels, n1, n2 = (check_int(n, v, 1) for n, v in (("channels", channels), ("n1", n1), ("n2", n2)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(check_seed("seed", seed))
        return nn.Sequential(OrderedDict(
            upsample=nn.Upsample(scale_factor=scale, mode="bicubic", align_corners=False),
            conv1=_conv(channels, n1, 9), relu1=nn.ReLU(),   # patch extraction
            conv2=_conv(n1, n2, 1), relu2=nn.ReLU(),          # non-linear mapping
            conv3=_conv(n2, channels, 5),                     # reconstruction
        ))


def espcn(scale: int, *, channels: int = 1, n1: int = 64, n2: int = 32, seed: int = 0) -> nn.Sequential:
    """ESPCN [2]: three convolutions in low resolution (tanh, as in the paper), then
    ``PixelShuffle(scale)``, Eq. (4). Layers: ``conv1``, ``tanh1``, ``conv2``, ``tanh2``, ``conv3``, ``shuffle``."""
    scale = check_int("scale", scale, 2)
    channels, n1, n2 = (check_int(n, v, 1) for n, v in (("channels", channels), ("n1", n1), ("n2", n2)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(check_seed("seed", seed))
        return nn.Sequential(OrderedDict(
            conv1=_conv(channels, n1, 5), tanh1=nn.Tanh(),
            conv2=_conv(n1, n2, 3), tanh2=nn.Tanh(),
            conv3=_conv(n2, channels * scale**2, 3),  # r^2 sub-pixel maps per channel
            shuffle=nn.PixelShuffle(scale),           # Eq. (4) in [2]
        ))


def sample_patches(
    images: Sequence[torch.Tensor],
    scale: int,
    *,
    patch_size: int = 16,
    n: int = 512,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training pairs (low-res (n, 1, p, p), high-res (n, 1, p r, p r)) cut from ``images``.

    Each high-resolution patch starts at a multiple of ``scale``, so its low-resolution patch
    is exactly ``downscale(high, scale)`` and no pair is misaligned. Images are float (H, W)
    tensors in [0, 1] (the pairs keep their dtype); the draws come from ``seed`` alone.
    """
    scale = check_int("scale", scale, 2)
    patch_size = check_int("patch_size", patch_size, 1)
    n = check_int("n", n, 1)
    if not isinstance(images, (Sequence, torch.Tensor)) or isinstance(images, (str, bytes)):
        raise TypeError(f"`images` must be a sequence of (H, W) tensors; got {type(images).__name__} {images!r:.60}")
    if len(images) == 0:
        raise ValueError("`images` must hold at least one image; got none")
    hr_size = patch_size * scale
    for i, img in enumerate(images):
        check_tensor(f"images[{i}]", img, ndim=2, floating=True, finite=True)
        _check_unit_interval(f"images[{i}]", img)
        if min(img.shape) < hr_size:
            raise ValueError(f"`images[{i}]` must be at least {hr_size} x {hr_size} (patch_size * scale); got {tuple(img.shape)}")
    g = torch.Generator().manual_seed(check_seed("seed", seed))
    which = torch.randint(len(images), (n,), generator=g)
    dtype = images[0].dtype
    for img in images[1:]:
        dtype = torch.promote_types(dtype, img.dtype)
    hr = torch.empty(n, 1, hr_size, hr_size, dtype=dtype)  # the images' dtype, float64 kept
    for k, i in enumerate(which.tolist()):
        h, w = images[i].shape
        top = int(torch.randint((h - hr_size) // scale + 1, (), generator=g)) * scale
        left = int(torch.randint((w - hr_size) // scale + 1, (), generator=g)) * scale
        hr[k, 0] = images[i][top : top + hr_size, left : left + hr_size]
    return downscale(hr, scale), hr
