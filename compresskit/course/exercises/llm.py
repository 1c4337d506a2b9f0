"""Exercise checkers for the language-model quantization chapter (chapter 9). Each ``check_*``
prints feedback and returns a bool.

What the instructions of chapters/09_llm_quantization.ipynb ask, and these checkers hold to:

* ``pack_int4(codes)``: int8 codes in [-8, 7] along the last dimension -> uint8 (..., ceil(n / 2));
  code 2i in the low nibble of byte i, code 2i+1 in its high nibble, each code's two's-complement
  low 4 bits (``code & 0xF``); an odd length gets one zero code of padding.
  ``unpack_int4(packed, n)``: the inverse, int8 (..., n), sign extended (nibbles 8..15 are -8..-1).
* ``quantize_group(weight, bits, group_size)`` -> ``(codes, scale, zero_point)``: groups are
  ``group_size`` consecutive columns of a row; per group ``w_min = min(min(group), 0)``,
  ``w_max = max(max(group), 0)`` (the range always holds 0), ``scale = max((w_max - w_min) /
  (2**bits - 1), torch.finfo(torch.float32).eps)`` in the weight's dtype (an all-zero group gets
  this tiny scale, as torch's observers), ``zero_point = clamp(round(-w_min / scale), 0,
  2**bits - 1)``, ``codes = clamp(round(w / scale) + zero_point, 0, 2**bits - 1)``; ``round`` is
  ``torch.round`` (ties to even); codes and zero points uint8, shapes (out, in) and
  (out, in // group_size). ``dequantize_group(codes, scale, zero_point, group_size)``:
  ``(codes - zero_point) * scale`` per group, in the scale's dtype.
* ``gptq_column_step(W, Hinv, j, scale, zero_point, bits)``: one step of Algorithm 1 of GPTQ
  (Frantar et al. 2022, arXiv:2210.17323) with ``Hinv`` the upper Cholesky factor of the inverse
  Hessian; a new tensor (W's dtype) whose column j is the dequantized RTN value q and whose
  columns after j are ``W[:, j+1:] - err[:, None] * Hinv[j, j+1:]``, ``err = (W[:, j] - q) / Hinv[j, j]``.
* ``fold_awq_scales(ln_weight, ln_bias, linear_weight, s)`` -> ``(ln_weight / s, ln_bias / s,
  linear_weight * s)``, s multiplying the Linear's input columns (AWQ, Lin et al. 2023).
* float results keep the dtype of the float input; no function writes into its inputs.

The library computes the same things (``compresskit.llm.groupwise``, ``gptq``, ``folding``) with
other signatures (int16 codes, float16-rounded scales, modules changed in place), so the
references are written here; tests/test_exercises_llm.py checks that they agree with it.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from compresskit.course.checker import Case, Expected, check_function, close, naming_mistakes
from compresskit.llm import groupwise

EPS = torch.finfo(torch.float32).eps


def _exact(expected: Any, got: Any) -> str | None:
    """``close`` with a tight absolute tolerance, and the exact dtype the instructions ask."""
    if isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor) and got.dtype != expected.dtype:
        if expected.dtype.is_floating_point and got.dtype.is_floating_point:
            return f"dtype: expected {expected.dtype} (keep the dtype of the input), got {got.dtype}"
        if not expected.dtype.is_floating_point and not got.dtype.is_floating_point and got.dtype != torch.bool:
            return f"dtype: expected {expected.dtype}, got {got.dtype}"
    return close(expected, got, rtol=1e-5, atol=1e-9)


def _items(names: tuple[str, ...]) -> Callable[[Any, Any], str | None]:
    """Compare tuples item by item (exact dtypes) and name the item that differs."""
    def compare(expected: tuple, got: Any) -> str | None:
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"return a tuple ({', '.join(names)}); got {type(got).__name__}"
        for name, e, g in zip(names, expected, got):
            reason = _exact(e, g)
            if reason:
                return f"{name}: {reason}"
        return None
    return compare


def _codes(values: list, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    t = torch.tensor(values, dtype=torch.int8)
    return t.reshape(shape) if shape else t


def _random_codes(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 8, shape, generator=g).to(torch.int8)


# --- 1. packing signed int4 codes two per byte ----------------------------------------------

def _pack(codes: torch.Tensor, mistake: str = "") -> torch.Tensor:
    c = codes.to(torch.int16)
    if mistake == "dropped" and c.shape[-1] % 2:
        c = c[..., :-1]
    nib = c if mistake == "unmasked" else c & 0xF
    if nib.shape[-1] % 2:
        nib = torch.nn.functional.pad(nib, (0, 1))
    low, high = (nib[..., 1::2], nib[..., 0::2]) if mistake == "high_first" else (nib[..., 0::2], nib[..., 1::2])
    packed = ((low | (high << 4)) & 0xFF).to(torch.uint8)
    return packed.view(torch.int8) if mistake == "int8" else packed


def reference_pack_int4(codes: torch.Tensor) -> Expected:
    return Expected(groupwise.pack_int4(codes, signed=True), (
        (_pack(codes, "high_first"), "the first code of each pair goes in the LOW nibble (bits 0-3), the second in the high one"),
        (_pack(codes, "unmasked"), "a negative code's sign bits spill into the high nibble: take code & 0xF before combining"),
        (_pack(codes, "dropped"), "an odd length lost its last code: pad with one zero code, ceil(n / 2) bytes"),
        (_pack(codes, "int8"), "return torch.uint8 bytes, not int8"),
    ))


def check_pack_int4(fn: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """``fn(codes)`` -> uint8 bytes, two signed 4-bit codes each, low nibble first."""
    return check_function(fn, reference=reference_pack_int4, cases=[
        Case("six codes by hand, negatives among them", (_codes([1, -2, 3, -8, 7, 0]),)),
        Case("the extremes -8 and 7 and -1 (nibbles 0x8, 0x7, 0xF)", (_codes([-8, 7, -1, -1, 0, -8]),)),
        Case("an odd length, 3 codes (2 bytes, the last padded with a zero code)", (_codes([-1, 5, -3]),)),
        Case("a (3, 8) matrix: pack along the last dimension", (_random_codes((3, 8), 0),)),
        Case("a (2, 5) matrix of odd rows", (_random_codes((2, 5), 1),)),
    ], name="pack_int4", compare=naming_mistakes(_exact),
        hint="nibbles = codes.to(torch.int16) & 0xF; pad an odd length with one 0; byte i = nibbles[2i] | nibbles[2i+1] << 4, as torch.uint8")


def _unpack(packed: torch.Tensor, n: int, mistake: str = "") -> torch.Tensor:
    p = packed.to(torch.int16)
    pair = [p >> 4, p & 0xF] if mistake == "high_first" else [p & 0xF, p >> 4]
    codes = torch.stack(pair, dim=-1).flatten(-2)
    if mistake != "padding":
        codes = codes[..., :n]
    if mistake == "offset":
        codes = codes - 8
    elif mistake != "unsigned":
        codes = torch.where(codes > 7, codes - 16, codes)
    return codes.to(torch.int8)


def reference_unpack_int4(packed: torch.Tensor, n: int) -> Expected:
    return Expected(groupwise.unpack_int4(packed, n, signed=True), (
        (_unpack(packed, n, "high_first"), "the first code is in the LOW nibble (packed & 0xF), the second in the high one (packed >> 4)"),
        (_unpack(packed, n, "unsigned"), "the sign is not extended: nibbles 8..15 are the codes -8..-1 (subtract 16 from those above 7)"),
        (_unpack(packed, n, "offset"), "subtracting 8 reads offset binary; these nibbles are two's complement (subtract 16 from those above 7)"),
        (_unpack(packed, n, "padding"), "the padding code of an odd length is still there: keep the first n codes"),
    ))


def _packed_case(description: str, codes: torch.Tensor) -> Case:
    return Case(description, (groupwise.pack_int4(codes, signed=True), codes.shape[-1]))


def check_unpack_int4(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """``fn(packed, n)`` -> the first n int8 codes along the last dimension, sign extended."""
    return check_function(fn, reference=reference_unpack_int4, cases=[
        _packed_case("six codes by hand, negatives among them", _codes([1, -2, 3, -8, 7, 0])),
        _packed_case("the extremes -8, 7 and -1", _codes([-8, 7, -1, -1, 0, -8])),
        _packed_case("n = 3 from 2 bytes (drop the padding code)", _codes([-1, 5, -3])),
        _packed_case("a (3, 8) matrix", _random_codes((3, 8), 2)),
        _packed_case("a (2, 5) matrix of odd rows", _random_codes((2, 5), 3)),
    ], name="unpack_int4", compare=naming_mistakes(_exact),
        hint="low = packed & 0xF, high = packed >> 4 (in int16); interleave low, high; keep n; where > 7 subtract 16; return torch.int8")


# --- 2. group-wise quantize / dequantize with zero points ------------------------------------

def _quantize_group(weight: torch.Tensor, bits: int, group_size: int, mistake: str = "") -> tuple[torch.Tensor, ...]:
    qmax = 2**bits - 1
    out, n = weight.shape
    g = n if mistake == "per_row" else group_size
    if mistake == "strided":  # group k = columns k, k + n/g, k + 2n/g, ...
        w = weight.reshape(out, g, n // g).transpose(1, 2)
    else:
        w = weight.reshape(out, n // g, g)  # (out, groups, g)
    w_min, w_max = w.amin(dim=2), w.amax(dim=2)
    if mistake != "no_zero":
        w_min, w_max = w_min.clamp(max=0), w_max.clamp(min=0)
    scale = (w_max - w_min) / qmax
    if mistake != "no_eps":
        scale = scale.clamp(min=EPS)
    if mistake == "float32":
        scale = scale.float()
    rnd = {"floor": torch.floor, "half_up": lambda x: torch.floor(x + 0.5)}.get(mistake, torch.round)
    zero_point = rnd(-w_min / scale).clamp(0, qmax)
    codes = (rnd(w / scale[..., None]) + zero_point[..., None]).clamp(0, qmax)
    if mistake == "strided":
        codes = codes.transpose(1, 2)
    return codes.reshape(out, n).to(torch.uint8), scale, zero_point.to(torch.uint8)


def reference_quantize_group(weight: torch.Tensor, bits: int, group_size: int) -> Expected:
    return Expected(_quantize_group(weight, bits, group_size), tuple(
        (_quantize_group(weight, bits, group_size, mistake), what) for mistake, what in (
            ("per_row", "one scale per row: each row has in_features // group_size groups of group_size columns"),
            ("strided", "a group is group_size CONSECUTIVE columns: weight.reshape(out, in // group_size, group_size), reduce the last dimension"),
            ("no_zero", "the range must hold 0: w_min = min(min(group), 0), w_max = max(max(group), 0)"),
            ("floor", "floor instead of round: use torch.round"),
            ("half_up", "ties: torch.round rounds an exact half to the even integer (0.5 -> 0, 1.5 -> 2, 2.5 -> 2), not up"),
            ("no_eps", "an all-zero group needs scale = torch.finfo(torch.float32).eps, not 0"),
            ("float32", "the scale keeps the weight's dtype (float64 stays float64)"),
        )))


def _w(rows: list[list[float]], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(rows, dtype=dtype)


def _random_weight(shape: tuple[int, int], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype)


# By hand, 4 bits, groups of 4: row 0 has a group of range [0, 1.875] (scale 0.125, exact) with
# values at the half steps 0.5 and 1.5 (ties) and a group around 0 (zero point 8); row 1 has
# a group of positive values only and an all-zero group.
_BY_HAND = _w([[0.0, 0.0625, 0.1875, 1.875, -1.0, -0.5, 0.5, 0.875],
               [0.5, 1.0, 1.5, 1.875, 0.0, 0.0, 0.0, 0.0]])
_TIES = _w([[0.0625, 0.1875, 0.3125, 1.875, 0.4375, 0.5625, 0.6875, 1.875]])  # 0.5 .. 5.5 steps of 0.125


def _quantize_cases() -> list[Case]:
    return [
        Case("4 bits, 2x8 by hand, groups of 4: a group around 0, a positive group, an all-zero group", (_BY_HAND, 4, 4)),
        Case("4 bits, values at exact half steps 0.5, 1.5, ..., 5.5 of a scale 0.125 (ties)", (_TIES, 4, 4)),
        Case("3 bits, a random 4x12 weight, groups of 4", (_random_weight((4, 12), 0), 3, 4)),
        Case("8 bits, a random 3x12 weight, groups of 6", (_random_weight((3, 12), 1), 8, 6)),
        Case("4 bits, groups of 8 on a 2x8 weight (one group per row)", (_random_weight((2, 8), 2), 4, 8)),
        Case("4 bits, a float64 6x8 weight, groups of 2", (_random_weight((6, 8), 3, torch.float64), 4, 2)),
        Case("2 bits, all-equal groups (0.3 and -0.7), groups of 4",
             (_w([[0.3, 0.3, 0.3, 0.3, -0.7, -0.7, -0.7, -0.7]]), 2, 4)),
    ]


def check_quantize_group(fn: Callable[[torch.Tensor, int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> bool:
    """``fn(weight, bits, group_size)`` -> ``(codes, scale, zero_point)``, asymmetric, per group of columns."""
    return check_function(fn, reference=reference_quantize_group, cases=_quantize_cases(),
                          name="quantize_group", compare=naming_mistakes(_items(("codes", "scale", "zero_point"))),
                          hint="w = weight.reshape(out, in // group_size, group_size); w_min = w.amin(-1).clamp(max=0), "
                               "w_max = w.amax(-1).clamp(min=0); scale = ((w_max - w_min) / (2**bits - 1)).clamp(min=eps); "
                               "zero_point = round(-w_min / scale); codes = clamp(round(w / scale) + zero_point); uint8")


def _dequantize_group(codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, group_size: int, mistake: str = "") -> torch.Tensor:
    if mistake == "tiled":
        s, z = scale.repeat(1, group_size), zero_point.repeat(1, group_size)
    else:
        s, z = scale.repeat_interleave(group_size, dim=1), zero_point.repeat_interleave(group_size, dim=1)
    if mistake == "no_zero_point":
        return codes.to(scale.dtype) * s
    if mistake == "uint8":
        return (codes - z).to(scale.dtype) * s
    result = (codes.to(scale.dtype) - z.to(scale.dtype)) * s
    return result.float() if mistake == "float32" else result


def reference_dequantize_group(codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, group_size: int) -> Expected:
    return Expected(_dequantize_group(codes, scale, zero_point, group_size), tuple(
        (_dequantize_group(codes, scale, zero_point, group_size, mistake), what) for mistake, what in (
            ("no_zero_point", "the zero point is forgotten: (codes - zero_point) * scale"),
            ("tiled", "scale[:, k] belongs to the k-th group of consecutive columns: repeat_interleave, not repeat"),
            ("uint8", "codes - zero_point in uint8 wraps around below 0: convert both to the scale's dtype first"),
            ("float32", "the result keeps the scale's dtype (float64 stays float64)"),
        )))


def check_dequantize_group(fn: Callable[..., torch.Tensor]) -> bool:
    """``fn(codes, scale, zero_point, group_size)`` -> the weight ``(codes - zero_point) * scale`` per group."""
    cases = [Case(c.description, (*reference_quantize_group(*c.args).value, c.args[2])) for c in _quantize_cases()]
    return check_function(fn, reference=reference_dequantize_group, cases=cases, name="dequantize_group",
                          compare=naming_mistakes(_exact),
                          hint="(codes.to(scale.dtype) - zero_point.to(scale.dtype)) * scale, with scale and zero_point "
                               "repeated group_size times along dim 1 (repeat_interleave)")


# --- 3. one GPTQ column step ------------------------------------------------------------------

def _gptq_step(W: torch.Tensor, Hinv: torch.Tensor, j: int, scale: torch.Tensor, zero_point: torch.Tensor, bits: int,
               mistake: str = "") -> torch.Tensor:
    qmax = 2**bits - 1
    w = W[:, j]
    code = torch.round(w / scale) + zero_point
    if mistake != "no_clamp":
        code = code.clamp(0, qmax)
    q = (code - zero_point) * scale
    d = {"squared": Hinv[j, j] ** 2, "undivided": torch.ones_like(Hinv[j, j])}.get(mistake, Hinv[j, j])
    err = torch.zeros_like(w) if mistake == "no_spread" else (w - q) / d
    row = Hinv[j, j:-1] if mistake == "misaligned" else Hinv[j, j + 1:]
    new = W.clone()
    if mistake != "not_replaced":
        new[:, j] = q
    if mistake == "sign":
        new[:, j + 1:] += err[:, None] * row[None, :]
    else:
        new[:, j + 1:] -= err[:, None] * row[None, :]
    return new.float() if mistake == "float32" else new


def reference_gptq_column_step(W: torch.Tensor, Hinv: torch.Tensor, j: int, scale: torch.Tensor, zero_point: torch.Tensor, bits: int) -> Expected:
    return Expected(_gptq_step(W, Hinv, j, scale, zero_point, bits), tuple(
        (_gptq_step(W, Hinv, j, scale, zero_point, bits, mistake), what) for mistake, what in (
            ("no_spread", "the columns after j did not move: err = (W[:, j] - q) / Hinv[j, j], computed before column j is "
                          "replaced, spread along ROW j of Hinv (Hinv is upper triangular)"),
            ("squared", "divide the error by Hinv[j, j] once, not by Hinv[j, j]**2"),
            ("undivided", "the error must be divided by Hinv[j, j]"),
            ("sign", "sign: the columns after j move by MINUS err[:, None] * Hinv[j, j+1:]"),
            ("misaligned", "off by one: column j+k moves by Hinv[j, j+k]; use Hinv[j, j+1:]"),
            ("not_replaced", "column j must hold its quantized value q = (code - zero_point) * scale"),
            ("no_clamp", "codes must be clamped to [0, 2**bits - 1] before dequantizing"),
            ("float32", "the result keeps W's dtype (float64 stays float64)"),
        )))


def _gptq_inputs(out: int, n: int, seed: int, dtype: torch.dtype = torch.float64, bits: int = 4,
                 from_columns: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """W, the upper Cholesky factor of H⁻¹ for H = 2 X Xᵀ / N of correlated inputs, and per-row
    scale and zero point chosen from the first ``from_columns`` columns (all by default)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(out, n, generator=g, dtype=torch.float64)
    X = torch.randn(4 * n, n, generator=g, dtype=torch.float64) @ (torch.eye(n, dtype=torch.float64)
                                                                   + 0.5 * torch.randn(n, n, generator=g, dtype=torch.float64))
    H = 2 * X.T @ X / X.shape[0]
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    _, scale, zero_point = _quantize_group(W[:, : from_columns or n], bits, from_columns or n)
    return W.to(dtype), Hinv.to(dtype), scale[:, 0].to(dtype), zero_point[:, 0].to(torch.int64)


