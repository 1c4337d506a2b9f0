"""The small models the course compresses: an MLP and a CNN for 8x8 digits.

Both take images of shape (B, 1, 8, 8) and return logits (B, 10). Layers have names
(``fc1``, ``conv1``, ``bn1``, ...) so that chapters and tests can address them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from compresskit._validation import check_int


def mlp(hidden: Sequence[int] = (256, 256), in_features: int = 64, num_classes: int = 10, *, seed: int = 0) -> nn.Sequential:
    """Flatten -> [Linear -> ReLU] * len(hidden) -> Linear.

    Layer names: ``flatten``, ``fc1``, ``relu1``, ..., ``fc{len(hidden)+1}``.
    Weights are initialised from ``seed`` (PyTorch's default init, drawn from a private generator).
    """
    if isinstance(hidden, int) or not all(isinstance(h, int) for h in hidden):
        raise TypeError(f"`hidden` must be a sequence of ints; got {hidden!r}")
    sizes = [check_int("in_features", in_features, 1)]
    sizes += [check_int(f"hidden[{i}]", h, 1) for i, h in enumerate(hidden)]
    sizes += [check_int("num_classes", num_classes, 2)]
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
    if isinstance(channels, int) or not all(isinstance(c, int) for c in channels) or len(channels) == 0:
        raise TypeError(f"`channels` must be a non-empty sequence of ints; got {channels!r}")
    sizes = [1] + [check_int(f"channels[{i}]", c, 1) for i, c in enumerate(channels)]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
            layers[f"bn{i}"] = nn.BatchNorm2d(c_out)
            layers[f"relu{i}"] = nn.ReLU()
        layers["pool"] = nn.MaxPool2d(2)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(sizes[-1] * 4 * 4, check_int("num_classes", num_classes, 2))
    return nn.Sequential(layers)
