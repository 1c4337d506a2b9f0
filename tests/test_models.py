"""compresskit.models: shapes, names, seeded initialisation, bad input."""

import pytest
import torch

from compresskit import models


@pytest.mark.parametrize("make", [models.mlp, models.cnn])
def test_logits_shape(make):
    model = make()
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


def test_mlp_layer_names_and_sizes():
    model = models.mlp(hidden=(32, 16))
    names = [n for n, _ in model.named_children()]
    assert names == ["flatten", "fc1", "relu1", "fc2", "relu2", "fc3"]
    assert (model.fc1.in_features, model.fc1.out_features) == (64, 32)
    assert (model.fc3.in_features, model.fc3.out_features) == (16, 10)


def test_cnn_layer_names():
    names = [n for n, _ in models.cnn(channels=(4, 8)).named_children()]
    assert names == ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "pool", "flatten", "fc"]


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = models.mlp(seed=1), models.mlp(seed=1), models.mlp(seed=2)
    assert torch.equal(a.fc1.weight, b.fc1.weight)
    assert not torch.equal(a.fc1.weight, c.fc1.weight)
    assert torch.equal(torch.rand(1), before)  # building models did not consume the caller's RNG


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"hidden": 5}, TypeError, "`hidden` must be a sequence of ints; got int 5"),
        ({"hidden": "64"}, TypeError, "`hidden` must be a sequence of ints; got str '64'"),
        ({"hidden": (5, 2.0)}, TypeError, r"`hidden\[1\]` must be an integer; got float 2.0"),
        ({"seed": -1}, ValueError, r"`seed` must be an integer in \[0, 18446744073709551615\]; got -1"),
        ({"seed": 0.5}, TypeError, "`seed` must be an integer; got float 0.5"),
        ({"hidden": (5, 0)}, ValueError, r"`hidden\[1\]` must be an integer in \[1, inf\]; got 0"),
        ({"num_classes": 1}, ValueError, r"`num_classes` must be an integer in \[2, inf\]; got 1"),
    ],
)
def test_mlp_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        models.mlp(**kwargs)


def test_cnn_bad_input():
    with pytest.raises(TypeError, match="`channels` must be a non-empty sequence"):
        models.cnn(channels=())
    with pytest.raises(ValueError, match=r"`channels\[0\]` must be an integer in \[1, inf\]; got -3"):
        models.cnn(channels=(-3,))


def test_numpy_integers_are_integers():
    import numpy as np

    model = models.mlp(hidden=(np.int64(12), np.int32(6)), num_classes=np.int64(3), seed=np.int64(1))
    assert (model.fc1.out_features, model.fc2.out_features, model.fc3.out_features) == (12, 6, 3)
    assert models.cnn(channels=[np.int64(4)], seed=np.uint8(2)).conv1.out_channels == 4


def test_cnn_checks_seed_and_classes():
    with pytest.raises(TypeError, match="`seed` must be an integer; got str '0'"):
        models.cnn(seed="0")
    with pytest.raises(ValueError, match=r"`num_classes` must be an integer in \[2, inf\]; got 1"):
        models.cnn(num_classes=1)


def test_copy_model_copies_a_pruned_model_that_deepcopy_refuses():
    import copy

    from torch.nn.utils import prune

    model = models.mlp(hidden=(8,))
    prune.l1_unstructured(model.fc1, "weight", amount=0.5)  # leaves fc1.weight as a non-leaf tensor
    with pytest.raises(RuntimeError):
        copy.deepcopy(model)
    twin = models.copy_model(model)
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(twin(x), model(x))
    assert prune.is_pruned(twin) and twin.fc1.weight_orig is not model.fc1.weight_orig
    with torch.no_grad():
        twin.fc1.weight_orig.add_(1.0)
    assert not torch.equal(twin(x), model(x))  # a copy, not a view of the same tensors
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module; got list"):
        models.copy_model([model])


def test_dense_copy_makes_a_pruned_models_masks_permanent_in_the_copy_only():
    from torch.nn.utils import prune

    model = models.mlp((8,), seed=0)
    prune.l1_unstructured(model.fc1, "weight", 0.5)
    model(torch.rand(2, 64)).sum().backward()  # weight is now a non-leaf tensor: copy.deepcopy would raise
    dense = models.dense_copy(model)
    assert not prune.is_pruned(dense) and prune.is_pruned(model)
    assert set(dense.state_dict()) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert torch.equal(dense.fc1.weight, model.fc1.weight_orig.detach() * model.fc1.weight_mask)
    x = torch.rand(3, 64)
    assert torch.equal(dense(x), model(x))