def _gptq_case(description: str, j: int, out: int, n: int, seed: int, **kwargs) -> Case:
    W, Hinv, scale, zero_point = _gptq_inputs(out, n, seed, **kwargs)
    return Case(description, (W, Hinv, j, scale, zero_point, kwargs.get("bits", 4)))


def check_gptq_column_step(fn: Callable[..., torch.Tensor]) -> bool:
    """``fn(W, Hinv, j, scale, zero_point, bits)`` -> a new W: column j quantized, its error spread to the columns after it."""
    return check_function(fn, reference=reference_gptq_column_step, cases=[
        _gptq_case("the first column, j = 0, of a 4x6 float64 weight", 0, 4, 6, 0),
        _gptq_case("a middle column, j = 3 of 8 (the columns before it stay as they are)", 3, 5, 8, 1),
        _gptq_case("the last column, j = 7 of 8 (nothing left to spread to)", 7, 3, 8, 2),
        _gptq_case("3 bits, j = 2, a scale chosen from the first 2 columns only (codes must be clamped)", 2, 6, 8, 3,
                   bits=3, from_columns=2),
        _gptq_case("a float32 weight, j = 1", 1, 4, 6, 4, dtype=torch.float32),
    ], name="gptq_column_step", compare=naming_mistakes(_exact),
        hint="q = (clamp(round(W[:, j] / scale) + zero_point, 0, 2**bits - 1) - zero_point) * scale; "
             "err = (W[:, j] - q) / Hinv[j, j]; new = W.clone(); new[:, j] = q; new[:, j+1:] -= err[:, None] * Hinv[j, j+1:]")


