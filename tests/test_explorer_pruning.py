"""The pruning explorer: it builds, and its summary line follows the slider and the dropdown."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib
import pytest
import torch

from compresskit import models
from compresskit.course.explorers.pruning import pruned_weights, pruning_explorer

matplotlib.use("Agg")


def test_explorer_summary_changes_with_the_slider_and_the_method():
    model = models.mlp((16,))
    X, y = torch.rand(50, 1, 8, 8), torch.randint(0, 10, (50,))
    box = pruning_explorer(model, X, y, sparsity=0.5)
    assert isinstance(box, widgets.VBox)
    slider, method = box.children[0].children
    summary = box.children[1]
    assert slider.continuous_update is False and method.value == "global magnitude"
    before = summary.value
    assert "50% of weights removed" in before
    slider.value = 0.9
    assert summary.value != before and "90% of weights removed" in summary.value
    after_slider = summary.value
    method.value = "random"
    assert summary.value != after_slider and "random" in summary.value
    assert model.fc1.weight.count_nonzero() == model.fc1.weight.numel()  # the model is not changed


@pytest.mark.parametrize("method", ["global", "layer", "random", "near1"])
def test_pruned_weights_remove_the_requested_share(method):
    weights = [torch.randn(20, 10), torch.randn(5, 20)]
    pruned = pruned_weights(weights, method, 0.6)
    zeros = sum(int((w == 0).sum()) for w in pruned)
    assert zeros == pytest.approx(0.6 * 300, abs=1)


def test_near1_drops_the_largest_weights_when_all_are_below_one():
    w = [torch.tensor([0.1, -0.5, 0.9, 0.2])]
    assert torch.equal(pruned_weights(w, "near1", 0.5)[0], torch.tensor([0.1, 0.0, 0.0, 0.2]))
    with pytest.raises(ValueError, match="`method` must be one of"):
        pruned_weights(w, "norm", 0.5)


def test_random_masks_are_not_drawn_from_the_models_init_seed():
    """models.mlp(seed=0) initialises fc1 from seed 0: a mask drawn from seed 0 too would drop
    exactly the weights that started most positive, which is not random pruning."""
    w = models.mlp((512, 512), seed=0).fc1.weight.detach()
    dropped = w[pruned_weights([w], "random", 0.5)[0] == 0]
    assert dropped.numel() == w.numel() // 2
    assert abs(float(dropped.mean())) < 0.05 * float(w.abs().mean())
