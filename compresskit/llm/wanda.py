"""Wanda: pruning a language model by weights and activations, against magnitude pruning.

References
----------
[1] M. Sun, Z. Liu, A. Bair, J. Z. Kolter, "A Simple and Effective Pruning Approach for Large
    Language Models", 2023, arXiv:2306.11695 (reference code: github.com/locuslab/wanda).
[2] S. Han, J. Pool, J. Tran, W. J. Dally, "Learning both Weights and Connections for Efficient
    Neural Networks", NeurIPS 2015, arXiv:1506.02626 (magnitude pruning, [1]'s baseline).

Key equations
-------------
A Linear layer ``y = x W^T`` with weight ``W`` (out, in) and calibration inputs ``X`` (tokens, in).
Wanda's score of weight ``W_ij`` is its magnitude times the norm of the input feature it meets:

``S_ij = |W_ij| * ||X_j||_2``,   ``||X_j||_2`` over all calibration tokens.                 Eq. (1)

Scores are compared **within each output row** ``i`` ([1], Sec. 3): each row loses the same
share of its weights (``int(in * sparsity)``, the lowest ``S_ij``). For N:M sparsity (2:4), each
group of ``m`` consecutive inputs of a row keeps its ``n`` highest scores.

Magnitude pruning scores ``S_ij = |W_ij|`` and, as [1]'s baseline does, compares them over the
**whole layer** (``comparison="layer"``); ``comparison="row"`` is the ablation of [1], Table 9.
Magnitude N:M is the same per-group rule with ``|W|``.

Nothing is updated after pruning (no weight reconstruction, unlike SparseGPT). Layers are pruned
block by block as in the reference code: the calibration inputs of block ``b``'s Linear layers
come through blocks ``0 .. b-1`` already pruned, and a block's layers share one pass of inputs.

Why it works: ``||X_j||`` is large for the few input features with outlier activations in large
LLMs, so the small weights that meet them are kept, where magnitude pruning would cut them.
A fold that multiplies input feature ``j`` by ``s`` and divides column ``j`` of ``W`` by ``s``
leaves every ``S_ij`` unchanged, and changes magnitude's choice.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from compresskit._validation import check_choice, check_int, check_module, check_real, check_tensor
from compresskit.llm.model import _batches, calibration_inputs
from compresskit.models import copy_model

__all__ = ["input_norms", "prune_lm", "sparsity_mask", "wanda_mask", "wanda_scores"]


def input_norms(inputs: torch.Tensor) -> torch.Tensor:
    """``||X_j||_2`` of each input feature ``j`` over all rows of ``inputs`` (tokens, in) -> (in,)."""
    check_tensor("inputs", inputs, ndim=2, floating=True, finite=True)
    return inputs.detach().double().pow(2).sum(dim=0).sqrt().to(inputs.dtype)  # the norm in Eq. (1) of [1]


def wanda_scores(weight: torch.Tensor, input_norms: torch.Tensor) -> torch.Tensor:
    """``S = |W| * ||X||``: (out, in) scores from the weight and the input norms (in,)."""
    check_tensor("weight", weight, ndim=2, floating=True, finite=True)
    check_tensor("input_norms", input_norms, ndim=1, floating=True, finite=True)
    if input_norms.shape[0] != weight.shape[1]:
        raise ValueError(f"`input_norms` must have in_features={weight.shape[1]} entries (one per column of `weight`); "
                         f"got shape {tuple(input_norms.shape)}")
    if bool((input_norms < 0).any()):
        raise ValueError("`input_norms` must be non-negative (norms); got a negative entry")
    return weight.detach().abs() * input_norms.detach().to(weight.dtype)[None, :]  # Eq. (1) in [1]


def _check_sparsity(sparsity: float | None, n_m: Sequence[int] | None, in_features: int | None) -> tuple[float | None, tuple[int, int] | None]:
    if n_m is None:
        return check_real("sparsity", 0.5 if sparsity is None else sparsity, 0.0, 1.0, high_open=True), None
    if sparsity is not None:
        raise ValueError(f"`sparsity` must be None when `n_m` is given (N:M fixes the sparsity at 1 - n/m); got {sparsity!r}")
    if isinstance(n_m, (str, bytes)) or not isinstance(n_m, Sequence) or len(n_m) != 2:
        raise TypeError(f"`n_m` must be a pair (n, m), keep n of every m inputs, e.g. (2, 4); got {n_m!r}")
    m = check_int("n_m[1]", n_m[1], 1)
    n = check_int("n_m[0]", n_m[0], 1, m)
    if in_features is not None and in_features % m:
        raise ValueError(f"`n_m` must have m dividing in_features={in_features}; got {(n, m)}")
    return None, (n, m)


def sparsity_mask(scores: torch.Tensor, sparsity: float | None = None, n_m: Sequence[int] | None = None,
                  comparison: str = "row") -> torch.Tensor:
    """0/1 mask (``scores``' shape and dtype, 1 keeps) that drops the lowest scores.

    ``sparsity`` (default 0.5): ``int(in * sparsity)`` per row (``comparison="row"``, Wanda) or
    ``int(numel * sparsity)`` over the whole matrix (``"layer"``, magnitude pruning's baseline).
    ``n_m=(n, m)``: keep the ``n`` highest of every ``m`` consecutive entries of each row (2:4);
    then ``sparsity`` must be None and ``comparison`` does not apply. Ties go to the earlier column.
    """
    check_tensor("scores", scores, ndim=2, floating=True, finite=True)
    check_choice("comparison", comparison, ["row", "layer"])
    sparsity, n_m = _check_sparsity(sparsity, n_m, scores.shape[1])
    s = scores.detach()
    mask = torch.ones_like(s, memory_format=torch.contiguous_format)
    if n_m is not None:
        n, m = n_m
        groups = s.reshape(s.shape[0], -1, m)  # (out, in / m, m)
        drop = groups.sort(dim=-1, stable=True).indices[..., : m - n]  # the m - n lowest of each group
        mask.view(s.shape[0], -1, m).scatter_(-1, drop, 0.0)
    elif comparison == "row":
        k = int(s.shape[1] * sparsity)
        mask.scatter_(1, s.sort(dim=1, stable=True).indices[:, :k], 0.0)  # per output row, Sec. 3 of [1]
    else:
        k = int(s.numel() * sparsity)
        mask.view(-1)[s.flatten().sort(stable=True).indices[:k]] = 0.0  # over the whole layer, [1]'s baseline
    return mask


def wanda_mask(weight: torch.Tensor, input_norms: torch.Tensor, sparsity: float | None = None,
               n_m: Sequence[int] | None = None) -> torch.Tensor:
    """Wanda's 0/1 mask of ``weight`` (1 keeps): the lowest ``|W_ij| * ||X_j||`` of each row dropped."""
    return sparsity_mask(wanda_scores(weight, input_norms), sparsity, n_m, "row")


# --- the model ---------------------------------------------------------------------------------

def _block_linears(model: nn.Module) -> list[list[str]]:
    """The Linear layers inside the model's blocks (the children of its first ModuleList or Sequential
    that hold Linear layers), grouped by block in order. Embeddings and an output head lie outside."""
    for name, container in model.named_modules():
        if isinstance(container, (nn.ModuleList, nn.Sequential)) and container is not model:
            groups = [[f"{name}.{i}.{n}" if n else f"{name}.{i}" for n, m in block.named_modules() if isinstance(m, nn.Linear)]
                      for i, block in enumerate(container)]
            if any(groups):
                return [g for g in groups if g]
    return []


def prune_lm(model: nn.Module, method: str, sparsity: float | None = None, *, n_m: Sequence[int] | None = None,
             calibration: Iterable[torch.Tensor] | None = None, comparison: str | None = None) -> nn.Module:
    """A pruned copy of ``model``: every Linear inside its blocks masked by ``method`` ("wanda", "magnitude").

    ``sparsity`` (default 0.5) or ``n_m=(n, m)`` (2:4) as in :func:`sparsity_mask`; ``comparison``
    defaults to the paper's: "row" for Wanda, "layer" for magnitude. ``calibration``: batches of model
    inputs (needed by Wanda). The masks are ``torch.nn.utils.prune`` masks (``weight_orig``,
    ``weight_mask``, a pre-hook); ``prune.remove`` makes them permanent. A model already pruned with
    ``torch.nn.utils.prune`` keeps its masks: the new ones are combined with them. The caller's
    model is not changed; every argument is checked before anything is computed.
    """
    check_module("model", model)
    check_choice("method", method, ["wanda", "magnitude"])
    comparison = check_choice("comparison", ({"wanda": "row", "magnitude": "layer"}[method] if comparison is None else comparison),
                              ["row", "layer"])
    stages = _block_linears(model)
    if not stages:
        raise ValueError(f"`model` must have blocks (a ModuleList or Sequential) holding nn.Linear layers; got {type(model).__name__} with none")
    modules = dict(model.named_modules())
    for name in (n for stage in stages for n in stage):
        _check_sparsity(sparsity, n_m, modules[name].in_features)
        if not bool(torch.isfinite(modules[name].weight).all()):
            raise ValueError(f"`model` must have finite weights; got NaN or inf in `{name}.weight`")
    if method == "wanda":
        if calibration is None:
            raise ValueError("`calibration` must be given (batches of model inputs) for method 'wanda'; got None")
        calibration = _batches(calibration)  # chapter 9's check: a non-empty sequence of tensors
    new = copy_model(model)
    modules = dict(new.named_modules())
    for stage in stages:  # block by block: inputs through the blocks pruned before, as the reference code does
        inputs = calibration_inputs(new, calibration, stage) if method == "wanda" else {}
        masks = {}
        for name in stage:
            weight = modules[name].weight.detach()
            scores = wanda_scores(weight, input_norms(inputs[name])) if method == "wanda" else weight.abs()  # Eq. (1) in [1]
            masks[name] = sparsity_mask(scores, sparsity, n_m, comparison)
        for name, mask in masks.items():  # after the whole block's inputs were taken
            prune.custom_from_mask(modules[name], "weight", mask)
    return new
