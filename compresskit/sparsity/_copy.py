"""A copy of a model with ``torch.nn.utils.prune``'s masks made permanent: plain weights with
zeros and no pruning hooks (the dense model that sparsity's functions return)."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune

from compresskit.models import copy_model


def dense_copy(model: nn.Module) -> nn.Module:
    """``copy_model(model)`` (safe on a pruned model, where ``copy.deepcopy`` raises), then
    ``prune.remove`` on every pruned tensor of the copy: ``weight = weight_orig * weight_mask``
    becomes a plain parameter. ``model`` keeps its hooks."""
    new = copy_model(model)
    for module in new.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return new
