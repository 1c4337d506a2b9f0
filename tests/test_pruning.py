"""compresskit.pruning: hand-computed masks, identical masks to torch.nn.utils.prune, the
pruning machinery (weight_orig / weight_mask / hooks / state dict), physical unit removal
that matches the masked model, the cubic schedule, and clear errors on bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune as torch_prune

from compresskit import models, pruning
from compresskit.measure import count_parameters, serialized_bytes
from compresskit.train import fit


def distinct_weights(*shape: int, seed: int = 0) -> torch.Tensor:
    """Random weights whose magnitudes are all different (no ties), so masks are unique."""
    g = torch.Generator().manual_seed(seed)
    n = math.prod(shape)
    magnitudes = (torch.randperm(n, generator=g).float() + 1) / n
    signs = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    return (magnitudes * signs).reshape(shape)


def linear_with(weight: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


# --- pure masks, by hand ----------------------------------------------------------------------


def test_magnitude_mask_drops_the_smallest_magnitudes_by_hand():
    w = torch.tensor([[0.5, -0.1], [-0.9, 0.2]])
    assert pruning.magnitude_mask(w, 0.5).tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert pruning.magnitude_mask(w, 3).tolist() == [[0.0, 0.0], [1.0, 0.0]]
    assert pruning.magnitude_mask(w, 0).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert pruning.magnitude_mask(w, 1.0).sum() == 0


def test_threshold_mask_keeps_magnitudes_at_or_above_the_threshold():
    w = torch.tensor([0.3, -0.05, -0.3, 0.1, 0.0])
    assert pruning.threshold_mask(w, 0.1).tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert pruning.threshold_mask(w, 0.0).tolist() == [1.0] * 5


def test_slice_norms_and_structured_mask_by_hand():
    w = torch.tensor([[3.0, 4.0], [1.0, 1.0], [-6.0, 0.0]])
    assert pruning.slice_norms(w, 2, 0).tolist() == [5.0, pytest.approx(2**0.5), 6.0]
    assert pruning.slice_norms(w, 1, 0).tolist() == [7.0, 2.0, 6.0]
    assert pruning.ln_structured_mask(w, 1, n=1, dim=0).tolist() == [[1, 1], [0, 0], [1, 1]]
    # columns: L1 norms 10 and 5 -> drop column 1
    assert pruning.ln_structured_mask(w, 0.5, n=1, dim=1).tolist() == [[1, 0], [1, 0], [1, 0]]


def test_global_masks_rank_layers_together():
    a, b = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([[5.0, 0.05]])
    ma, mb = pruning.global_magnitude_masks([a, b], 3)
    assert ma.tolist() == [0, 0, 1] and mb.tolist() == [[1, 0]]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.floats(0, 1), st.integers(0, 1000))
def test_magnitude_mask_properties(n, amount, seed):
    w = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    mask = pruning.magnitude_mask(w, amount)
    assert int((mask == 0).sum()) == round(amount * n)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    if 0 < (mask == 0).sum() < n:  # every pruned magnitude <= every kept magnitude
        assert w.abs()[mask == 0].max() <= w.abs()[mask == 1].min()


# --- identical to torch.nn.utils.prune -----------------------------------------------------


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.77, 1.0, 0, 17])
def test_l1_unstructured_matches_torch(amount):
    ours, theirs = linear_with(distinct_weights(6, 9)), linear_with(distinct_weights(6, 9))
    pruning.l1_unstructured(ours, "weight", amount)
    torch_prune.l1_unstructured(theirs, "weight", amount)
    assert torch.equal(ours.weight_mask, theirs.weight_mask)
    assert torch.equal(ours.weight, theirs.weight)


def test_l1_unstructured_with_importance_scores_matches_torch():
    w, scores = distinct_weights(5, 4), distinct_weights(5, 4, seed=1)
    ours, theirs = linear_with(w), linear_with(w)
    pruning.l1_unstructured(ours, "weight", 0.4, importance_scores=scores)
    torch_prune.l1_unstructured(theirs, "weight", 0.4, importance_scores=scores)
    assert torch.equal(ours.weight_mask, theirs.weight_mask)


def test_pruning_twice_prunes_a_share_of_what_is_left_as_torch_does():
    ours, theirs = linear_with(distinct_weights(8, 8)), linear_with(distinct_weights(8, 8))
    for amount in (0.5, 0.5):
        pruning.l1_unstructured(ours, "weight", amount)
        torch_prune.l1_unstructured(theirs, "weight", amount)
    assert torch.equal(ours.weight_mask, theirs.weight_mask)
    assert int((ours.weight_mask == 0).sum()) == 48  # 32, then half of the 32 left


@pytest.mark.parametrize("n,dim", [(1, 0), (2, 0), (2, 1), (math.inf, 0), (1, -1)])
def test_ln_structured_matches_torch_on_conv(n, dim):
    w = distinct_weights(8, 3, 3, 3)
    ours, theirs = nn.Conv2d(3, 8, 3), nn.Conv2d(3, 8, 3)
    with torch.no_grad():
        ours.weight.copy_(w)
        theirs.weight.copy_(w)
    pruning.ln_structured(ours, "weight", 0.4, n=n, dim=dim)
    torch_prune.ln_structured(theirs, "weight", 0.4, n=n, dim=dim)
    assert torch.equal(ours.weight_mask, theirs.weight_mask)


def test_random_unstructured_matches_torch_after_the_same_seed_and_leaves_global_rng_alone():
    ours, theirs = nn.Linear(10, 7), nn.Linear(10, 7)
    state = torch.get_rng_state()
    pruning.random_unstructured(ours, "weight", 0.35, seed=42)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(42)
    torch_prune.random_unstructured(theirs, "weight", 0.35)
    assert torch.equal(ours.weight_mask, theirs.weight_mask)


def test_global_unstructured_matches_torch():
    ours, theirs = models.mlp((32, 16), seed=3), models.mlp((32, 16), seed=3)
    pruning.global_unstructured(pruning.prunable_parameters(ours), pruning.L1Unstructured, amount=0.8)
    torch_prune.global_unstructured(pruning.prunable_parameters(theirs), torch_prune.L1Unstructured, amount=0.8)
    for name in ("fc1", "fc2", "fc3"):
        assert torch.equal(getattr(ours, name).weight_mask, getattr(theirs, name).weight_mask)
    # global: layers end up with different sparsities
    assert len({round(s, 3) for s in pruning.layer_sparsity(ours).values()}) == 3


def test_global_threshold_pruning_drops_exactly_the_small_weights():
    model = models.mlp((16,), seed=1)
    pruning.global_unstructured(pruning.prunable_parameters(model), pruning.ThresholdUnstructured, threshold=0.1)
    for layer in (model.fc1, model.fc2):
        assert torch.equal(layer.weight_mask.bool(), layer.weight_orig.abs() >= 0.1)


def test_the_pruning_machinery_is_torchs():
    layer = nn.Linear(4, 3)
    pruning.l1_unstructured(layer, "weight", 0.5)
    assert torch_prune.is_pruned(layer)
    assert set(layer.state_dict()) == {"weight_orig", "weight_mask", "bias"}
    assert any(isinstance(h, pruning.L1Unstructured) for h in layer._forward_pre_hooks.values())
    x = torch.randn(2, 4)
    expected = x @ (layer.weight_orig * layer.weight_mask).T + layer.bias
    assert torch.allclose(layer(x), expected)
    torch_prune.remove(layer, "weight")
    assert not torch_prune.is_pruned(layer)
    assert set(layer.state_dict()) == {"weight", "bias"} and int((layer.weight == 0).sum()) == 6


def test_masked_model_state_dict_is_larger_than_the_dense_one():
    dense = models.mlp((64, 64))
    masked = copy.deepcopy(dense)
    pruning.global_unstructured(pruning.prunable_parameters(masked), pruning.L1Unstructured, amount=0.9)
    assert serialized_bytes(masked) > 1.9 * serialized_bytes(dense)  # weight_orig AND weight_mask
    assert count_parameters(masked) == count_parameters(dense)
    pruning.remove_masks(masked)
    assert abs(serialized_bytes(masked) - serialized_bytes(dense)) < 200


# --- set_sparsity, layer-wise vs global ---------------------------------------------------------


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_set_sparsity_reaches_the_total_and_is_monotone(scope):
    model = models.mlp((32, 32))
    params = pruning.prunable_parameters(model)
    total = sum(m.weight.numel() for m, _ in params)
    pruning.set_sparsity(params, 0.5, scope=scope)
    first = [m.weight_mask.clone() for m, _ in params]
    pruning.set_sparsity(params, 0.8, scope=scope)
    zeros = sum(int((m.weight_mask == 0).sum()) for m, _ in params)
    assert abs(zeros - 0.8 * total) <= len(params)
    for old, (m, _) in zip(first, params):
        assert bool((m.weight_mask <= old).all())  # once pruned, stays pruned
    if scope == "layer":
        assert all(abs(s - 0.8) < 0.02 for s in pruning.layer_sparsity(model).values())


# --- neuron pruning ------------------------------------------------------------------------


def test_find_couplings_on_the_course_models():
    assert pruning.find_couplings(models.mlp((8, 6))) == [
        pruning.Coupling("fc1", "fc2", None, 1),
        pruning.Coupling("fc2", "fc3", None, 1),
    ]
    assert pruning.find_couplings(models.cnn((4, 6))) == [
        pruning.Coupling("conv1", "conv2", "bn1", 1),
        pruning.Coupling("conv2", "fc", "bn2", 16),
    ]


def test_a_sigmoid_breaks_the_coupling_because_it_maps_zero_to_one_half():
    model = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 2))
    assert pruning.find_couplings(model) == []


def test_remove_a_hidden_unit_by_hand():
    model = models.mlp((3,))
    small = pruning.remove_units(model, pruning.find_couplings(model)[0], torch.tensor([0, 2]))
    assert small.fc1.weight.shape == (2, 64) and small.fc2.weight.shape == (10, 2)
    assert torch.equal(small.fc1.weight, model.fc1.weight[[0, 2]])
    assert torch.equal(small.fc2.weight, model.fc2.weight[:, [0, 2]])
    assert torch.equal(small.fc2.bias, model.fc2.bias)
    assert model.fc1.out_features == 3  # the original is untouched


def _randomize_batchnorm(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g))


@pytest.mark.parametrize("train_mode", [False, True])
def test_removed_cnn_channels_give_the_masked_models_outputs(train_mode):
    model = models.cnn((6, 8), seed=2)
    _randomize_batchnorm(model)
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for coupling, keep in zip(pruning.find_couplings(model), ([0, 3, 4], [1, 2, 5, 7])):
        keep = torch.tensor(keep)
        masked = pruning.mask_units(copy.deepcopy(model), coupling, keep)
        small = pruning.remove_units(model, coupling, keep)
        masked.train(train_mode), small.train(train_mode)
        assert torch.allclose(masked(x), small(x), atol=1e-5)
        assert count_parameters(small) < count_parameters(model)
        model = small  # prune the next layer of the already smaller model
    assert model.conv1.out_channels == 3 and model.bn2.num_features == 4 and model.fc.in_features == 64


def test_prune_units_keeps_the_largest_norm_units_and_matches_masking():
    model = models.mlp((16, 12), seed=4)
    small = pruning.prune_units(model, 0.5, n=2)
    assert (small.fc1.out_features, small.fc2.out_features, small.fc2.in_features) == (8, 6, 8)
    keep1 = pruning.keep_units(pruning.unit_importance(model.fc1.weight.detach()), 0.5)
    assert torch.equal(small.fc1.weight, model.fc1.weight[keep1])
    masked = copy.deepcopy(model)
    for coupling in pruning.find_couplings(masked):
        weight = getattr(masked, coupling.producer).weight.detach()
        pruning.mask_units(masked, coupling, pruning.keep_units(pruning.unit_importance(weight), 0.5))
    x = torch.randn(32, 1, 8, 8)
    assert torch.allclose(masked(x), small(x), atol=1e-5)


def test_fixed_pruning_holds_units_at_zero_while_training():
    model = models.mlp((16,), seed=0)
    coupling = pruning.find_couplings(model)[0]
    pruning.mask_units(model, coupling, torch.arange(8))
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    fit(model, [(x, y)], epochs=3, lr=1e-2, progress=False)
    model(x)
    assert torch.all(model.fc1.weight[8:] == 0) and torch.all(model.fc1.bias[8:] == 0)
    assert torch.any(model.fc1.weight[:8] != 0)


def test_hybrid_prune_removes_units_then_masks_weights():
    small = pruning.hybrid_prune(models.mlp((16, 16)), 0.5, 0.6, scope="layer")
    assert small.fc1.out_features == 8
    assert all(abs(s - 0.6) < 0.05 for s in pruning.layer_sparsity(small).values())


# --- schedules and scans ----------------------------------------------------------------


def test_cubic_sparsity_by_hand():
    assert pruning.cubic_sparsity(0, 0.9, 0, 100) == 0.0
    assert pruning.cubic_sparsity(50, 0.8, 0, 100) == pytest.approx(0.8 - 0.8 * 0.125)
    assert pruning.cubic_sparsity(100, 0.9, 0, 100) == pytest.approx(0.9)
    assert pruning.cubic_sparsity(500, 0.9, 0, 100) == pytest.approx(0.9)
    assert pruning.cubic_sparsity(5, 0.9, 10, 20, initial_sparsity=0.2) == pytest.approx(0.2)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200), st.floats(0, 1))
def test_cubic_sparsity_is_monotone_and_bounded(t1, t2, final):
    a, b = sorted((t1, t2))
    sa, sb = pruning.cubic_sparsity(a, final, 10, 150), pruning.cubic_sparsity(b, final, 10, 150)
    assert 0.0 <= sa <= sb <= final + 1e-12


def test_gradual_pruner_drives_the_mask_during_fit():
    model = models.mlp((32,), seed=0)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    pruner = pruning.GradualPruner(pruning.prunable_parameters(model), 0.9, begin_step=0, end_step=20, frequency=5)
    fit(model, [(x, y)], epochs=25, progress=False, on_step=pruner)
    assert [s for s, _ in pruner.history_] == [5, 10, 15, 20]
    assert [t for _, t in pruner.history_] == sorted(t for _, t in pruner.history_)
    total = sum(m.weight.numel() for m, _ in pruner.parameters)
    zeros = sum(int((m.weight_mask == 0).sum()) for m, _ in pruner.parameters)
    assert zeros == round(0.9 * total)


def test_iterative_pruning_calls_fine_tune_once_per_round():
    model = models.mlp((16,))
    seen = []
    pruning.iterative_pruning(model, [0.5, 0.7, 0.9], lambda m: seen.append(pruning.layer_sparsity(m)["fc1"]), scope="layer")
    assert seen == pytest.approx([0.5, 0.7, 0.9], abs=0.01)


def test_sensitivity_scan_prunes_one_layer_at_a_time_and_leaves_the_model_alone():
    model = models.mlp((8,))
    scan = pruning.sensitivity_scan(model, [0.0, 0.5, 1.0], lambda m: pruning.layer_sparsity(m)["fc2"])
    assert scan == {"fc1": [0.0, 0.0, 0.0], "fc2": [0.0, 0.5, 1.0]}
    assert not torch_prune.is_pruned(model)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("amount,error,match", [
    (1.5, ValueError, r"`amount` must be in \[0, 1\]; got 1.5"),
    (-0.1, ValueError, r"`amount` must be in \[0, 1\]"),
    (13, ValueError, r"`amount` must be an integer in \[0, 12\]; got 13"),
    ("half", TypeError, "`amount` must be a float"),
])
def test_bad_amount(amount, error, match):
    with pytest.raises(error, match=match):
        pruning.magnitude_mask(torch.randn(3, 4), amount)
    with pytest.raises(error, match=match):
        pruning.l1_unstructured(nn.Linear(4, 3), "weight", amount)


def test_a_parameter_name_the_module_lacks():
    layer = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"`name` must name a parameter of Linear \(one of \['bias', 'weight'\]\); got 'wieght'"):
        pruning.l1_unstructured(layer, "wieght", 0.5)
    assert not torch_prune.is_pruned(layer)


def test_non_float_and_nan_weights():
    with pytest.raises(TypeError, match="`weight` must be a floating-point tensor; got dtype torch.int64"):
        pruning.magnitude_mask(torch.arange(6), 0.5)
    with pytest.raises(TypeError, match="`weight` must be a torch.Tensor"):
        pruning.threshold_mask([0.1, 0.2], 0.1)
    bad = nn.Linear(3, 2)
    with torch.no_grad():
        bad.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"`Linear.weight` must be finite; got 1 NaN"):
        pruning.l1_unstructured(bad, "weight", 0.5)
    with pytest.raises(ValueError, match="`weight` must be finite"):
        pruning.magnitude_mask(torch.tensor([1.0, float("nan")]), 1)


def test_pruning_a_layer_to_zero_units():
    with pytest.raises(ValueError, match="`amount` must leave at least one unit; got 1.0"):
        pruning.prune_units(models.mlp((8,)), 1.0)
    model = models.mlp((8,))
    with pytest.raises(ValueError, match="`keep` must hold at least one unit"):
        pruning.remove_units(model, pruning.find_couplings(model)[0], torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match=r"`keep` must hold distinct indices in \[0, 7\]; got \[0, 9\]"):
        pruning.remove_units(model, pruning.find_couplings(model)[0], torch.tensor([0, 9]))


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="`threshold` must be in"):
        pruning.threshold_mask(torch.randn(3), -1.0)
    with pytest.raises(ValueError, match="`n` must be a real number >= 1"):
        pruning.ln_structured_mask(torch.randn(3, 3), 0.5, n=0.5)
    with pytest.raises(ValueError, match="`scope` must be one of"):
        pruning.set_sparsity(pruning.prunable_parameters(models.mlp((4,))), 0.5, scope="row")
    with pytest.raises(TypeError, match="`model` must be an nn.Sequential"):
        pruning.find_couplings(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="`pruning_method` must be unstructured"):
        pruning.global_unstructured(pruning.prunable_parameters(models.mlp((4,))), pruning.LnStructured, amount=0.5, n=1, dim=0)
    with pytest.raises(ValueError, match="`end_step` must be an integer in"):
        pruning.cubic_sparsity(3, 0.9, 10, 5)
    with pytest.raises(ValueError, match="`layers` must name prunable layers"):
        pruning.prune_units(models.mlp((4,)), 0.5, layers=["fc9"])
    with pytest.raises(ValueError, match="`amounts` must be a non-empty, non-decreasing"):
        pruning.iterative_pruning(models.mlp((4,)), [0.9, 0.5], lambda m: None)


def test_a_pruned_model_can_be_copied_and_cut_after_a_forward_pass_with_gradients():
    model = models.mlp((8,))
    pruning.l1_unstructured(model.fc1, "weight", 0.5)
    out = model(torch.randn(2, 1, 8, 8))  # model.fc1.weight is now a non-leaf tensor
    with pytest.raises(RuntimeError):
        copy.deepcopy(model)
    twin = pruning.copy_model(model)
    assert torch.equal(twin(torch.zeros(1, 1, 8, 8)), model(torch.zeros(1, 1, 8, 8)))
    small = pruning.prune_units(model, 0.5)
    assert small.fc1.out_features == 4 and out.shape == (2, 10)


def test_an_integer_parameter_cannot_be_pruned():
    layer = nn.Linear(3, 2)
    layer.steps = nn.Parameter(torch.arange(4), requires_grad=False)
    with pytest.raises(TypeError, match=r"`Linear.steps` must be a floating-point tensor; got dtype torch.int64"):
        pruning.l1_unstructured(layer, "steps", 0.5)


def test_gradual_pruner_checks_its_arguments():
    params = pruning.prunable_parameters(models.mlp((4,)))
    with pytest.raises(ValueError, match="`scope` must be one of"):
        pruning.GradualPruner(params, 0.9, 0, 10, scope="rows")
    with pytest.raises(ValueError, match=r"`final_sparsity` must be in \[0, 1\]; got 1.2"):
        pruning.GradualPruner(params, 1.2, 0, 10)
    with pytest.raises(ValueError, match="`parameters` must list at least one"):
        pruning.GradualPruner([], 0.9, 0, 10)


def test_threshold_unstructured_on_a_module_uses_the_threshold_mask():
    w = distinct_weights(5, 6)
    layer = linear_with(w)
    pruning.threshold_unstructured(layer, "weight", threshold=0.5)
    assert torch.equal(layer.weight_mask, pruning.threshold_mask(w, 0.5))
    assert int((layer.weight_mask == 0).sum()) == 14  # magnitudes k/30 < 0.5 for k = 1..14


# --- torch's conventions, and failed calls that leave no trace (issue 10) ----------------------


def snapshot(model: nn.Module) -> tuple:
    """Everything a pruning call could change: the state dict (values), parameter names, and the
    forward pre-hooks (with the methods inside a pruning container)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    params = [n for n, _ in model.named_parameters()]
    hooks = []
    for name, m in model.named_modules():
        for key, hook in m._forward_pre_hooks.items():
            inner = tuple(type(x).__name__ for x in getattr(hook, "_pruning_methods", ()))
            hooks.append((name, key, type(hook).__name__, inner))
    return state, params, hooks


