"""Weight pruning by masks: magnitude, threshold, random and Ln-norm (row / filter) pruning.

References
----------
[1] S. Han, J. Pool, J. Tran, W. J. Dally, "Learning both Weights and Connections for
    Efficient Neural Networks", NeurIPS 2015, arXiv:1506.02626.
[2] H. Li, A. Kadav, I. Durdanovic, H. Samet, H. P. Graf, "Pruning Filters for Efficient
    ConvNets", ICLR 2017, arXiv:1608.08710.

Key equations
-------------
A mask ``m`` has the shape of the weight ``W``; the network uses ``W * m``.

* Magnitude (L1 unstructured) pruning [1]: drop the ``k`` entries of smallest ``|w|``,
  ``m_i = 0 if |w_i| is among the k smallest else 1``, with ``k = round(amount * numel)``
  (or ``k = amount`` when ``amount`` is an int), as in ``torch.nn.utils.prune``.   Eq. (1)
* Threshold pruning [1]: ``m_i = 1[|w_i| >= threshold]`` for a threshold you choose. Eq. (2)
* Ln structured pruning [2]: the importance of slice ``j`` along ``dim`` (a row of a Linear
  weight, a filter of a Conv weight for ``dim=0``) is ``s_j = ||W_j||_n``; keep the
  ``numel_dim - k`` slices of largest ``s_j``.                                       Eq. (3)
* Global pruning ranks all layers' entries together (one ``k`` for the whole model);
  layer-wise pruning applies ``amount`` to each layer separately.

The pure tensor functions (``magnitude_mask``, ``threshold_mask``, ``random_mask``,
``ln_structured_mask``) come first. The adapters below them plug into PyTorch's own pruning
machinery: each method subclasses ``torch.nn.utils.prune.BasePruningMethod`` and only
computes a mask, so a pruned module has ``weight_orig`` (a parameter), ``weight_mask``
(a buffer) and a forward pre-hook, and ``prune.remove`` / ``prune.is_pruned`` / state-dict
keys behave exactly as with the toolbox. Function names and signatures follow
``torch.nn.utils.prune`` (``l1_unstructured``, ``random_unstructured``, ``ln_structured``,
``global_unstructured``) and give the same masks on weights without ties.
"""

from __future__ import annotations

import contextlib
import numbers
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from compresskit._validation import _show, check_amount, check_int, check_module, check_real, check_seed, check_tensor
from compresskit.models import copy_model  # noqa: F401 - re-exported: pruning.copy_model, used by units and finetune

Parameters = Sequence[tuple[nn.Module, str]]
_ANY = 2**62  # an upper bound for an int amount checked before the tensor is known

# --- pure tensor functions ----------------------------------------------------------------


def magnitude_mask(weight: torch.Tensor, amount: float | int) -> torch.Tensor:
    """0/1 mask (``weight``'s shape and dtype) that drops the ``amount`` smallest ``|w|``.

    ``amount`` is a fraction in [0, 1] or a count in [0, numel], as in ``torch.nn.utils.prune``.
    """
    check_tensor("weight", weight, floating=True, finite=True)
    k = check_amount("amount", amount, weight.numel())
    mask = torch.ones_like(weight, memory_format=torch.contiguous_format)
    if k > 0:
        mask.view(-1)[_smallest(weight.detach().abs().flatten(), k)] = 0  # Eq. (1) in [1]
    return mask


