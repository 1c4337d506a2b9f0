"""Round-to-nearest (RTN) weight-only quantization per output channel and per group of input columns.

A Linear weight ``W`` of shape (out_features, in_features) is cut along its input columns into
groups of ``group_size`` (``None``: one group per row, i.e. per channel). Each (row, group) gets its
own ``scale`` and ``zero_point`` (the affine scheme of torch.ao.quantization and torchao)::

    scale      = (max(w_max, 0) - min(w_min, 0)) / (quant_max - quant_min)     asymmetric
    zero_point = quant_min - round(min(w_min, 0) / scale)
    scale      = max|w| / ((quant_max - quant_min) / 2), zero_point = 0         symmetric
    code       = clamp(round(w * (1 / scale)) + zero_point, quant_min, quant_max)
    w_hat      = (code - zero_point) * scale

Asymmetric codes are unsigned, in [0, 2**bits - 1]; symmetric codes are signed, in
[-2**(bits-1), 2**(bits-1) - 1]. Scales are rounded to float16 (``scale_dtype``) before use, so a
file holding float16 scales gives back exactly the weights that were measured.

Storage, as counted and as written (:func:`save_quantized`): ``bits * n / 8`` bytes of codes (int4
packed two per byte by :func:`pack_int4`, low nibble first, as ONNX Runtime's MatMulNBits reads
them) plus 2 + 2 bytes (fp16 scale and zero point) per group.

References
----------
[1] Frantar, Ashkboos, Hoefler, Alistarh. "GPTQ: Accurate Post-Training Quantization for Generative
    Pre-trained Transformers", 2022, arXiv:2210.17323 (RTN is its baseline, Sec. 5).
[2] Dettmers, Zettlemoyer. "The case for 4-bit precision: k-bit Inference Scaling Laws", 2022,
    arXiv:2212.09720 (group-wise "blocking" of scales).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
from typing import Mapping

import torch

from compresskit._validation import check_int, check_tensor, check_type

__all__ = [
    "QuantizedWeight",
    "choose_qparams",
    "dequantize",
    "load_quantized",
    "pack_int4",
    "quant_range",
    "quantize",
    "quantize_rtn",
    "quantized_bytes",
    "save_quantized",
    "unpack_int4",
]


def quant_range(bits: int, symmetric: bool = False) -> tuple[int, int]:
    """``(quant_min, quant_max)``: [0, 2**bits - 1] asymmetric, [-2**(bits-1), 2**(bits-1) - 1] symmetric."""
    bits = check_int("bits", bits, 2, 8)
    check_type("symmetric", symmetric, bool)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)


def _groups(weight: torch.Tensor, group_size: int | None) -> int:
    """The group size actually used; ``None`` means one group per row (per channel)."""
    check_tensor("weight", weight, ndim=2, floating=True, finite=True)
    in_features = weight.shape[1]
    if group_size is None:
        return in_features
    group_size = check_int("group_size", group_size, 1)
    if in_features % group_size:
        raise ValueError(f"`group_size` must divide in_features={in_features}; got {group_size}")
    return group_size


def choose_qparams(
    weight: torch.Tensor,
    bits: int,
    group_size: int | None = None,
    symmetric: bool = False,
    scale_dtype: torch.dtype = torch.float16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale`` (float32 holding ``scale_dtype`` values) and integer ``zero_point``, each (out, in / group_size)."""
    quant_min, quant_max = quant_range(bits, symmetric)
    g = _groups(weight, group_size)
    w = _real(weight).reshape(weight.shape[0], -1, g)  # (out, groups, g)
    w_min = w.amin(dim=2).clamp(max=0)
    w_max = w.amax(dim=2).clamp(min=0)
    eps = torch.finfo(torch.float32).eps  # as torch's observers: an all-zero group gets a tiny scale
    if symmetric:
        scale = torch.maximum(-w_min, w_max) / ((quant_max - quant_min) / 2)
    else:
        scale = (w_max - w_min) / (quant_max - quant_min)
    scale = scale.clamp(min=eps).to(scale_dtype).to(w.dtype)
    if symmetric:
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    else:
        zero_point = (quant_min - torch.round(w_min / scale)).clamp(quant_min, quant_max).to(torch.int32)
    return scale, zero_point