def assert_unchanged(model: nn.Module, before: tuple) -> None:
    state, params, hooks = snapshot(model)
    assert state.keys() == before[0].keys()
    assert all(torch.equal(state[k], before[0][k]) for k in state)
    assert params == before[1] and hooks == before[2]


@pytest.mark.parametrize("prune_fn", [
    lambda m, name: pruning.l1_unstructured(m, name, 0.5),
    lambda m, name: pruning.random_unstructured(m, name, 0.5),
    lambda m, name: pruning.threshold_unstructured(m, name, 0.1),
    lambda m, name: pruning.ln_structured(m, name, 0.5, n=2, dim=0),
])
def test_prune_functions_return_the_module_as_torch_does(prune_fn):
    layer = nn.Linear(4, 6)
    assert prune_fn(layer, "weight") is layer
    assert torch_prune.l1_unstructured(nn.Linear(2, 2), "weight", 0.5).__class__ is nn.Linear  # torch's convention


def test_ln_structured_refuses_a_bias_as_torch_does():
    bias = nn.Linear(4, 6).bias.detach()
    with pytest.raises(ValueError, match=r"Structured pruning can only be applied to multidimensional tensors"):
        torch_prune.ln_structured(nn.Linear(4, 6), "bias", 0.0, n=2, dim=0)
    with pytest.raises(ValueError, match=r"`weight` must have at least 2 dimensions for structured pruning.*got shape \(6,\)"):
        pruning.ln_structured_mask(bias, 0.0)
    layer = nn.Linear(4, 6)
    before = snapshot(layer)
    with pytest.raises(ValueError, match=r"`Linear.bias` must have at least 2 dimensions.*got shape \(6,\)"):
        pruning.ln_structured(layer, "bias", 0.0, n=2, dim=0)
    assert_unchanged(layer, before)


