"""Global sparsification: set a fraction of a model's weights to zero, ranked by an importance
score (random, magnitude, first-order Taylor), or learn the zeros with an L1 penalty.

References
----------
[1] S. Han, J. Pool, J. Tran, W. J. Dally, "Learning both Weights and Connections for
    Efficient Neural Networks", NeurIPS 2015, arXiv:1506.02626.
[2] P. Molchanov, S. Tyree, T. Karras, T. Aila, J. Kautz, "Pruning Convolutional Neural
    Networks for Resource Efficient Inference", ICLR 2017, arXiv:1611.06440.
[3] P. Molchanov, A. Mallya, S. Tyree, I. Frosio, J. Kautz, "Importance Estimation for Neural
    Network Pruning", CVPR 2019, arXiv:1906.10771.
[4] N. Parikh, S. Boyd, "Proximal Algorithms", Foundations and Trends in Optimization 1(3),
    2014, section 6.5.2 (the proximal operator of the L1 norm is soft thresholding).

Key equations
-------------
* Keep the weights of largest importance ``s_i``; drop the ``k = round(amount * numel)``
  smallest, all layers ranked together (global) [1].                               Eq. (1)
* Importance: random ``s_i ~ U(0, 1)``; magnitude ``s_i = |w_i|`` [1]; first-order Taylor
  ``s_i = |w_i * dL/dw_i|``, the loss change when ``w_i`` is set to 0 [2, 3].        Eq. (2)
* L1 penalty ``L + lambda * sum |w_i|`` trained by a proximal step after each gradient step:
  ``w <- sign(w) * max(|w| - lr * lambda, 0)`` [4]. A plain gradient step on ``|w|`` makes
  weights jitter around 0 but never reach it; the proximal step sets them to exactly 0. Eq. (3)
  (Exact for SGD; after an Adam step it is the usual heuristic.)

Weights are addressed by their ``state_dict`` names (``"fc1.weight"``): :func:`sparse_weights`
lists those of every Linear and Conv2d layer. :class:`MaskKeeper` holds pruned weights at zero
while a model trains (pass it to ``compresskit.train.fit(on_step=...)``).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from compresskit._validation import check_int, check_module, check_real, check_tensor
from compresskit.models import dense_copy
from compresskit.sparsity._copy import check_labels, run_model

Masks = dict[str, torch.Tensor]


def check_sparsity(amount: object, name: str = "amount") -> float:
    """A sparsity in [0, 1): the fraction of entries set to zero (1 would remove everything)."""
    return check_real(name, amount, 0.0, 1.0, high_open=True)


def sparse_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """``{"fc1.weight": parameter, ...}`` for every Linear and Conv2d of ``model``."""
    check_module("model", model)
    return {f"{name}.weight" if name else "weight": m.weight for name, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))}


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """:func:`sparse_weights`, refusing a model that has none (nothing to sparsify or measure)."""
    weights = sparse_weights(model)
    if not weights:
        raise ValueError(f"`model` must have a Linear or Conv2d layer; got {type(model).__name__} with none")
    return weights


def global_masks(scores: Mapping[str, torch.Tensor], amount: float) -> Masks:
    """0/1 masks that drop the ``round(amount * total)`` smallest scores of all tensors together (Eq. (1))."""
    if not isinstance(scores, Mapping) or not scores:
        raise TypeError(f"`scores` must be a non-empty dict of name -> tensor; got {type(scores).__name__} {scores!r:.80}")
    for name, s in scores.items():
        check_tensor(f"scores[{name!r}]", s, floating=True, finite=True)
    amount = check_sparsity(amount)
    flat = torch.cat([s.detach().flatten() for s in scores.values()])
    k = round(amount * flat.numel())
    mask = torch.ones_like(flat)
    if k:
        mask[torch.topk(flat, k, largest=False).indices] = 0  # Eq. (1) in [1]
    parts = mask.split([s.numel() for s in scores.values()])
    return {name: part.view_as(s) for (name, s), part in zip(scores.items(), parts)}


def magnitude_scores(weight: torch.Tensor) -> torch.Tensor:
    """``|w|`` (Eq. (2) in [1])."""
    return check_tensor("weight", weight, floating=True, finite=True).detach().abs()


def random_scores(weight: torch.Tensor, *, seed: int) -> torch.Tensor:
    """Uniform random scores from a private generator seeded with ``seed``."""
    check_tensor("weight", weight, floating=True)
    g = torch.Generator().manual_seed(check_int("seed", seed, 0))
    return torch.rand(weight.shape, generator=g, dtype=weight.dtype)


def taylor_scores(weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``|w * dL/dw|``: the first-order estimate of the loss change if ``w`` were zero (Eq. (2) in [3])."""
    check_tensor("weight", weight, floating=True, finite=True)
    check_tensor("grad", grad, floating=True, finite=True)
    if grad.shape != weight.shape:
        raise ValueError(f"`grad` must have the shape of `weight` {tuple(weight.shape)}; got {tuple(grad.shape)}")
    return (weight.detach() * grad.detach()).abs()  # Eq. (2) in [3]


