"""Chapter 9's exercise checkers keep tests/exercise_contract.py's contract: each accepts an
independent worked answer (written here, not the checker's reference), rejects the wrong answers
a learner plausibly writes from the notebook's instructions (nibble order, sign extension, ties,
groups along the wrong dimension, a forgotten zero point or bias, the error spread with the wrong
sign or scale, float64 not kept, writing into an input, ...) with a line that names the mistake,
and reports an untouched stub as not attempted. The references written in the checker module
agree with compresskit.llm where the two compute the same thing."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from exercise_contract import contract_tests
from torch import nn

from compresskit.course import progress
from compresskit.course.exercises import llm as ex
from compresskit.llm import folding, groupwise

gptq = importlib.import_module("compresskit.llm.gptq")  # the module (compresskit.llm.gptq is also the function)


def stub(*args):
    raise NotImplementedError  # your code here


# --- independent worked answers (as in solutions/09_llm_quantization.ipynb) -----------------

def pack_int4(codes):
    flat = codes.reshape(-1, codes.shape[-1]).tolist()
    rows = []
    for row in flat:
        row = [c % 16 for c in row] + [0] * (len(row) % 2)  # two's complement nibble, pad odd
        rows.append([row[i] + 16 * row[i + 1] for i in range(0, len(row), 2)])
    return torch.tensor(rows, dtype=torch.uint8).reshape(*codes.shape[:-1], -1)


def unpack_int4(packed, n):
    out = []
    for byte in packed.reshape(-1, packed.shape[-1]).tolist():
        row = [v for b in byte for v in (b % 16, b // 16)][:n]
        out.append([v - 16 if v >= 8 else v for v in row])
    return torch.tensor(out, dtype=torch.int8).reshape(*packed.shape[:-1], n)


def quantize_group(weight, bits, group_size):
    qmax = 2**bits - 1
    codes = torch.empty(weight.shape, dtype=torch.uint8)
    groups = weight.shape[1] // group_size
    scale = torch.empty(weight.shape[0], groups, dtype=weight.dtype)
    zero_point = torch.empty(weight.shape[0], groups, dtype=torch.uint8)
    for r in range(weight.shape[0]):
        for k in range(groups):
            cols = slice(k * group_size, (k + 1) * group_size)
            group = weight[r, cols]
            lo, hi = min(float(group.min()), 0.0), max(float(group.max()), 0.0)
            s = torch.tensor((hi - lo) / qmax, dtype=weight.dtype).clamp(min=torch.finfo(torch.float32).eps)
            z = torch.round(-lo / s).clamp(0, qmax)
            scale[r, k], zero_point[r, k] = s, z
            codes[r, cols] = (torch.round(group / s) + z).clamp(0, qmax).to(torch.uint8)
    return codes, scale, zero_point


def dequantize_group(codes, scale, zero_point, group_size):
    weight = torch.empty(codes.shape, dtype=scale.dtype)
    for k in range(scale.shape[1]):
        cols = slice(k * group_size, (k + 1) * group_size)
        weight[:, cols] = (codes[:, cols].to(scale.dtype) - zero_point[:, k : k + 1].to(scale.dtype)) * scale[:, k : k + 1]
    return weight


def gptq_column_step(W, Hinv, j, scale, zero_point, bits):
    W = W.clone()
    w = W[:, j].clone()
    q = ((w / scale).round() + zero_point).clamp(0, 2**bits - 1).sub(zero_point) * scale
    err = (w - q) / Hinv[j, j]
    W[:, j] = q
    W[:, j + 1:] = W[:, j + 1:] - torch.outer(err, Hinv[j, j + 1:])
    return W


def fold_awq_scales(ln_weight, ln_bias, linear_weight, s):
    return ln_weight / s, ln_bias / s, linear_weight @ torch.diag(s)


# --- wrong answers a learner plausibly writes ---------------------------------------------

def _nibbles(codes):
    return codes.to(torch.int16) & 0xF


def pack_high_first(codes):
    n = torch.nn.functional.pad(_nibbles(codes), (0, codes.shape[-1] % 2))
    return (n[..., 1::2] | n[..., 0::2] << 4).to(torch.uint8)


def pack_unmasked(codes):
    c = torch.nn.functional.pad(codes.to(torch.int16), (0, codes.shape[-1] % 2))
    return ((c[..., 0::2] | c[..., 1::2] << 4) & 0xFF).to(torch.uint8)


def pack_drops_odd(codes):
    n = _nibbles(codes)[..., : codes.shape[-1] // 2 * 2]
    return (n[..., 0::2] | n[..., 1::2] << 4).to(torch.uint8)


def pack_int8(codes):
    return pack_int4(codes).view(torch.int8)


def pack_int16(codes):
    return pack_int4(codes).to(torch.int16)


def pack_in_place(codes):
    codes &= 0xF  # overwrites the caller's codes
    n = torch.nn.functional.pad(codes.to(torch.int16), (0, codes.shape[-1] % 2))
    return (n[..., 0::2] | n[..., 1::2] << 4).to(torch.uint8)


def _pair(packed):
    p = packed.to(torch.int16)
    return p & 0xF, p >> 4


def unpack_high_first(packed, n):
    low, high = _pair(packed)
    c = torch.stack([high, low], -1).flatten(-2)[..., :n]
    return torch.where(c > 7, c - 16, c).to(torch.int8)


def unpack_unsigned(packed, n):
    return torch.stack(_pair(packed), -1).flatten(-2)[..., :n].to(torch.int8)


def unpack_offset(packed, n):
    return (torch.stack(_pair(packed), -1).flatten(-2)[..., :n] - 8).to(torch.int8)


def unpack_keeps_padding(packed, n):
    c = torch.stack(_pair(packed), -1).flatten(-2)
    return torch.where(c > 7, c - 16, c).to(torch.int8)


def unpack_int16(packed, n):
    return unpack_int4(packed, n).to(torch.int16)


def _quantize(weight, bits, group_size, *, rnd=torch.round, zero=True, eps=True, strided=False):
    qmax, (out, n) = 2**bits - 1, weight.shape
    w = weight.reshape(out, group_size, n // group_size).transpose(1, 2) if strided else weight.reshape(out, n // group_size, group_size)
    lo, hi = w.amin(-1), w.amax(-1)
    if zero:
        lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = (hi - lo) / qmax
    if eps:
        scale = scale.clamp(min=torch.finfo(torch.float32).eps)
    z = rnd(-lo / scale).clamp(0, qmax)
    codes = (rnd(w / scale[..., None]) + z[..., None]).clamp(0, qmax)
    if strided:
        codes = codes.transpose(1, 2)
    return codes.reshape(out, n).to(torch.uint8), scale, z.to(torch.uint8)


def quantize_per_row(weight, bits, group_size):
    return _quantize(weight, bits, weight.shape[1])


def quantize_floor(weight, bits, group_size):
    return _quantize(weight, bits, group_size, rnd=torch.floor)


def quantize_half_up(weight, bits, group_size):
    return _quantize(weight, bits, group_size, rnd=lambda x: torch.floor(x + 0.5))


def quantize_range_without_zero(weight, bits, group_size):
    return _quantize(weight, bits, group_size, zero=False)


def quantize_zero_scale(weight, bits, group_size):
    return _quantize(weight, bits, group_size, eps=False)


def quantize_strided_groups(weight, bits, group_size):
    return _quantize(weight, bits, group_size, strided=True)


def quantize_float32(weight, bits, group_size):
    codes, scale, z = _quantize(weight, bits, group_size)
    return codes, scale.float(), z


def quantize_int64_codes(weight, bits, group_size):
    codes, scale, z = _quantize(weight, bits, group_size)
    return codes.long(), scale, z


def dequantize_no_zero_point(codes, scale, zero_point, group_size):
    return codes.to(scale.dtype) * scale.repeat_interleave(group_size, 1)


def dequantize_tiled(codes, scale, zero_point, group_size):
    return (codes.to(scale.dtype) - zero_point.repeat(1, group_size).to(scale.dtype)) * scale.repeat(1, group_size)


def dequantize_uint8(codes, scale, zero_point, group_size):
    return (codes - zero_point.repeat_interleave(group_size, 1)).to(scale.dtype) * scale.repeat_interleave(group_size, 1)


def dequantize_float32(codes, scale, zero_point, group_size):
    return dequantize_group(codes, scale, zero_point, group_size).float()


def _step(W, Hinv, j, scale, zero_point, bits, *, divide=lambda d: d, sign=1, clamp=True, replace=True, row=None, spread=True):
    W = W.clone()
    w = W[:, j].clone()
    code = (w / scale).round() + zero_point
    if clamp:
        code = code.clamp(0, 2**bits - 1)
    q = (code - zero_point) * scale
    if replace:
        W[:, j] = q
    if not spread:
        return W
    err = (w - q) / divide(Hinv[j, j])
    h = Hinv[j, j + 1:] if row is None else row(Hinv, j)
    W[:, j + 1:] -= sign * err[:, None] * h[None, :]
    return W


def gptq_error_after_update(W, Hinv, j, scale, zero_point, bits):
    W = W.clone()
    q = ((W[:, j] / scale).round() + zero_point).clamp(0, 2**bits - 1).sub(zero_point) * scale
    W[:, j] = q
    err = (W[:, j] - q) / Hinv[j, j]  # zero: column j was already replaced
    W[:, j + 1:] -= err[:, None] * Hinv[j, j + 1:]
    return W


def gptq_squared(*a):
    return _step(*a, divide=lambda d: d**2)


def gptq_undivided(*a):
    return _step(*a, divide=lambda d: 1.0)


def gptq_sign(*a):
    return _step(*a, sign=-1)


def gptq_misaligned(*a):
    return _step(*a, row=lambda H, j: H[j, j:-1])


def gptq_not_replaced(*a):
    return _step(*a, replace=False)


def gptq_no_clamp(*a):
    return _step(*a, clamp=False)


def gptq_float32(*a):
    return _step(*a).float()


def gptq_in_place(W, Hinv, j, scale, zero_point, bits):
    w = W[:, j].clone()
    q = ((w / scale).round() + zero_point).clamp(0, 2**bits - 1).sub(zero_point) * scale
    W[:, j] = q  # writes into the caller's W
    W[:, j + 1:] -= torch.outer((w - q) / Hinv[j, j], Hinv[j, j + 1:])
    return W


def fold_rows(ln_weight, ln_bias, linear_weight, s):
    return ln_weight / s, ln_bias / s, linear_weight * s[:, None]


def fold_forgets_bias(ln_weight, ln_bias, linear_weight, s):
    return ln_weight / s, ln_bias, linear_weight * s


def fold_multiplies_both(ln_weight, ln_bias, linear_weight, s):
    return ln_weight * s, ln_bias * s, linear_weight * s


def fold_inverted(ln_weight, ln_bias, linear_weight, s):
    return ln_weight * s, ln_bias * s, linear_weight / s


def fold_in_place(ln_weight, ln_bias, linear_weight, s):
    ln_weight /= s
    ln_bias /= s
    linear_weight *= s
    return ln_weight, ln_bias, linear_weight


def fold_float32(ln_weight, ln_bias, linear_weight, s):
    return tuple(t.float() for t in fold_awq_scales(ln_weight, ln_bias, linear_weight, s))


CHANGED = "your function changed its argument `"
WRONG = {
    "pack_int4": (ex.check_pack_int4, pack_int4, [
        (pack_high_first, "LOW nibble"),
        (pack_unmasked, "code & 0xF"),
        (pack_drops_odd, "pad with one zero code"),
        (pack_int8, "torch.uint8 bytes"),
        (pack_int16, "dtype: expected torch.uint8"),
        (pack_in_place, CHANGED + "codes`"),
    ]),
    "unpack_int4": (ex.check_unpack_int4, unpack_int4, [
        (unpack_high_first, "LOW nibble"),
        (unpack_unsigned, "sign is not extended"),
        (unpack_offset, "offset binary"),
        (unpack_keeps_padding, "keep the first n codes"),
        (unpack_int16, "dtype: expected torch.int8"),
    ]),
    "quantize_group": (ex.check_quantize_group, quantize_group, [
        (quantize_per_row, "one scale per row"),
        (quantize_strided_groups, "CONSECUTIVE columns"),
        (quantize_floor, "floor instead of round"),
        (quantize_half_up, "ties: torch.round rounds an exact half to the even integer"),
        (quantize_range_without_zero, "the range must hold 0"),
        (quantize_zero_scale, "all-zero group needs scale"),
        (quantize_float32, "keep the dtype of the input"),
        (quantize_int64_codes, "codes: dtype: expected torch.uint8"),
    ]),
    "dequantize_group": (ex.check_dequantize_group, dequantize_group, [
        (dequantize_no_zero_point, "zero point is forgotten"),
        (dequantize_tiled, "repeat_interleave, not repeat"),
        (dequantize_uint8, "wraps around below 0"),
        (dequantize_float32, "keep the dtype of the input"),
    ]),
    "gptq_column_step": (ex.check_gptq_column_step, gptq_column_step, [
        (gptq_error_after_update, "did not move"),
        (gptq_squared, "not by Hinv[j, j]**2"),
        (gptq_undivided, "must be divided by Hinv[j, j]"),
        (gptq_sign, "MINUS"),
        (gptq_misaligned, "off by one"),
        (gptq_not_replaced, "column j must hold its quantized value"),
        (gptq_no_clamp, "clamped to [0, 2**bits - 1]"),
        (gptq_float32, "keep the dtype of the input"),
        (gptq_in_place, CHANGED + "W`"),
    ]),
    "fold_awq_scales": (ex.check_fold_awq_scales, fold_awq_scales, [
        (fold_rows, "input COLUMNS"),
        (fold_forgets_bias, "bias is forgotten"),
        (fold_multiplies_both, "both sides multiplied"),
        (fold_inverted, "the wrong way"),
        (fold_float32, "keep the dtype of the input"),
        (fold_in_place, CHANGED + "ln_weight`"),
    ]),
}

globals().update(contract_tests(WRONG, stub))


def test_every_checker_of_the_module_is_tested():
    assert [n.removeprefix("check_") for n in progress.exercises()["llm"]] == list(WRONG)


@pytest.mark.parametrize("name", list(WRONG))
def test_every_wrong_answer_is_named_by_a_mistake_of_its_own(name, capsys):
    """At least four wrong answers, and no two named by the same words (each mistake is its own)."""
    assert len(WRONG[name][2]) >= 4
    words = [w for _, w in WRONG[name][2]]
    assert len(set(words)) == len(words)


# --- the references agree with compresskit.llm -------------------------------------------------

@pytest.mark.parametrize("shape", [(7,), (3, 8), (2, 5), (4, 1)])
def test_pack_reference_is_the_library_and_round_trips(shape):
    codes = torch.randint(-8, 8, shape, generator=torch.Generator().manual_seed(0)).to(torch.int8)
    packed = ex.reference_pack_int4(codes).value
    assert packed.dtype == torch.uint8 and packed.shape[-1] == math.ceil(shape[-1] / 2)
    assert torch.equal(packed, pack_int4(codes))  # the library's packing = the by-hand one in this file
    assert torch.equal(ex.reference_unpack_int4(packed, shape[-1]).value, codes)


def test_pack_puts_the_first_code_in_the_low_nibble_as_matmulnbits_reads_it():
    assert ex.reference_pack_int4(torch.tensor([1, -2], dtype=torch.int8)).value.tolist() == [0xE1]


@pytest.mark.parametrize("bits, group_size, dtype", [(4, 4, torch.float32), (3, 8, torch.float32), (8, 16, torch.float64), (4, 32, torch.float64)])
def test_quantize_reference_agrees_with_groupwise_without_float16_scales(bits, group_size, dtype):
    weight = torch.randn(6, 32, generator=torch.Generator().manual_seed(bits), dtype=dtype)
    weight[0, :group_size] = 0  # an all-zero group
    weight[1, :group_size] = weight[1, :group_size].abs() + 0.1  # a group of positive values only
    codes, scale, zero_point = ex.reference_quantize_group(weight, bits, group_size).value
    lib_scale, lib_zero_point = groupwise.choose_qparams(weight, bits, group_size, scale_dtype=dtype)
    torch.testing.assert_close(scale, lib_scale, rtol=1e-12, atol=0)
    assert torch.equal(zero_point.to(torch.int32), lib_zero_point)
    lib_codes = groupwise.quantize(weight, lib_scale, lib_zero_point, bits)
    assert torch.equal(codes.to(torch.int16), lib_codes)
    torch.testing.assert_close(ex.reference_dequantize_group(codes, scale, zero_point, group_size).value,
                               groupwise.dequantize(lib_codes, lib_scale, lib_zero_point))


def test_the_ties_case_rounds_half_to_even():
    codes, scale, _ = ex.reference_quantize_group(ex._TIES, 4, 4).value
    assert scale.tolist() == [[0.125, 0.125]]
    assert codes.tolist() == [[0, 2, 2, 15, 4, 4, 6, 15]]


@pytest.mark.parametrize("group_size", [None, 4, 1])
def test_gptq_step_repeated_over_every_column_is_the_library_gptq(group_size):
    """The exercise's step, taken for j = 0, 1, ... with the library's upper Cholesky factor of
    H⁻¹ and the scales the library chose, gives the library's GPTQ weights (per channel, groups
    of 4, and groups of a single column)."""
    g = torch.Generator().manual_seed(5)
    W = torch.randn(5, 8, generator=g, dtype=torch.float64)
    X = torch.randn(64, 8, generator=g, dtype=torch.float64) @ (torch.eye(8, dtype=torch.float64) + 0.5 * torch.randn(8, 8, generator=g, dtype=torch.float64))
    H = gptq.gptq_hessian(X)
    result = gptq.gptq(W, H, 4, group_size, percdamp=0.01, block_size=3)
    Hinv = gptq._inverse_cholesky(H, 0.01)
    size = result.group_size
    current = W.clone()
    for j in range(8):
        current = ex.reference_gptq_column_step(current, Hinv, j, result.scale[:, j // size],
                                                result.zero_point[:, j // size].long(), 4).value
    torch.testing.assert_close(current, result.dequantize().double(), rtol=1e-9, atol=1e-12)


def test_gptq_step_on_the_first_column_may_use_the_plain_inverse():
    """Row 0 of the upper Cholesky factor U of H⁻¹ is H⁻¹'s row 0 divided by sqrt(H⁻¹[0, 0]), so the
    first step is the same with the plain inverse (the later ones are not)."""
    W, U, scale, zero_point = ex._gptq_inputs(4, 6, 0)
    inverse = U.T @ U
    torch.testing.assert_close(ex.reference_gptq_column_step(W, inverse, 0, scale, zero_point, 4).value,
                               ex.reference_gptq_column_step(W, U, 0, scale, zero_point, 4).value)
    assert not torch.allclose(ex.reference_gptq_column_step(W, inverse, 2, scale, zero_point, 4).value,
                              ex.reference_gptq_column_step(W, U, 2, scale, zero_point, 4).value)


def test_fold_reference_is_the_library_fold_and_keeps_the_function():
    g = torch.Generator().manual_seed(0)
    ln, fc = nn.LayerNorm(8), nn.Linear(8, 3)
    with torch.no_grad():
        ln.weight.copy_(1 + 0.1 * torch.randn(8, generator=g))
        ln.bias.copy_(0.1 * torch.randn(8, generator=g))
    s = torch.rand(8, generator=g) * 3 + 0.25
    x = torch.randn(10, 8, generator=g)
    before = fc(ln(x))
    folded = ex.reference_fold_awq_scales(ln.weight.detach(), ln.bias.detach(), fc.weight.detach(), s).value
    folding.fold_scales(ln, [fc], s)
    for mine, lib in zip(folded, (ln.weight, ln.bias, fc.weight)):
        torch.testing.assert_close(mine, lib.detach())
    torch.testing.assert_close(fc(ln(x)), before, rtol=1e-5, atol=1e-5)
