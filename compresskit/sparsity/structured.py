"""Local sparsification: score whole units (hidden units, filters, channels) and remove the
least important, leaving a smaller dense model.

References
----------
[1] H. Hu, R. Peng, Y.-W. Tai, C.-K. Tang, "Network Trimming: A Data-Driven Neuron Pruning
    Approach towards Efficient Deep Architectures", 2016, arXiv:1607.03250.
[2] H. Li, A. Kadav, I. Durdanovic, H. Samet, H. P. Graf, "Pruning Filters for Efficient
    ConvNets", ICLR 2017, arXiv:1608.08710.
[3] Z. Liu, J. Li, Z. Shen, G. Huang, S. Yan, C. Zhang, "Learning Efficient Convolutional
    Networks through Network Slimming", ICCV 2017, arXiv:1708.06519.
[4] P. Molchanov, A. Mallya, S. Tyree, I. Frosio, J. Kautz, "Importance Estimation for Neural
    Network Pruning", CVPR 2019, arXiv:1906.10771.

Key equations
-------------
* Activation sparsity and APoZ [1]: the Average Percentage of Zeros of unit ``c`` over ``N``
  inputs and ``M`` positions of its output map,
  ``APoZ_c = sum_k sum_j 1[O_c,j(k) = 0] / (N M)``; units with a high APoZ are removed. Eq. (1)
* Filter L1 norm [2]: ``s_j = sum |W_j|`` over the filter's (or row's) weights.       Eq. (2)
* Network Slimming [3]: train with ``L + lambda * sum |gamma|`` over every BatchNorm scale
  ``gamma``, then remove the channels of smallest ``|gamma|``.                         Eq. (3)
* First-order Taylor importance of a unit [4]: ``I_j = (sum_{i in unit j} g_i w_i)^2``
  over the unit's weights ``w_i`` and gradients ``g_i``.                              Eq. (4)

Scores are dicts keyed by the producer layer's name (``"fc1"``, ``"conv1"``), one entry per
unit; :func:`remove_lowest` removes the lowest-scoring units and repairs the next layer with
:func:`compresskit.sparsity.repair.remove_units`.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from compresskit._validation import check_choice, check_int, check_module, check_real, check_tensor
from compresskit.sparsity._copy import run_model
from compresskit.sparsity.repair import Chain, find_chains, remove_units

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid)
from compresskit.sparsity.unstructured import check_sparsity, weight_gradients


@torch.no_grad()
def record_activations(model: nn.Module, layer: str, X: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The output of ``model``'s submodule ``layer`` (e.g. ``"relu1"``) for every sample of ``X``,
    in eval mode, concatenated: (N, units) or (N, channels, H, W)."""
    check_module("model", model)
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        raise ValueError(f"`layer` must name a submodule of the model (one of {[n for n in modules if n]}); got {layer!r}")
    check_tensor("X", X, floating=True, finite=True)
    batch_size = check_int("batch_size", batch_size, 1)
    outputs: list[torch.Tensor] = []
    handle = modules[layer].register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(X), batch_size):
            run_model(model, X[start:start + batch_size])
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(outputs)


def apoz(activations: torch.Tensor) -> torch.Tensor:
    """Average percentage of zeros of each unit (dim 1) over samples and positions (Eq. (1) in [1])."""
    check_tensor("activations", activations, ndim=(2, 3, 4), finite=True)
    zeros = (activations == 0).float()
    dims = [d for d in range(activations.dim()) if d != 1]
    return zeros.mean(dim=dims)  # Eq. (1) in [1]


def filter_norms(weight: torch.Tensor) -> torch.Tensor:
    """L1 norm of each row (Linear) or filter (Conv2d): Eq. (2) in [2]."""
    check_tensor("weight", weight, ndim=(2, 4), floating=True, finite=True)
    return weight.detach().abs().reshape(weight.shape[0], -1).sum(dim=1)  # Eq. (2) in [2]


def bn_scales(model: nn.Sequential) -> dict[str, torch.Tensor]:
    """``|gamma|`` of the BatchNorm after each producer, keyed by the producer's name (Eq. (3))."""
    model_chains = [c for c in find_chains(model) if c.norm is not None]
    if not model_chains:
        raise ValueError("`model` must have a BatchNorm after a Linear / Conv2d layer; got none")
    return {c.producer: getattr(model, c.norm).weight.detach().abs() for c in model_chains}


