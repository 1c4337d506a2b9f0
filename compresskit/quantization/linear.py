"""Linear (uniform) quantization: affine and symmetric, per-tensor and per-channel.

A real value ``x`` is stored as an integer ``q`` on a grid ``[quant_min, quant_max]``, such as
``[0, 255]`` (uint8) or ``[-128, 127]`` (int8), with a float ``scale`` and an integer
``zero_point`` [1, 2]::

    q     = clamp(round(x / scale) + zero_point, quant_min, quant_max)      # Eqs. (1)-(2) in [2]
    x_hat = scale * (q - zero_point)                                        # Eq. (1) in [1], (3) in [2]

The parameters come from the range ``[min_val, max_val]`` that the data (or a calibrator,
see :mod:`compresskit.quantization.calibration`) gives, exactly as PyTorch's
``MinMaxObserver`` / ``PerChannelMinMaxObserver`` compute them: the range is first widened to
include 0, so that 0 is exactly representable (zero padding, ReLU outputs), then

* affine:    ``scale = (max_val - min_val) / (quant_max - quant_min)``,
             ``zero_point = quant_min - round(min_val / scale)``;
* symmetric: ``scale = max(|min_val|, max_val) / ((quant_max - quant_min) / 2)``,
             ``zero_point = 0`` on a signed grid, 128 on [0, 255], the middle of other unsigned grids.

``scale`` is never below ``eps`` (float32's machine epsilon), so a constant-zero tensor
still quantizes. :func:`fake_quantize` equals ``torch.fake_quantize_per_tensor_affine`` and
``torch.fake_quantize_per_channel_affine`` bit for bit (tests/test_quantization_linear.py).

References
----------
[1] B. Jacob et al., "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", CVPR 2018, arXiv:1712.05877.
[2] R. Krishnamoorthi, "Quantizing deep convolutional networks for efficient inference:
    A whitepaper", 2018, arXiv:1806.08342.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch

from compresskit._validation import check_choice, check_int, check_tensor

SCHEMES = ("affine", "symmetric")
EPS = torch.finfo(torch.float32).eps


# --- the integer grid and its parameters --------------------------------------------------

def check_bits(bits: int) -> int:
    """``bits`` must be an integer in [1, 16]."""
    return check_int("bits", bits, 1, 16)


def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """``(quant_min, quant_max)`` of a ``bits``-bit grid: [-2^(b-1), 2^(b-1)-1] or [0, 2^b - 1]."""
    bits = check_bits(bits)
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def check_qrange(quant_min: int, quant_max: int) -> tuple[int, int]:
    """Integers with ``quant_min < quant_max``, a grid of at most 16 bits that contains 0."""
    quant_min = check_int("quant_min", quant_min, -(2**15), 0)
    quant_max = check_int("quant_max", quant_max, 0, 2**16 - 1)
    if quant_min >= quant_max:
        raise ValueError(f"`quant_min` must be < `quant_max`; got quant_min={quant_min}, quant_max={quant_max}")
    if quant_max - quant_min > 2**16 - 1:
        raise ValueError(f"`quant_max - quant_min` must be < 2**16 (a grid of at most 16 bits); got {quant_max - quant_min}")
    return quant_min, quant_max


def check_axis(axis: int, ndim: int) -> int:
    """A valid dimension of an ``ndim``-dimensional tensor; negative counts from the end."""
    axis = check_int("axis", axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"`axis` must be in [{-ndim}, {ndim - 1}] for a tensor with {ndim} dimensions; got {axis}")
    return axis % ndim


def calculate_qparams(
    min_val: torch.Tensor | float,
    max_val: torch.Tensor | float,
    quant_min: int,
    quant_max: int,
    scheme: str = "affine",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, zero_point)`` for the range ``[min_val, max_val]``, as torch's observers compute them.

    ``min_val`` / ``max_val`` are numbers (per-tensor) or 1-D tensors (one per channel).
    Returns float32 ``scale`` and int64 ``zero_point`` of the same shape.
    """
    quant_min, quant_max = check_qrange(quant_min, quant_max)
    check_choice("scheme", scheme, SCHEMES)
    min_val = check_tensor("min_val", torch.as_tensor(min_val, dtype=torch.float32), finite=True)
    max_val = check_tensor("max_val", torch.as_tensor(max_val, dtype=torch.float32), finite=True)
    if min_val.shape != max_val.shape or bool((min_val > max_val).any()):
        raise ValueError(f"`min_val` must be <= `max_val`, of the same shape; got {min_val.tolist()} and {max_val.tolist()}")
    min_neg = torch.clamp(min_val, max=0.0)  # the range always includes 0
    max_pos = torch.clamp(max_val, min=0.0)
    if scheme == "symmetric":
        bound = torch.maximum(-min_neg, max_pos)
        scale = torch.clamp(bound / (float(quant_max - quant_min) / 2), min=EPS)
        # torch: 0 on a signed grid, 128 on uint8's default [0, 255], else the grid's middle.
        middle = 0 if quant_min < 0 else 128 if (quant_min, quant_max) == (0, 255) else (quant_min + quant_max) // 2
        zero_point = torch.full_like(scale, middle, dtype=torch.int64)
    else:
        scale = torch.clamp((max_pos - min_neg) / float(quant_max - quant_min), min=EPS)
        zero_point = quant_min - torch.round(min_neg / scale).to(torch.int64)
        zero_point = torch.clamp(zero_point, quant_min, quant_max)
    return scale, zero_point


