"""Calibration, non-linear quantization, half precision and fixed point."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy
from sklearn.cluster import KMeans

from compresskit.quantization import (
    HalfPrecision,
    calibrate,
    entropy_range,
    entropy_threshold,
    fixed_point_decode,
    fixed_point_encode,
    fixed_point_range,
    float_format,
    kmeans_dequantize,
    kmeans_quantize,
    minmax_range,
    moving_average_range,
    percentile_range,
    power_of_two_decode,
    power_of_two_encode,
    power_of_two_quantize,
    quantize_tensor,
    round_trip,
)
from compresskit.quantization.calibration import _kl_divergence
from compresskit.quantization.nonlinear import kmeans_assign

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torch.ao.quantization.observer import MovingAverageMinMaxObserver

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


# --- calibration -------------------------------------------------------------------------

def test_minmax_and_percentile_ranges():
    x = torch.arange(10001, dtype=torch.float32) / 100  # 0.00 .. 100.00
    assert minmax_range(x) == (0.0, 100.0)
    lo, hi = percentile_range(x, 99.0)
    assert lo == pytest.approx(np.percentile(x.numpy(), 1.0)) and hi == pytest.approx(99.0)
    assert percentile_range(x - 50, 90.0, symmetric=True) == pytest.approx((-45.0, 45.0), abs=1e-3)


def test_moving_average_matches_torch_observer():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(64, generator=g) * (1 + i) for i in range(5)]
    observer = MovingAverageMinMaxObserver(averaging_constant=0.1)
    for b in batches:
        observer(b)
    lo, hi = moving_average_range(batches, averaging_constant=0.1)
    assert lo == pytest.approx(observer.min_val.item(), rel=1e-6)
    assert hi == pytest.approx(observer.max_val.item(), rel=1e-6)


def test_kl_divergence_matches_scipy():
    p = np.array([3.0, 0.0, 5.0, 2.0])
    q = np.array([1.0, 1.0, 4.0, 4.0])
    assert _kl_divergence(p, q) == pytest.approx(entropy(p, q))
    assert _kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)


def test_entropy_calibration_clips_outliers_but_not_uniform_data():
    g = torch.Generator().manual_seed(0)
    uniform = torch.rand(20000, generator=g)
    assert entropy_threshold(uniform) > 0.9 * float(uniform.max())
    heavy = torch.cat([torch.randn(20000, generator=g).abs(), torch.tensor([50.0, 80.0])])
    t = entropy_threshold(heavy)
    assert 2.0 < t < 10.0  # far below the outliers, above the bulk of a half-normal
    assert entropy_range(heavy) == (0.0, t)  # non-negative data: range starts at 0
    lo, hi = entropy_range(heavy - 1.0)
    assert lo == -hi


def _brute_force_kl(x: np.ndarray, levels: int, num_bins: int) -> tuple[np.ndarray, dict[int, float]]:
    """Migacz (GTC 2017), written out group by group: for every candidate threshold bin i,
    P = the first i bins with the rest added to bin i - 1, Q = those i bins merged into
    `levels` groups (the last takes the remainder) and spread evenly over each group's
    non-empty bins; KL(P || Q) by scipy. Returns the bin edges and KL for each i."""
    hist, edges = np.histogram(np.abs(x), bins=num_bins, range=(0.0, float(np.abs(x).max())))
    kl = {}
    for i in range(levels, num_bins + 1):
        p = hist[:i].astype(float)
        p[-1] += hist[i:].sum()
        q = np.zeros(i)
        width = i // levels
        for j in range(levels):
            start, stop = j * width, (i if j == levels - 1 else (j + 1) * width)
            nonempty = start + np.flatnonzero(hist[start:stop])
            if len(nonempty):
                q[nonempty] = hist[start:stop].sum() / len(nonempty)
        kl[i] = float(entropy(p, q)) if np.all(q[p > 0] > 0) else np.inf  # scipy normalises both
    return edges, kl


@pytest.mark.parametrize("bits, num_bins, seed", [(8, 512, 0), (4, 256, 1), (5, 512, 2)])
def test_entropy_threshold_is_the_brute_force_kl_minimum(bits, num_bins, seed):
    g = torch.Generator().manual_seed(seed)
    heavy = torch.cat([torch.randn(5000, generator=g).abs(), torch.rand(3, generator=g) * 30 + 10])
    t = entropy_threshold(heavy, bits=bits, num_bins=num_bins)
    edges, kl = _brute_force_kl(heavy.numpy(), 2 ** (bits - 1), num_bins)
    chosen = int(np.argmin(np.abs(edges - t)))
    assert edges[chosen] == pytest.approx(t)  # the threshold is a bin edge
    assert kl[chosen] <= min(kl.values()) + 1e-9  # and the edge where KL, computed independently, is smallest
    assert t < float(heavy.max())  # the outliers are clipped


def test_clipping_trades_the_outlier_for_a_finer_grid_on_the_bulk():
    g = torch.Generator().manual_seed(1)
    bulk = torch.randn(20000, generator=g).abs()
    x = torch.cat([bulk, torch.tensor([60.0])])
    errors = {}
    for method in ["minmax", "percentile", "entropy"]:
        lo, hi = calibrate(x, method, bits=8)
        qt = quantize_tensor(torch.clamp(x, lo, hi), 8, "affine")
        errors[method] = float(((qt.dequantize()[:-1] - bulk) ** 2).mean())  # error on all but the outlier
    assert errors["percentile"] < errors["minmax"] / 50
    assert errors["entropy"] < errors["minmax"] / 50


@pytest.mark.parametrize("fn", [minmax_range, percentile_range, entropy_threshold, calibrate])
def test_calibration_rejects_empty_constant_and_nonfinite_data(fn):
    with pytest.raises(ValueError, match="`x` must not be empty"):
        fn(torch.empty(0))
    with pytest.raises(ValueError, match="`x` must not be constant"):
        fn(torch.full((100,), 2.5))
    with pytest.raises(ValueError, match="`x` must be finite"):
        fn(torch.tensor([0.0, float("nan"), 1.0]))


def test_moving_average_rejects_no_batches_and_bad_constant():
    with pytest.raises(ValueError, match="`batches` must hold at least one batch"):
        moving_average_range([])
    with pytest.raises(ValueError, match="`batches` must not be constant"):
        moving_average_range([torch.ones(3), torch.ones(4)])
    with pytest.raises(ValueError, match=r"`averaging_constant` must be in \(0, 1\]"):
        moving_average_range([torch.randn(3)], averaging_constant=0.0)
    with pytest.raises(ValueError, match="`method` must be one of"):
        calibrate(torch.randn(10), "snr")


def test_entropy_calibration_bad_bits():
    with pytest.raises(ValueError, match="`bits` must be an integer in"):
        entropy_threshold(torch.randn(100), bits=0)


# --- k-means weight sharing ----------------------------------------------------------------

@pytest.mark.parametrize("bits", [2, 3])
def test_kmeans_matches_scikit_learn_lloyd_from_the_same_init(bits):
    w = torch.randn(400, generator=torch.Generator().manual_seed(bits))
    codebook, indices = kmeans_quantize(w, bits, n_iter=300)
    init = np.linspace(float(w.min()), float(w.max()), 2**bits).reshape(-1, 1)
    km = KMeans(n_clusters=2**bits, init=init, n_init=1, max_iter=300, tol=0, algorithm="lloyd").fit(w.numpy().reshape(-1, 1).astype(np.float64))
    assert np.allclose(np.sort(km.cluster_centers_.ravel()), codebook.numpy(), atol=1e-5)
    assert indices.dtype == torch.uint8 and indices.shape == w.shape


def test_kmeans_never_does_worse_than_its_linear_initialisation():
    w = torch.randn(64, 32, generator=torch.Generator().manual_seed(3)) ** 3  # heavy tails
    for bits in [1, 2, 3, 4]:
        codebook, indices = kmeans_quantize(w, bits)
        init = torch.linspace(float(w.min()), float(w.max()), 2**bits)
        err_kmeans = ((kmeans_dequantize(codebook, indices) - w) ** 2).mean()
        err_init = ((init[kmeans_assign(w.flatten(), init)].reshape(w.shape) - w) ** 2).mean()
        assert err_kmeans <= err_init
    assert torch.all(codebook[1:] >= codebook[:-1])


def test_kmeans_hand_case_two_clusters():
    w = torch.tensor([0.0, 0.1, 0.2, 1.0, 1.2])
    codebook, indices = kmeans_quantize(w, bits=1)
    assert codebook.tolist() == pytest.approx([0.1, 1.1])
    assert indices.tolist() == [0, 0, 0, 1, 1]


def test_kmeans_bad_input():
    with pytest.raises(ValueError, match="`weight` must be finite"):
        kmeans_quantize(torch.tensor([1.0, float("inf")]))
    with pytest.raises(ValueError, match="`bits` must be an integer in"):
        kmeans_quantize(torch.randn(5), bits=17)
    with pytest.raises(ValueError, match=r"`indices` must be in \[0, 3\]"):
        kmeans_dequantize(torch.arange(4.0), torch.tensor([0, 4]))


# --- power of two ------------------------------------------------------------------------

def test_power_of_two_hand_case():
    x = torch.tensor([1.0, -0.4, 0.2, 0.1, 0.0])
    codes, e_max = power_of_two_encode(x, bits=3)  # 3 levels: 2^0, 2^-1, 2^-2, and zero
    assert e_max == 0
    # log2: 0, -1.32 -> -1, -2.32 -> -2, -3.32 -> -3 is below the window -> 0
    assert codes.tolist() == [1, -2, 3, 0, 0]
    assert power_of_two_decode(codes, e_max).tolist() == [1.0, -0.5, 0.25, 0.0, 0.0]


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-8, 8, width=32), min_size=1, max_size=30), bits=st.integers(2, 8))
def test_power_of_two_levels_are_signed_powers_of_two(values, bits):
    x = torch.tensor(values)
    xq = power_of_two_quantize(x, bits)
    nonzero = xq != 0
    exponents = torch.log2(xq[nonzero].abs())
    assert torch.equal(exponents, torch.round(exponents))
    assert torch.all(torch.sign(xq[nonzero]) == torch.sign(x[nonzero]))
    # inside the exponent window, the error is within a factor sqrt(2) in log scale
    assert torch.all((xq[nonzero].abs() / x[nonzero].abs()).log2().abs() <= 0.5 + 1e-6) or bool((x.abs() > 2 * xq.abs().max()).any())


def test_power_of_two_needs_two_bits():
    with pytest.raises(ValueError, match=r"`bits` must be an integer in \[2, 16\]"):
        power_of_two_encode(torch.randn(4), bits=1)


# --- fp16 / bf16 -------------------------------------------------------------------------

def test_float_formats():
    fp16, bf16, fp32 = (float_format(d) for d in (torch.float16, torch.bfloat16, torch.float32))
    assert (fp16["exponent_bits"], fp16["mantissa_bits"], fp16["max"]) == (5, 10, 65504.0)
    assert (bf16["exponent_bits"], bf16["mantissa_bits"]) == (8, 7)
    assert (fp32["exponent_bits"], fp32["mantissa_bits"]) == (8, 23)
    assert bf16["max"] == pytest.approx(3.3895e38, rel=1e-3)
    with pytest.raises(TypeError, match="`dtype` must be a floating-point torch.dtype"):
        float_format(torch.int8)


def test_fp16_overflows_where_bf16_does_not():
    x = torch.tensor([70000.0, 1e-8, 3.14159])
    assert torch.isinf(round_trip(x, torch.float16)[0])
    assert round_trip(x, torch.float16)[1] == 0.0  # below fp16's smallest subnormal
    assert torch.isfinite(round_trip(x, torch.bfloat16)).all()
    for dtype in (torch.float16, torch.bfloat16):
        rel = ((round_trip(x[2:], dtype) - x[2:]).abs() / x[2:]).item()
        assert rel <= torch.finfo(dtype).eps / 2


def test_half_precision_model_is_close_to_float32():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x = torch.rand(8, 1, 8, 8)
    for dtype, tol in [("float16", 1e-2), ("bfloat16", 5e-2)]:
        half = HalfPrecision(model, dtype)
        assert next(half.parameters()).dtype == getattr(torch, dtype)
        out = half(x)
        assert out.dtype == torch.float32 and torch.allclose(out, model(x), atol=tol)
    with pytest.raises(ValueError, match="`dtype` must be one of"):
        HalfPrecision(model, "float8")


# --- fixed point Qm.n --------------------------------------------------------------------

def test_fixed_point_hand_cases():
    x = torch.tensor([0.3, -0.3, 1.9, -2.5, 0.125])
    # Q1.2: 4 bits, step 0.25, range [-2, 1.75]
    assert fixed_point_range(1, 2) == (-2.0, 1.75, 0.25)
    assert fixed_point_encode(x, 1, 2).tolist() == [1, -1, 7, -8, 0]  # 0.125 * 4 = 0.5 rounds to even
    assert fixed_point_encode(x, 1, 2, rounding="floor").tolist() == [1, -2, 7, -8, 0]
    assert fixed_point_encode(torch.tensor([1.9]), 1, 2, saturate=False).tolist() == [-8]  # 8 wraps to -8
    assert fixed_point_decode(torch.tensor([1, -1, 7, -8]), 2).tolist() == [0.25, -0.25, 1.75, -2.0]


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.floats(-3.875, 3.875, width=32), min_size=1, max_size=30), n=st.integers(0, 20))
def test_fixed_point_error_is_half_a_step_inside_the_range(values, n):
    lo, hi, step = fixed_point_range(2, n)
    x = torch.tensor(values)
    x_hat = fixed_point_decode(fixed_point_encode(x, 2, n), n)
    inside = (x >= lo) & (x <= hi)
    assert torch.all((x_hat - x)[inside].abs() <= step / 2 + 1e-6)
    assert torch.all((x_hat >= lo) & (x_hat <= hi))  # saturation: never outside the range


def test_fixed_point_bad_input():
    with pytest.raises(ValueError, match=r"must fit in 32 bits"):
        fixed_point_encode(torch.randn(3), 20, 20)
    with pytest.raises(ValueError, match=r"`m` must be an integer in \[0, inf\]"):
        fixed_point_encode(torch.randn(3), -1, 4)
    with pytest.raises(ValueError, match="`x` must be finite"):
        fixed_point_encode(torch.tensor([float("nan")]), 3, 4)
    with pytest.raises(ValueError, match="`rounding` must be one of"):
        fixed_point_encode(torch.randn(3), 3, 4, rounding="up")
    with pytest.raises(TypeError, match="`c` must be an integer tensor"):
        fixed_point_decode(torch.randn(3), 4)
