"""Structure repair after pruning: cut out the units that pruning left disconnected, fold the
constant output of a unit with no inputs into the next layer's bias, and recalibrate BatchNorm.

References
----------
[1] S. Han, J. Pool, J. Tran, W. J. Dally, "Learning both Weights and Connections for
    Efficient Neural Networks", NeurIPS 2015, arXiv:1506.02626 (section 3.4: neurons with
    zero input or zero output connections are removed after pruning).
[2] S. Ioffe, C. Szegedy, "Batch Normalization", ICML 2015, arXiv:1502.03167.
[3] G. Fang, X. Ma, M. Song, M. Bi Mi, X. Wang, "DepGraph: Towards Any Structural Pruning",
    CVPR 2023, arXiv:2301.12900 (coupled layers that must shrink together).

Key equations
-------------
A unit ``j`` of a producer layer (row ``j`` of a Linear weight, filter ``j`` of a Conv2d) feeds
the consumer (the next Linear / Conv2d) through its column(s) ``C_j`` (``group`` columns when a
Conv2d's channel is flattened into a Linear layer).

* **No outputs**: ``W_next[:, C_j] == 0``. The unit's output is never read: remove it. Eq. (1)
* **No inputs**: ``W[j] == 0``. Its pre-activation is the constant ``b_j``; after BatchNorm
  (eval mode) and the element-wise activation ``f`` its output is the constant
  ``c_j = f(gamma_j (b_j - mu_j) / sqrt(var_j + eps) + beta_j)`` [2]. Remove it and fold:
  ``b_next <- b_next + sum_{i in C_j} W_next[:, i] * c_j``.                         Eq. (2)
  For a Conv2d consumer this is exact only without zero padding (at the border a padded
  constant channel is not constant), so such units are kept.
* **BatchNorm recalibration**: after weights change, the running mean and variance no longer
  describe the layer's inputs; recompute them from a batch of training data (a cumulative
  average, ``momentum=None``).                                                      Eq. (3)

Removing units can leave units of the layer before with no outputs, so :func:`repair` repeats
until nothing changes. The repaired dense model computes the same function (tests check it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from compresskit._validation import check_int, check_module, check_tensor
from compresskit.models import copy_model
from compresskit.models import dense_copy
from compresskit.sparsity._copy import check_units, run_model

PRODUCERS = (nn.Linear, nn.Conv2d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
# Element-wise: a constant unit stays constant, and these are applied to its value.
ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.Identity, nn.Dropout)
# Change the shape only: a constant channel stays the same constant (pools without padding).
RESHAPING = (nn.MaxPool2d, nn.AvgPool2d, nn.Flatten)


@dataclass(frozen=True)
class Chain:
    """``producer`` -> [``norm``] -> element-wise / reshaping layers -> ``consumer``; each
    producer unit feeds ``group`` consecutive input columns of the consumer."""

    producer: str
    consumer: str
    norm: str | None = None
    group: int = 1


def _units(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _inputs(layer: nn.Module) -> int:
    return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels


def _padding_free(layer: nn.Module) -> bool:
    return all(p == 0 for p in ((layer.padding,) if isinstance(layer.padding, int) else layer.padding))


def find_chains(model: nn.Sequential) -> list[Chain]:
    """Every producer -> consumer chain of a flat ``nn.Sequential`` (the last layer has none)."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"`model` must be an nn.Sequential; got {type(model).__name__}")
    children = list(model.named_children())
    chains = []
    for i, (name, layer) in enumerate(children):
        if not isinstance(layer, PRODUCERS) or getattr(layer, "groups", 1) != 1:
            continue
        norm = None
        for next_name, nxt in children[i + 1:]:
            if isinstance(nxt, NORMS) and norm is None:
                norm = next_name
            elif isinstance(nxt, PRODUCERS):
                if getattr(nxt, "groups", 1) == 1 and _inputs(nxt) % _units(layer) == 0:
                    chains.append(Chain(name, next_name, norm, _inputs(nxt) // _units(layer)))
                break
            elif isinstance(nxt, (nn.MaxPool2d, nn.AvgPool2d)) and not _padding_free(nxt):
                break
            elif not isinstance(nxt, ELEMENTWISE + RESHAPING):
                break
    return chains


def _columns(chain: Chain, units: torch.Tensor) -> torch.Tensor:
    return (units[:, None] * chain.group + torch.arange(chain.group)).flatten()


def _consumer_weight(consumer: nn.Module, chain: Chain) -> torch.Tensor:
    """The consumer's weight as (out, units, group * kernel): everything unit ``j`` feeds."""
    w = consumer.weight.detach()
    return w.reshape(w.shape[0], -1, chain.group * (w[0, 0].numel() if w.dim() == 4 else 1))


def dead_units(model: nn.Sequential) -> dict[str, dict[str, torch.Tensor]]:
    """For each producer: ``"no_inputs"`` (rows of zeros, Eq. (2)) and ``"no_outputs"`` (units
    whose consumer columns are all zero, Eq. (1)), as sorted index tensors."""
    out = {}
    for chain in find_chains(model):
        producer, consumer = getattr(model, chain.producer), getattr(model, chain.consumer)
        rows = producer.weight.detach().reshape(_units(producer), -1)
        feeds = _consumer_weight(consumer, chain)
        out[chain.producer] = {
            "no_inputs": (rows == 0).all(dim=1).nonzero().flatten(),
            "no_outputs": (feeds == 0).all(dim=2).all(dim=0).nonzero().flatten(),
        }
    return out


@torch.no_grad()
def constant_outputs(model: nn.Sequential, chain: Chain, units: torch.Tensor) -> torch.Tensor:
    """``c_j`` of Eq. (2): the output of each unit in ``units`` when its weights are all zero."""
    if not isinstance(chain, Chain):
        raise TypeError(f"`chain` must be a Chain (see find_chains); got {type(chain).__name__}")
    if chain not in find_chains(model):
        raise ValueError(f"`chain` must be one of the model's chains {find_chains(model)}; got {chain}")
    producer = getattr(model, chain.producer)
    units = check_units("units", units, _units(producer))
    value = producer.bias.detach()[units] if producer.bias is not None else torch.zeros(len(units))
    if chain.norm is not None:
        bn = getattr(model, chain.norm)
        value = (value - bn.running_mean[units]) / torch.sqrt(bn.running_var[units] + bn.eps)
        if bn.affine:
            value = value * bn.weight.detach()[units] + bn.bias.detach()[units]
    names = [name for name, _ in model.named_children()]
    for name in names[names.index(chain.producer) + 1: names.index(chain.consumer)]:
        layer = getattr(model, name)
        if isinstance(layer, ELEMENTWISE) and not isinstance(layer, nn.Dropout):
            value = layer(value)
    return value


def _slice(layer: nn.Module, out_idx: torch.Tensor | None = None, in_idx: torch.Tensor | None = None) -> nn.Module:
    """A copy of a Linear / Conv2d / BatchNorm keeping outputs ``out_idx`` and inputs ``in_idx``."""
    new = copy.deepcopy(layer)
    with torch.no_grad():
        for name, t in list(new.named_parameters(recurse=False)) + list(new.named_buffers(recurse=False)):
            if t.dim() == 0:  # BatchNorm's num_batches_tracked
                continue
            value = t if out_idx is None else t[out_idx]
            if in_idx is not None and name == "weight":
                value = value[:, in_idx]
            setattr(new, name, nn.Parameter(value.clone(), t.requires_grad) if name in new._parameters else value.clone())
    if isinstance(new, nn.Linear):
        new.out_features, new.in_features = new.weight.shape
    elif isinstance(new, nn.Conv2d):
        new.out_channels, new.in_channels = new.weight.shape[:2]
    else:
        new.num_features = new.running_mean.shape[0]
    return new


def remove_units(model: nn.Sequential, chain: Chain, remove: torch.Tensor, *, fold: torch.Tensor | None = None) -> nn.Sequential:
    """A new model without units ``remove`` of ``chain.producer``; ``fold`` (one constant per
    removed unit, :func:`constant_outputs`) is added into the consumer's bias (Eq. (2)).
    ``model`` is not changed; in the new model the masks of ``torch.nn.utils.prune`` are made
    permanent (plain weights with zeros, no hooks)."""
    if not isinstance(chain, Chain):
        raise TypeError(f"`chain` must be a Chain (see find_chains); got {type(chain).__name__}")
    if chain not in find_chains(model):
        raise ValueError(f"`chain` must be one of the model's chains {find_chains(model)}; got {chain}")
    producer, consumer = getattr(model, chain.producer), getattr(model, chain.consumer)
    n = _units(producer)
    remove = check_units("remove", remove, n)
    if remove.unique().numel() != remove.numel():
        raise ValueError(f"`remove` must hold distinct unit indices in [0, {n - 1}]; got {remove.tolist()}")
    if remove.numel() >= n:
        raise ValueError(f"`remove` must leave at least one unit of {chain.producer!r} ({n} units); got all of them")
    if fold is not None:
        check_tensor("fold", fold, ndim=1, floating=True, finite=True, nonempty=False)
        if fold.numel() != remove.numel():
            raise ValueError(f"`fold` must hold one constant per removed unit ({remove.numel()}); got {fold.numel()}")
        if isinstance(consumer, nn.Conv2d) and not _padding_free(consumer):
            raise ValueError(f"`fold` cannot be folded into {chain.consumer!r}: a constant channel is not constant at a zero-padded border")
    keep = torch.tensor([j for j in range(n) if j not in set(remove.tolist())], dtype=torch.long)
    new = dense_copy(model)  # pruning masks made permanent: plain weights to slice
    producer, consumer = getattr(new, chain.producer), getattr(new, chain.consumer)
    setattr(new, chain.producer, _slice(producer, out_idx=keep))
    if chain.norm is not None:
        setattr(new, chain.norm, _slice(getattr(new, chain.norm), out_idx=keep))
    cons = _slice(consumer, in_idx=_columns(chain, keep))
    if fold is not None and remove.numel():
        if cons.bias is None:
            cons.bias = nn.Parameter(torch.zeros(_units(cons)))
        feeds = _consumer_weight(consumer, chain)[:, remove].sum(dim=2)  # (out, removed)
        with torch.no_grad():
            cons.bias += feeds @ fold.to(feeds.dtype)  # Eq. (2)
    setattr(new, chain.consumer, cons)
    return new


def repair(model: nn.Sequential, *, max_rounds: int = 20) -> nn.Sequential:
    """A smaller dense copy of ``model`` computing the same function (in eval mode; pruning masks of
    ``torch.nn.utils.prune`` are made permanent in the copy): removes the
    units with no outputs, and those with no inputs whose constant output folds into the next
    bias; repeats until nothing changes. At least one unit of each layer stays."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"`model` must be an nn.Sequential; got {type(model).__name__}")
    max_rounds = check_int("max_rounds", max_rounds, 1)
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point():
            check_tensor(f"model.{name}", t, finite=True, nonempty=False)
    model = dense_copy(model).eval()
    for _ in range(max_rounds):
        changed = False
        for chain in find_chains(model):
            dead = dead_units(model)[chain.producer]
            consumer = getattr(model, chain.consumer)
            foldable = isinstance(consumer, nn.Linear) or _padding_free(consumer)
            fold_units = dead["no_inputs"][~torch.isin(dead["no_inputs"], dead["no_outputs"])] if foldable else torch.empty(0, dtype=torch.long)
            remove = torch.cat([dead["no_outputs"], fold_units])
            if remove.numel() >= _units(getattr(model, chain.producer)):  # keep one unit
                remove = remove[:-1]
            if remove.numel() == 0:
                continue
            constants = torch.zeros(remove.numel())
            is_fold = torch.isin(remove, fold_units)
            constants[is_fold] = constant_outputs(model, chain, remove[is_fold])
            model = remove_units(model, chain, remove, fold=constants)
            changed = True
        if not changed:
            break
    return model


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, X: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running mean and variance are recomputed from ``X``
    (Eq. (3)): a cumulative average over batches of ``batch_size``. Returned in eval mode."""
    check_module("model", model)
    check_tensor("X", X, floating=True, finite=True)
    batch_size = check_int("batch_size", batch_size, 2)
    new = copy_model(model)  # safe on a model pruned with torch.nn.utils.prune (its hooks are kept)
    norms = [m for m in new.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("`model` must have a BatchNorm layer to recalibrate; got none")
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: every batch counts equally
    new.train()
    for i in range(0, len(X), batch_size):
        run_model(new, X[i:i + batch_size])
    for bn, old in zip(norms, [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]):
        bn.momentum = old.momentum
    return new.eval()