def _smallest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Where the ``k`` smallest of the 1-D ``scores`` are: the entries ``torch.topk(largest=False)`` picks.

    The k-th smallest value ``v`` (a selection, several times faster than topk when k is large)
    splits the scores: when the entries below ``v`` and those equal to it are exactly ``k``, they
    are the k smallest, whatever the tie-breaking. Only when ``v`` is tied across the cut does the
    choice depend on tie-breaking, and then topk makes it, as torch's pruning does.
    """
    v = torch.kthvalue(scores, k).values
    drop = scores <= v
    if int(drop.sum()) == k:
        return drop
    return torch.topk(scores, k, largest=False).indices


def threshold_mask(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """0/1 mask that keeps the entries with ``|w| >= threshold`` (the article's threshold pruning)."""
    check_tensor("weight", weight, floating=True, finite=True)
    threshold = check_real("threshold", threshold, 0.0)
    return (weight.detach().abs() >= threshold).to(weight.dtype)  # Eq. (2) in [1]


def random_mask(weight: torch.Tensor, amount: float | int, *, seed: int = 0) -> torch.Tensor:
    """0/1 mask that drops ``amount`` entries chosen uniformly at random (a baseline).

    Draws as ``torch.nn.utils.prune.random_unstructured`` does after ``torch.manual_seed(seed)``,
    but from a private generator: the global random state is left alone.
    """
    check_tensor("weight", weight, floating=True, finite=True)
    k = check_amount("amount", amount, weight.numel())
    seed = check_int("seed", seed, 0)
    generator = torch.Generator(device=weight.device).manual_seed(seed)
    scores = torch.rand(weight.shape, generator=generator, dtype=weight.dtype, device=weight.device)
    mask = torch.ones_like(weight, memory_format=torch.contiguous_format)
    if k > 0:
        mask.view(-1)[torch.topk(scores.flatten(), k).indices] = 0
    return mask


def _check_norm(n: Any) -> float:
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or not (n >= 1):
        raise ValueError(f"`n` must be a real number >= 1 or math.inf (1 for L1, 2 for L2); got {n!r}")
    return float(n)


def _check_structured(name: str, weight: Any) -> None:
    if isinstance(weight, torch.Tensor) and weight.dim() < 2:
        raise ValueError(
            f"`{name}` must have at least 2 dimensions for structured pruning (slices: rows, filters); got shape "
            f"{tuple(weight.shape)}: a 1-D tensor such as a bias has none (torch.nn.utils.prune refuses it too)"
        )


def slice_norms(weight: torch.Tensor, n: float = 2, dim: int = 0) -> torch.Tensor:
    """``||W_j||_n`` of every slice ``j`` along ``dim``: a 1-D tensor of length ``weight.shape[dim]``."""
    check_tensor("weight", weight, floating=True, finite=True)
    n = _check_norm(n)
    dim = check_int("dim", dim, -weight.dim(), weight.dim() - 1) % weight.dim()
    others = [d for d in range(weight.dim()) if d != dim]
    return torch.linalg.vector_norm(weight.detach(), ord=n, dim=others)  # Eq. (3) in [2]


def ln_structured_mask(weight: torch.Tensor, amount: float | int, n: float = 2, dim: int = 0) -> torch.Tensor:
    """0/1 mask that drops the ``amount`` slices along ``dim`` with the smallest Ln norm.

    ``dim=0`` drops rows of a Linear weight (output units) or filters of a Conv weight. As in
    torch, ``amount=1.0`` zeroes every slice; :func:`compresskit.pruning.prune_units`, which
    cuts units out, refuses to leave a layer with none. A 1-D tensor (a bias) has no slices:
    refused with ValueError, as torch refuses it.
    """
    _check_structured("weight", weight)
    norms = slice_norms(weight, n, dim)
    k = check_amount("amount", amount, norms.numel())
    dim = dim % weight.dim()
    mask = torch.zeros_like(weight, memory_format=torch.contiguous_format)
    keep = torch.topk(norms, norms.numel() - k, largest=True).indices
    index = [slice(None)] * weight.dim()
    index[dim] = keep
    mask[tuple(index)] = 1
    return mask


def global_magnitude_masks(weights: Sequence[torch.Tensor], amount: float | int) -> list[torch.Tensor]:
    """Masks that drop the ``amount`` smallest ``|w|`` among all ``weights`` ranked together."""
    if isinstance(weights, torch.Tensor) or not isinstance(weights, Sequence):
        raise TypeError(f"`weights` must be a list of tensors; got {type(weights).__name__} {_show(weights)}")
    if len(weights) == 0:
        raise ValueError(f"`weights` must hold at least one tensor; got {type(weights).__name__} {weights!r}")
    for i, w in enumerate(weights):
        check_tensor(f"weights[{i}]", w, floating=True, finite=True)
    flat = torch.cat([w.detach().flatten() for w in weights])
    masks = magnitude_mask(flat, amount).split([w.numel() for w in weights])
    return [m.view_as(w).to(w.dtype) for m, w in zip(masks, weights)]


# --- PyTorch pruning methods: each only computes a mask -------------------------------------


class L1Unstructured(prune.BasePruningMethod):
    """Magnitude pruning as a ``torch.nn.utils.prune`` method (same masks as torch's)."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, amount: float | int) -> None:
        check_amount("amount", amount, _ANY)  # as torch's __init__: the type and sign now, the count against the tensor later
        self.amount = amount

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        return default_mask * magnitude_mask(t, self.amount)


class ThresholdUnstructured(prune.BasePruningMethod):
    """Threshold pruning: drop every entry with ``|w| < threshold``."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, threshold: float) -> None:
        self.threshold = check_real("threshold", threshold, 0.0)

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        return default_mask * threshold_mask(t, self.threshold)


class RandomUnstructured(prune.BasePruningMethod):
    """Random pruning, drawing from ``seed`` instead of the global random state."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, amount: float | int, seed: int = 0) -> None:
        check_amount("amount", amount, _ANY)
        self.amount = amount
        self.seed = check_seed("seed", seed)

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        return default_mask * random_mask(t, self.amount, seed=self.seed)


class LnStructured(prune.BasePruningMethod):
    """Ln-norm pruning of whole slices along ``dim`` (rows, filters)."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount: float | int, n: float, dim: int = -1) -> None:
        check_amount("amount", amount, _ANY)
        self.amount = amount
        self.n = _check_norm(n)
        self.dim = check_int("dim", dim)

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        return default_mask * ln_structured_mask(t, self.amount, self.n, self.dim)


# --- functional adapters, named as in torch.nn.utils.prune ----------------------------------


def _check_target(module: Any, name: Any) -> torch.Tensor:
    """The tensor ``module.<name>`` (its unpruned original if already pruned), validated."""
    check_module("module", module)
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a str; got {type(name).__name__} {name!r}")
    params = dict(module.named_parameters(recurse=False))
    if name not in params and f"{name}_orig" not in params:
        have = sorted(p.removesuffix("_orig") for p in params)
        raise ValueError(f"`name` must name a parameter of {type(module).__name__} (one of {have}); got {name!r}")
    tensor = params.get(f"{name}_orig", params.get(name))
    return check_tensor(f"{type(module).__name__}.{name}", tensor, floating=True, finite=True)


def _remaining(module: nn.Module, name: str, dim: int | None = None) -> int:
    """How many entries (``dim=None``) or slices along ``dim`` are still unpruned: what an int
    ``amount`` counts from, as in torch, where a second pruning acts on what the first left."""
    mask = getattr(module, f"{name}_mask", None)
    tensor = _check_target(module, name)
    if not isinstance(mask, torch.Tensor):
        return tensor.numel() if dim is None else tensor.shape[dim]
    if dim is None:
        return int(mask.count_nonzero())
    others = [d for d in range(mask.dim()) if d != dim % mask.dim()]
    return int((mask.sum(dim=others) != 0).sum())


def _check_scores(module: nn.Module, name: str, importance_scores: Any) -> None:
    if importance_scores is not None:
        shape = _check_target(module, name).shape
        check_tensor("importance_scores", importance_scores, floating=True, finite=True)
        if importance_scores.shape != shape:
            raise ValueError(f"`importance_scores` must have the shape of `{name}` {tuple(shape)}; got {tuple(importance_scores.shape)}")


@contextlib.contextmanager
def _rollback(module: nn.Module) -> Iterator[None]:
    """Undo everything a pruning call did to ``module`` if it raises: parameters, buffers,
    forward pre-hooks, plain attributes, and the methods of an existing pruning container."""
    saved = {key: dict(getattr(module, key)) for key in ("_parameters", "_buffers", "_forward_pre_hooks")}
    attributes = dict(module.__dict__)
    containers = {h: h._pruning_methods for h in saved["_forward_pre_hooks"].values() if isinstance(h, prune.PruningContainer)}
    try:
        yield
    except BaseException:
        for key, contents in saved.items():
            getattr(module, key).clear()
            getattr(module, key).update(contents)
        for key in set(module.__dict__) - set(attributes):
            del module.__dict__[key]
        module.__dict__.update(attributes)
        for container, methods in containers.items():
            container._pruning_methods = methods
        raise


def l1_unstructured(module: nn.Module, name: str, amount: float | int, importance_scores: torch.Tensor | None = None) -> nn.Module:
    """Prune ``amount`` entries of ``module.<name>`` with the smallest ``|importance_scores|``
    (the weights themselves by default). Same signature, mask and return value (the module)
    as torch's. On an already-pruned tensor, ``amount`` counts among the entries left."""
    check_amount("amount", amount, _remaining(module, name))
    _check_scores(module, name, importance_scores)
    with _rollback(module):
        L1Unstructured.apply(module, name, amount=amount, importance_scores=importance_scores)
    return module


def threshold_unstructured(module: nn.Module, name: str, threshold: float, importance_scores: torch.Tensor | None = None) -> nn.Module:
    """Prune every entry of ``module.<name>`` whose magnitude is below ``threshold``; returns the module."""
    _check_target(module, name)
    check_real("threshold", threshold, 0.0)
    _check_scores(module, name, importance_scores)
    with _rollback(module):
        ThresholdUnstructured.apply(module, name, threshold=threshold, importance_scores=importance_scores)
    return module


def random_unstructured(module: nn.Module, name: str, amount: float | int, *, seed: int = 0) -> nn.Module:
    """Prune ``amount`` entries of ``module.<name>`` chosen at random from ``seed``; returns the module."""
    check_amount("amount", amount, _remaining(module, name))
    check_seed("seed", seed)
    with _rollback(module):
        RandomUnstructured.apply(module, name, amount=amount, seed=seed)
    return module


def ln_structured(
    module: nn.Module, name: str, amount: float | int, n: float, dim: int, importance_scores: torch.Tensor | None = None
) -> nn.Module:
    """Prune the ``amount`` slices of ``module.<name>`` along ``dim`` with the smallest Ln norm;
    returns the module. A 1-D tensor (a bias) is refused, as torch refuses it."""
    tensor = _check_target(module, name)
    _check_structured(f"{type(module).__name__}.{name}", tensor)
    _check_norm(n)
    dim = check_int("dim", dim, -tensor.dim(), tensor.dim() - 1)
    check_amount("amount", amount, _remaining(module, name, dim))
    _check_scores(module, name, importance_scores)
    with _rollback(module):
        LnStructured.apply(module, name, amount=amount, n=n, dim=dim, importance_scores=importance_scores)
    return module


def global_unstructured(
    parameters: Iterable[tuple[nn.Module, str]],
    pruning_method: type[prune.BasePruningMethod],
    importance_scores: dict[tuple[nn.Module, str], torch.Tensor] | None = None,
    **kwargs: Any,
) -> None:
    """Rank the entries of all ``parameters`` together and prune them with one ``pruning_method``
    (e.g. ``L1Unstructured, amount=0.9``); as torch's, entries already pruned stay pruned and
    ``amount`` counts among the rest."""
    parameters = _check_parameters(parameters)
    if not (isinstance(pruning_method, type) and issubclass(pruning_method, prune.BasePruningMethod)):
        raise TypeError(f"`pruning_method` must be a BasePruningMethod subclass; got {pruning_method!r}")
    if pruning_method.PRUNING_TYPE != "unstructured":
        raise TypeError(f"`pruning_method` must be unstructured for global pruning; got {pruning_method.__name__}")
    importance_scores = {} if importance_scores is None else importance_scores
    if not isinstance(importance_scores, dict):
        raise TypeError(f"`importance_scores` must be a dict {{(module, name): tensor}}; got {type(importance_scores).__name__}")
    for module, name in parameters:
        if (module, name) in importance_scores:
            _check_scores(module, name, importance_scores[(module, name)])
    scores = torch.cat([importance_scores.get((m, n), getattr(m, n)).detach().flatten() for m, n in parameters])
    default = torch.cat([getattr(m, f"{n}_mask", torch.ones_like(getattr(m, n))).flatten() for m, n in parameters])
    method = pruning_method(**kwargs)
    container = prune.PruningContainer()
    container._tensor_name = method._tensor_name = "global"  # torch's machinery wants a name
    container.add_pruning_method(method)
    mask = container.compute_mask(scores, default)
    for (module, name), part in zip(parameters, mask.split([getattr(m, n).numel() for m, n in parameters])):
        prune.custom_from_mask(module, name, part.view_as(getattr(module, name)))


# --- helpers for whole models ---------------------------------------------------------------


def prunable_parameters(model: nn.Module, types: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)) -> list[tuple[nn.Module, str]]:
    """``(module, "weight")`` for every Linear / Conv2d of ``model``: the list torch's
    ``global_unstructured`` takes."""
    check_module("model", model)
    return [(m, "weight") for m in model.modules() if isinstance(m, types)]


