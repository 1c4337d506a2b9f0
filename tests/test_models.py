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
        ({"hidden": 5}, TypeError, "`hidden` must be a sequence of ints; got 5"),
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