def weight_gradients(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """``dL/dW`` of the mean cross-entropy on (X, y) for every weight of :func:`sparse_weights`.
    The model's parameters, ``.grad`` and train / eval mode are left as they were. For a layer
    pruned with ``torch.nn.utils.prune`` it is the gradient reaching ``weight_orig``: the dense
    gradient where the mask is 1, 0 where it is 0."""
    _weights(model)
    weights = _trainable_weights(model)
    check_tensor("X", X, floating=True, finite=True)
    check_tensor("y", y, ndim=1)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"`X` and `y` must have the same length; got {X.shape[0]} and {y.shape[0]}")
    frozen = [name for name, w in weights.items() if not w.requires_grad]
    if frozen:
        raise ValueError(f"`model` must have weights that require grad to take their gradient; got {frozen} frozen")
    was_training = model.training
    model.eval()  # BatchNorm uses its running statistics and does not update them
    try:
        with torch.enable_grad():
            logits = run_model(model, X)
            check_labels(y, logits)
            loss = nn.functional.cross_entropy(logits, y)
            grads = torch.autograd.grad(loss, list(weights.values()))
    finally:
        model.train(was_training)
    return {name: g.detach() for name, g in zip(weights, grads)}


def importance_scores(
    model: nn.Module, method: str, *, X: torch.Tensor | None = None, y: torch.Tensor | None = None, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Scores for every weight of ``model``: ``method`` is "random", "magnitude" or "taylor"
    (which needs a batch ``X``, ``y`` to take the gradient on)."""
    weights = _weights(model)
    seed = check_int("seed", seed, 0)
    if method == "random":
        return {name: random_scores(w, seed=seed + i) for i, (name, w) in enumerate(weights.items())}
    if method == "magnitude":
        return {name: magnitude_scores(check_tensor(f"model.{name}", w, finite=True)) for name, w in weights.items()}
    if method == "taylor":
        if X is None or y is None:
            raise ValueError("`X` and `y` must be given for method 'taylor' (the gradient needs data); got None")
        for name, w in weights.items():
            check_tensor(f"model.{name}", w, finite=True)
        grads = weight_gradients(model, X, y)
        return {name: taylor_scores(w, grads[name]) for name, w in weights.items()}
    raise ValueError(f"`method` must be one of ['random', 'magnitude', 'taylor']; got {method!r}")


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` with every weight named in ``masks`` multiplied by its mask.
    Plain tensors with zeros: no pruning hooks, so the copy can be saved and converted freely
    (on a model pruned with ``torch.nn.utils.prune`` the copy's weights are
    ``weight_orig * weight_mask * mask``; ``model`` keeps its hooks)."""
    weights = sparse_weights(model)
    _check_masks(masks, weights)
    new = dense_copy(model)
    params = dict(new.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask)
    return new


def sparsify(model: nn.Module, amount: float, method: str = "magnitude", *, X: torch.Tensor | None = None,
             y: torch.Tensor | None = None, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with the fraction ``amount`` of its Linear / Conv2d weights set to zero,
    ranked globally by ``method`` ("random", "magnitude", "taylor")."""
    amount = check_sparsity(amount)
    return apply_masks(model, global_masks(importance_scores(model, method, X=X, y=y, seed=seed), amount))


def _check_masks(masks: object, weights: Mapping[str, torch.Tensor]) -> None:
    if not isinstance(masks, Mapping) or not masks:
        raise TypeError(f"`masks` must be a non-empty dict of weight name -> 0/1 tensor; got {type(masks).__name__} {masks!r:.80}")
    for name, mask in masks.items():
        if name not in weights:
            raise ValueError(f"`masks` must name weights of the model (one of {sorted(weights)}); got {name!r}")
        check_tensor(f"masks[{name!r}]", mask)
        if mask.shape != weights[name].shape:
            raise ValueError(f"`masks[{name!r}]` must have shape {tuple(weights[name].shape)}; got {tuple(mask.shape)}")
        bad = (mask != 0) & (mask != 1)
        if mask.dtype != torch.bool and bool(bad.any()):
            raise ValueError(f"`masks[{name!r}]` must hold only 0 and 1 (bool, or 0/1 of any numeric dtype); "
                             f"got {mask[bad][0].item()!r} ({int(bad.sum())} such value(s))")


def soft_threshold(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """The proximal operator of ``threshold * |w|``: ``sign(w) * max(|w| - threshold, 0)`` (Eq. (3))."""
    check_tensor("weight", weight, floating=True, finite=True)
    threshold = check_real("threshold", threshold, 0.0)
    return torch.sign(weight) * torch.clamp(weight.abs() - threshold, min=0.0)  # Eq. (3), [4]


def _trainable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """``{"fc1.weight": parameter, ...}``: the parameter an optimizer updates for every weight of
    :func:`sparse_weights`. For a layer pruned with ``torch.nn.utils.prune`` that is
    ``weight_orig`` (``weight`` itself is recomputed as ``weight_orig * weight_mask`` before
    every forward pass, so writing into it changes nothing)."""
    check_module("model", model)
    return {f"{name}.weight" if name else "weight": getattr(m, "weight_orig", m.weight)
            for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}


class ProximalL1:
    """After every optimizer step, soft-threshold the weights by ``lr * strength`` (Eq. (3)):
    training with an L1 penalty whose zeros are exact. Pass as ``fit(on_step=...)``.

    Acts on the model it is called with. On a layer pruned with ``torch.nn.utils.prune`` it
    thresholds ``weight_orig``, the parameter the optimizer updates (the mask stays applied)."""

    def __init__(self, model: nn.Module, strength: float, lr: float) -> None:
        _weights(model)
        self.threshold = check_real("strength", strength, 0.0) * check_real("lr", lr, 0.0, low_open=True)

    def __call__(self, model: nn.Module, step: int) -> None:
        with torch.no_grad():
            _weights(model)
            for w in _trainable_weights(model).values():
                w.copy_(soft_threshold(w.detach(), self.threshold))


class MaskKeeper:
    """Hold the weights named in ``masks`` at zero where the mask is 0, after every optimizer
    step (fine-tuning a sparse model, e.g. with a 2:4 mask). Pass as ``fit(on_step=...)``.

    Acts on the model it is called with, which must have the masked weights (same names and
    shapes). On a layer pruned with ``torch.nn.utils.prune`` it zeroes ``weight_orig``, the
    parameter the optimizer updates, so the zeros survive ``prune.remove``."""

    def __init__(self, model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
        weights = sparse_weights(model)
        _check_masks(masks, weights)
        self.masks = {name: mask.detach().clone() for name, mask in masks.items()}
        self(model, 0)

    def __call__(self, model: nn.Module, step: int) -> None:
        weights = _trainable_weights(model)
        for name, mask in self.masks.items():  # check everything before changing anything
            if name not in weights or weights[name].shape != mask.shape:
                got = tuple(weights[name].shape) if name in weights else "no such weight"
                raise ValueError(f"`model` must have the weight {name!r} of shape {tuple(mask.shape)} that this "
                                 f"MaskKeeper was built with; got {got}")
        with torch.no_grad():
            for name, mask in self.masks.items():
                weight = weights[name]
                weight.mul_(mask.to(weight.device, weight.dtype))


def weight_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of exact zeros in every Linear / Conv2d weight, by name."""
    return {name: 1.0 - int(torch.count_nonzero(w.detach())) / w.numel() for name, w in _weights(model).items()}


def total_sparsity(model: nn.Module) -> float:
    """Fraction of exact zeros among all Linear / Conv2d weights together (biases excluded)."""
    weights = list(_weights(model).values())
    return 1.0 - sum(int(torch.count_nonzero(w.detach())) for w in weights) / sum(w.numel() for w in weights)

