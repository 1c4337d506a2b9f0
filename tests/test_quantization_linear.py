"""Linear quantization: parameters as torch's observers compute them, fake_quantize equal to
torch's, real integer tensors, bit packing, and clear errors on bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compresskit.measure import serialized_bytes
from compresskit.quantization import (
    calculate_qparams,
    dequantize,
    fake_quantize,
    pack_bits,
    qrange,
    quantize,
    quantize_tensor,
    tensor_range,
    unpack_bits,
)

with warnings.catch_warnings():  # torch.ao.quantization is deprecated: used here only as a reference
    warnings.simplefilter("ignore")
    from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def test_qrange_is_the_integer_grid():
    assert qrange(8, signed=True) == (-128, 127)
    assert qrange(8, signed=False) == (0, 255)
    assert qrange(4, signed=True) == (-8, 7)
    assert qrange(1, signed=False) == (0, 1)


def test_hand_computed_affine_case():
    # range [-1, 2] on the 4-bit grid [0, 15]: scale = 3 / 15 = 0.2, zero_point = 0 - round(-1 / 0.2) = 5
    scale, zp = calculate_qparams(-1.0, 2.0, 0, 15, "affine")
    assert scale.item() == pytest.approx(0.2)
    assert zp.item() == 5
    x = torch.tensor([-1.0, 0.0, 0.5, 2.0, 3.0])
    q = quantize(x, scale, zp, 0, 15)
    assert q.dtype == torch.uint8
    assert q.tolist() == [0, 5, 7, 15, 15]  # 0.5 / 0.2 = 2.5 rounds to even (2); 3.0 is clamped
    assert torch.allclose(dequantize(q, scale, zp), torch.tensor([-1.0, 0.0, 0.4, 2.0, 2.0]))


def test_range_is_widened_to_include_zero():
    scale, zp = calculate_qparams(2.0, 4.0, 0, 255, "affine")  # as if the range were [0, 4]
    assert scale.item() == pytest.approx(4 / 255)
    assert zp.item() == 0
    assert fake_quantize(torch.tensor([0.0]), scale, zp, 0, 255).item() == 0.0


@pytest.mark.parametrize("scheme,qscheme", [("affine", torch.per_tensor_affine), ("symmetric", torch.per_tensor_symmetric)])
@pytest.mark.parametrize("dtype,grid", [(torch.quint8, (0, 255)), (torch.qint8, (-128, 127))])
def test_per_tensor_qparams_match_minmax_observer(scheme, qscheme, dtype, grid):
    x = torch.randn(200, generator=torch.Generator().manual_seed(1)) * 3 + 0.5
    observer = MinMaxObserver(dtype=dtype, qscheme=qscheme)
    observer(x)
    expected_scale, expected_zp = observer.calculate_qparams()
    scale, zp = calculate_qparams(*tensor_range(x), *grid, scheme)
    assert torch.equal(scale.reshape(1), expected_scale.reshape(1))
    assert zp.item() == expected_zp.item()


@pytest.mark.parametrize("bits", [2, 4, 6])
@pytest.mark.parametrize("scheme,qscheme", [("affine", torch.per_tensor_affine), ("symmetric", torch.per_tensor_symmetric)])
def test_custom_grid_qparams_match_observer(bits, scheme, qscheme):
    x = torch.rand(100, generator=torch.Generator().manual_seed(bits)) * 5 - 1
    for signed, dtype in [(False, torch.quint8), (True, torch.qint8)]:
        quant_min, quant_max = qrange(bits, signed)
        observer = MinMaxObserver(dtype=dtype, qscheme=qscheme, quant_min=quant_min, quant_max=quant_max)
        observer(x)
        expected_scale, expected_zp = observer.calculate_qparams()
        scale, zp = calculate_qparams(*tensor_range(x), quant_min, quant_max, scheme)
        assert torch.equal(scale.reshape(1), expected_scale.reshape(1))
        assert zp.item() == expected_zp.item()


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("scheme,qscheme", [("affine", torch.per_channel_affine), ("symmetric", torch.per_channel_symmetric)])
def test_per_channel_qparams_match_per_channel_observer(axis, scheme, qscheme):
    w = torch.randn(6, 5, generator=torch.Generator().manual_seed(2)) * torch.arange(1, 7).float()[:, None]
    observer = PerChannelMinMaxObserver(ch_axis=axis, dtype=torch.qint8, qscheme=qscheme)
    observer(w)
    expected_scale, expected_zp = observer.calculate_qparams()
    scale, zp = calculate_qparams(*tensor_range(w, axis), -128, 127, scheme)
    assert torch.equal(scale, expected_scale)
    assert torch.equal(zp, expected_zp.long())


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-100, 100, width=32), min_size=1, max_size=40),
    scale=st.floats(1e-3, 10.0),
    bits=st.integers(2, 16),
    signed=st.booleans(),
    zp_frac=st.floats(0, 1),
)
def test_fake_quantize_equals_torch_per_tensor(values, scale, bits, signed, zp_frac):
    x = torch.tensor(values, dtype=torch.float32)
    quant_min, quant_max = qrange(bits, signed)
    zero_point = int(round(quant_min + zp_frac * (quant_max - quant_min)))
    expected = torch.fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max)
    got = fake_quantize(x, scale, zero_point, quant_min, quant_max)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fake_quantize_keeps_the_dtype_and_the_values_torch_gives(dtype):
    """float64 in, float64 out, as torch.fake_quantize_per_tensor_affine; ties (x / scale =
    +-0.5, +-1.5, 2.5) with an odd zero point round before the zero point is added."""
    x = torch.tensor([0.25, 0.75, -0.25, -0.75, 1.25, -3.0, 9.0], dtype=dtype)
    expected = torch.fake_quantize_per_tensor_affine(x, 0.5, 3, 0, 15)
    got = fake_quantize(x, 0.5, 3, 0, 15)
    assert got.dtype == expected.dtype == dtype
    assert torch.equal(got, expected)
    assert got.tolist() == [0.0, 1.0, 0.0, -1.0, 1.0, -1.5, 6.0]  # by hand: round half to even, then + 3, clamp [0, 15]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), bits=st.integers(2, 8), axis=st.integers(0, 2), scheme=st.sampled_from(["affine", "symmetric"]))
def test_fake_quantize_equals_torch_per_channel(seed, bits, axis, scheme):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, 5, generator=g) * torch.rand(1, generator=g) * 10
    signed = scheme == "symmetric"
    quant_min, quant_max = qrange(bits, signed)
    scale, zp = calculate_qparams(*tensor_range(x, axis), quant_min, quant_max, scheme)
    expected = torch.fake_quantize_per_channel_affine(x, scale, zp.int(), axis, quant_min, quant_max)
    assert torch.equal(fake_quantize(x, scale, zp, quant_min, quant_max, axis=axis), expected)


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.floats(-50, 50, width=32), min_size=2, max_size=50), bits=st.integers(2, 12), scheme=st.sampled_from(["affine", "symmetric"]))
def test_round_trip_error_is_at_most_half_a_step(values, bits, scheme):
    x = torch.tensor(values)
    qt = quantize_tensor(x, bits, scheme)
    step = qt.scale.item()
    # affine covers [min, max] exactly; symmetric may clip max by up to half a step
    assert (qt.dequantize() - x).abs().max().item() <= step / 2 * (1 + 1e-4) + 1e-6 + (step / 2 if scheme == "symmetric" else 0)
    assert not qt.q.is_floating_point()


def test_quantize_gives_real_integer_tensors():
    x = torch.randn(10, 4)
    assert quantize_tensor(x, 8, "symmetric").q.dtype == torch.int8
    assert quantize_tensor(x, 8, "affine").q.dtype == torch.uint8
    assert quantize_tensor(x, 12, "symmetric").q.dtype == torch.int16
    assert quantize_tensor(x, 16, "affine").q.dtype == torch.int32
    qt = quantize_tensor(x, 8, "symmetric", axis=0)
    assert qt.scale.shape == (10,) and qt.zero_point.shape == (10,)


@pytest.mark.parametrize("axis", [0, 1])
def test_dequantize_per_channel_equals_torch(axis):
    w = torch.randn(6, 5, generator=torch.Generator().manual_seed(3)) * torch.arange(1, 7).float()[:, None]
    scale, zp = calculate_qparams(*tensor_range(w, axis), -128, 127, "affine")
    theirs = torch.quantize_per_channel(w, scale.double(), zp, axis, torch.qint8)
    ours = quantize(w, scale, zp, -128, 127, axis=axis)
    assert torch.equal(ours, theirs.int_repr())
    assert torch.equal(dequantize(ours, scale, zp, axis=axis), torch.dequantize(theirs))


def test_dequantize_per_tensor_equals_torch():
    x = torch.randn(50, generator=torch.Generator().manual_seed(4)) * 2 + 0.3
    scale, zp = calculate_qparams(*tensor_range(x), 0, 255, "affine")
    theirs = torch.quantize_per_tensor(x, float(scale), int(zp), torch.quint8)
    ours = quantize(x, scale, zp, 0, 255)
    assert torch.equal(ours, theirs.int_repr())
    assert torch.equal(dequantize(ours, scale, zp), torch.dequantize(theirs))
    # and by hand, one value: q = 255 stands for scale * (255 - zero_point)
    assert dequantize(torch.tensor([255], dtype=torch.uint8), scale, zp).item() == pytest.approx(float(scale) * (255 - int(zp)))


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 16), n=st.integers(1, 70), seed=st.integers(0, 1000), signed=st.booleans())
def test_pack_bits_round_trips_in_bits_per_value(bits, n, seed, signed):
    quant_min, quant_max = qrange(bits, signed)
    q = torch.randint(quant_min, quant_max + 1, (n,), generator=torch.Generator().manual_seed(seed))
    packed = pack_bits(q, quant_min, bits)
    assert packed.dtype == torch.uint8
    assert packed.numel() == (n * bits + 7) // 8
    assert torch.equal(unpack_bits(packed, quant_min, bits, n), q)


def test_int8_weights_take_a_quarter_of_the_bytes():
    w = torch.randn(512, 512)
    stored = quantize_tensor(w, 8, "symmetric", axis=0).state_dict()
    ratio = serialized_bytes(w) / serialized_bytes(stored)
    assert 3.9 < ratio <= 4.0
    stored4 = quantize_tensor(w, 4, "symmetric", axis=0).state_dict()
    assert 7.5 < serialized_bytes(w) / serialized_bytes(stored4) <= 8.0


# --- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [0, 17, -3])
def test_bits_outside_1_to_16(bits):
    with pytest.raises(ValueError, match=r"`bits` must be an integer in \[1, 16\]; got"):
        quantize_tensor(torch.randn(4), bits)


def test_bits_must_be_an_integer():
    with pytest.raises(TypeError, match="`bits` must be an integer"):
        qrange(8.0, True)


@pytest.mark.parametrize("quant_min,quant_max", [(5, 5), (0, 0), (10, 3)])
def test_quant_min_not_below_quant_max(quant_min, quant_max):
    with pytest.raises(ValueError, match="`quant_min` must be|`quant_max` must be"):
        calculate_qparams(-1.0, 1.0, quant_min, quant_max)


@pytest.mark.parametrize("scale", [0.0, -0.5, float("nan"), float("inf")])
def test_zero_negative_or_nonfinite_scale(scale):
    with pytest.raises(ValueError, match=r"`scale` must be finite and > 0"):
        fake_quantize(torch.randn(3), scale, 0, -128, 127)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_input(bad):
    with pytest.raises(ValueError, match="`x` must be finite"):
        quantize_tensor(torch.tensor([1.0, bad]))
    with pytest.raises(ValueError, match="`x` must be finite"):
        quantize(torch.tensor([bad]), 0.1, 0, -128, 127)


@pytest.mark.parametrize("axis", [2, -3, 7])
def test_axis_out_of_range(axis):
    with pytest.raises(ValueError, match=r"`axis` must be in \[-2, 1\]"):
        quantize_tensor(torch.randn(3, 4), axis=axis)


def test_per_channel_params_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"must have shape \(3,\) for axis 0"):
        fake_quantize(torch.randn(3, 4), torch.ones(4), torch.zeros(4), -128, 127, axis=0)


def test_min_above_max_and_unknown_scheme():
    with pytest.raises(ValueError, match="`min_val` must be <= `max_val`"):
        calculate_qparams(1.0, -1.0, 0, 255)
    with pytest.raises(ValueError, match="`scheme` must be one of"):
        calculate_qparams(-1.0, 1.0, 0, 255, "logarithmic")


def test_empty_tensor_range_and_float_q():
    with pytest.raises(ValueError, match="`x` must not be empty"):
        quantize_tensor(torch.empty(0))
    with pytest.raises(TypeError, match="`q` must be an integer tensor"):
        dequantize(torch.ones(3), 0.1, 0)


def test_constant_tensor_still_quantizes_exactly():
    # min == max: the range widened to include 0 gives a scale, or eps for all zeros
    assert torch.equal(quantize_tensor(torch.zeros(5)).dequantize(), torch.zeros(5))
    c = torch.full((5,), 3.0)
    assert torch.allclose(quantize_tensor(c, 8, "affine").dequantize(), c)
    assert np.isfinite(quantize_tensor(torch.zeros(5)).scale.item())