@pytest.mark.parametrize("bad_amount", [1.5, 100, -1, "all"])
@pytest.mark.parametrize("times_pruned", [1, 2])
def test_a_bad_amount_on_a_pruned_module_leaves_it_pruned_and_intact(bad_amount, times_pruned):
    layer = linear_with(distinct_weights(4, 5))
    for _ in range(times_pruned):  # twice: the hook becomes a PruningContainer
        pruning.l1_unstructured(layer, "weight", 0.25)
    before = snapshot(layer)
    for call in (
        lambda: pruning.l1_unstructured(layer, "weight", bad_amount),
        lambda: pruning.random_unstructured(layer, "weight", bad_amount),
        lambda: pruning.ln_structured(layer, "weight", bad_amount, n=1, dim=0),
    ):
        with pytest.raises((ValueError, TypeError), match="`amount` must be"):
            call()
        assert_unchanged(layer, before)
    assert torch_prune.is_pruned(layer)
    torch_prune.remove(layer, "weight")  # still removable: nothing was left half-done
    assert int((layer.weight == 0).sum()) == int((before[0]["weight_mask"] == 0).sum()) == (5 if times_pruned == 1 else 9)


def test_an_int_amount_on_a_pruned_tensor_counts_the_entries_left_as_torch_does():
    ours, theirs = linear_with(distinct_weights(4, 5)), linear_with(distinct_weights(4, 5))
    for layer, prune_fn in ((ours, pruning.l1_unstructured), (theirs, torch_prune.l1_unstructured)):
        prune_fn(layer, "weight", 10)
        prune_fn(layer, "weight", 10)  # all 10 left
    assert torch.equal(ours.weight_mask, theirs.weight_mask) and int(ours.weight_mask.sum()) == 0
    half = pruning.l1_unstructured(linear_with(distinct_weights(4, 5)), "weight", 10)  # 10 of 20 left
    with pytest.raises(ValueError, match=r"`amount` must be an integer in \[0, 10\]; got 11"):
        pruning.l1_unstructured(half, "weight", 11)


