"""Parameter distillation: start a smaller student from the teacher's weights, not from random ones.

Two ways to cut a trained MLP (``Flatten -> [Linear -> ReLU]* -> Linear``) down to a student:

* **Keep each layer's most important units.** Hidden unit j of layer l reads row j of W_l and
  feeds column j of W_(l+1). Its importance is the product of the two norms::

      s_j = ||W_l[j, :]||_2 * ||W_(l+1)[:, j]||_2                                  Eq. (1)

  (a unit with large incoming weights that no later layer reads does not matter; Li et al.
  [1] rank units by the incoming norm alone). The student keeps the h_l largest and their
  rows, columns and biases: a narrower MLP whose function is close to the teacher's.
* **Truncated SVD of each weight matrix** [2, 3]. W = U S V^T; keeping the r largest singular
  values gives the closest rank-r matrix (Eckart-Young), written as two thinner layers::

      W ≈ (U_r S_r^(1/2)) (S_r^(1/2) V_r^T) = second @ first                       Eq. (2)

  a Linear(in, r) without bias, then a Linear(r, out) with the original bias. It saves
  parameters when r * (in + out) < in * out.

Either student then trains for a few epochs, like a randomly initialised one of the same
shape; the chapter compares the two.

References
----------
[1] H. Li, A. Kadav, I. Durdanovic, H. Samet, H. P. Graf, "Pruning Filters for Efficient
    ConvNets", ICLR 2017, arXiv:1608.08710.
[2] E. Denton, W. Zaremba, J. Bruna, Y. LeCun, R. Fergus, "Exploiting Linear Structure Within
    Convolutional Networks for Efficient Evaluation", NIPS 2014, arXiv:1404.0736.
[3] C. Eckart, G. Young, "The approximation of one matrix by another of lower rank",
    Psychometrika, 1936.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from compresskit._validation import check_choice, check_int, check_seed, check_tensor
from compresskit.models import copy_model


def _linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"`teacher` must be an nn.Sequential MLP (Flatten, Linear, ReLU, ...); got {type(model).__name__}")
    allowed = (nn.Linear, nn.ReLU, nn.Flatten, nn.Identity, nn.Dropout)
    bad = [name for name, layer in model.named_children() if not isinstance(layer, allowed)]
    if bad:
        raise TypeError(f"`teacher` must hold only Linear, ReLU, Flatten and Dropout layers; got {bad}")
    layers = [(name, layer) for name, layer in model.named_children() if isinstance(layer, nn.Linear)]
    if len(layers) < 2:
        raise ValueError(f"`teacher` must have at least one hidden layer (2 Linear layers); got {len(layers)}")
    return layers


def unit_importance(incoming: torch.Tensor, outgoing: torch.Tensor) -> torch.Tensor:
    """Eq. (1): ||incoming[j, :]|| * ||outgoing[:, j]|| for each hidden unit j; shape (units,).

    ``incoming`` is the (units, in) weight of the layer that computes the units; ``outgoing``
    the (out, units) weight of the layer that reads them.
    """
    check_tensor("incoming", incoming, ndim=2, floating=True, finite=True)
    check_tensor("outgoing", outgoing, ndim=2, floating=True, finite=True)
    if outgoing.shape[1] != incoming.shape[0]:
        raise ValueError(f"`outgoing` must read the {incoming.shape[0]} units of `incoming` (shape (out, "
                         f"{incoming.shape[0]})); got shape {tuple(outgoing.shape)}")
    return incoming.norm(dim=1) * outgoing.norm(dim=0)  # Eq. (1)


@torch.no_grad()
def keep_important_units(teacher: nn.Sequential, hidden: Sequence[int]) -> nn.Sequential:
    """A narrower copy of an MLP keeping, in hidden layer l, the ``hidden[l]`` units of largest Eq. (1).

    Rows of the layer, its bias entries and the columns of the next layer that belong to the
    kept units are copied; kept units stay in their original order. The teacher is unchanged.
    """
    layers = _linears(teacher)
    if isinstance(hidden, int) or not all(isinstance(h, int) for h in hidden):
        raise TypeError(f"`hidden` must be a sequence of ints; got {hidden!r}")
    if len(hidden) != len(layers) - 1:
        raise ValueError(f"`hidden` must give one width per hidden layer of `teacher` ({len(layers) - 1}); got {len(hidden)}")
    student = copy_model(teacher)  # a pruned teacher too: its Linear layers are replaced below
    keep_in = None
    for i, (name, layer) in enumerate(layers):
        weight, bias = layer.weight, layer.bias
        if keep_in is not None:
            weight = weight[:, keep_in]
        if i < len(hidden):
            width = check_int(f"hidden[{i}]", hidden[i], 1, layer.out_features)
            importance = unit_importance(layer.weight, layers[i + 1][1].weight)
            keep_out = torch.topk(importance, width).indices.sort().values
            weight = weight[keep_out]
            bias = bias[keep_out] if bias is not None else None
        else:
            keep_out = None
        smaller = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        smaller.weight.copy_(weight)
        if bias is not None:
            smaller.bias.copy_(bias)
        setattr(student, name, smaller)
        keep_in = keep_out
    return student


def truncated_svd(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (2): ``(first, second)`` of shapes (rank, in) and (out, rank) with ``second @ first``
    the best rank-``rank`` approximation of ``weight`` (out, in); S is split evenly between them."""
    check_tensor("weight", weight, ndim=2, floating=True, finite=True)
    rank = check_int("rank", rank, 1, min(weight.shape))
    U, S, Vh = torch.linalg.svd(weight.double(), full_matrices=False)  # singular values in decreasing order
    root = S[:rank].sqrt()
    first = root[:, None] * Vh[:rank]          # S_r^(1/2) V_r^T, (rank, in)
    second = U[:, :rank] * root[None, :]       # U_r S_r^(1/2), (out, rank)
    return first.to(weight.dtype), second.to(weight.dtype)  # Eq. (2)


def _factorized(layer: nn.Linear, rank: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        first=nn.Linear(layer.in_features, rank, bias=False),
        second=nn.Linear(rank, layer.out_features, bias=layer.bias is not None),
    ))


def low_rank_mlp(teacher: nn.Sequential, rank: int, *, init: str = "teacher", seed: int = 0) -> nn.Sequential:
    """A copy of an MLP with each Linear layer that ``rank`` makes smaller split into two (Eq. (2)).

    A layer (out, in) is factorised when ``rank * (in + out) < in * out``; other layers keep
    their shape. ``init="teacher"`` sets every weight from the teacher (the truncated SVD, or a
    copy); ``init="random"`` gives the same architecture PyTorch's default initialisation,
    drawn from ``seed``, for comparison. The teacher is unchanged.
    """
    layers = _linears(teacher)
    rank = check_int("rank", rank, 1)
    check_choice("init", init, ["teacher", "random"])
    seed = check_seed("seed", seed)
    student = copy_model(teacher)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, layer in layers:
            small = rank * (layer.in_features + layer.out_features) < layer.in_features * layer.out_features
            new = _factorized(layer, rank) if small else nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
            if init == "teacher":
                with torch.no_grad():
                    if small:
                        first, second = truncated_svd(layer.weight, rank)
                        new.first.weight.copy_(first)
                        new.second.weight.copy_(second)
                        if layer.bias is not None:
                            new.second.bias.copy_(layer.bias)
                    else:  # weight and bias, not the state dict: a pruned layer stores weight_orig and weight_mask
                        new.weight.copy_(layer.weight)
                        if layer.bias is not None:
                            new.bias.copy_(layer.bias)
            setattr(student, name, new)
    return student
