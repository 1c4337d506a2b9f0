"""Argument checks shared by the public API.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the argument,
the rule and the value received, e.g. "`amount` must be in [0, 1]; got 1.5".
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np
import torch

__all__ = [
    "check_amount",
    "check_array",
    "check_choice",
    "check_fraction",
    "check_int",
    "check_module",
    "check_real",
    "check_seed",
    "check_tensor",
    "check_type",
    "module_device",
]


def _show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_type(name: str, value: Any, types: type | tuple[type, ...], what: str | None = None) -> None:
    """Raise TypeError unless ``isinstance(value, types)``."""
    if not isinstance(value, types):
        if what is None:
            names = types if isinstance(types, tuple) else (types,)
            what = " or ".join(t.__name__ for t in names)
        raise TypeError(f"`{name}` must be {what}; got {type(value).__name__} {_show(value)}")


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer; got {type(value).__name__} {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"`{name}` must be an integer in [{lo}, {hi}]; got {value}")
    return value


def check_real(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in the interval given; ``*_open`` excludes that end."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {type(value).__name__} {value!r}")
    value = float(value)
    lo_ok = low is None or (value > low if low_open else value >= low)
    hi_ok = high is None or (value < high if high_open else value <= high)
    if not math.isfinite(value) or not (lo_ok and hi_ok):
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"`{name}` must be in {left}{lo}, {hi}{right}; got {value!r}")
    return value


def check_seed(name: str, value: Any) -> int:
    """A seed for ``torch.manual_seed`` / ``torch.Generator``: an integer in [0, 2**64 - 1]."""
    return check_int(name, value, 0, 2**64 - 1)


def check_fraction(name: str, value: Any) -> float:
    """A fraction in [0, 1] given as a float, where an int would read as a count.

    In ``torch.nn.utils.prune`` an int ``amount`` counts weights, so ``1`` means one weight,
    not all of them. Where a count makes no sense (a sparsity schedule), an int is refused.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        raise TypeError(
            f"`{name}` must be a float fraction in [0, 1] (an int would be a count of weights, as in "
            f"torch.nn.utils.prune's `amount`, which makes no sense here); got int {value!r}, write {float(value)!r}"
        )
    return check_real(name, value, 0.0, 1.0)


def check_amount(name: str, amount: Any, total: int) -> int:
    """torch.nn.utils.prune's ``amount``: a float fraction in [0, 1] or an int count in [0, total].

    Returns the number of entries to prune, rounded as torch does (``round(amount * total)``).
    """
    if isinstance(amount, bool):
        raise TypeError(f"`{name}` must be a float in [0, 1] or a non-negative int; got bool {amount!r}")
    if isinstance(amount, numbers.Integral):
        return check_int(name, amount, 0, total)
    if isinstance(amount, numbers.Real):
        check_real(name, amount, 0.0, 1.0)
        return round(float(amount) * total)
    raise TypeError(f"`{name}` must be a float in [0, 1] or a non-negative int; got {type(amount).__name__} {amount!r}")


def check_tensor(
    name: str,
    value: Any,
    *,
    ndim: int | Sequence[int] | None = None,
    floating: bool = False,
    finite: bool = False,
    nonempty: bool = True,
) -> torch.Tensor:
    """A torch.Tensor with the given number of dimensions, float dtype and finite values."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(value).__name__} {_show(value)}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.dim() not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise ValueError(f"`{name}` must have {want} dimensions; got shape {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor; got dtype {value.dtype}")
    if nonempty and value.numel() == 0:
        raise ValueError(f"`{name}` must not be empty; got shape {tuple(value.shape)}")
    if finite and value.is_floating_point() and not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"`{name}` must be finite; got {bad} NaN or inf value(s) in shape {tuple(value.shape)}")
    return value


def check_array(
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    finite: bool = True,
    nonempty: bool = True,
) -> np.ndarray:
    """A numpy array (or array-like) of numbers with the given number of dimensions."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy's own message is kept
        raise TypeError(f"`{name}` must be array-like; got {type(value).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"`{name}` must hold numbers; got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"`{name}` must have {ndim} dimensions; got shape {arr.shape}")
    if nonempty and arr.size == 0:
        raise ValueError(f"`{name}` must not be empty; got shape {arr.shape}")
    if finite and np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"`{name}` must be finite; got {int((~np.isfinite(arr)).sum())} NaN or inf value(s)")
    return arr


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """One of a fixed set of options."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; got {value!r}")
    return value


def check_module(name: str, value: Any) -> torch.nn.Module:
    """A torch.nn.Module."""
    if not isinstance(value, torch.nn.Module):
        raise TypeError(f"`{name}` must be a torch.nn.Module; got {type(value).__name__} {_show(value)}")
    return value


def module_device(name: str, module: Any) -> torch.device:
    """The device of ``module``'s first parameter, or of its first buffer if it has no parameters.

    A module with neither has no device to run on (it holds no tensors): ValueError.
    """
    check_module(name, module)
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    raise ValueError(
        f"`{name}` must hold at least one parameter or buffer to tell its device; got {type(module).__name__} "
        "with none (pass `device=` explicitly)"
    )