def test_a_failure_inside_the_mask_rolls_the_module_back(monkeypatch):
    layer = linear_with(distinct_weights(4, 5))
    pruning.l1_unstructured(layer, "weight", 0.25)
    pruning.l1_unstructured(layer, "weight", 0.25)  # a PruningContainer holding two methods
    before = snapshot(layer)

    def broken(self, t, default_mask):
        raise RuntimeError("mask failed")

    monkeypatch.setattr(pruning.L1Unstructured, "compute_mask", broken)
    with pytest.raises(RuntimeError, match="mask failed"):
        pruning.l1_unstructured(layer, "weight", 0.25)
    assert_unchanged(layer, before)  # torch alone would leave the container with a third method
    fresh = linear_with(distinct_weights(4, 5))
    with pytest.raises(RuntimeError, match="mask failed"):
        pruning.l1_unstructured(fresh, "weight", 0.25)
    assert not torch_prune.is_pruned(fresh) and set(fresh.state_dict()) == {"weight", "bias"}


def test_set_sparsity_checks_every_pair_before_changing_any():
    model = models.mlp((8,))
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"`name` must name a parameter of Linear.*got 'wieght'"):
        pruning.set_sparsity([(model.fc1, "weight"), (model.fc2, "wieght")], 0.5)
    assert_unchanged(model, before)
    assert not torch_prune.is_pruned(model)  # fc1 did not get an identity mask on the way
    with pytest.raises(ValueError, match=r"`amount` must be an integer in \[0, 80\]; got 81"):
        pruning.set_sparsity(pruning.prunable_parameters(model), 81, scope="layer")  # fc2 has 80 weights
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="must not list the same"):
        pruning.set_sparsity([(model.fc1, "weight"), (model.fc1, "weight")], 0.5)
    assert_unchanged(model, before)


