"""compresskit.sparsity on models that chapter 2 pruned with torch.nn.utils.prune, and the
training callbacks (MaskKeeper, ProximalL1) acting on the model they are called with.

A learner who prunes in chapter 2 and fine-tunes in chapter 4 must get a sparse model or a
clear error, never a silently dense one."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from compresskit import models
from compresskit import sparsity as S
from compresskit.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")

X, Y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))


def mlp(seed: int = 0) -> nn.Sequential:
    return models.mlp((16,), seed=seed)


def pruned_mlp(seed: int = 0) -> nn.Sequential:
    """fc1 pruned to 50% with torch's L1 method: weight = weight_orig * weight_mask."""
    model = mlp(seed)
    torch_prune.l1_unstructured(model.fc1, "weight", 0.5)
    return model


def _effective(model: nn.Module, name: str) -> torch.Tensor:
    """The weight a forward pass uses (for a pruned layer, weight_orig * weight_mask)."""
    layer = getattr(model, name)
    if hasattr(layer, "weight_orig"):
        return (layer.weight_orig * layer.weight_mask).detach()
    return layer.weight.detach()


# --- MaskKeeper ------------------------------------------------------------------------------

def test_mask_keeper_holds_zeros_of_a_pruned_model_through_training():
    model = pruned_mlp()
    masks = {"fc1.weight": S.nm_mask(model.fc1.weight.detach()), "fc2.weight": S.nm_mask(model.fc2.weight)}
    fit(model, [(X, Y)] * 5, epochs=1, progress=False, on_step=S.MaskKeeper(model, masks))
    w1 = _effective(model, "fc1")
    assert S.is_nm_sparse(w1) and bool((w1[masks["fc1.weight"] == 0] == 0).all())
    assert S.is_nm_sparse(_effective(model, "fc2"))
    # the weights the optimizer updates (weight_orig) hold the zeros too, so prune.remove keeps them
    torch_prune.remove(model.fc1, "weight")
    assert S.is_nm_sparse(model.fc1.weight)


def test_mask_keeper_acts_on_the_model_it_is_called_with():
    built_from, trained = mlp(0), mlp(1)
    masks = {"fc1.weight": S.nm_mask(built_from.fc1.weight)}
    keeper = S.MaskKeeper(built_from, masks)
    before = built_from.fc1.weight.detach().clone()
    keeper(trained, 1)
    assert bool((trained.fc1.weight[masks["fc1.weight"] == 0] == 0).all())
    assert torch.equal(built_from.fc1.weight, before)


def test_mask_keeper_refuses_a_model_without_the_masked_weights():
    keeper = S.MaskKeeper(mlp(), {"fc2.weight": torch.ones(10, 16)})
    other = models.mlp((8,), seed=0)  # fc2.weight is (10, 8)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError, match=r"`model`.*fc2.weight.*\(10, 16\).*\(10, 8\)"):
        keeper(other, 1)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())


# --- ProximalL1 ------------------------------------------------------------------------------

def test_proximal_l1_makes_zeros_in_a_pruned_model():
    model = pruned_mlp()
    fit(model, [(X, Y)] * 20, epochs=1, lr=1e-3, progress=False, on_step=S.ProximalL1(model, 5.0, 1e-3))
    torch_prune.remove(model.fc1, "weight")  # the trained values themselves, without the mask
    # fc1 was pruned to 50%: soft thresholding must add zeros beyond the mask, and fc2 too
    assert S.weight_sparsity(model)["fc1.weight"] > 0.6
    assert S.weight_sparsity(model)["fc2.weight"] > 0.1


def test_proximal_l1_acts_on_the_model_it_is_called_with():
    built_from, trained = mlp(0), mlp(1)
    prox = S.ProximalL1(built_from, 1.0, 0.5)  # threshold 0.5: every weight of |w| < 0.5 becomes 0
    before = built_from.fc1.weight.detach().clone()
    prox(trained, 1)
    assert S.total_sparsity(trained) > 0.9
    assert torch.equal(built_from.fc1.weight, before)
