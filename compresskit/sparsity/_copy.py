"""Helpers shared by the sparsity modules: checks of the data and unit indices that several
functions take. (A copy with ``torch.nn.utils.prune``'s masks made permanent is the core's
:func:`compresskit.models.dense_copy`.)"""

from __future__ import annotations

import torch
from torch import nn


def run_model(model: nn.Module, X: torch.Tensor, name: str = "X") -> torch.Tensor:
    """``model(X)``, with torch's shape errors told as a ValueError that names ``X`` and its shape."""
    try:
        return model(X)
    except RuntimeError as exc:
        raise ValueError(f"`{name}` must fit the model's input; got shape {tuple(X.shape)} ({exc})") from exc


def check_labels(y: torch.Tensor, logits: torch.Tensor) -> None:
    """Class labels for cross-entropy: int64 in [0, classes)."""
    if y.dtype != torch.int64:
        raise TypeError(f"`y` must hold int64 class labels; got dtype {y.dtype}")
    classes = logits.shape[1]
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= classes):
        bad = y[(y < 0) | (y >= classes)][0]
        raise ValueError(f"`y` must hold class labels in [0, {classes - 1}]; got {int(bad)}")


def check_units(name: str, units: object, n: int) -> torch.Tensor:
    """Unit indices: a 1-D integer tensor or a list of ints, each in [0, n) (bools and floats refused)."""
    if isinstance(units, torch.Tensor):
        t = units
    elif isinstance(units, (list, tuple, range)) and all(isinstance(u, int) and not isinstance(u, bool) for u in units):
        t = torch.tensor(list(units), dtype=torch.long)
    else:
        raise TypeError(f"`{name}` must be a list of ints or an integer tensor of unit indices; got {type(units).__name__} {units!r}")
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(f"`{name}` must hold integer unit indices (not a mask or floats); got dtype {t.dtype}")
    t = t.long().flatten()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        raise ValueError(f"`{name}` must hold unit indices in [0, {n - 1}]; got {t.tolist()}")
    return t
