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

``data_range`` left out is inferred from the dtype as scikit-image's
``peak_signal_noise_ratio`` does: 255 for uint8 images; for other integer dtypes the dtype's
maximum, or max - min where a value is negative; 1.0 for float images, which must then lie in [0, 1] (a float image in 0-255 with the
peak 1.0 would give PSNR about 48 dB too low, often negative: it is refused, pass
``data_range=255`` or divide by 255).

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
    """Two images of one shape (H, W) or (..., H, W), with ``crop_border`` cut from each edge."""
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
    return x, y


def _data_range(x: torch.Tensor, y: torch.Tensor, data_range: float | None) -> float:
    """``data_range`` checked, or inferred from the dtype of ``x`` and ``y`` (see the module docstring)."""
    for name, img in (("x", x), ("y", y)):
        if img.dtype == torch.bool or img.is_complex():
            raise TypeError(f"`{name}` must be a real image (float or integer dtype); got dtype {img.dtype}")
    if data_range is not None:
        return check_real("data_range", data_range, 0.0, low_open=True)
    if x.is_floating_point() != y.is_floating_point() or (not x.is_floating_point() and x.dtype != y.dtype):
        raise ValueError(f"`x` and `y` must have dtypes of one value range when `data_range` is not given; got {x.dtype} "
                         f"and {y.dtype}: convert one, or pass data_range")
    if not x.is_floating_point():  # scikit-image: the dtype's maximum, or max - min where a value is negative
        info = torch.iinfo(x.dtype)
        return float(info.max if min(int(x.min()), int(y.min())) >= 0 else info.max - info.min)
    for name, img in (("x", x), ("y", y)):
        low, high = float(img.min()), float(img.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"`{name}` must lie in [0, 1] when `data_range` is not given (float images); got values in "
                f"[{low:.4g}, {high:.4g}]: pass data_range=255 for 0-255 images, or divide by 255"
            )
    return 1.0


def psnr(x: torch.Tensor, y: torch.Tensor, *, data_range: float | None = None, crop_border: int = 0) -> float:
    """Eq. (1) in decibels; ``inf`` for identical images. ``data_range`` left out is inferred
    from the dtype (255 for uint8, 1.0 for float images in [0, 1]), as scikit-image does: the
    wrong one shifts PSNR by 48 dB."""
    x, y, data_range = *_pair(x, y, crop_border), _data_range(x, y, data_range)  # the range of the whole images
    x, y = x.double(), y.double()
    mse = float(((x - y) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)  # Eq. (1)


def _gaussian_window(sigma: float = 1.5, radius: int = 5) -> torch.Tensor:
    """1-D Gaussian weights summing to 1; radius 5 = int(3.5 sigma + 0.5), scikit-image's truncation."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, *, data_range: float | None = None, crop_border: int = 0) -> float:
    """Eq. (2) averaged over every position where the 11 x 11 window fits (the mean over a batch).
    ``data_range`` left out is inferred from the dtype, as for :func:`psnr`."""
    x, y, data_range = *_pair(x, y, crop_border), _data_range(x, y, data_range)  # the range of the whole images
    x, y = x.double(), y.double()
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


def _check_unit_interval(name: str, image: torch.Tensor) -> torch.Tensor:
    """A float image whose values lie in [0, 1] (a 0-255 image divided by 255)."""
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"`{name}` must lie in [0, 1] (a float image); got values in [{low:.4g}, {high:.4g}]: "
                         "divide a 0-255 image by 255 first")
    return image


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """Luminance of an RGB image (..., 3, H, W) in [0, 1], as ITU-R BT.601 YCbCr scaled to [0, 1]:
    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255``, the channel SR papers measure on."""
    check_tensor("image", image, ndim=(3, 4), floating=True, finite=True)
    if image.shape[-3] != 3:
        raise ValueError(f"`image` must have 3 channels (RGB) in dimension -3; got shape {tuple(image.shape)}")
    _check_unit_interval("image", image)
    r, g, b = image.unbind(dim=-3)
    return (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0
