"""Neuron (unit / channel) pruning: hold whole units at zero, or cut them out of the model.

References
----------
[1] H. Li, A. Kadav, I. Durdanovic, H. Samet, H. P. Graf, "Pruning Filters for Efficient
    ConvNets", ICLR 2017, arXiv:1608.08710.
[2] G. Fang, X. Ma, M. Song, M. Bi Mi, X. Wang, "DepGraph: Towards Any Structural Pruning",
    CVPR 2023, arXiv:2301.12900 (the Torch-Pruning library).
[3] Z. Liu, J. Li, Z. Shen, G. Huang, S. Yan, C. Zhang, "Learning Efficient Convolutional
    Networks through Network Slimming", ICCV 2017, arXiv:1708.06519.

A hidden unit ``j`` of a Linear layer (or output channel ``j`` of a Conv2d) is row ``j`` of
its weight and entry ``j`` of its bias; any BatchNorm after it holds entry ``j`` of its
affine parameters and running statistics; and the next Linear / Conv2d reads it through
input column(s) ``j``. Three separate steps, as in Torch-Pruning [2]:

1. Which units are coupled: :func:`find_couplings` lists, for each prunable layer of an
   ``nn.Sequential``, the BatchNorm and the consumer layer that must shrink with it.
2. How important each unit is: :func:`unit_importance`, the Ln norm of its row or filter,
   ``s_j = ||W_j||_n`` (Eq. (1) in [1]); :func:`keep_units` keeps the largest ones.
3. Cut them out: :func:`remove_units` builds a physically smaller dense model.

"Fixed pruning" (:func:`mask_units`) instead holds the units at zero with
``torch.nn.utils.prune`` masks, so they stay zero while the model trains; removing the same
units later gives the same outputs, because a unit whose weights, bias and BatchNorm affine
parameters are all zero outputs exactly 0 after ReLU-like activations (``f(0) = 0``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune

from compresskit._validation import check_amount, check_module, check_tensor
from compresskit.pruning.masks import copy_model, remove_masks, slice_norms

PRODUCERS = (nn.Linear, nn.Conv2d)
# Layers a unit passes through unchanged in number, and that map an all-zero unit to zero.
PASS_THROUGH = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Tanh, nn.GELU, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, nn.Identity)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class Coupling:
    """Layers that change together when units of ``producer`` are removed (names in the model).

    Attributes
    ----------
    producer : the Linear / Conv2d whose output units (rows, filters) are removed.
    consumer : the next Linear / Conv2d, which loses the input columns those units fed.
    norm : the BatchNorm between them, which loses the same entries; None if there is none.
    group : how many consecutive input features of ``consumer`` each unit feeds: 1 between
        two Linear or two Conv2d layers; H*W when a Conv2d's (C, H, W) output is flattened
        into a Linear layer (unit ``j`` feeds columns ``j*H*W`` to ``(j+1)*H*W - 1``).
    """

    producer: str
    consumer: str
    norm: str | None = None
    group: int = 1


def _units(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _inputs(layer: nn.Module) -> int:
    return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels


def find_couplings(model: nn.Sequential) -> list[Coupling]:
    """Every (producer, BatchNorm, consumer) chain of a flat ``nn.Sequential``.

    A layer is prunable when the next Linear / Conv2d is reached through BatchNorm and
    :data:`PASS_THROUGH` layers only; the last layer (the logits) never is.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"`model` must be an nn.Sequential; got {type(model).__name__}")
    children = list(model.named_children())
    couplings = []
    for i, (name, layer) in enumerate(children):
        if not isinstance(layer, PRODUCERS) or getattr(layer, "groups", 1) != 1:
            continue
        norm = None
        for next_name, nxt in children[i + 1 :]:
            if isinstance(nxt, NORMS) and norm is None:
                norm = next_name
            elif isinstance(nxt, PRODUCERS):
                if getattr(nxt, "groups", 1) == 1 and _inputs(nxt) % _units(layer) == 0:
                    couplings.append(Coupling(name, next_name, norm, _inputs(nxt) // _units(layer)))
                break
            elif not isinstance(nxt, PASS_THROUGH):
                break
    return couplings


def unit_importance(weight: torch.Tensor, n: float = 2) -> torch.Tensor:
    """``||W_j||_n`` of each output unit / filter ``j`` (dim 0): Eq. (1) in [1]."""
    check_tensor("weight", weight, ndim=(2, 4), floating=True, finite=True)
    return slice_norms(weight, n, dim=0)  # Eq. (1) in [1]


def keep_units(importance_scores: torch.Tensor, amount: float | int) -> torch.Tensor:
    """Sorted indices of the units to keep after dropping the ``amount`` least important.

    Raises ValueError when no unit would be left: a layer of zero units cuts the network.
    """
    check_tensor("importance_scores", importance_scores, ndim=1, floating=True, finite=True)
    k = check_amount("amount", amount, importance_scores.numel())
    if k == importance_scores.numel():
        raise ValueError(
            f"`amount` must leave at least one unit; got {amount!r}, which prunes all {k} units of the layer"
        )
    keep = torch.topk(importance_scores, importance_scores.numel() - k).indices
    return keep.sort().values


def _check_coupling(model: nn.Module, coupling: Coupling, keep: torch.Tensor) -> torch.Tensor:
    check_module("model", model)
    if not isinstance(coupling, Coupling):
        raise TypeError(f"`coupling` must be a Coupling (see find_couplings); got {type(coupling).__name__}")
    children = dict(model.named_children())
    for role in ("producer", "norm", "consumer"):
        layer = getattr(coupling, role)
        if layer is not None and layer not in children:
            raise ValueError(f"`coupling` must name layers of `model`: its {role} {layer!r} is not one of {list(children)}")
    producer = getattr(model, coupling.producer)
    if isinstance(coupling.group, bool) or not isinstance(coupling.group, int) or coupling.group < 1:
        raise ValueError(f"`coupling.group` must be a whole number >= 1; got {coupling.group!r}")
    consumer = getattr(model, coupling.consumer)
    if isinstance(producer, (nn.Linear, nn.Conv2d)) and isinstance(consumer, (nn.Linear, nn.Conv2d)) and (
            _inputs(consumer) != _units(producer) * coupling.group):
        raise ValueError(
            f"`coupling` must say how many inputs of {coupling.consumer!r} each unit of {coupling.producer!r} feeds: "
            f"{_units(producer)} units x group {coupling.group} = {_units(producer) * coupling.group}, but "
            f"{coupling.consumer!r} has {_inputs(consumer)} inputs (group is 1 between two Linear or two Conv2d layers)")
    if not isinstance(keep, torch.Tensor):
        raise TypeError(f"`keep` must be a 1-D tensor of unit indices; got {type(keep).__name__} {keep!r:.80}")
    keep = torch.as_tensor(keep)
    if keep.dim() != 1 or keep.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"`keep` must be a 1-D tensor of unit indices; got {keep.dtype} of shape {tuple(keep.shape)}")
    if keep.numel() == 0:
        raise ValueError("`keep` must hold at least one unit; got none (a layer of zero units cuts the network)")
    if int(keep.min()) < 0 or int(keep.max()) >= _units(producer) or keep.unique().numel() != keep.numel():
        raise ValueError(f"`keep` must hold distinct indices in [0, {_units(producer) - 1}]; got {keep.tolist()}")
    return keep.long()


def _unit_mask(tensor: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    mask = torch.zeros_like(tensor)
    mask[keep] = 1
    return mask


def mask_units(model: nn.Module, coupling: Coupling, keep: torch.Tensor) -> nn.Module:
    """Fixed pruning: hold every unit not in ``keep`` at zero with pruning masks (in place).

    Masks the producer's rows and bias and the BatchNorm's weight and bias, so the unit
    outputs exactly 0 and stays 0 while the model trains (its gradients are masked too).
    """
    keep = _check_coupling(model, coupling, keep)
    layers = [getattr(model, coupling.producer)]
    if coupling.norm is not None:
        layers.append(getattr(model, coupling.norm))
    for layer in layers:
        for name in ("weight", "bias"):
            if getattr(layer, name, None) is not None:
                prune.custom_from_mask(layer, name, _unit_mask(getattr(layer, name), keep))
    return model


def _shrink(layer: nn.Module, out_idx: torch.Tensor | None = None, in_idx: torch.Tensor | None = None) -> nn.Module:
    """A copy of a Linear / Conv2d / BatchNorm keeping outputs ``out_idx`` and inputs ``in_idx``."""
    new = copy.deepcopy(layer)
    with torch.no_grad():
        for name, tensor in list(new.named_parameters(recurse=False)) + list(new.named_buffers(recurse=False)):
            if tensor.dim() == 0:  # BatchNorm's num_batches_tracked
                continue
            value = tensor if out_idx is None else tensor[out_idx]
            if in_idx is not None and isinstance(layer, PRODUCERS) and name == "weight":
                value = value[:, in_idx]
            keep_as = nn.Parameter(value.clone(), requires_grad=tensor.requires_grad) if name in new._parameters else value.clone()
            setattr(new, name, keep_as)
    if isinstance(new, nn.Linear):
        new.out_features, new.in_features = new.weight.shape
    elif isinstance(new, nn.Conv2d):
        new.out_channels, new.in_channels = new.weight.shape[:2]
    else:  # BatchNorm
        new.num_features = new.weight.shape[0] if new.weight is not None else new.running_mean.shape[0]
    return new


def remove_units(model: nn.Sequential, coupling: Coupling, keep: torch.Tensor) -> nn.Sequential:
    """A new, physically smaller model without the units of ``coupling.producer`` not in ``keep``.

    Slices the producer's rows and bias, the BatchNorm's entries, and the consumer's input
    columns (``group`` columns per unit). Pruning masks in ``model`` are made permanent in the
    copy first. ``model`` itself is not changed.
    """
    keep = _check_coupling(model, coupling, keep)
    new = remove_masks(copy_model(model))
    columns = (keep[:, None] * coupling.group + torch.arange(coupling.group)).flatten()  # (units * group,)
    setattr(new, coupling.producer, _shrink(getattr(new, coupling.producer), out_idx=keep))
    if coupling.norm is not None:
        setattr(new, coupling.norm, _shrink(getattr(new, coupling.norm), out_idx=keep))
    setattr(new, coupling.consumer, _shrink(getattr(new, coupling.consumer), in_idx=columns))
    return new


def _check_layers(layers: object, names: list[str], what: str) -> None:
    """``None`` (every layer) or a non-empty list of names among ``names``; ``[]`` is refused
    rather than read as "none" or "all"."""
    if layers is None:
        return
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)):
        raise TypeError(f"`layers` must be a list of layer names or None (all); got {type(layers).__name__} {layers!r:.80}")
    if len(layers) == 0:
        raise ValueError(f"`layers` must name at least one layer, or be None for all of them; got {layers!r}")
    for name in layers:
        if name not in names:
            raise ValueError(f"`layers` must name {what} (one of {names}); got {name!r}")


def prune_units(model: nn.Sequential, amount: float | int, *, n: float = 2, layers: list[str] | None = None) -> nn.Sequential:
    """Remove the ``amount`` least important units (Ln norm) of every prunable layer (or of
    ``layers``, a non-empty list; ``None`` means all): a new, smaller dense model. Importance
    is measured on ``model`` before any removal (Li et al.'s "independent" strategy), so
    masking the same units gives the same outputs. ``model`` itself is not changed."""
    couplings = find_couplings(model)
    names = [c.producer for c in couplings]
    _check_layers(layers, names, "prunable layers")
    chosen = [c for c in couplings if layers is None or c.producer in layers]
    keeps = []
    for coupling in chosen:
        producer = getattr(model, coupling.producer)
        weight = producer.weight_orig * producer.weight_mask if hasattr(producer, "weight_mask") else producer.weight
        keeps.append(keep_units(unit_importance(weight.detach(), n), amount))
    new = remove_masks(copy_model(model))
    for coupling, keep in zip(chosen, keeps):
        new = remove_units(new, coupling, keep)
    return new
