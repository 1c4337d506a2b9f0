"""Image quality as the SR literature measures it: PSNR and SSIM on the luminance channel.

PSNR, for images with values in [0, ``data_range``]::

    PSNR = 10 log10(data_range^2 / MSE)                                           Eq. (1)

SSIM [1], from Gaussian-weighted local means mu, variances sigma^2 and covariance sigma_xy
(window 11 x 11, sigma 1.5), averaged over the image::

    SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))
    C1 = (0.01 data_range)^2,  C2 = (0.03 data_range)^2                           Eq. (2)

As in the SR literature, both are computed on the luminance (Y of YCbCr, ITU-R BT.601) and
``crop_border`` pixels (usually the scale factor) are cut from each edge first, where every
method is unreliable. SSIM averages only where the whole window fits, as scikit-image does.

[1] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
    error visibility to structural similarity", IEEE TIP 2004.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from compresskit._validation import check_int, check_real, check_tensor

__all__ = ["psnr", "rgb_to_y", "ssim"]


def _pair(x: torch.Tensor, y: torch.Tensor, crop_border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two images of one shape (H, W) or (..., H, W), float64, with ``crop_border`` cut from each edge."""
    check_tensor("x", x, ndim=(2, 3, 4), finite=True)
    check_tensor("y", y, ndim=(2, 3, 4), finite=True)
    if x.shape != y.shape:
        raise ValueError(f"`x` and `y` must have the same shape; got {tuple(x.shape)} and {tuple(y.shape)}")
    c = check_int("crop_border", crop_border, 0)
    h, w = x.shape[-2:]
    if 2 * c >= min(h, w):
        raise ValueError(f"`crop_border` must leave some pixels of the {h} x {w} image; got {c}")
    if c:
        x, y = x[..., c:-c, c:-c], y[..., c:-c, c:-c]
    return x.double(), y.double()


def psnr(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, crop_border: int = 0) -> float:
    """Eq. (1) in decibels; ``inf`` for identical images. ``data_range`` is 1.0 for images in
    [0, 1] and 255 for uint8 images: the wrong one shifts PSNR by 48 dB."""
    data_range = check_real("data_range", data_range, 0.0, low_open=True)
    x, y = _pair(x, y, crop_border)
    mse = float(((x - y) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)  # Eq. (1)


def _gaussian_window(sigma: float = 1.5, radius: int = 5) -> torch.Tensor:
    """1-D Gaussian weights summing to 1; radius 5 = int(3.5 sigma + 0.5), scikit-image's truncation."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, crop_border: int = 0) -> float:
    """Eq. (2) averaged over every position where the 11 x 11 window fits (the mean over a batch)."""
    data_range = check_real("data_range", data_range, 0.0, low_open=True)
    x, y = _pair(x, y, crop_border)
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"`x` must be at least 11 x 11 after cropping (the SSIM window); got {tuple(x.shape[-2:])}")
    g = _gaussian_window()
    window = (g[:, None] * g[None, :])[None, None]  # (1, 1, 11, 11)

    def local_mean(img: torch.Tensor) -> torch.Tensor:
        return F.conv2d(img.reshape(-1, 1, *img.shape[-2:]), window)  # only where the window fits

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))  # Eq. (2)
    return float(s.mean())


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """Luminance of an RGB image (..., 3, H, W) in [0, 1], as ITU-R BT.601 YCbCr scaled to [0, 1]:
    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255``, the channel SR papers measure on."""
    check_tensor("image", image, ndim=(3, 4), floating=True, finite=True)
    if image.shape[-3] != 3:
        raise ValueError(f"`image` must have 3 channels (RGB) in dimension -3; got shape {tuple(image.shape)}")
    r, g, b = image.unbind(dim=-3)
    return (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0