@pytest.mark.parametrize("amount", [0, 1, 2, 100, 592])
def test_set_sparsity_int_amount_is_a_count_as_in_torch(amount):
    ours, theirs = models.mlp((8,), seed=5), models.mlp((8,), seed=5)
    pruning.set_sparsity(pruning.prunable_parameters(ours), amount)
    torch_prune.global_unstructured(pruning.prunable_parameters(theirs), torch_prune.L1Unstructured, amount=amount)
    assert sum(int((m.weight_mask == 0).sum()) for m, _ in pruning.prunable_parameters(ours)) == amount
    for name in ("fc1", "fc2"):
        assert torch.equal(getattr(ours, name).weight_mask, getattr(theirs, name).weight_mask)


def test_set_sparsity_int_amount_per_layer():
    model = models.mlp((8,))
    pruning.set_sparsity(pruning.prunable_parameters(model), 7, scope="layer")
    assert [int((m.weight_mask == 0).sum()) for m, _ in pruning.prunable_parameters(model)] == [7, 7]


def test_schedules_refuse_an_int_sparsity_and_say_why():
    params = pruning.prunable_parameters(models.mlp((4,)))
    with pytest.raises(TypeError, match=r"`final_sparsity` must be a float fraction in \[0, 1\] \(an int would be a count of weights.*got int 1"):
        pruning.GradualPruner(params, 1, 0, 10)
    with pytest.raises(TypeError, match="`initial_sparsity` must be a float fraction.*got int 0"):
        pruning.cubic_sparsity(3, 0.9, 0, 10, initial_sparsity=0)
    with pytest.raises(ValueError, match=r"`initial_sparsity` must be <= `final_sparsity` \(0.5\); got 0.6"):
        pruning.cubic_sparsity(3, 0.5, 0, 10, initial_sparsity=0.6)


