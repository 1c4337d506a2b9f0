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


# --- every public function that takes a model, on a pruned model ------------------------------

def pruned_cnn() -> nn.Sequential:
    """A CNN with BatchNorm whose first conv and last Linear are pruned."""
    model = models.cnn(seed=0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    torch_prune.l1_unstructured(convs[0], "weight", 0.5)
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    torch_prune.l1_unstructured(lin, "weight", 0.3)
    return model


def _run_and_forward(model: nn.Module) -> None:
    """A forward pass with gradients on leaves the pruned weight a non-leaf tensor (deepcopy refuses it)."""
    model(X).sum().backward()
    model.zero_grad()


def test_sparsify_and_apply_masks_on_a_pruned_model_keep_its_zeros_and_add_theirs():
    model = pruned_mlp()
    _run_and_forward(model)
    pruned_zeros = model.fc1.weight_mask == 0
    for method in ("magnitude", "taylor", "random"):
        new = S.sparsify(model, 0.7, method, X=X, y=Y)
        if method == "random":  # random scores do not know the pruned zeros: 70% more, at random
            assert S.total_sparsity(new) > 0.7
        else:  # the pruned weights score 0: they are among the 70% dropped
            assert abs(S.total_sparsity(new) - 0.7) < 0.01
        assert bool((new.fc1.weight[pruned_zeros] == 0).all())
        assert not torch_prune.is_pruned(new)  # plain tensors, as the docstring says
    masks = {"fc2.weight": torch.zeros(10, 16)}
    new = S.apply_masks(model, masks)
    assert bool((new.fc2.weight == 0).all()) and bool((new.fc1.weight[pruned_zeros] == 0).all())
    assert torch_prune.is_pruned(model)  # the original keeps its hooks


def test_magnitude_scores_of_a_pruned_model_rank_its_pruned_weights_lowest():
    model = pruned_mlp()
    scores = S.importance_scores(model, "magnitude")
    assert bool((scores["fc1.weight"][model.fc1.weight_mask == 0] == 0).all())


def test_weight_gradients_of_a_pruned_model_match_the_same_dense_model():
    model = pruned_mlp()
    dense = mlp()
    with torch.no_grad():
        dense.fc1.weight.copy_(model.fc1.weight_orig * model.fc1.weight_mask)
    grads, expected = S.weight_gradients(model, X, Y), S.weight_gradients(dense, X, Y)
    mask = model.fc1.weight_mask
    # the gradient reaching weight_orig is the dense gradient where the mask is 1, 0 elsewhere
    assert torch.allclose(grads["fc1.weight"], expected["fc1.weight"] * mask, atol=1e-7)
    assert torch.allclose(grads["fc2.weight"], expected["fc2.weight"], atol=1e-7)
    taylor = S.importance_scores(model, "taylor", X=X, y=Y)
    assert torch.allclose(taylor["fc1.weight"], S.importance_scores(dense, "taylor", X=X, y=Y)["fc1.weight"], atol=1e-8)


def test_repair_and_remove_units_on_a_pruned_model_compute_its_function():
    model = pruned_mlp().eval()
    with torch.no_grad():
        model.fc1.weight_orig[3] = 0  # unit 3 has no inputs: repair folds it
    _run_and_forward(model)
    model.eval()
    repaired = S.repair(model)
    assert repaired.fc1.out_features == 15
    assert torch.allclose(repaired(X), model(X), atol=1e-5)
    chain = S.find_chains(model)[0]
    smaller = S.remove_units(model, chain, torch.tensor([0, 1]))
    assert smaller.fc1.out_features == 14 and not torch_prune.is_pruned(smaller)
    keep = torch.arange(2, 16)
    expected = (torch.relu(X.flatten(1) @ model.fc1.weight[keep].T + model.fc1.bias[keep]) @ model.fc2.weight[:, keep].T
                + model.fc2.bias)
    assert torch.allclose(smaller(X), expected, atol=1e-5)
    lowest = S.remove_lowest(model, S.unit_scores(model, "l1"), 0.25)
    assert lowest.fc1.out_features == 12
    assert S.dead_units(model)["fc1"]["no_inputs"].tolist() == [3]
    assert torch.allclose(S.constant_outputs(model, chain, torch.tensor([3])), torch.relu(model.fc1.bias[3:4]))


def test_structured_scores_and_batchnorm_recalibration_on_a_pruned_cnn():
    model = pruned_cnn()
    _run_and_forward(model)
    model.eval()
    for method in ("l1", "bn", "apoz", "taylor"):
        scores = S.unit_scores(model, method, X=X, y=Y)
        assert all(bool(torch.isfinite(s).all()) for s in scores.values())
    assert set(S.bn_scales(model)) and S.record_activations(model, "conv1", X).shape[0] == len(X)
    fresh = S.recalibrate_batchnorm(model, X)
    assert torch_prune.is_pruned(fresh)
    conv = [m for m in fresh.modules() if isinstance(m, nn.Conv2d)][0]
    assert bool((conv.weight[conv.weight_mask == 0] == 0).all())
    smaller = S.remove_lowest(model, S.unit_scores(model, "l1"), 0.5)
    assert torch.isfinite(smaller(X)).all()
    loss = S.slimming_loss(model, 1e-4)(model, X, Y)
    assert torch.isfinite(loss)


def test_sparsity_counts_and_topk_sparsifier_on_a_pruned_model():
    model = pruned_mlp()
    assert S.weight_sparsity(model)["fc1.weight"] == pytest.approx(0.5)
    assert S.total_sparsity(model) == pytest.approx(512 / (16 * 64 + 10 * 16))
    assert set(S.sparse_weights(model)) == {"fc1.weight", "fc2.weight"}
    with S.TopKSparsifier(model, density=0.1) as sparsifier:
        fit(model, [(X, Y)] * 3, epochs=1, progress=False)
    assert sparsifier.steps == 3
    assert bool((model.fc1.weight[model.fc1.weight_mask == 0] == 0).all())


# --- masks must be 0/1 ---------------------------------------------------------------------

@pytest.mark.parametrize("fn", [S.apply_masks, S.MaskKeeper], ids=["apply_masks", "MaskKeeper"])
@pytest.mark.parametrize("value, shown", [(0.5, "0.5"), (float("nan"), "nan"), (2.0, "2.0"), (-1.0, "-1.0")])
def test_masks_that_are_not_zero_or_one_are_refused_and_the_model_is_unchanged(fn, value, shown):
    model = mlp()
    mask = torch.ones(16, 64)
    mask[3, 5] = value
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=rf"`masks\['fc1.weight'\]` must hold only 0 and 1.*got {shown}"):
        fn(model, {"fc1.weight": mask})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float16, torch.float64])
def test_zero_one_masks_of_any_numeric_dtype_are_accepted(dtype):
    model = mlp()
    mask = (torch.arange(16 * 64).reshape(16, 64) % 2).to(dtype)
    new = S.apply_masks(model, {"fc1.weight": mask})
    assert torch.equal(new.fc1.weight, model.fc1.weight * mask.float())
    S.MaskKeeper(model, {"fc1.weight": mask})
    assert torch.equal(model.fc1.weight, new.fc1.weight)