# --- 4. AWQ scale folding -------------------------------------------------------------------------

def _fold(ln_weight: torch.Tensor, ln_bias: torch.Tensor, linear_weight: torch.Tensor, s: torch.Tensor,
          mistake: str = "") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if mistake == "rows":
        return ln_weight / s, ln_bias / s, linear_weight * s[:, None]
    if mistake == "bias":
        return ln_weight / s, ln_bias.clone(), linear_weight * s
    if mistake == "both":
        return ln_weight * s, ln_bias * s, linear_weight * s
    if mistake == "inverted":
        return ln_weight * s, ln_bias * s, linear_weight / s
    return ln_weight / s, ln_bias / s, linear_weight * s


def reference_fold_awq_scales(ln_weight: torch.Tensor, ln_bias: torch.Tensor, linear_weight: torch.Tensor, s: torch.Tensor) -> Expected:
    args = (ln_weight, ln_bias, linear_weight, s)
    mistakes = []
    for mistake, what in (
        ("rows", "s scales the Linear's input COLUMNS (linear_weight * s, i.e. s[None, :]), not its rows"),
        ("bias", "the LayerNorm's bias is forgotten: it feeds the same channels, divide it by s too"),
        ("both", "both sides multiplied by s: the LayerNorm's weight and bias are DIVIDED by s"),
        ("inverted", "the scales go the wrong way: divide the LayerNorm by s and multiply the Linear by s"),
    ):
        if mistake != "rows" or linear_weight.shape[0] == linear_weight.shape[1]:
            mistakes.append((_fold(*args, mistake), what))
    return Expected(_fold(*args), tuple(mistakes))


