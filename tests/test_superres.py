"""compresskit.superres against PyTorch and scikit-image, hand-computed cases, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from compresskit import data, measure
from compresskit import superres as sr


def _torch_upsample(x: torch.Tensor, scale: int, mode: str) -> torch.Tensor:
    extra = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(x, scale_factor=scale, mode=mode, **extra)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), scale=st.integers(2, 5),
       mode=st.sampled_from(sr.resample.MODES), seed=st.integers(0, 1000))
def test_upsample_equals_torch_interpolate(h, w, scale, mode, seed):
    x = torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(sr.upsample(x, scale, mode), _torch_upsample(x, scale, mode), rtol=1e-5, atol=2e-6)


def test_named_upsamplers_and_any_leading_shape():
    img = torch.rand(6, 5, dtype=torch.float64)
    for fn, mode in [(sr.upsample_nearest, "nearest"), (sr.upsample_bilinear, "bilinear"), (sr.upsample_bicubic, "bicubic")]:
        out = fn(img, 3)
        assert out.shape == (18, 15) and out.dtype == torch.float64
        torch.testing.assert_close(out, _torch_upsample(img[None, None], 3, mode)[0, 0])


def test_cubic_kernel_by_hand():
    s = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5], dtype=torch.float64)
    a = -0.75
    expected = [1.0, (a + 2) / 8 - (a + 3) / 4 + 1, 0.0, a * 3.375 - 5 * a * 2.25 + 8 * a * 1.5 - 4 * a, 0.0, 0.0,
                (a + 2) / 8 - (a + 3) / 4 + 1]
    torch.testing.assert_close(sr.cubic_kernel(s), torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("t", [0.0, 0.125, 0.3, 0.5, 0.875])
def test_cubic_weights_sum_to_one(t):
    offsets = torch.tensor([-1.0, 0.0, 1.0, 2.0], dtype=torch.float64)
    assert float(sr.cubic_kernel(t - offsets).sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("mode", sr.resample.MODES)
def test_interpolation_rows_sum_to_one(mode):
    m = sr.interpolation_matrix(7, 3, mode)
    assert m.shape == (21, 7)
    torch.testing.assert_close(m.sum(dim=1), torch.ones(21, dtype=torch.float64))


def test_source_coordinates_half_pixel():
    torch.testing.assert_close(sr.source_coordinates(4, 2), torch.tensor([-0.25, 0.25, 0.75, 1.25], dtype=torch.float64))


def test_downscale_equals_area_interpolation():
    x = torch.rand(3, 1, 12, 18)
    torch.testing.assert_close(sr.downscale(x, 3), F.interpolate(x, scale_factor=1 / 3, mode="area"))
    torch.testing.assert_close(sr.downscale(x[0, 0], 2), F.avg_pool2d(x[0], 2)[0])


def test_downscale_and_upsample_agree_on_where_pixels_are():
    """A linear ramp, upsampled bilinearly and box-downscaled, comes back exactly (away from
    the clamped border): both sides use the same half-pixel alignment. align_corners=True does not."""
    ramp = torch.arange(10, dtype=torch.float64)[None, :].repeat(10, 1)
    back = sr.downscale(sr.upsample_bilinear(ramp, 2), 2)
    torch.testing.assert_close(back[:, 1:-1], ramp[:, 1:-1])
    corners = F.interpolate(ramp[None, None], scale_factor=2, mode="bilinear", align_corners=True)[0, 0]
    assert (sr.downscale(corners, 2)[:, 1:-1] - ramp[:, 1:-1]).abs().max() > 0.1


def _pair(seed=0, shape=(40, 37)):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(*shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("crop", [0, 2, 3])
def test_psnr_and_ssim_equal_scikit_image(seed, crop):
    x, y = _pair(seed)
    xc, yc = (t[crop : t.shape[0] - crop, crop : t.shape[1] - crop].numpy() for t in (x, y))
    assert sr.psnr(x, y, crop_border=crop) == pytest.approx(peak_signal_noise_ratio(xc, yc, data_range=1.0), rel=1e-12)
    theirs = structural_similarity(xc, yc, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert sr.ssim(x, y, crop_border=crop) == pytest.approx(theirs, rel=1e-10)


def test_metrics_on_a_real_image_against_scikit_image():
    hr = torch.from_numpy(data.load_sr_images()["camera"]).double() / 255
    up = sr.upsample_bicubic(sr.downscale(hr, 2), 2).clamp(0, 1)
    a, b = up[2:-2, 2:-2].numpy(), hr[2:-2, 2:-2].numpy()
    assert sr.psnr(up, hr, crop_border=2) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0))
    ssim_theirs = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert sr.ssim(up, hr, crop_border=2) == pytest.approx(ssim_theirs)


def test_psnr_by_hand_and_the_wrong_peak():
    x = torch.zeros(4, 4)
    y = torch.full((4, 4), 0.1)
    assert sr.psnr(x, y) == pytest.approx(20.0)  # 10 log10(1 / 0.01)
    assert sr.psnr(x, y, data_range=255.0) - sr.psnr(x, y) == pytest.approx(20 * math.log10(255))
    assert sr.psnr(x, x) == math.inf


def test_ssim_of_an_image_with_itself_is_one_and_batches_average():
    x, y = _pair(3, (2, 20, 20))
    assert sr.ssim(x[0], x[0]) == pytest.approx(1.0)
    assert sr.ssim(x, y) == pytest.approx((sr.ssim(x[0], y[0]) + sr.ssim(x[1], y[1])) / 2)


def test_rgb_to_y_equals_scikit_image():
    rgb = torch.rand(3, 5, 6, dtype=torch.float64)
    theirs = rgb2ycbcr(rgb.permute(1, 2, 0).numpy())[..., 0] / 255
    np.testing.assert_allclose(sr.rgb_to_y(rgb).numpy(), theirs, rtol=1e-12)


@pytest.mark.parametrize("scale", [2, 3])
def test_models_map_low_to_high_resolution(scale):
    lr = torch.rand(2, 1, 10, 12)
    for build in (sr.srcnn, sr.espcn):
        assert build(scale)(lr).shape == (2, 1, 10 * scale, 12 * scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_macs_per_output_pixel_follow_the_architecture(scale):
    lr = torch.rand(1, 1, 8, 8)
    out_pixels = (8 * scale) ** 2
    srcnn_per_pixel = 9 * 9 * 1 * 64 + 1 * 1 * 64 * 32 + 5 * 5 * 32 * 1  # every layer at high resolution
    espcn_per_lr_pixel = 5 * 5 * 1 * 64 + 3 * 3 * 64 * 32 + 3 * 3 * 32 * scale**2
    assert measure.count_macs(sr.srcnn(scale), lr) == srcnn_per_pixel * out_pixels
    assert measure.count_macs(sr.espcn(scale), lr) == espcn_per_lr_pixel * 64
    assert espcn_per_lr_pixel * 64 < srcnn_per_pixel * out_pixels


def test_pixel_shuffle_is_eq_4():
    r = 2
    t = torch.arange(1 * 4 * 2 * 3, dtype=torch.float32).reshape(1, 4, 2, 3)
    out = sr.espcn(r).shuffle(t)
    for y in range(4):
        for x in range(6):
            assert out[0, 0, y, x] == t[0, (y % r) * r + (x % r), y // r, x // r]


def test_models_are_seeded():
    a, b, c = sr.espcn(2, seed=1), sr.espcn(2, seed=1), sr.espcn(2, seed=2)
    assert torch.equal(a.conv1.weight, b.conv1.weight) and not torch.equal(a.conv1.weight, c.conv1.weight)


def test_sample_patches_are_aligned_and_seeded():
    images = [torch.rand(40, 50), torch.rand(33, 36)]
    lr, hr = sr.sample_patches(images, 3, patch_size=5, n=20, seed=4)
    assert lr.shape == (20, 1, 5, 5) and hr.shape == (20, 1, 15, 15)
    torch.testing.assert_close(sr.downscale(hr, 3), lr)
    lr2, hr2 = sr.sample_patches(images, 3, patch_size=5, n=20, seed=4)
    assert torch.equal(hr, hr2)
    assert not torch.equal(hr, sr.sample_patches(images, 3, patch_size=5, n=20, seed=5)[1])


IMG = torch.rand(12, 12)


@pytest.mark.parametrize("call, error, words", [
    (lambda: sr.upsample(IMG, 1), ValueError, r"`scale` must be an integer in \[2, inf\]; got 1"),
    (lambda: sr.upsample(IMG, 2.5), TypeError, r"`scale` must be an integer; got float 2.5"),
    (lambda: sr.upsample(IMG, 2, "lanczos"), ValueError, r"`mode` must be one of .*'lanczos'"),
    (lambda: sr.upsample(IMG.to(torch.uint8), 2), TypeError, r"`image` must be a floating-point tensor; got dtype torch.uint8"),
    (lambda: sr.upsample(torch.rand(12), 2), ValueError, r"`image` must have 2 or 3 or 4 dimensions; got shape \(12,\)"),
    (lambda: sr.upsample(torch.full((4, 4), float("nan")), 2), ValueError, r"`image` must be finite"),
    (lambda: sr.downscale(torch.rand(10, 9), 2), ValueError, r"multiples of `scale` 2; got 10 x 9"),
    (lambda: sr.downscale(IMG, 1), ValueError, r"`scale` must be an integer in \[2, inf\]; got 1"),
    (lambda: sr.psnr(IMG, torch.rand(12, 11)), ValueError, r"same shape; got \(12, 12\) and \(12, 11\)"),
    (lambda: sr.psnr(IMG, IMG, data_range=0), ValueError, r"`data_range` must be in \(0, inf\); got 0.0"),
    (lambda: sr.psnr(IMG, IMG, crop_border=6), ValueError, r"`crop_border` must leave some pixels of the 12 x 12 image; got 6"),
    (lambda: sr.psnr(IMG.numpy(), IMG), TypeError, r"`x` must be a torch.Tensor; got ndarray"),
    (lambda: sr.ssim(torch.rand(10, 10), torch.rand(10, 10)), ValueError, r"at least 11 x 11 after cropping \(the SSIM window\); got \(10, 10\)"),
    (lambda: sr.rgb_to_y(torch.rand(4, 5, 6)), ValueError, r"3 channels .*got shape \(4, 5, 6\)"),
    (lambda: sr.srcnn(1), ValueError, r"`scale` must be an integer in \[2, inf\]; got 1"),
    (lambda: sr.espcn(2, n1=0), ValueError, r"`n1` must be an integer in \[1, inf\]; got 0"),
    (lambda: sr.espcn(2, seed=-1), ValueError, r"`seed` must be an integer"),
    (lambda: sr.sample_patches([], 2), ValueError, r"`images` must hold at least one image; got none"),
    (lambda: sr.sample_patches([torch.rand(20, 40)], 2, patch_size=16), ValueError,
     r"`images\[0\]` must be at least 32 x 32 \(patch_size \* scale\); got \(20, 40\)"),
    (lambda: sr.sample_patches([torch.rand(40, 40)], 2, n=0), ValueError, r"`n` must be an integer in \[1, inf\]; got 0"),
])
def test_bad_input(call, error, words):
    with pytest.raises(error, match=words):
        call()


# --- the value range: inferred from the dtype as scikit-image does, 0-255 floats refused -----

def _uint8_pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    hr = torch.from_numpy(data.load_sr_images()["camera"])
    g = torch.Generator().manual_seed(seed)
    noisy = (hr.double() + (4 + 4 * seed) * torch.randn(hr.shape, generator=g, dtype=torch.float64)).clamp(0, 255).round()
    return hr, noisy.to(torch.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psnr_and_ssim_of_uint8_images_infer_255_like_scikit_image(seed):
    hr, noisy = _uint8_pair(seed)
    assert hr.dtype == torch.uint8
    theirs = peak_signal_noise_ratio(hr.numpy(), noisy.numpy())  # no data_range: 255 from the dtype
    assert 20 < theirs < 45
    assert sr.psnr(noisy, hr) == pytest.approx(theirs, rel=1e-12)
    assert sr.psnr(noisy, hr, crop_border=2) == pytest.approx(
        peak_signal_noise_ratio(hr[2:-2, 2:-2].numpy(), noisy[2:-2, 2:-2].numpy()), rel=1e-12)
    ssim_theirs = structural_similarity(hr.numpy(), noisy.numpy(), gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert sr.ssim(noisy, hr) == pytest.approx(ssim_theirs, rel=1e-10)


def test_psnr_by_hand_on_uint8_and_int16():
    x = torch.zeros(4, 4, dtype=torch.uint8)
    y = torch.full((4, 4), 5, dtype=torch.uint8)
    assert sr.psnr(x, y) == pytest.approx(10 * math.log10(255**2 / 25))
    x16, y16 = x.to(torch.int16), y.to(torch.int16)  # a signed dtype: its maximum, or max - min with negatives
    assert sr.psnr(x16, y16) == pytest.approx(10 * math.log10(32767**2 / 25))
    assert sr.psnr(x16, y16) == pytest.approx(peak_signal_noise_ratio(y16.numpy(), x16.numpy()))
    assert sr.psnr(x16 - 3, y16) == pytest.approx(peak_signal_noise_ratio((x16 - 3).numpy(), y16.numpy()))
    assert sr.psnr(x16 - 3, y16) == pytest.approx(10 * math.log10(65535**2 / 64))


@pytest.mark.parametrize("metric", [sr.psnr, sr.ssim])
def test_float_images_outside_0_1_are_refused_without_a_range(metric):
    hr, noisy = _uint8_pair(0)
    x, y = noisy.double(), hr.double()  # 0-255 floats: the peak 1.0 would give a negative PSNR
    with pytest.raises(ValueError, match=r"`x` must lie in \[0, 1\] when `data_range` is not given .*got values in \[\d+, \d+\].*data_range=255"):
        metric(x, y)
    assert metric(x, y, data_range=255) == pytest.approx(metric(noisy, hr))  # the range given: accepted
    with pytest.raises(ValueError, match=r"`y` must lie in \[0, 1\].*got values in \[-0\.4"):
        metric(torch.rand(16, 16), torch.rand(16, 16) - 0.5)


def test_psnr_refuses_dtypes_of_two_ranges_and_bool_images():
    with pytest.raises(ValueError, match=r"`x` and `y` must have dtypes of one value range.*got torch.float32 and torch.uint8"):
        sr.psnr(torch.rand(8, 8), torch.zeros(8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"`y` must be a real image .*torch.bool"):
        sr.psnr(torch.rand(8, 8), torch.zeros(8, 8, dtype=torch.bool))


def test_rgb_to_y_and_sample_patches_refuse_0_255_floats():
    with pytest.raises(ValueError, match=r"`image` must lie in \[0, 1\].*got values in \[0, 255\].*divide"):
        sr.rgb_to_y(torch.tensor([0.0, 255.0, 7.0]).reshape(3, 1, 1))
    with pytest.raises(ValueError, match=r"`images\[1\]` must lie in \[0, 1\].*got values in \[0, 200\]"):
        sr.sample_patches([torch.rand(40, 40), torch.full((40, 40), 200.0).index_fill(0, torch.tensor([0]), 0.0)], 2, n=4)
