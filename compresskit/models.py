"""The small models the course compresses: an MLP and a CNN for 8x8 digits.

Both take images of shape (B, 1, 8, 8) and return logits (B, 10). Layers have names
(``fc1``, ``conv1``, ``bn1``, ...) so that chapters and tests can address them.

:func:`copy_model` copies any model, a pruned one included, so that every technique can
work on a copy and leave the caller's model alone.
"""

from __future__ import annotations

import copy
import numbers
from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from compresskit._validation import check_int, check_module, check_seed

__all__ = ["cnn", "copy_model", "mlp"]


def _sizes(name: str, values: Sequence[int], *, nonempty: bool) -> list[int]:
    """Each entry an integer >= 1 (Python or numpy), in a sequence that is not a single int or a str."""
    if isinstance(values, (numbers.Integral, str, bytes)) or not isinstance(values, Sequence) or (nonempty and len(values) == 0):
        what = "a non-empty sequence" if nonempty else "a sequence"
        raise TypeError(f"`{name}` must be {what} of ints; got {type(values).__name__} {values!r}")
    return [check_int(f"{name}[{i}]", v, 1) for i, v in enumerate(values)]


def mlp(hidden: Sequence[int] = (256, 256), in_features: int = 64, num_classes: int = 10, *, seed: int = 0) -> nn.Sequential:
    """Flatten -> [Linear -> ReLU] * len(hidden) -> Linear.

    Layer names: ``flatten``, ``fc1``, ``relu1``, ..., ``fc{len(hidden)+1}``.
    Weights are initialised from ``seed`` (PyTorch's default init, drawn from a private generator).
    """
    sizes = [check_int("in_features", in_features, 1)]
    sizes += _sizes("hidden", hidden, nonempty=False)
    sizes += [check_int("num_classes", num_classes, 2)]
    seed = check_seed("seed", seed)
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            layers[f"fc{i}"] = nn.Linear(n_in, n_out)
            if i < len(sizes) - 1:
                layers[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(layers)


def cnn(channels: Sequence[int] = (16, 32), num_classes: int = 10, *, seed: int = 0) -> nn.Sequential:
    """[Conv3x3 -> BatchNorm -> ReLU] * len(channels) -> MaxPool2 -> Flatten -> Linear.

    Layer names: ``conv1``, ``bn1``, ``relu1``, ..., ``pool``, ``flatten``, ``fc``.
    On 8x8 inputs with padding 1 the feature maps stay 8x8 until the pool halves them to 4x4.
    """
    sizes = [1] + _sizes("channels", channels, nonempty=True)
    num_classes = check_int("num_classes", num_classes, 2)
    seed = check_seed("seed", seed)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
            layers[f"bn{i}"] = nn.BatchNorm2d(c_out)
            layers[f"relu{i}"] = nn.ReLU()
        layers["pool"] = nn.MaxPool2d(2)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(sizes[-1] * 4 * 4, num_classes)
    return nn.Sequential(layers)


def copy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that also works on a model pruned with ``torch.nn.utils.prune``.

    Pruning leaves ``weight = weight_orig * weight_mask`` as a computed (non-leaf) tensor after
    the pruning call and after every forward pass with gradients on, and ``copy.deepcopy``
    refuses non-leaf tensors. The masked weights are recomputed without gradients first (the
    same values), then the model is copied.
    """
    check_module("model", model)
    with torch.no_grad():
        for module in model.modules():
            for hook in module._forward_pre_hooks.values():
                if isinstance(hook, prune.BasePruningMethod):
                    setattr(module, hook._tensor_name, hook.apply_mask(module))
    return copy.deepcopy(model)
