"""The caller's train / eval mode of every submodule, given back after a function is done with a model."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def keeping_modes(*models: nn.Module) -> Iterator[None]:
    """Run the body, then give every submodule of ``models`` back the ``training`` flag it came
    with, on success and on failure (``fit`` leaves a model training, probes run in eval mode)."""
    modes = [(module, module.training) for model in models for module in model.modules()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