def tensor_range(x: torch.Tensor, axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(min, max)`` of ``x``: over everything, or per slice along ``axis`` (per-channel)."""
    x = check_tensor("x", x, floating=True, finite=True)
    if axis is None:
        return x.min(), x.max()
    axis = check_axis(axis, x.dim())
    flat = x.detach().movedim(axis, 0).reshape(x.shape[axis], -1)
    return flat.min(dim=1).values, flat.max(dim=1).values


def _broadcast(param: torch.Tensor, x: torch.Tensor, axis: int | None) -> torch.Tensor:
    """Shape a per-channel parameter (C,) so that it broadcasts along ``axis`` of ``x``."""
    if axis is None or param.dim() == 0:
        return param
    shape = [1] * x.dim()
    shape[axis] = -1
    return param.reshape(shape)


def _check_zero_point(zero_point: object, quant_min: int | None, quant_max: int | None) -> torch.Tensor:
    """An integer (or a tensor of whole numbers) on the grid: torch refuses a fractional
    ``zero_point`` (a float number) and one outside [quant_min, quant_max], so do we, rather
    than truncate it or quantize to a grid that does not hold it. NaN is not a whole number."""
    if isinstance(zero_point, torch.Tensor):
        if zero_point.is_complex() or zero_point.dtype == torch.bool:
            raise TypeError(f"`zero_point` must be an integer tensor; got dtype {zero_point.dtype}")
        if zero_point.is_floating_point() and not bool((zero_point == torch.round(zero_point)).all()):
            fractional = zero_point[zero_point != torch.round(zero_point)]
            raise ValueError(f"`zero_point` must hold whole numbers (it is an integer on the grid); got {fractional.flatten()[:8].tolist()}")
        zp = zero_point.to(torch.int64)
    elif isinstance(zero_point, numbers.Integral) and not isinstance(zero_point, bool):
        zp = torch.tensor(int(zero_point), dtype=torch.int64)
    else:
        raise TypeError(f"`zero_point` must be an integer, as torch requires; got {type(zero_point).__name__} {zero_point!r:.80}")
    if quant_min is not None and quant_max is not None and zp.numel() and bool(((zp < quant_min) | (zp > quant_max)).any()):
        raise ValueError(f"`zero_point` must be in [quant_min, quant_max] = [{quant_min}, {quant_max}], as torch requires; got {zp.flatten()[:8].tolist()}")
    return zp


def _check_params(
    x: torch.Tensor, scale, zero_point, axis: int | None, quant_min: int | None = None, quant_max: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    if isinstance(scale, bool) or not isinstance(scale, (numbers.Real, torch.Tensor)):
        raise TypeError(f"`scale` must be a real number or a float tensor; got {type(scale).__name__} {scale!r:.80}")
    scale = torch.as_tensor(scale, dtype=torch.float32)
    zero_point = _check_zero_point(zero_point, quant_min, quant_max)
    if not bool(torch.isfinite(scale).all()) or bool((scale <= 0).any()):
        raise ValueError(f"`scale` must be finite and > 0; got {scale.flatten()[:8].tolist()}")
    if axis is not None:
        axis = check_axis(axis, x.dim())
        if scale.shape != (x.shape[axis],) or zero_point.shape != (x.shape[axis],):
            raise ValueError(
                f"`scale` and `zero_point` must have shape ({x.shape[axis]},) for axis {axis}; "
                f"got {tuple(scale.shape)} and {tuple(zero_point.shape)}"
            )
    elif scale.numel() != 1 or zero_point.numel() != 1:
        raise ValueError(f"per-tensor `scale` and `zero_point` must be single numbers; got shapes {tuple(scale.shape)}, {tuple(zero_point.shape)}")
    scale = scale.to(x.device)
    zero_point = zero_point.to(x.device)
    return scale.reshape(-1) if axis is not None else scale.reshape(()), zero_point.reshape(-1) if axis is not None else zero_point.reshape(()), axis


# --- quantize, dequantize, fake-quantize -------------------------------------------------

def storage_dtype(quant_min: int, quant_max: int) -> torch.dtype:
    """The smallest integer dtype that holds the grid: uint8 for grids in [0, 255], else int8, int16 or int32."""
    for dtype in (torch.uint8, torch.int8, torch.int16):
        info = torch.iinfo(dtype)
        if info.min <= quant_min and quant_max <= info.max:
            return dtype
    return torch.int32


def quantize(
    x: torch.Tensor,
    scale: torch.Tensor | float,
    zero_point: torch.Tensor | int,
    quant_min: int,
    quant_max: int,
    axis: int | None = None,
) -> torch.Tensor:
    """Real integers ``q = clamp(round(x / scale) + zero_point, quant_min, quant_max)``.

    The result has the smallest integer dtype that holds the grid (int8 for [-128, 127],
    uint8 for [0, 255]). Rounding is half-to-even, and ``x / scale`` is computed as
    ``x * (1 / scale)`` in float32, as PyTorch does. As in torch, ``zero_point`` must be an
    integer in [quant_min, quant_max].
    """
    x = check_tensor("x", x, floating=True, finite=True, nonempty=False)
    quant_min, quant_max = check_qrange(quant_min, quant_max)
    scale, zero_point, axis = _check_params(x, scale, zero_point, axis, quant_min, quant_max)
    inv_scale = _broadcast(1.0 / scale, x, axis)
    q = torch.round(x.float() * inv_scale) + _broadcast(zero_point, x, axis)  # Eqs. (1)-(2) in [2]
    return torch.clamp(q, quant_min, quant_max).to(storage_dtype(quant_min, quant_max))


def dequantize(q: torch.Tensor, scale: torch.Tensor | float, zero_point: torch.Tensor | int, axis: int | None = None) -> torch.Tensor:
    """Float32 ``scale * (q - zero_point)``: the real values that the integers stand for."""
    q = check_tensor("q", q, nonempty=False)
    if q.is_floating_point():
        raise TypeError(f"`q` must be an integer tensor; got dtype {q.dtype}")
    scale, zero_point, axis = _check_params(q, scale, zero_point, axis)
    return (q.to(torch.int64) - _broadcast(zero_point, q, axis)).float() * _broadcast(scale, q, axis)  # Eq. (1) in [1]


def fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor | float,
    zero_point: torch.Tensor | int,
    quant_min: int,
    quant_max: int,
    axis: int | None = None,
) -> torch.Tensor:
    """Quantize then dequantize, staying in float: what the model sees after quantization.

    Equal to ``torch.fake_quantize_per_tensor_affine`` (``axis=None``) and
    ``torch.fake_quantize_per_channel_affine`` (``axis`` given), and like them it keeps
    ``x``'s dtype (float64 in, float64 out).
    """
    q = quantize(x, scale, zero_point, quant_min, quant_max, axis)
    return dequantize(q, scale, zero_point, axis).to(x.dtype)


# --- one call: a tensor in, its quantized form out ---------------------------------------

@dataclass(frozen=True)
class QTensor:
    """A quantized tensor: integers ``q`` and the parameters that give them meaning."""

    q: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    quant_min: int
    quant_max: int
    axis: int | None = None

    @property
    def bits(self) -> int:
        return int(np.ceil(np.log2(self.quant_max - self.quant_min + 1)))

    def dequantize(self) -> torch.Tensor:
        return dequantize(self.q, self.scale, self.zero_point, self.axis)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What you would save: the integers packed ``bits`` per value, the scale (float32)
        and the zero point (in the grid's own dtype)."""
        return {
            "q": pack_bits(self.q, self.quant_min, self.bits),
            "scale": self.scale.float(),
            "zero_point": self.zero_point.to(storage_dtype(self.quant_min, self.quant_max)),
        }


def quantize_tensor(
    x: torch.Tensor,
    bits: int = 8,
    scheme: str = "affine",
    axis: int | None = None,
    signed: bool | None = None,
) -> QTensor:
    """Quantize ``x`` with min-max ranges: per-tensor (``axis=None``) or per-channel along ``axis``.

    ``signed`` picks the grid: by default signed ([-128, 127]) for symmetric and unsigned
    ([0, 255]) for affine, the usual choices for weights and activations respectively.
    """
    bits = check_bits(bits)
    check_choice("scheme", scheme, SCHEMES)
    signed = (scheme == "symmetric") if signed is None else signed
    quant_min, quant_max = qrange(bits, signed)
    min_val, max_val = tensor_range(x, axis)
    axis = None if axis is None else check_axis(axis, x.dim())
    scale, zero_point = calculate_qparams(min_val, max_val, quant_min, quant_max, scheme)
    q = quantize(x, scale, zero_point, quant_min, quant_max, axis)
    return QTensor(q, scale, zero_point, quant_min, quant_max, axis)


# --- storing b-bit integers in b bits -----------------------------------------------------

def _check_packing(quant_min: int, bits: int) -> tuple[int, int]:
    bits = check_bits(bits)
    quant_min = check_int("quant_min", quant_min, -(2**15), 0)
    return quant_min, bits


def pack_bits(q: torch.Tensor, quant_min: int, bits: int) -> torch.Tensor:
    """Pack integers of the ``bits``-bit grid ``[quant_min, quant_min + 2^bits - 1]`` into a
    flat uint8 tensor, ``bits`` bits per value, on ``q``'s device.

    Each value is offset by ``quant_min`` to be non-negative and written bit by bit (8-bit
    values take one byte each). ``unpack_bits`` reverses it. Values off the grid are refused:
    they cannot be stored in ``bits`` bits (they would wrap around modulo 2^bits).
    """
    quant_min, bits = _check_packing(quant_min, bits)
    q = check_tensor("q", q, nonempty=False)
    if q.is_floating_point() or q.is_complex() or q.dtype == torch.bool:
        raise TypeError(f"`q` must be an integer tensor (quantize's output); got dtype {q.dtype}")
    quant_max = quant_min + 2**bits - 1
    if q.numel() and (int(q.min()) < quant_min or int(q.max()) > quant_max):
        raise ValueError(
            f"`q` must lie on the {bits}-bit grid [{quant_min}, {quant_max}] given by `quant_min` and `bits`; "
            f"got values in [{int(q.min())}, {int(q.max())}]"
        )
    unsigned = (q.detach().cpu().to(torch.int64) - quant_min).numpy().reshape(-1)
    if bits == 8:
        return torch.from_numpy(unsigned.astype(np.uint8)).to(q.device)
    planes = (unsigned.reshape(-1, 1) >> np.arange(bits)) & 1  # (N, bits), least significant bit first
    return torch.from_numpy(np.packbits(planes.astype(np.uint8).reshape(-1), bitorder="little")).to(q.device)


def unpack_bits(packed: torch.Tensor, quant_min: int, bits: int, numel: int) -> torch.Tensor:
    """The int64 values that :func:`pack_bits` packed (``numel`` of them), flat, on ``packed``'s device.

    ``numel`` cannot exceed what ``packed`` holds (``8 * len(packed) // bits`` values).
    """
    quant_min, bits = _check_packing(quant_min, bits)
    packed = check_tensor("packed", packed, ndim=1, nonempty=False)
    if packed.dtype != torch.uint8:
        raise TypeError(f"`packed` must be a uint8 tensor (pack_bits's output); got dtype {packed.dtype}")
    numel = check_int("numel", numel, 0, 8 * packed.numel() // bits)
    raw = packed.detach().cpu().numpy()
    if bits == 8:
        unsigned = raw[:numel].astype(np.int64)
    else:
        planes = np.unpackbits(raw, bitorder="little")[: numel * bits].reshape(numel, bits)
        unsigned = (planes.astype(np.int64) << np.arange(bits)).sum(axis=1)
    return torch.from_numpy(unsigned + quant_min).to(packed.device)
