"""Low rank: the singular values of a weight matrix and its truncated SVD as two smaller layers.

Every real matrix ``W`` (out x in) has a singular value decomposition (SVD)::

    W = U diag(sigma) V^T,     sigma_1 >= sigma_2 >= ... >= sigma_k >= 0,  k = min(out, in)   (1)

Eckart and Young [1]: keeping the ``r`` largest singular values gives the best rank-r matrix in
the Frobenius (and spectral) norm, and its error is the energy of the values dropped::

    W_r = U_r diag(sigma_r) V_r^T = B A,  B = U_r (out x r),  A = diag(sigma_r) V_r^T (r x in)   (2)
    ||W - W_r||_F = sqrt(sigma_{r+1}^2 + ... + sigma_k^2)                                       (3)

So a Linear layer ``y = W x + b`` becomes two: ``y = B (A x) + b``, a Linear(in, r) without bias
followed by a Linear(r, out) with the bias. Its weights take ``r (in + out)`` numbers where ``W``
took ``in * out``, fewer only when ``r < in * out / (in + out)`` (64 for a 128 x 128 layer, 102
for 128 x 512), and its multiply-adds fall by the same ratio. A trained network's weights are
not low rank (their spectrum decays slowly), which is why low rank alone compresses them less
well than quantization; LoRA (:mod:`compresskit.llm.lora`) uses low rank for the *update* instead.

References
----------
[1] Eckart, Young. "The approximation of one matrix by another of lower rank", Psychometrika 1(3),
    1936 (the theorem of Eq. (3)).
[2] Denton, Zaremba, Bruna, LeCun, Fergus. "Exploiting Linear Structure Within Convolutional
    Networks for Efficient Evaluation", 2014, arXiv:1404.0736 (truncated SVD of a trained layer).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from compresskit._validation import check_int, check_module, check_real, check_tensor, check_type
from compresskit.models import dense_copy

__all__ = [
    "LowRankLinear",
    "dense_bytes",
    "effective_weight",
    "low_rank_bytes",
    "low_rank_factors",
    "low_rank_linear",
    "low_rank_model",
    "rank_for_energy",
    "singular_values",
    "spectra",
    "truncation_error",
]


# --- pure tensor functions -----------------------------------------------------------------------

def _weight(weight: torch.Tensor) -> torch.Tensor:
    check_tensor("weight", weight, ndim=2, floating=True, finite=True)
    return weight.detach().to(torch.float64 if weight.dtype == torch.float64 else torch.float32)


def singular_values(weight: torch.Tensor) -> torch.Tensor:
    """sigma of Eq. (1): the min(out, in) singular values of a (out, in) weight, largest first."""
    return torch.linalg.svdvals(_weight(weight))  # (k,)


def _check_rank(rank: object, weight_shape: tuple[int, ...]) -> int:
    """An integer rank in [1, min(out, in)]."""
    return check_int("rank", rank, 1, min(weight_shape))


def low_rank_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, A)`` of Eq. (2): B (out, rank) = U_r, A (rank, in) = diag(sigma_r) V_r^T; B @ A is the best rank-r W."""
    w = _weight(weight)
    rank = _check_rank(rank, tuple(w.shape))
    U, S, Vh = torch.linalg.svd(w, full_matrices=False)  # (out, k), (k,), (k, in)
    return U[:, :rank].contiguous(), (S[:rank, None] * Vh[:rank]).contiguous()  # Eq. (2) in [1]


def truncation_error(singular_values: torch.Tensor, rank: int) -> float:
    """||W - W_r||_F from the spectrum alone: sqrt of the sum of the dropped sigma^2 (Eq. (3))."""
    s = check_tensor("singular_values", singular_values, ndim=1, floating=True, finite=True)
    rank = check_int("rank", rank, 0, s.numel())
    if bool((s < 0).any()):
        raise ValueError(f"`singular_values` must be non-negative; got minimum {float(s.min())}")
    return float(s.double()[rank:].square().sum().sqrt())  # Eq. (3) in [1]


def rank_for_energy(singular_values: torch.Tensor, energy: float) -> int:
    """The smallest r whose sigma_1..sigma_r hold at least ``energy`` of sum(sigma^2) (e.g. 0.9)."""
    s = check_tensor("singular_values", singular_values, ndim=1, floating=True, finite=True)
    energy = check_real("energy", energy, 0.0, 1.0, low_open=True)
    if bool((s < 0).any()):
        raise ValueError(f"`singular_values` must be non-negative; got minimum {float(s.min())}")
    kept = s.double().square().cumsum(0) / s.double().square().sum().clamp(min=1e-300)
    return min(int((kept < energy - 1e-12).sum()) + 1, s.numel())


def low_rank_bytes(out_features: int, in_features: int, rank: int, bias: bool = True, bytes_per_value: int = 4) -> int:
    """Bytes of the two factors, ``rank * (in + out)`` numbers (+ ``out`` for the bias), at ``bytes_per_value`` each."""
    out_features, in_features = check_int("out_features", out_features, 1), check_int("in_features", in_features, 1)
    rank = check_int("rank", rank, 1)
    check_type("bias", bias, bool)
    bytes_per_value = check_int("bytes_per_value", bytes_per_value, 1)
    return (rank * (in_features + out_features) + (out_features if bias else 0)) * bytes_per_value


def dense_bytes(out_features: int, in_features: int, bias: bool = True, bytes_per_value: int = 4) -> int:
    """Bytes of the dense layer, ``in * out`` numbers (+ ``out`` for the bias), at ``bytes_per_value`` each."""
    out_features, in_features = check_int("out_features", out_features, 1), check_int("in_features", in_features, 1)
    check_type("bias", bias, bool)
    bytes_per_value = check_int("bytes_per_value", bytes_per_value, 1)
    return (in_features * out_features + (out_features if bias else 0)) * bytes_per_value


