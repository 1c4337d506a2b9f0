"""compresskit.sparsity's global and local sparsification, structure repair and gradient
sparsification: hand cases, agreement with torch, the repaired model computes the same
function, and every bad input is refused before anything changes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from compresskit import models
from compresskit import sparsity as S
from compresskit.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, so folding is tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g))
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.randn(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g))
    return model.eval()


# --- global sparsification -------------------------------------------------------------------

def test_global_masks_by_hand():
    masks = S.global_masks({"a": torch.tensor([0.1, 0.5, 0.3]), "b": torch.tensor([[0.2, 0.9]])}, 0.4)
    assert masks["a"].tolist() == [0, 1, 1] and masks["b"].tolist() == [[0, 1]]


def test_magnitude_sparsify_equals_torch_global_unstructured():
    model = models.mlp((32, 16), seed=1)
    ours = S.sparsify(model, 0.7)
    theirs = copy.deepcopy(model)
    params = [(m, "weight") for m in theirs.modules() if isinstance(m, nn.Linear)]
    torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=0.7)
    for (m, _), name in zip(params, ["fc1", "fc2", "fc3"]):
        assert torch.equal(getattr(ours, name).weight, m.weight)
    assert S.total_sparsity(ours) == pytest.approx(0.7, abs=1e-3)
    assert S.total_sparsity(model) == 0.0  # the original is untouched


def test_random_sparsify_is_seeded_and_reaches_the_amount():
    model = models.mlp((32,), seed=0)
    a, b, c = (S.sparsify(model, 0.5, "random", seed=s) for s in (3, 3, 4))
    assert torch.equal(a.fc1.weight, b.fc1.weight) and not torch.equal(a.fc1.weight, c.fc1.weight)
    assert S.total_sparsity(a) == pytest.approx(0.5, abs=1e-3)


def test_taylor_scores_are_weight_times_gradient():
    model = models.mlp((8,), seed=0)
    X, y = torch.rand(20, 1, 8, 8), torch.randint(0, 10, (20,))
    grads = S.weight_gradients(model, X, y)
    nn.functional.cross_entropy(model(X), y).backward()
    assert torch.allclose(grads["fc1.weight"], model.fc1.weight.grad)
    scores = S.importance_scores(model, "taylor", X=X, y=y)
    assert torch.allclose(scores["fc2.weight"], (model.fc2.weight * model.fc2.weight.grad).abs())


def test_weight_gradients_leave_the_model_as_it_was():
    model = models.cnn((4, 4), seed=0).train()
    before = copy.deepcopy(model.state_dict())
    S.weight_gradients(model, torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics too


def test_soft_threshold_by_hand_and_exact_zeros():
    w = torch.tensor([-1.0, -0.2, 0.05, 0.3, 2.0])
    assert torch.allclose(S.soft_threshold(w, 0.25), torch.tensor([-0.75, 0.0, 0.0, 0.05, 1.75]))
    assert (S.soft_threshold(w, 0.25) == 0).sum() == 2


def test_proximal_l1_training_makes_exact_zeros_where_a_plain_penalty_does_not():
    X, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    loader = [(X, y)] * 30
    prox = models.mlp((32,), seed=0)
    fit(prox, loader, epochs=1, progress=False, on_step=S.ProximalL1(prox, 3.0, 1e-3))
    plain = models.mlp((32,), seed=0)

    def l1_loss(m, x, t):
        return nn.functional.cross_entropy(m(x), t) + 3.0 * sum(w.abs().sum() for w in S.sparse_weights(m).values())

    fit(plain, loader, epochs=1, progress=False, loss_fn=l1_loss)
    assert S.total_sparsity(prox) > 0.3
    assert S.total_sparsity(plain) < 0.01  # small, but not zero


def test_mask_keeper_holds_zeros_through_training():
    model = models.mlp((16,), seed=0)
    masks = {"fc1.weight": S.nm_mask(model.fc1.weight)}
    X, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    fit(model, [(X, y)] * 5, epochs=1, progress=False, on_step=S.MaskKeeper(model, masks))
    assert S.is_nm_sparse(model.fc1.weight) and (model.fc1.weight != 0).sum() == 16 * 32


@pytest.mark.parametrize("call, error, match", [
    (lambda m: S.sparsify(m, 1.0), ValueError, r"`amount` must be in \[0, 1\); got 1.0"),
    (lambda m: S.sparsify(m, -0.1), ValueError, r"`amount` must be in \[0, 1\)"),
    (lambda m: S.sparsify(m, 0.5, "norm"), ValueError, "`method` must be one of .*; got 'norm'"),
    (lambda m: S.sparsify(m, 0.5, "taylor"), ValueError, "`X` and `y` must be given for method 'taylor'"),
    (lambda m: S.sparsify("model", 0.5), TypeError, "`model` must be a torch.nn.Module"),
    (lambda m: S.apply_masks(m, {"fc9.weight": torch.ones(1)}), ValueError, "`masks` must name weights .*'fc9.weight'"),
    (lambda m: S.apply_masks(m, {"fc1.weight": torch.ones(3, 3)}), ValueError, r"must have shape \(8, 64\); got \(3, 3\)"),
    (lambda m: S.MaskKeeper(m, {}), TypeError, "`masks` must be a non-empty dict"),
    (lambda m: S.ProximalL1(m, -1.0, 1e-3), ValueError, r"`strength` must be in \[0, inf\)"),
    (lambda m: S.soft_threshold(torch.ones(2), -0.1), ValueError, r"`threshold` must be in \[0, inf\); got -0.1"),
    (lambda m: S.taylor_scores(torch.ones(2), torch.ones(3)), ValueError, r"`grad` must have the shape of `weight` \(2,\)"),
    (lambda m: S.global_masks({"a": torch.ones(2)}, 1.5), ValueError, r"`amount` must be in \[0, 1\); got 1.5"),
    (lambda m: S.weight_gradients(m, torch.rand(3, 1, 8, 8), torch.zeros(2, dtype=torch.long)), ValueError, "same length; got 3 and 2"),
])
def test_unstructured_bad_input_leaves_the_model_unchanged(call, error, match):
    model = models.mlp((8,), seed=0)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(error, match=match):
        call(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- local (structured) sparsification --------------------------------------------------------

def test_apoz_by_hand():
    acts = torch.tensor([[0.0, 1.0, 0.0], [0.0, 2.0, 3.0]])
    assert S.apoz(acts).tolist() == [1.0, 0.0, 0.5]
    maps = torch.zeros(2, 2, 2, 2)
    maps[0, 1, 0, 0] = 1.0  # channel 1: one non-zero of 8 positions
    assert S.apoz(maps).tolist() == [1.0, 7 / 8]


def test_filter_norms_equal_torch_ln_structured_choice():
    w = torch.randn(6, 3, 3, 3)
    norms = S.filter_norms(w)
    assert torch.allclose(norms, w.abs().sum(dim=(1, 2, 3)))
    conv = nn.Conv2d(3, 6, 3)
    with torch.no_grad():
        conv.weight.copy_(w)
    torch_prune.ln_structured(conv, "weight", amount=2, n=1, dim=0)
    dropped = (conv.weight_mask.flatten(1).sum(1) == 0).nonzero().flatten()
    assert dropped.tolist() == torch.topk(norms, 2, largest=False).indices.sort().values.tolist()


def test_record_activations_and_unit_scores_apoz():
    model = models.mlp((16,), seed=0)
    X = torch.rand(30, 1, 8, 8)
    acts = S.record_activations(model, "relu1", X, batch_size=7)
    with torch.no_grad():
        assert torch.allclose(acts, torch.relu(model.fc1(X.flatten(1))), atol=1e-6)
    scores = S.unit_scores(model, "apoz", X=X)
    assert torch.equal(scores["fc1"], 1 - S.apoz(acts))


def test_bn_scales_and_slimming_loss():
    model = models.cnn((4, 6), seed=0)
    with torch.no_grad():
        model.bn1.weight.copy_(torch.tensor([1.0, -2.0, 0.5, 0.0]))
    assert S.bn_scales(model)["conv1"].tolist() == [1.0, 2.0, 0.5, 0.0]
    x, t = torch.rand(4, 1, 8, 8), torch.randint(0, 10, (4,))
    model.eval()
    penalty = S.slimming_loss(model, 0.1)(model, x, t) - nn.functional.cross_entropy(model(x), t)
    assert penalty.item() == pytest.approx(0.1 * (3.5 + 6.0), rel=1e-5)  # bn2's scales start at 1


def test_units_to_remove_layer_and_global():
    scores = {"a": torch.tensor([0.1, 0.5, 0.2, 0.9]), "b": torch.tensor([0.05, 0.06])}
    assert {k: v.tolist() for k, v in S.units_to_remove(scores, 0.5).items()} == {"a": [0, 2], "b": [0]}
    # globally the 3 smallest are b's two and a's 0.1: b must keep one unit
    assert {k: v.tolist() for k, v in S.units_to_remove(scores, 0.5, scope="global").items()} == {"a": [0], "b": [0]}


@pytest.mark.parametrize("method", ["l1", "bn", "apoz", "taylor"])
def test_remove_lowest_gives_a_smaller_model_that_runs(method):
    model = _randomize_bn(models.cnn((8, 8), seed=0))
    X, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    small = S.remove_lowest(model, S.unit_scores(model, method, X=X, y=y), 0.5)
    assert small.conv1.out_channels == 4 and small.conv2.in_channels == 4 and small.fc.in_features == 4 * 16
    assert small(X).shape == (16, 10)


def test_removing_units_that_are_zero_changes_nothing():
    model = models.mlp((12,), seed=0).eval()
    with torch.no_grad():
        model.fc2.weight[:, [2, 5]] = 0  # units 2 and 5 of fc1 feed nothing
    scores = {"fc1": torch.ones(12).index_fill(0, torch.tensor([2, 5]), 0.0)}
    small = S.remove_lowest(model, scores, 2 / 12)
    x = torch.rand(9, 1, 8, 8)
    assert small.fc1.out_features == 10 and torch.allclose(small(x), model(x), atol=1e-6)


@pytest.mark.parametrize("call, error, match", [
    (lambda m: S.unit_scores(m, "random"), ValueError, "`method` must be one of"),
    (lambda m: S.unit_scores(m, "apoz"), ValueError, "`X` must be given for method 'apoz'"),
    (lambda m: S.unit_scores(m, "taylor", X=torch.rand(2, 1, 8, 8)), ValueError, "`X` and `y` must be given"),
    (lambda m: S.remove_lowest(m, {"fc9": torch.ones(8)}, 0.5), ValueError, "keyed by producer layers .*'fc9'"),
    (lambda m: S.remove_lowest(m, {"fc1": torch.ones(3)}, 0.5), ValueError, r"one score per unit \(8\); got shape \(3,\)"),
    (lambda m: S.remove_lowest(m, {"fc1": torch.ones(8)}, 1.0), ValueError, r"`amount` must be in \[0, 1\)"),
    (lambda m: S.units_to_remove({"fc1": torch.ones(8)}, 0.5, scope="model"), ValueError, "`scope` must be one of"),
    (lambda m: S.record_activations(m, "relu9", torch.rand(2, 1, 8, 8)), ValueError, "`layer` must name a submodule .*'relu9'"),
    (lambda m: S.apoz(torch.ones(5)), ValueError, "`activations` must have 2 or 3 or 4 dimensions"),
    (lambda m: S.bn_scales(m), ValueError, "must have a BatchNorm"),
    (lambda m: S.slimming_loss(m, 0.1), ValueError, "must have a BatchNorm"),
    (lambda m: S.find_chains(nn.ModuleList()), TypeError, "`model` must be an nn.Sequential"),
])
def test_structured_bad_input_leaves_the_model_unchanged(call, error, match):
    model = models.mlp((8,), seed=0)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(error, match=match):
        call(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- structure repair --------------------------------------------------------------------

def test_dead_units_found_by_hand():
    model = models.mlp((6, 5), seed=0)
    with torch.no_grad():
        model.fc1.weight[[1, 4]] = 0
        model.fc2.weight[:, 3] = 0
        model.fc3.weight[:, 0] = 0
    dead = S.dead_units(model)
    assert dead["fc1"]["no_inputs"].tolist() == [1, 4] and dead["fc1"]["no_outputs"].tolist() == [3]
    assert dead["fc2"]["no_inputs"].tolist() == [] and dead["fc2"]["no_outputs"].tolist() == [0]


def test_repair_of_an_mlp_computes_the_same_function():
    model = models.mlp((32, 32), seed=0).eval()
    with torch.no_grad():
        model.fc1.bias.add_(0.5)  # units without inputs now output a positive constant
        model.fc1.weight[[1, 4, 9]] = 0
        model.fc2.weight[:, 7] = 0
        model.fc3.weight[:, [0, 2]] = 0
    repaired = S.repair(model)
    assert repaired.fc1.out_features == 32 - 4 and repaired.fc2.out_features == 30
    x = torch.rand(50, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(repaired(x), model(x), atol=1e-5)


def test_repair_cascades_to_the_layer_before():
    model = models.mlp((6, 4), seed=0).eval()
    with torch.no_grad():
        model.fc2.weight[:2, :] = 0  # fc2 units 0, 1 have no inputs ...
        model.fc2.weight[2:, 3] = 0  # ... so fc1 unit 3 only fed units that are folded away
    repaired = S.repair(model)
    assert repaired.fc2.out_features == 2 and repaired.fc1.out_features == 5
    x = torch.rand(20, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(repaired(x), model(x), atol=1e-5)


def test_repair_of_a_cnn_folds_through_batchnorm_into_the_linear_layer():
    model = _randomize_bn(models.cnn((6, 8), seed=0))
    with torch.no_grad():
        model.conv1.weight[2] = 0  # no inputs, but conv2 pads: kept
        model.conv2.weight[[3, 6]] = 0  # no inputs; fc reads them through a pool: folded
        model.fc.weight[:, 16 * 5:16 * 6] = 0  # conv2 unit 5 has no outputs
    dead = S.dead_units(model)
    assert dead["conv1"]["no_inputs"].tolist() == [2] and dead["conv2"]["no_outputs"].tolist() == [5]
    repaired = S.repair(model)
    assert repaired.conv1.out_channels == 6 and repaired.conv2.out_channels == 5 and repaired.fc.in_features == 5 * 16
    x = torch.rand(20, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(repaired(x), model(x), atol=1e-5)
        folded = S.constant_outputs(model, S.find_chains(model)[1], torch.tensor([3, 6]))
        assert (folded > 0).any()  # the fold was not trivially zero


def test_repair_keeps_one_unit_of_a_layer_that_is_all_dead():
    model = models.mlp((4,), seed=0).eval()
    with torch.no_grad():
        model.fc2.weight.zero_()
    repaired = S.repair(model)
    x = torch.rand(5, 1, 8, 8)
    assert repaired.fc1.out_features == 1
    with torch.no_grad():
        assert torch.allclose(repaired(x), model(x))


def test_remove_units_refuses_to_fold_through_padding_and_bad_indices():
    model = _randomize_bn(models.cnn((4, 4), seed=0))
    chain = S.find_chains(model)[0]
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="zero-padded border"):
        S.remove_units(model, chain, torch.tensor([1]), fold=torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"`remove` must hold unit indices in \[0, 3\]; got \[4\]"):
        S.remove_units(model, chain, torch.tensor([4]))
    with pytest.raises(ValueError, match="leave at least one unit"):
        S.remove_units(model, chain, torch.arange(4))
    with pytest.raises(ValueError, match=r"one constant per removed unit \(1\); got 2"):
        S.remove_units(model, S.find_chains(model)[1], torch.tensor([1]), fold=torch.ones(2))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_recalibrate_batchnorm_equals_the_batch_statistics():
    model = _randomize_bn(models.cnn((4, 4), seed=0))
    X = torch.rand(100, 1, 8, 8)
    fixed = S.recalibrate_batchnorm(model, X, batch_size=100)
    with torch.no_grad():
        h = model.conv1(X)
    assert torch.allclose(fixed.bn1.running_mean, h.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(fixed.bn1.running_var, h.var(dim=(0, 2, 3), unbiased=True), atol=1e-4)
    assert not fixed.training and fixed.bn1.momentum == model.bn1.momentum
    assert not torch.allclose(model.bn1.running_mean, fixed.bn1.running_mean)  # the input is untouched
    with pytest.raises(ValueError, match="must have a BatchNorm"):
        S.recalibrate_batchnorm(models.mlp((4,)), X)


# --- gradient sparsification ----------------------------------------------------------------

def test_topk_gradient_by_hand():
    g = torch.tensor([[0.1, -3.0], [2.0, 0.5]])
    assert S.topk_gradient(g, 0.5).tolist() == [[0.0, -3.0], [2.0, 0.0]]
    assert S.topk_gradient(g, 0.01).tolist() == [[0.0, -3.0], [0.0, 0.0]]  # at least one entry
    assert S.message_bytes(1000, 0.01) == 10 * 8


def test_error_feedback_by_hand():
    layer = nn.Linear(4, 1, bias=False)
    sent = []
    with S.TopKSparsifier(layer, 0.25, error_feedback=True) as sparsifier:
        for _ in range(4):
            layer.zero_grad(set_to_none=True)
            layer(torch.tensor([[1.0, 2.0, 3.0, 4.0]])).sum().backward()  # gradient (1, 2, 3, 4)
            sent.append(layer.weight.grad.flatten().tolist())
    # accumulated (1,2,3,4) -> send 4; (2,4,6,4) -> send 6; (3,6,3,8) -> send 8; (4,8,6,4) -> send 8
    assert sent == [[0, 0, 0, 4], [0, 0, 6, 0], [0, 0, 0, 8], [0, 8, 0, 0]]
    assert sparsifier.residuals[id(layer.weight)].flatten().tolist() == [4, 0, 6, 4]
    assert sparsifier.steps == 4 and sparsifier.bytes_per_step() == 8


def test_error_feedback_accounting_is_exact():
    layer = nn.Linear(4, 1, bias=False)
    sent_total = torch.zeros(1, 4)
    with S.TopKSparsifier(layer, 0.25, error_feedback=True) as sparsifier:
        for _ in range(5):
            layer.zero_grad(set_to_none=True)
            layer(torch.tensor([[1.0, 2.0, 3.0, 4.0]])).sum().backward()
            sent_total += layer.weight.grad
    # nothing is lost: what was sent plus what is held back equals the sum of the gradients
    assert torch.allclose(sent_total + sparsifier.residuals[id(layer.weight)], 5 * torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert (sent_total != 0).sum() >= 3  # small coordinates get their turn


def test_without_error_feedback_small_coordinates_are_never_sent():
    layer = nn.Linear(4, 1, bias=False)
    sent_total = torch.zeros(1, 4)
    with S.TopKSparsifier(layer, 0.25, error_feedback=False):
        for _ in range(5):
            layer.zero_grad(set_to_none=True)
            layer(torch.tensor([[1.0, 2.0, 3.0, 4.0]])).sum().backward()
            sent_total += layer.weight.grad
    assert sent_total.tolist() == [[0.0, 0.0, 0.0, 20.0]]


def test_sparsifier_hooks_are_removed_on_exit():
    layer = nn.Linear(4, 2)
    with S.TopKSparsifier(layer, 0.25):
        pass
    layer(torch.ones(1, 4)).sum().backward()
    assert (layer.weight.grad != 0).sum() == 8
    assert S.TopKSparsifier(layer, 0.5).dense_bytes_per_step() == 10 * 4


@pytest.mark.parametrize("call, error, match", [
    (lambda: S.topk_gradient(torch.ones(3), 0.0), ValueError, r"`density` must be in \(0, 1\]; got 0.0"),
    (lambda: S.topk_gradient(torch.ones(3), 1.5), ValueError, r"`density` must be in \(0, 1\]"),
    (lambda: S.TopKSparsifier(nn.Linear(2, 2), 0.1, error_feedback="yes"), TypeError, "`error_feedback` must be a bool"),
    (lambda: S.TopKSparsifier(nn.Linear(2, 2), 0.1).bytes_per_step(), ValueError, "no step has been taken"),
    (lambda: S.message_bytes(0, 0.1), ValueError, r"`numel` must be an integer in \[1, inf\]; got 0"),
])
def test_gradient_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- every other public function refuses bad input, naming the argument ----------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda m: S.to_bitmask(torch.ones(3)), ValueError, "`dense` must have 2 dimensions"),
    (lambda m: S.count_fillers(torch.ones(2, 2), index_bits=5), ValueError, "`index_bits` must be one of"),
    (lambda m: S.encode(torch.ones(2, 2), "dense"), ValueError, "`fmt` must be one of .*; got 'dense'"),
    (lambda m: S.is_nm_sparse(torch.ones(2, 6), 2, 4), ValueError, "`m` must divide the row length 6"),
    (lambda m: S.index_bits(1), ValueError, r"`m` must be an integer in \[2, 256\]; got 1"),
    (lambda m: S.pack_nm(torch.ones(2, 8), 5, 4), ValueError, "`n` must be at most `m` = 4"),
    (lambda m: S.packed_bytes(torch.ones(2)), TypeError, "`packed` must be an NMPacked"),
    (lambda m: S.magnitude_scores([1.0]), TypeError, "`weight` must be a torch.Tensor"),
    (lambda m: S.random_scores(torch.ones(2), seed=-1), ValueError, r"`seed` must be an integer in \[0, inf\]; got -1"),
    (lambda m: S.weight_sparsity("model"), TypeError, "`model` must be a torch.nn.Module"),
    (lambda m: S.total_sparsity(nn.Sequential(nn.ReLU())), ValueError, "must have a Linear or Conv2d layer"),
    (lambda m: S.filter_norms(torch.ones(2, 2, 2)), ValueError, "`weight` must have 2 or 4 dimensions"),
    (lambda m: S.taylor_unit_scores(m, torch.rand(2, 1, 8, 8), torch.zeros(3, dtype=torch.long)), ValueError, "same length; got 2 and 3"),
    (lambda m: S.dead_units(nn.ModuleList([m])), TypeError, "`model` must be an nn.Sequential"),
    (lambda m: S.constant_outputs(m, "fc1", torch.tensor([0])), TypeError, "`chain` must be a Chain"),
    (lambda m: S.constant_outputs(m, S.Chain("fc1", "fc2", None, 1), torch.tensor([8])), ValueError, r"`units` must hold unit indices in \[0, 7\]; got \[8\]"),
    (lambda m: S.remove_units(m, S.Chain("fc2", "fc1"), torch.tensor([0])), ValueError, "`chain` must be one of the model's chains"),
    (lambda m: S.repair(m, max_rounds=0), ValueError, r"`max_rounds` must be an integer in \[1, inf\]; got 0"),
    (lambda m: S.repair(nn.ModuleList([m])), TypeError, "`model` must be an nn.Sequential"),
    (lambda m: S.recalibrate_batchnorm(m, torch.rand(4, 1, 8, 8), batch_size=1), ValueError, r"`batch_size` must be an integer in \[2, inf\]"),
])
def test_more_bad_input_leaves_the_model_unchanged(call, error, match):
    model = models.mlp((8,), seed=0)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(error, match=match):
        call(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
