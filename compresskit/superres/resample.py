"""Upsampling written out, and the downsampling that makes training pairs.

Alignment: pixel ``i`` of an image is a sample taken at the centre of a unit square, at
continuous coordinate ``i + 0.5``. Upscaling by an integer ``r`` puts output pixel ``i`` at
input coordinate::

    x = (i + 0.5) / r - 0.5                                                       Eq. (1)

This is the half-pixel convention of PyTorch's ``align_corners=False``, OpenCV and MATLAB's
``imresize``. With it, :func:`downscale` (the mean of each r x r block) and the upsamplers
agree on where every pixel is; a baseline that uses another convention (``align_corners=True``,
say) shifts the whole image by a fraction of a pixel and loses PSNR for no reason.

Each upsampler is a matrix ``M`` (out x in) per axis, so an image ``X`` (H, W) becomes
``M_h X M_w^T``: the interpolation kernel decides the entries of each row.

* nearest: ``M[i, floor(i / r)] = 1`` (PyTorch's ``mode="nearest"``).
* bilinear: the two neighbours of ``x`` weighted ``1 - t`` and ``t``, ``t = x - floor(x)``;
  PyTorch clamps ``x`` to >= 0 first.
* bicubic: four neighbours weighted by Keys' cubic kernel with ``a = -0.75`` [1]::

      k(s) = (a + 2)|s|^3 - (a + 3)|s|^2 + 1        for |s| <= 1                   Eq. (2)
      k(s) = a|s|^3 - 5a|s|^2 + 8a|s| - 4a          for 1 < |s| < 2
      k(s) = 0                                      otherwise

  Indices beyond the border repeat the edge pixel. (MATLAB uses a = -0.5.)

[1] R. Keys, "Cubic convolution interpolation for digital image processing", IEEE TASSP 1981.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from compresskit._validation import check_int, check_real, check_tensor

__all__ = [
    "cubic_kernel",
    "downscale",
    "interpolation_matrix",
    "source_coordinates",
    "upsample",
    "upsample_bicubic",
    "upsample_bilinear",
    "upsample_nearest",
]

MODES = ("nearest", "bilinear", "bicubic")


def _check_image(name: str, image: torch.Tensor) -> torch.Tensor:
    """A floating-point image (H, W) or a batch (..., H, W), finite."""
    return check_tensor(name, image, ndim=(2, 3, 4), floating=True, finite=True)


def source_coordinates(out_size: int, scale: int) -> torch.Tensor:
    """Eq. (1): the input coordinate of each of ``out_size`` output pixels, float64."""
    out_size = check_int("out_size", out_size, 1)
    scale = check_int("scale", scale, 1)
    return (torch.arange(out_size, dtype=torch.float64) + 0.5) / scale - 0.5  # Eq. (1)


def cubic_kernel(s: torch.Tensor, a: float = -0.75) -> torch.Tensor:
    """Eq. (2), Keys' cubic convolution kernel; ``a = -0.75`` as in PyTorch and OpenCV."""
    check_tensor("s", s, finite=True, nonempty=False)
    a = check_real("a", a)
    s = s.abs()
    near = (a + 2) * s**3 - (a + 3) * s**2 + 1  # Eq. (2), |s| <= 1
    far = a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a  # Eq. (2), 1 < |s| < 2
    return torch.where(s <= 1, near, torch.where(s < 2, far, torch.zeros_like(s)))


def interpolation_matrix(in_size: int, scale: int, mode: str, a: float = -0.75) -> torch.Tensor:
    """The (in_size * scale, in_size) float64 matrix that upsamples one axis by ``scale``."""
    in_size = check_int("in_size", in_size, 1)
    scale = check_int("scale", scale, 1)
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}; got {mode!r}")
    out_size = in_size * scale
    rows = torch.arange(out_size)
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    if mode == "nearest":
        matrix[rows, torch.div(rows, scale, rounding_mode="floor")] = 1.0
        return matrix
    x = source_coordinates(out_size, scale)
    if mode == "bilinear":
        x = x.clamp(min=0.0)  # PyTorch clamps linear modes at the left edge
        left = x.floor().long()
        t = x - left
        matrix.index_put_((rows, left.clamp(max=in_size - 1)), 1 - t, accumulate=True)
        matrix.index_put_((rows, (left + 1).clamp(max=in_size - 1)), t, accumulate=True)
        return matrix
    left = x.floor().long()
    t = x - left
    for offset in (-1, 0, 1, 2):  # the four neighbours; beyond the border, the edge pixel
        weight = cubic_kernel(t - offset, a)
        matrix.index_put_((rows, (left + offset).clamp(0, in_size - 1)), weight, accumulate=True)
    return matrix


def upsample(image: torch.Tensor, scale: int, mode: str = "bicubic") -> torch.Tensor:
    """Upsample the last two axes of ``image`` by the integer ``scale`` (see Eq. (1), (2))."""
    image = _check_image("image", image)
    scale = check_int("scale", scale, 2)
    m_h = interpolation_matrix(image.shape[-2], scale, mode).to(image.dtype)
    m_w = interpolation_matrix(image.shape[-1], scale, mode).to(image.dtype)
    return m_h @ image @ m_w.T  # (..., H r, W r)


def upsample_nearest(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Each pixel repeated ``scale`` times along each axis."""
    return upsample(image, scale, "nearest")


def upsample_bilinear(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Bilinear upsampling, half-pixel aligned: equals ``F.interpolate(..., "bilinear", align_corners=False)``."""
    return upsample(image, scale, "bilinear")


def upsample_bicubic(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling (a = -0.75), half-pixel aligned: equals ``F.interpolate(..., "bicubic", align_corners=False)``.

    Not clamped: bicubic overshoots at edges, so clamp to the value range before measuring.
    """
    return upsample(image, scale, "bicubic")


def downscale(image: torch.Tensor, scale: int) -> torch.Tensor:
    """The mean of each ``scale`` x ``scale`` block: low-resolution pixel ``j`` sits at the
    high-resolution coordinate ``(j + 0.5) * scale - 0.5``, the centre of its block, which is
    where Eq. (1) looks for it. Height and width must be multiples of ``scale``.
    """
    image = _check_image("image", image)
    scale = check_int("scale", scale, 2)
    h, w = image.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"`image` height and width must be multiples of `scale` {scale}; got {h} x {w} (crop it first)")
    flat = image.reshape(-1, 1, h, w)
    return F.avg_pool2d(flat, scale).reshape(*image.shape[:-2], h // scale, w // scale)