def _expand(t: torch.Tensor, g: int) -> torch.Tensor:
    """(out, groups) -> (out, groups * g): one value per weight."""
    return t.repeat_interleave(g, dim=1)


def quantize(weight: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int, symmetric: bool = False) -> torch.Tensor:
    """Integer codes (int16) of ``weight`` for per-group ``scale``/``zero_point`` of shape (out, groups)."""
    quant_min, quant_max = quant_range(bits, symmetric)
    check_tensor("weight", weight, ndim=2, floating=True, finite=True)
    g = _check_qparams(weight.shape, scale, zero_point)
    return _round(_real(weight), _expand(scale, g), _expand(zero_point, g), quant_min, quant_max)


def _real(t: torch.Tensor) -> torch.Tensor:
    """float64 stays float64 (the tests' slow references); anything else computes in float32."""
    return t.detach().to(torch.float64 if t.dtype == torch.float64 else torch.float32)


def _round(w: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, quant_min: int, quant_max: int) -> torch.Tensor:
    """``clamp(round(w * (1 / scale)) + zero_point)``: torch's fake_quantize multiplies by 1 / scale."""
    return (torch.round(w * (1.0 / scale)) + zero_point).clamp(quant_min, quant_max).to(torch.int16)


def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """``(code - zero_point) * scale`` per group, float32 of the codes' shape."""
    check_tensor("codes", codes, ndim=2)
    if codes.is_floating_point():
        raise TypeError(f"`codes` must be an integer tensor; got dtype {codes.dtype}")
    g = _check_qparams(codes.shape, scale, zero_point)
    return (codes.to(scale.dtype) - _expand(zero_point, g).to(scale.dtype)) * _expand(scale, g)


def _check_qparams(shape: torch.Size, scale: torch.Tensor, zero_point: torch.Tensor) -> int:
    check_tensor("scale", scale, ndim=2, floating=True, finite=True)
    check_tensor("zero_point", zero_point, ndim=2)
    if zero_point.is_floating_point():
        raise TypeError(f"`zero_point` must be an integer tensor; got dtype {zero_point.dtype}")
    if scale.shape != zero_point.shape or scale.shape[0] != shape[0] or shape[1] % scale.shape[1]:
        raise ValueError(
            f"`scale` and `zero_point` must have shape (out, groups) with groups dividing in_features for a weight "
            f"of shape {tuple(shape)}; got {tuple(scale.shape)} and {tuple(zero_point.shape)}"
        )
    if not bool((scale > 0).all()):
        raise ValueError(f"`scale` must be positive; got minimum {float(scale.min())}")
    return shape[1] // scale.shape[1]


@dataclasses.dataclass(frozen=True)
class QuantizedWeight:
    """A group-quantized weight: codes (out, in), scale and zero_point (out, in / group_size)."""

    codes: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    bits: int
    group_size: int
    symmetric: bool = False

    def __post_init__(self) -> None:
        quant_min, quant_max = quant_range(self.bits, self.symmetric)
        check_tensor("codes", self.codes, ndim=2)
        if self.codes.is_floating_point() or self.codes.dtype == torch.bool or self.codes.is_complex():
            raise TypeError(f"`codes` must be an integer tensor; got dtype {self.codes.dtype}")
        if int(self.codes.min()) < quant_min or int(self.codes.max()) > quant_max:
            raise ValueError(f"`codes` must be in [{quant_min}, {quant_max}] for bits={self.bits}, symmetric={self.symmetric}; "
                             f"got values in [{int(self.codes.min())}, {int(self.codes.max())}]")
        g = _check_qparams(self.codes.shape, self.scale, self.zero_point)
        if check_int("group_size", self.group_size, 1) != g:
            raise ValueError(f"`group_size` must be in_features / groups = {g} for these scales; got {self.group_size}")

    def dequantize(self) -> torch.Tensor:
        return dequantize(self.codes, self.scale, self.zero_point)


def quantize_rtn(weight: torch.Tensor, bits: int, group_size: int | None = None, symmetric: bool = False) -> QuantizedWeight:
    """Round-to-nearest group-wise quantization of a (out, in) weight: choose_qparams, then quantize."""
    g = _groups(weight, group_size)
    scale, zero_point = choose_qparams(weight, bits, g, symmetric)
    return QuantizedWeight(quantize(weight, scale, zero_point, bits, symmetric), scale, zero_point, bits, g, symmetric)