def test_iterative_pruning_int_amounts_are_counts_and_all_are_checked_first():
    model = models.mlp((8,))
    rounds = []
    pruning.iterative_pruning(model, [100, 0.5, 500], lambda m: rounds.append(measure_zeros(m)))
    assert rounds == [100, 296, 500]  # 0.5 of 592 weights = 296
    fresh = models.mlp((8,))
    before = snapshot(fresh)
    calls = []
    with pytest.raises(ValueError, match=r"`amounts\[1\]` must be an integer in \[0, 592\]; got 600"):
        pruning.iterative_pruning(fresh, [0.5, 600], lambda m: calls.append(1))
    with pytest.raises(ValueError, match=r"non-decreasing.*got \[400, 0.5\]"):
        pruning.iterative_pruning(fresh, [400, 0.5], lambda m: calls.append(1))  # 400 > 296 weights
    assert calls == [] and not torch_prune.is_pruned(fresh)
    assert_unchanged(fresh, before)


def measure_zeros(model: nn.Module) -> int:
    return sum(int((m.weight_mask == 0).sum()) for m, _ in pruning.prunable_parameters(model))


def test_an_empty_layers_list_is_refused_by_both_functions_that_take_one():
    model = models.mlp((8,))
    with pytest.raises(ValueError, match=r"`layers` must name at least one layer, or be None for all of them; got \[\]"):
        pruning.prune_units(model, 0.5, layers=[])
    with pytest.raises(ValueError, match=r"`layers` must name at least one layer, or be None for all of them; got \[\]"):
        pruning.sensitivity_scan(model, [0.5], lambda m: 0.0, layers=[])
    assert pruning.prune_units(model, 0.5, layers=["fc1"]).fc1.out_features == 4
    assert list(pruning.sensitivity_scan(model, [0.5], lambda m: 0.0, layers=["fc2"])) == ["fc2"]