# --- modules -------------------------------------------------------------------------------------

def effective_weight(linear: nn.Linear) -> torch.Tensor:
    """The weight the forward pass uses, detached: ``weight_orig * weight_mask`` for a layer pruned with
    torch.nn.utils.prune (its cached ``weight`` is stale after an optimizer step), else ``weight``."""
    check_type("linear", linear, nn.Linear)
    orig, mask = getattr(linear, "weight_orig", None), getattr(linear, "weight_mask", None)
    if isinstance(orig, torch.Tensor) and isinstance(mask, torch.Tensor):
        return (orig * mask).detach()
    return linear.weight.detach()


class LowRankLinear(nn.Sequential):
    """``Linear(in, rank, bias=False)`` then ``Linear(rank, out)``: an nn.Sequential that also answers
    ``in_features``, ``out_features`` and ``rank``, so code that reads a Linear's width (the course
    model's attention reads ``q.out_features``) still works."""

    def __init__(self, first: nn.Linear, second: nn.Linear) -> None:
        check_type("first", first, nn.Linear)
        check_type("second", second, nn.Linear)
        if second.in_features != first.out_features:
            raise ValueError(f"`second` must take first's {first.out_features} outputs; got in_features={second.in_features}")
        super().__init__(first, second)

    @property
    def in_features(self) -> int:
        return self[0].in_features

    @property
    def out_features(self) -> int:
        return self[1].out_features

    @property
    def rank(self) -> int:
        return self[0].out_features


def low_rank_linear(linear: nn.Linear, rank: int) -> LowRankLinear:
    """:class:`LowRankLinear`: ``Linear(in, rank, bias=False)`` holding A, then ``Linear(rank, out)`` holding
    B and the bias, of Eq. (2).

    The caller's layer is not changed; a layer pruned with torch.nn.utils.prune is factorised as its
    forward pass sees it (``weight_orig * weight_mask``).
    """
    check_type("linear", linear, nn.Linear)
    rank = _check_rank(rank, (linear.out_features, linear.in_features))
    weight = effective_weight(linear)
    if not bool(torch.isfinite(weight).all()):
        raise ValueError(f"`linear` must have a finite weight; got {int((~torch.isfinite(weight)).sum())} NaN or inf value(s)")
    B, A = low_rank_factors(weight, rank)
    first = nn.Linear(linear.in_features, rank, bias=False, dtype=weight.dtype, device=weight.device)
    second = nn.Linear(rank, linear.out_features, bias=linear.bias is not None, dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        first.weight.copy_(A)  # (rank, in)
        second.weight.copy_(B)  # (out, rank)
        if linear.bias is not None:
            second.bias.copy_(linear.bias)
    return LowRankLinear(first, second).train(linear.training)


def _linears(model: nn.Module, names: Sequence[str] | None) -> dict[str, nn.Linear]:
    """The Linear layers to factorise: ``names``, or every Linear whose weight is not shared (a tied head)."""
    counts: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        counts[id(p)] = counts.get(id(p), 0) + 1
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    if names is None:
        return {n: m for n, m in linears.items() if counts.get(id(m.weight), 1) == 1}
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"`names` must be a sequence of layer names; got {type(names).__name__} {names!r}")
    missing = [n for n in names if n not in linears]
    if missing or not names:
        raise ValueError(f"`names` must name nn.Linear layers of `model` (e.g. {list(linears)[:2]}); got {list(names)!r}")
    return {n: linears[n] for n in names}


def _check_finite(linears: dict[str, nn.Linear]) -> None:
    for name, m in linears.items():
        w = effective_weight(m)
        if not isinstance(w, torch.Tensor) or not w.is_floating_point():
            raise TypeError(f"`model` must have floating-point Linear weights; got {type(w).__name__} in `{name}`")
        if not bool(torch.isfinite(w).all()):
            raise ValueError(f"`model` must have finite weights; got NaN or inf in `{name}.weight`")


def spectra(model: nn.Module, names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The singular values of each Linear weight (default: every Linear but a tied head), largest first."""
    check_module("model", model)
    linears = _linears(model, names)
    _check_finite(linears)
    return {n: singular_values(effective_weight(m)) for n, m in linears.items()}


def low_rank_model(model: nn.Module, rank: int, names: Sequence[str] | None = None) -> nn.Module:
    """A copy of ``model`` with each named Linear (default: every Linear but a tied head) replaced by
    :func:`low_rank_linear` at ``rank``. The caller's model is not changed; a model pruned with
    torch.nn.utils.prune is factorised as its forward pass sees it (the copy's masks made permanent).
    """
    check_module("model", model)
    linears = _linears(model, names)
    if not linears:
        raise ValueError(f"`model` must contain an nn.Linear whose weight is not shared; got {type(model).__name__} with none")
    rank = check_int("rank", rank, 1)
    for name, m in linears.items():
        if rank > min(m.in_features, m.out_features):
            raise ValueError(f"`rank` must be in [1, {min(m.in_features, m.out_features)}] for `{name}` "
                             f"({m.out_features} x {m.in_features}); got {rank}")
    _check_finite(linears)
    new = dense_copy(model)
    for name in linears:
        parent, _, child = name.rpartition(".")
        holder = new.get_submodule(parent) if parent else new
        setattr(holder, child, low_rank_linear(getattr(holder, child), rank))
    return new