# --- int4 packing ------------------------------------------------------------------------------

def pack_int4(codes: torch.Tensor, signed: bool = False) -> torch.Tensor:
    """Two 4-bit codes per byte along the last dimension: code 2i in the low nibble, 2i+1 in the high one.

    Unsigned codes are in [0, 15]; signed ones in [-8, 7] are stored as their two's-complement
    nibble (-1 -> 0xF). An odd length is padded with one zero code. Returns uint8 (..., ceil(n / 2)).
    """
    check_tensor("codes", codes, nonempty=False)
    check_type("signed", signed, bool)
    if codes.is_floating_point() or codes.dtype == torch.bool or codes.is_complex():
        raise TypeError(f"`codes` must be an integer tensor; got dtype {codes.dtype}")
    low, high = (-8, 7) if signed else (0, 15)
    if codes.numel() and (int(codes.min()) < low or int(codes.max()) > high):
        raise ValueError(f"`codes` must be in [{low}, {high}] (signed={signed}); got values in [{int(codes.min())}, {int(codes.max())}]")
    nibbles = codes.to(torch.int16) & 0xF  # two's complement for negative codes
    if nibbles.shape[-1] % 2:
        nibbles = torch.nn.functional.pad(nibbles, (0, 1))
    return (nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor, n: int, signed: bool = False) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: the first ``n`` codes along the last dimension, int8."""
    check_tensor("packed", packed, nonempty=False)
    if packed.dtype != torch.uint8:
        raise TypeError(f"`packed` must be a uint8 tensor; got dtype {packed.dtype}")
    n = check_int("n", n, 0, 2 * packed.shape[-1] if packed.dim() else 0)
    if n <= 2 * packed.shape[-1] - 2:
        raise ValueError(f"`n` must be {2 * packed.shape[-1] - 1} or {2 * packed.shape[-1]} for {packed.shape[-1]} bytes; got {n}")
    check_type("signed", signed, bool)
    p = packed.to(torch.int16)
    codes = torch.stack([p & 0xF, p >> 4], dim=-1).flatten(-2)[..., :n]
    if signed:
        codes = torch.where(codes > 7, codes - 16, codes)
    return codes.to(torch.int8)


def quantized_bytes(out_features: int, in_features: int, bits: int, group_size: int | None = None) -> int:
    """Bytes that counting promises for one quantized weight: ``bits * n / 8`` + 2 + 2 (fp16 scale and zero point) per group.

    The file of :func:`save_quantized` holds 3-bit codes in 4-bit nibbles; compare its real bytes with this.
    """
    out_features, in_features = check_int("out_features", out_features, 1), check_int("in_features", in_features, 1)
    bits = check_int("bits", bits, 2, 8)
    g = in_features if group_size is None else check_int("group_size", group_size, 1, in_features)
    return -(-bits * out_features * in_features // 8) + out_features * (-(-in_features // g)) * (2 + 2)


# --- the file ------------------------------------------------------------------------------------
# MAGIC | header length (uint64, little-endian) | header (JSON) | payload | SHA-256 of everything before it.
# A quantized tensor's payload: codes (bits <= 4: pack_int4 along each row; else int8), then float16
# scales, then float16 zero points, each (out, groups) row-major. A float tensor: its bytes in `dtype`.

MAGIC = b"CKQUANT1"
_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def _payload(value: torch.Tensor | QuantizedWeight, float_dtype: torch.dtype) -> tuple[dict, bytes]:
    if isinstance(value, QuantizedWeight):
        if value.bits <= 4:
            codes = pack_int4(value.codes, signed=value.symmetric)
        else:
            codes = value.codes.to(torch.int8 if value.symmetric else torch.uint8)
        parts = [codes, value.scale.half(), value.zero_point.half()]
        meta = {"kind": "quantized", "shape": list(value.codes.shape), "bits": value.bits,
                "group_size": value.group_size, "symmetric": value.symmetric}
    else:
        parts = [value.detach().to(float_dtype)]
        meta = {"kind": "float", "shape": list(value.shape), "dtype": str(float_dtype).removeprefix("torch.")}
    data = b"".join(p.contiguous().numpy().tobytes() for p in parts)
    return meta, data


def save_quantized(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor | QuantizedWeight], float_dtype: torch.dtype = torch.float32) -> int:
    """Write ``tensors`` (name -> float tensor or QuantizedWeight) to ``path``; returns the bytes written.

    A tensor that is the same object as (or shares storage and shape with) an earlier one, a tied
    embedding and head say, is stored once and recorded as an alias.
    """
    check_type("path", path, (str, os.PathLike))
    check_type("tensors", tensors, Mapping)
    if float_dtype not in _DTYPES.values():
        raise ValueError(f"`float_dtype` must be torch.float32 or torch.float16; got {float_dtype!r}")
    entries, chunks, offset, seen = [], [], 0, {}
    for name, value in tensors.items():
        check_type(f"tensors[{name!r}]", value, (torch.Tensor, QuantizedWeight))
        if isinstance(value, torch.Tensor):
            check_tensor(f"tensors[{name!r}]", value, floating=True, finite=True, nonempty=False)
        key = id(value) if isinstance(value, QuantizedWeight) else (value.data_ptr(), tuple(value.shape), value.dtype)
        if key in seen and (isinstance(value, QuantizedWeight) or value.numel()):
            entries.append({"name": name, "kind": "alias", "of": seen[key]})
            continue
        seen[key] = name
        meta, data = _payload(value, float_dtype)
        entries.append({"name": name, **meta, "offset": offset, "nbytes": len(data)})
        chunks.append(data)
        offset += len(data)
    header = json.dumps({"version": 1, "tensors": entries}).encode()
    body = MAGIC + struct.pack("<Q", len(header)) + header + b"".join(chunks)
    with open(path, "wb") as f:
        f.write(body + hashlib.sha256(body).digest())
    return len(body) + 32


def _read(meta: dict, data: bytes) -> torch.Tensor | QuantizedWeight:
    shape = meta["shape"]
    if meta["kind"] == "float":
        return torch.frombuffer(bytearray(data), dtype=_DTYPES[meta["dtype"]]).reshape(shape).float()
    out, n = shape
    bits, g, symmetric = meta["bits"], meta["group_size"], meta["symmetric"]
    code_bytes = out * ((n + 1) // 2 if bits <= 4 else n)
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    if bits <= 4:
        codes = unpack_int4(raw[:code_bytes].reshape(out, -1), n, signed=symmetric)
    else:
        codes = raw[:code_bytes].view(torch.int8 if symmetric else torch.uint8).reshape(out, n)
    q = raw[code_bytes:].view(torch.float16).float().reshape(2, out, n // g)
    return QuantizedWeight(codes.to(torch.int16), q[0].clone(), q[1].to(torch.int32), bits, g, symmetric)


def load_quantized(path: str | os.PathLike) -> dict[str, torch.Tensor | QuantizedWeight]:
    """Read a file written by :func:`save_quantized`; a file that is not one, or is damaged, is a ValueError."""
    check_type("path", path, (str, os.PathLike))
    if not os.path.isfile(path):
        raise ValueError(f"`path` must be an existing file; got {os.fspath(path)!r}")
    with open(path, "rb") as f:
        blob = f.read()
    if not blob.startswith(MAGIC):
        raise ValueError(f"`path` is not a compresskit quantized file (no {MAGIC!r} at its start): {os.fspath(path)!r}")
    body, digest = blob[:-32], blob[-32:]
    if len(blob) < len(MAGIC) + 8 + 32 or hashlib.sha256(body).digest() != digest:
        raise ValueError(f"`path` is damaged: its SHA-256 checksum does not match ({len(blob)} bytes): {os.fspath(path)!r}")
    (length,) = struct.unpack("<Q", body[len(MAGIC) : len(MAGIC) + 8])
    start = len(MAGIC) + 8 + length
    header, payload = json.loads(body[len(MAGIC) + 8 : start]), body[start:]
    result: dict[str, torch.Tensor | QuantizedWeight] = {}
    for meta in header["tensors"]:
        if meta["kind"] == "alias":
            result[meta["name"]] = result[meta["of"]]
        else:
            result[meta["name"]] = _read(meta, payload[meta["offset"] : meta["offset"] + meta["nbytes"]])
    return result