def test_sensitivity_scan_amounts_follow_torch_and_are_checked_first():
    model = models.mlp((8,))
    scan = pruning.sensitivity_scan(model, [3, 0.5], lambda m: pruning.layer_sparsity(m)["fc2"], layers=["fc2"])
    assert scan == {"fc2": [pytest.approx(3 / 80), 0.5]}
    calls = []
    with pytest.raises(ValueError, match=r"`amounts\[0\]` must be an integer in \[0, 80\]; got 100"):
        pruning.sensitivity_scan(model, [100], lambda m: calls.append(1) or 0.0)  # fc1 has 512, fc2 only 80
    assert calls == []


def test_global_magnitude_masks_of_nothing_shows_what_it_got():
    with pytest.raises(ValueError, match=r"`weights` must hold at least one tensor; got list \[\]"):
        pruning.global_magnitude_masks([], 0.5)
    with pytest.raises(TypeError, match=r"`weights` must be a list of tensors; got Tensor tensor of shape \(3,\)"):
        pruning.global_magnitude_masks(torch.zeros(3), 0.5)


def test_mask_units_refuses_a_coupling_of_another_model():
    model = models.mlp((8,))
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"`coupling` must name layers of `model`: its producer 'conv1' is not one of"):
        pruning.mask_units(model, pruning.Coupling("conv1", "fc", "bn1", 16), torch.tensor([0]))
    assert_unchanged(model, before)