def slimming_loss(model: nn.Module, strength: float) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``loss_fn`` for ``compresskit.train.fit``: cross-entropy plus ``strength * sum |gamma|``
    over every BatchNorm scale of ``model`` (Eq. (3) in [3])."""
    check_module("model", model)
    strength = check_real("strength", strength, 0.0)
    gammas = [m.weight for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]
    if not gammas:
        raise ValueError("`model` must have a BatchNorm layer with a scale (affine=True); got none")

    def loss_fn(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        penalty = sum(g.abs().sum() for g in gammas)
        return nn.functional.cross_entropy(net(x), y) + strength * penalty  # Eq. (3) in [3]

    return loss_fn


def taylor_unit_scores(model: nn.Sequential, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """``(sum_i g_i w_i)^2`` over each unit's weights (Eq. (4) in [4]), for every producer."""
    chains = _chains(model)
    grads = weight_gradients(model, X, y)
    scores = {}
    for chain in chains:
        w = getattr(model, chain.producer).weight.detach()
        g = grads[f"{chain.producer}.weight"]
        scores[chain.producer] = (w * g).reshape(w.shape[0], -1).sum(dim=1) ** 2  # Eq. (4) in [4]
    return scores


def unit_scores(model: nn.Sequential, method: str, *, X: torch.Tensor | None = None, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Importance of every unit of every producer: ``method`` is "l1" (Eq. (2)), "bn" (``|gamma|``,
    Eq. (3)), "apoz" (``1 - APoZ`` of the activation before the consumer: high means used, Eq. (1))
    or "taylor" (Eq. (4)). "apoz" needs ``X``; "taylor" needs ``X`` and ``y``."""
    check_choice("method", method, ("l1", "bn", "apoz", "taylor"))
    chains = _chains(model)
    if method == "l1":
        return {c.producer: filter_norms(getattr(model, c.producer).weight) for c in chains}
    if method == "bn":
        return bn_scales(model)
    if X is None or (method == "taylor" and y is None):
        raise ValueError(f"`X`{' and `y`' if method == 'taylor' else ''} must be given for method {method!r}; got None")
    if method == "taylor":
        return taylor_unit_scores(model, X, y)
    return {c.producer: 1.0 - apoz(record_activations(model, _last_activation(model, c), X)) for c in chains}


def _chains(model: nn.Sequential) -> list[Chain]:
    chains = find_chains(model)
    if not chains:
        raise ValueError("`model` must have a Linear / Conv2d layer feeding another (a producer -> consumer chain, "
                         f"see find_chains); got none in {[type(m).__name__ for m in model.children()]}")
    return chains


def _last_activation(model: nn.Sequential, chain: Chain) -> str:
    """The activation (ReLU, ...) between the producer and the consumer, or the producer itself."""
    names = [n for n, _ in model.named_children()]
    between = names[names.index(chain.producer): names.index(chain.consumer)]
    activations = [n for n in between if isinstance(getattr(model, n), ACTIVATIONS)]
    return activations[-1] if activations else chain.producer


def units_to_remove(scores: Mapping[str, torch.Tensor], amount: float, *, scope: str = "layer") -> dict[str, torch.Tensor]:
    """Sorted indices of the ``round(amount * units)`` lowest-scoring units of each layer
    ("layer"), or of all layers ranked together ("global", as Network Slimming's one threshold
    [3]). At least one unit of each layer is always kept."""
    if not isinstance(scores, Mapping) or not scores:
        raise TypeError(f"`scores` must be a non-empty dict of layer name -> 1-D tensor; got {type(scores).__name__} {scores!r:.80}")
    for name, s in scores.items():
        check_tensor(f"scores[{name!r}]", s, ndim=1, floating=True, finite=True)
    amount = check_sparsity(amount)
    check_choice("scope", scope, ("layer", "global"))
    if scope == "layer":
        drop = {name: torch.topk(s, min(round(amount * s.numel()), s.numel() - 1), largest=False).indices for name, s in scores.items()}
    else:
        flat = torch.cat(list(scores.values()))
        k = round(amount * flat.numel())
        threshold = torch.sort(flat).values[k - 1] if k else -float("inf")
        drop = {}
        for name, s in scores.items():
            low = (s <= threshold).nonzero().flatten()
            if low.numel() >= s.numel():  # keep the best unit of the layer
                low = low[low != int(s.argmax())]
            drop[name] = low
    return {name: idx.sort().values for name, idx in drop.items()}


def remove_lowest(model: nn.Sequential, scores: Mapping[str, torch.Tensor], amount: float, *, scope: str = "layer") -> nn.Sequential:
    """A smaller dense copy of ``model`` without the lowest-scoring units (see :func:`units_to_remove`)."""
    chains = {c.producer: c for c in find_chains(model)}
    if not isinstance(scores, Mapping) or not scores:
        raise TypeError(f"`scores` must be a non-empty dict of layer name -> 1-D tensor; got {type(scores).__name__} {scores!r:.80}")
    for name, s in scores.items():
        check_tensor(f"scores[{name!r}]", s, ndim=1, floating=True, finite=True)
        if name not in chains:
            raise ValueError(f"`scores` must be keyed by producer layers (one of {sorted(chains)}); got {name!r}")
        units = getattr(model, name).weight.shape[0]
        if s.shape != (units,):
            raise ValueError(f"`scores[{name!r}]` must have one score per unit ({units}); got shape {tuple(s.shape)}")
    drop = units_to_remove(scores, amount, scope=scope)
    new = model
    for name, idx in drop.items():
        new = remove_units(new, chains[name], idx)
    return new
