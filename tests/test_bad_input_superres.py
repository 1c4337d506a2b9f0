"""Every public name of compresskit.superres refuses bad input (wrong types, out-of-range values,
NaN, empty and mis-shaped tensors, 0-255 floats where [0, 1] is meant) with an error that names
the argument, the rule and the value received; a failed call leaves the network it was given as it
was (weights, pruning hooks, the mode of every layer), and a network pruned with
torch.nn.utils.prune goes through the one function that takes a network.

One row per (function, bad call), as in tests/test_bad_input.py; a completeness test checks that
every name in ``compresskit.superres.__all__`` has a row.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bad_input_harness import Bad, a, assert_refused, lazy, snapshot
from compresskit import pruning
from compresskit import superres as sr


def pruned_espcn(scale=2, training=True) -> nn.Sequential:
    net = sr.espcn(scale, n1=4, n2=4, seed=0).train(training)
    pruning.l1_unstructured(net.conv1, "weight", 0.5)
    return net


IMG = torch.rand(12, 12, generator=torch.Generator().manual_seed(0))
NAN_IMG = IMG.clone().index_fill(0, torch.tensor([3]), math.nan)
U8 = (IMG * 255).round().to(torch.uint8)

CASES = [
    # --- resample -------------------------------------------------------------------------------
    Bad(sr.source_coordinates, a(0, 2), ValueError, ["`out_size`", "[1, inf]", "0"]),
    Bad(sr.source_coordinates, a(4, 2.0), TypeError, ["`scale`", "2.0"]),
    Bad(sr.cubic_kernel, a(0.5), TypeError, ["`s`", "torch.Tensor", "float 0.5"]),
    Bad(sr.cubic_kernel, a(torch.tensor([0.5, math.nan])), ValueError, ["`s`", "finite", "1 NaN"]),
    Bad(sr.cubic_kernel, a(torch.tensor([0.5]), math.inf), ValueError, ["`a`", "inf"]),
    Bad(sr.interpolation_matrix, a(4, 2, "lanczos"), ValueError, ["`mode`", "'lanczos'"]),
    Bad(sr.interpolation_matrix, a(0, 2, "nearest"), ValueError, ["`in_size`", "0"]),
    Bad(sr.interpolation_matrix, a(4, 2, "bicubic", "a"), TypeError, ["`a`", "'a'"]),
    Bad(sr.upsample, a(IMG, 1), ValueError, ["`scale`", "[2, inf]", "1"]),
    Bad(sr.upsample, a(IMG, 2, "area"), ValueError, ["`mode`", "'area'"]),
    Bad(sr.upsample, a(U8, 2), TypeError, ["`image`", "floating-point", "torch.uint8"]),
    Bad(sr.upsample, a(IMG.numpy(), 2), TypeError, ["`image`", "torch.Tensor", "ndarray"]),
    Bad(sr.upsample, a(IMG[None, None, None], 2), ValueError, ["`image`", "2 or 3 or 4 dimensions", "(1, 1, 1, 12, 12)"]),
    Bad(sr.upsample, a(torch.rand(0, 4, 4), 2), ValueError, ["`image`", "empty", "(0, 4, 4)"]),
    Bad(sr.upsample_nearest, a(NAN_IMG, 2), ValueError, ["`image`", "finite", "12 NaN"]),
    Bad(sr.upsample_bilinear, a(IMG, True), TypeError, ["`scale`", "bool True"]),
    Bad(sr.upsample_bicubic, a(IMG[0], 2), ValueError, ["`image`", "(12,)"]),
    Bad(sr.downscale, a(IMG, 5), ValueError, ["`image`", "multiples of `scale` 5", "12 x 12"]),
    Bad(sr.downscale, a(IMG, 1), ValueError, ["`scale`", "1"]),
    Bad(sr.downscale, a(NAN_IMG, 2), ValueError, ["`image`", "finite"]),
    # --- metrics ------------------------------------------------------------------------------------
    Bad(sr.psnr, a(IMG * 255, IMG * 255), ValueError, ["`x`", "[0, 1]", "data_range", "got values in ["]),
    Bad(sr.psnr, a(IMG, IMG * 255), ValueError, ["`y`", "[0, 1]", "got values in ["]),
    Bad(sr.psnr, a(IMG, U8), ValueError, ["`x` and `y`", "one value range", "torch.float32 and torch.uint8"]),
    Bad(sr.psnr, a(IMG > 0.5, IMG > 0.5), TypeError, ["`x`", "real image", "torch.bool"]),
    Bad(sr.psnr, a(IMG, IMG[:11]), ValueError, ["`x` and `y`", "same shape", "(12, 12) and (11, 12)"]),
    Bad(sr.psnr, a(IMG, NAN_IMG), ValueError, ["`y`", "finite", "12 NaN"]),
    Bad(sr.psnr, a(IMG, IMG, data_range=-1.0), ValueError, ["`data_range`", "(0, inf)", "-1.0"]),
    Bad(sr.psnr, a(IMG, IMG, data_range="255"), TypeError, ["`data_range`", "'255'"]),
    Bad(sr.psnr, a(IMG, IMG, crop_border=-1), ValueError, ["`crop_border`", "-1"]),
    Bad(sr.psnr, a(IMG, IMG, crop_border=6), ValueError, ["`crop_border`", "12 x 12", "6"]),
    Bad(sr.psnr, a(torch.rand(0, 4, 4), torch.rand(0, 4, 4)), ValueError, ["`x`", "empty"]),
    Bad(sr.psnr, a(IMG[0], IMG[0]), ValueError, ["`x`", "2 or 3 or 4 dimensions", "(12,)"]),
    Bad(sr.ssim, a(IMG * 255, IMG * 255), ValueError, ["`x`", "[0, 1]", "data_range=255"]),
    Bad(sr.ssim, a(U8, U8.to(torch.int16)), ValueError, ["`x` and `y`", "torch.uint8 and torch.int16"]),
    Bad(sr.ssim, a(IMG[:10, :10], IMG[:10, :10]), ValueError, ["`x`", "11 x 11", "(10, 10)"]),
    Bad(sr.ssim, a(IMG, IMG, crop_border=1.5), TypeError, ["`crop_border`", "1.5"]),
    Bad(sr.ssim, a(IMG.numpy(), IMG), TypeError, ["`x`", "ndarray"]),
    Bad(sr.rgb_to_y, a(torch.rand(3, 4, 4) * 255), ValueError, ["`image`", "[0, 1]", "divide", "got values in ["]),
    Bad(sr.rgb_to_y, a(torch.zeros(3, 4, 4, dtype=torch.uint8)), TypeError, ["`image`", "torch.uint8"]),
    Bad(sr.rgb_to_y, a(torch.rand(4, 4, 3)), ValueError, ["`image`", "3 channels", "(4, 4, 3)"]),
    Bad(sr.rgb_to_y, a(torch.rand(3, 4)), ValueError, ["`image`", "3 or 4 dimensions", "(3, 4)"]),
    Bad(sr.rgb_to_y, a(torch.full((3, 2, 2), math.nan)), ValueError, ["`image`", "finite", "12 NaN"]),
    Bad(sr.rgb_to_y, a(torch.rand(0, 3, 2, 2)), ValueError, ["`image`", "empty"]),
    # --- networks and patches -------------------------------------------------------------------------
    Bad(sr.srcnn, a(1), ValueError, ["`scale`", "1"]),
    Bad(sr.srcnn, a(2, channels=0), ValueError, ["`channels`", "0"]),
    Bad(sr.srcnn, a(2, n2=2.0), TypeError, ["`n2`", "2.0"]),
    Bad(sr.espcn, a(2.0), TypeError, ["`scale`", "2.0"]),
    Bad(sr.espcn, a(2, seed=-1), ValueError, ["`seed`", "-1"]),
    Bad(sr.sample_patches, a(5, 2), TypeError, ["`images`", "sequence", "int 5"]),
    Bad(sr.sample_patches, a([], 2), ValueError, ["`images`", "at least one", "none"]),
    Bad(sr.sample_patches, a([torch.rand(40, 40) * 255], 2), ValueError, ["`images[0]`", "[0, 1]", "got values in ["]),
    Bad(sr.sample_patches, a([torch.rand(40, 40), (torch.rand(40, 40) * 255).to(torch.uint8)], 2), TypeError, ["`images[1]`", "torch.uint8"]),
    Bad(sr.sample_patches, a([torch.rand(1, 40, 40)], 2), ValueError, ["`images[0]`", "2 dimensions", "(1, 40, 40)"]),
    Bad(sr.sample_patches, a([torch.full((40, 40), math.nan)], 2), ValueError, ["`images[0]`", "finite"]),
    Bad(sr.sample_patches, a([torch.rand(20, 40)], 2), ValueError, ["`images[0]`", "32 x 32", "(20, 40)"]),
    Bad(sr.sample_patches, a([torch.rand(40, 40)], 2, n=0), ValueError, ["`n`", "0"]),
    Bad(sr.sample_patches, a([torch.rand(40, 40)], 2, patch_size=-3), ValueError, ["`patch_size`", "-3"]),
    Bad(sr.sample_patches, a([torch.rand(40, 40)], 2, seed=0.5), TypeError, ["`seed`", "0.5"]),
    # --- the bicubic skip -------------------------------------------------------------------------------
    Bad(sr.bicubic_residual, lazy(lambda: ((pruned_espcn(training=False), 1), {})), ValueError, ["`scale`", "[2, inf]", "1"], watch=(0,)),
    Bad(sr.bicubic_residual, lazy(lambda: ((pruned_espcn(), 2.0), {})), TypeError, ["`scale`", "2.0"], watch=(0,)),
    Bad(sr.bicubic_residual, a(lambda x: x, 2), TypeError, ["`net`", "function"]),
    Bad(sr.BicubicResidual, a("espcn", 2), TypeError, ["`net`", "'espcn'"]),
    Bad(sr.BicubicResidual, lazy(lambda: ((pruned_espcn(), 0), {})), ValueError, ["`scale`", "0"], watch=(0,)),
    Bad(lambda net, x: sr.bicubic_residual(net, 2)(x), lazy(lambda: ((pruned_espcn(scale=3, training=False), torch.rand(1, 1, 4, 4)), {})),
        ValueError, ["`net`", "(1, 1, 8, 8)", "(1, 1, 12, 12)", "`scale` 2"], watch=(0,)),
]

for case in CASES:
    name = getattr(case.fn, "__qualname__", "fn").replace("<lambda>", "BicubicResidual.forward")
    case.id = f"{name}-{'-'.join(case.words)}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_the_rule_and_the_value(case):
    assert_refused(case)  # tests/bad_input_harness.py: the error, its words, the watched models unchanged


def test_every_public_name_has_a_bad_input_row():
    covered = {getattr(c.fn, "__qualname__", "").split(".")[0] for c in CASES}
    missing = sorted(set(sr.__all__) - covered)
    assert not missing, f"public names without a bad-input row: {missing}"


def test_a_pruned_network_goes_through_the_bicubic_skip():
    net = pruned_espcn()
    x = torch.rand(1, 1, 5, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = sr.bicubic_residual(net, 2)(x)
        torch.testing.assert_close(out, F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False) + net(x))
    assert bool((net.conv1.weight[net.conv1.weight_mask == 0] == 0).all())


def test_the_value_range_follows_scikit_image_where_it_is_installed():
    metrics = pytest.importorskip("skimage.metrics")
    x = (torch.rand(16, 16, generator=torch.Generator().manual_seed(2)) * 255).round().to(torch.uint8)
    y = (x.double() + 9 * torch.randn(16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)).clamp(0, 255).round().to(torch.uint8)
    assert sr.psnr(y, x) == pytest.approx(metrics.peak_signal_noise_ratio(x.numpy(), y.numpy()), rel=1e-12)
    assert sr.psnr(y, x) > 20  # with the peak 1.0 it was about 48 dB lower, below zero


def test_patches_keep_the_images_dtype():
    lr, hr = sr.sample_patches([torch.rand(40, 40, dtype=torch.float64)], 2, n=3)
    assert lr.dtype == hr.dtype == torch.float64