def set_sparsity(parameters: Parameters, amount: float | int, *, scope: str = "global") -> None:
    """Magnitude-prune ``parameters`` so that ``amount`` of their entries are zero in total.

    ``amount`` follows torch: a float is a fraction in [0, 1], an int a count of entries (of
    all ``parameters`` together for ``scope="global"``, of each tensor for ``scope="layer"``).
    Unlike ``l1_unstructured`` applied twice, ``amount`` is the total, not a share of what is
    left: the mask is recomputed from the current effective weights ``W_orig * mask`` and
    written into the existing ``weight_mask`` buffer (pruned entries are zero, so they stay
    pruned). ``scope`` is "global" (rank all layers together) or "layer" (each layer alone).
    Gradual pruning calls this on a schedule. Every pair and ``amount`` are checked before
    anything changes: a failed call leaves every module as it was.
    """
    if scope not in ("global", "layer"):
        raise ValueError(f"`scope` must be one of ['global', 'layer']; got {scope!r}")
    parameters = _check_parameters(parameters)
    sizes = [_check_target(m, n).numel() for m, n in parameters]
    for size in [sum(sizes)] if scope == "global" else sizes:
        check_amount("amount", amount, size)
    for module, name in parameters:
        if not hasattr(module, f"{name}_mask"):
            prune.identity(module, name)
    effective = [getattr(m, f"{n}_orig").detach() * getattr(m, f"{n}_mask") for m, n in parameters]
    if scope == "global":
        masks = global_magnitude_masks(effective, amount)
    else:
        masks = [magnitude_mask(w, amount) for w in effective]
    with torch.no_grad():
        for (module, name), mask in zip(parameters, masks):
            getattr(module, f"{name}_mask").copy_(mask)
            setattr(module, name, getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask"))


def _check_parameters(parameters: Any) -> list[tuple[nn.Module, str]]:
    """A non-empty list of distinct (module, parameter name) pairs, each checked."""
    if isinstance(parameters, (nn.Module, torch.Tensor, str)) or not isinstance(parameters, Iterable):
        raise TypeError(f"`parameters` must be a list of (module, name) pairs; got {type(parameters).__name__} {_show(parameters)}")
    parameters = list(parameters)
    if not parameters:
        raise ValueError("`parameters` must list at least one (module, name) pair; got none")
    for i, pair in enumerate(parameters):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"`parameters[{i}]` must be a (module, name) pair; got {type(pair).__name__} {_show(pair)}")
        _check_target(*pair)
    if len({(id(m), n) for m, n in parameters}) != len(parameters):
        raise ValueError("`parameters` must not list the same (module, name) pair twice")
    return parameters


def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zero entries in the (effective) weight of every Linear / Conv2d, by name."""
    check_module("model", model)
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            weight = module.weight_orig * module.weight_mask if hasattr(module, "weight_mask") else module.weight
            out[name] = 1.0 - int(torch.count_nonzero(weight.detach())) / weight.numel()
    return out


def remove_masks(model: nn.Module) -> nn.Module:
    """Make every pruning permanent (``prune.remove``): ``weight`` becomes a plain parameter
    holding zeros, and ``weight_orig`` / ``weight_mask`` / the hook go away. In place."""
    check_module("model", model)
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return model