def _fold_case(description: str, out: int, width: int, seed: int, dtype: torch.dtype = torch.float32) -> Case:
    g = torch.Generator().manual_seed(seed)
    ln_weight = 1 + 0.1 * torch.randn(width, generator=g, dtype=dtype)
    ln_bias = 0.1 * torch.randn(width, generator=g, dtype=dtype)
    linear_weight = torch.randn(out, width, generator=g, dtype=dtype)
    s = torch.rand(width, generator=g, dtype=dtype) * 3 + 0.25  # some above 1, some below
    return Case(description, (ln_weight, ln_bias, linear_weight, s))


def check_fold_awq_scales(fn: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> bool:
    """``fn(ln_weight, ln_bias, linear_weight, s)`` -> the folded ``(ln_weight, ln_bias, linear_weight)``."""
    return check_function(fn, reference=reference_fold_awq_scales, cases=[
        _fold_case("a LayerNorm of 4 channels before a square 4x4 Linear", 4, 4, 0),
        _fold_case("a LayerNorm of 8 channels before a 3x8 Linear (out_features != in_features)", 3, 8, 1),
        _fold_case("a LayerNorm of 4 channels before a 6x4 Linear", 6, 4, 2),
        _fold_case("float64 tensors (keep their dtype)", 5, 5, 3, torch.float64),
    ], name="fold_awq_scales", compare=naming_mistakes(_items(("ln_weight", "ln_bias", "linear_weight"))),
        hint="W diag(s) (x / s) = W x: return ln_weight / s, ln_bias / s, linear_weight * s[None, :] (new tensors)")
