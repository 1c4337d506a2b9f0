"""Gradient sparsification for training: send only the largest gradient entries each step, with
or without keeping the rest as a local residual (error feedback).

References
----------
[1] Y. Lin, S. Han, H. Mao, Y. Wang, W. J. Dally, "Deep Gradient Compression: Reducing the
    Communication Bandwidth for Distributed Training", ICLR 2018, arXiv:1712.01887.
[2] A. F. Aji, K. Heafield, "Sparse Communication for Distributed Gradient Descent", EMNLP
    2017, arXiv:1704.05021.
[3] S. U. Stich, J.-B. Cordonnier, M. Jaggi, "Sparsified SGD with Memory", NeurIPS 2018,
    arXiv:1809.07599.

Key equations
-------------
In data-parallel training every worker sends its gradient ``g_t`` to the others each step.
Top-k sparsification sends only the ``k = ceil(density * numel)`` entries of largest
magnitude of each tensor [2]:
``send_t = topk(g_t)``, and the rest is dropped.                                    Eq. (1)
With error feedback (the local accumulation of [1], the memory of [3]) the rest is kept and
added to the next step's gradient, so every update is sent eventually:
``a_t = r_{t-1} + g_t``,  ``send_t = topk(a_t)``,  ``r_t = a_t - send_t``.           Eq. (2)
A sent tensor costs ``k * (v + i)`` bytes (values and indices) instead of ``numel * v``. Eq. (3)

(Deep Gradient Compression adds momentum correction, gradient clipping and warm-up [1]; the
course keeps to the two rules above.) :class:`TopKSparsifier` applies the rule to every
parameter's gradient right after backward, before the optimizer step, as the gradient a
single worker would receive; it counts the bytes sent.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from compresskit._validation import check_int, check_module, check_real, check_tensor


def _k(numel: int, density: float) -> int:
    return max(1, math.ceil(density * numel))


def topk_gradient(grad: torch.Tensor, density: float) -> torch.Tensor:
    """``grad`` with all but its ``ceil(density * numel)`` largest-magnitude entries set to 0 (Eq. (1))."""
    check_tensor("grad", grad, floating=True, finite=True)
    density = check_real("density", density, 0.0, 1.0, low_open=True)
    flat = grad.detach().flatten()
    keep = torch.topk(flat.abs(), _k(flat.numel(), density)).indices
    out = torch.zeros_like(flat)
    out[keep] = flat[keep]  # Eq. (1) in [2]
    return out.view_as(grad)


def message_bytes(numel: int, density: float, *, value_bytes: int = 4, index_bytes: int = 4) -> int:
    """Bytes of one sparsified tensor of ``numel`` entries: ``k (v + i)`` (Eq. (3))."""
    numel = check_int("numel", numel, 1)
    density = check_real("density", density, 0.0, 1.0, low_open=True)
    v, i = check_int("value_bytes", value_bytes, 1), check_int("index_bytes", index_bytes, 1)
    return _k(numel, density) * (v + i)


class TopKSparsifier:
    """Sparsify every gradient of ``model`` after backward (Eq. (1)), with error feedback
    (Eq. (2)) when ``error_feedback``. Use as a context manager around training::

        with TopKSparsifier(model, density=0.01) as sparsifier:
            fit(model, loader, ...)
        sparsifier.bytes_per_step(), sparsifier.dense_bytes_per_step()
    """

    def __init__(self, model: nn.Module, density: float, *, error_feedback: bool = True) -> None:
        check_module("model", model)
        self.density = check_real("density", density, 0.0, 1.0, low_open=True)
        if not isinstance(error_feedback, bool):
            raise TypeError(f"`error_feedback` must be a bool; got {type(error_feedback).__name__} {error_feedback!r}")
        self.error_feedback = error_feedback
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("`model` must have a parameter that requires grad; got none")
        self.residuals = {id(p): torch.zeros_like(p) for p in self.params}
        self.bytes_sent = 0
        self.steps = 0
        self._handles: list = []

    def _hook(self, p: torch.Tensor) -> None:
        grad = p.grad + self.residuals[id(p)] if self.error_feedback else p.grad  # Eq. (2) in [1]
        sent = topk_gradient(grad, self.density)
        if self.error_feedback:
            self.residuals[id(p)] = grad - sent
        p.grad = sent
        self.bytes_sent += message_bytes(p.numel(), self.density)
        if p is self.params[0]:
            self.steps += 1

    def __enter__(self) -> "TopKSparsifier":
        self._handles = [p.register_post_accumulate_grad_hook(self._hook) for p in self.params]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def bytes_per_step(self) -> float:
        """Bytes sent per step, all tensors together."""
        if self.steps == 0:
            raise ValueError("no step has been taken yet: train inside `with TopKSparsifier(...)` first")
        return self.bytes_sent / self.steps

    def dense_bytes_per_step(self, value_bytes: int = 4) -> int:
        """Bytes a dense gradient of every parameter takes: ``numel * v``."""
        return sum(p.numel() for p in self.params) * check_int("value_bytes", value_bytes, 1)
