"""Half precision (fp16, bf16) and fixed-point Q-format: two different ways to use 16 bits.

**Floating point** stores a sign, an exponent and a mantissa (IEEE 754 [1]):
``x = (-1)^s * 2^(e - bias) * 1.m``. The exponent makes the spacing between neighbours grow
with the magnitude, so the *relative* error stays about ``2^-(mantissa bits + 1)``:

=========  ========  ========  =================  ==========================
format     exponent  mantissa  largest finite     relative precision (eps)
=========  ========  ========  =================  ==========================
float32    8         23        3.4e38             1.19e-7
float16    5         10        65504              9.77e-4
bfloat16   8         7         3.4e38             7.81e-3
=========  ========  ========  =================  ==========================

fp16 overflows to ``inf`` above 65504; bf16 [2] keeps float32's range and gives up precision.

**Fixed point** Qm.n [3] stores one integer ``c`` and a *fixed* scale ``2^-n``: a signed
Qm.n number has 1 sign bit, ``m`` integer bits and ``n`` fractional bits, ``1 + m + n`` bits
in all. The spacing is ``2^-n`` everywhere, and the range is ``[-2^m, 2^m - 2^-n]``::

    c = saturate(round(x * 2^n), -2^(m+n), 2^(m+n) - 1)                    # encode [3]
    x_hat = c * 2^-n                                                        # decode [3]

Qm.n is linear quantization with ``scale = 2^-n`` and ``zero_point = 0``; it has no exponent
per value, which is exactly what fp16 and bf16 have.

References
----------
[1] IEEE 754-2008, "IEEE Standard for Floating-Point Arithmetic".
[2] D. Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", 2019, arXiv:1905.12322.
[3] Texas Instruments, "TMS320C64x DSP Library Programmer's Reference" (Q-format), SPRU565, 2003.
"""

from __future__ import annotations

import torch
from torch import nn

from compresskit._validation import check_choice, check_int, check_module, check_tensor
from compresskit.models import copy_model

HALF_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
ROUNDING = ("nearest", "floor")


def float_format(dtype: torch.dtype) -> dict[str, float | int]:
    """Bits, range and precision of a floating-point dtype, read from ``torch.finfo``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"`dtype` must be a floating-point torch.dtype; got {dtype!r}")
    info = torch.finfo(dtype)
    mantissa = int(round(-torch.log2(torch.tensor(info.eps, dtype=torch.float64)).item()))
    return {
        "bits": info.bits,
        "exponent_bits": info.bits - 1 - mantissa,
        "mantissa_bits": mantissa,
        "max": info.max,
        "smallest_normal": info.smallest_normal,
        "eps": info.eps,
    }


def round_trip(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` stored in ``dtype`` and read back as float32 (overflow becomes +-inf)."""
    x = check_tensor("x", x, floating=True, nonempty=False)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"`dtype` must be a floating-point torch.dtype; got {dtype!r}")
    return x.to(dtype).float()


class HalfPrecision(nn.Module):
    """A copy of ``model`` whose weights and arithmetic are in ``dtype``; float32 in and out.

    A pruned model works (its masks are copied and converted too); ``model`` is not changed.
    """

    def __init__(self, model: nn.Module, dtype: str = "float16") -> None:
        super().__init__()
        check_module("model", model)
        self.dtype = HALF_DTYPES[check_choice("dtype", dtype, list(HALF_DTYPES))]
        self.model = copy_model(model).to(self.dtype).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype)).float()


def _check_q_format(m: int, n: int) -> tuple[int, int]:
    m = check_int("m", m, 0)
    n = check_int("n", n, 0)
    if 1 + m + n > 32:
        raise ValueError(f"a signed Qm.n number must fit in 32 bits (1 + m + n <= 32); got m={m}, n={n}")
    return m, n


def fixed_point_encode(x: torch.Tensor, m: int, n: int, rounding: str = "nearest", saturate: bool = True) -> torch.Tensor:
    """Signed Qm.n integer codes of ``x`` (int64): ``round(x * 2^n)`` on ``1 + m + n`` bits.

    ``rounding``: "nearest" (half to even) or "floor" (what dropping bits by a shift does).
    ``saturate=False`` wraps around like two's-complement overflow instead of clamping:
    a number just above the range comes back large and negative.
    """
    x = check_tensor("x", x, floating=True, finite=True, nonempty=False)
    m, n = _check_q_format(m, n)
    check_choice("rounding", rounding, ROUNDING)
    scaled = x.double() * 2.0**n
    c = (torch.round(scaled) if rounding == "nearest" else torch.floor(scaled)).long()
    lo, hi = -(2 ** (m + n)), 2 ** (m + n) - 1
    if saturate:
        return torch.clamp(c, lo, hi)  # saturation [3]
    return (c - lo) % (2 ** (1 + m + n)) + lo  # two's-complement wrap-around


def fixed_point_decode(c: torch.Tensor, n: int) -> torch.Tensor:
    """Float32 values ``c * 2^-n`` of Qm.n codes."""
    c = check_tensor("c", c, nonempty=False)
    if c.is_floating_point():
        raise TypeError(f"`c` must be an integer tensor; got dtype {c.dtype}")
    n = check_int("n", n, 0, 31)
    return (c.double() * 2.0**-n).float()  # decode [3]


def fixed_point_range(m: int, n: int) -> tuple[float, float, float]:
    """``(smallest, largest, step)`` of signed Qm.n: ``(-2^m, 2^m - 2^-n, 2^-n)``."""
    m, n = _check_q_format(m, n)
    return -(2.0**m), 2.0**m - 2.0**-n, 2.0**-n
