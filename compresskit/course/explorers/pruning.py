"""Pruning explorer: a sparsity slider and a method choice -> accuracy, weight histogram and
the sparsity of each layer.

Each update prunes a copy of the model with the pure mask functions of
:mod:`compresskit.pruning` (no training), so it takes a few tens of milliseconds; results
are cached per (method, sparsity).
"""

from __future__ import annotations

import copy

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from IPython.display import display
from torch import nn

from compresskit import measure
from compresskit import pruning

# Random masks are drawn from seeds RANDOM_SEED, RANDOM_SEED + 1, ... (one per layer), not 0, 1, ...:
# models.mlp(seed=0) draws its first layer's initial weights from seed 0, and a mask drawn from
# the same seed ranks the weights by their initial values, dropping those that started largest.
RANDOM_SEED = 100

METHODS = {
    "global magnitude": "global",
    "layer-wise magnitude": "layer",
    "random": "random",
    "near 1 (the article's rule)": "near1",
}


def pruned_weights(weights: list[torch.Tensor], method: str, amount: float) -> list[torch.Tensor]:
    """The weights after one-shot pruning of ``amount`` by ``method`` (a value of :data:`METHODS`)."""
    if method == "global":
        masks = pruning.global_magnitude_masks(weights, amount)
    elif method == "layer":
        masks = [pruning.magnitude_mask(w, amount) for w in weights]
    elif method == "random":
        masks = [pruning.random_mask(w, amount, seed=RANDOM_SEED + i) for i, w in enumerate(weights)]
    elif method == "near1":  # drop the weights whose magnitude is closest to 1
        masks = pruning.global_magnitude_masks([(w.abs() - 1).abs() for w in weights], amount)
    else:
        raise ValueError(f"`method` must be one of {list(METHODS.values())}; got {method!r}")
    return [w * m for w, m in zip(weights, masks)]


def pruning_explorer(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, sparsity: float = 0.5) -> widgets.VBox:
    """A slider (fraction of weights removed) and a dropdown (method) showing test accuracy,
    a histogram of the surviving weights and the sparsity of each layer."""
    model = copy.deepcopy(model).eval()
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    originals = [m.weight.detach().clone() for _, m in layers]
    dense_acc = measure.accuracy(model, X, y)
    cache: dict[tuple[str, float], tuple[float, list[torch.Tensor]]] = {}

    def evaluate(method: str, amount: float) -> tuple[float, list[torch.Tensor]]:
        key = (method, round(amount, 4))
        if key not in cache:
            weights = pruned_weights(originals, method, amount)
            with torch.no_grad():
                for (_, m), w in zip(layers, weights):
                    m.weight.copy_(w)
            cache[key] = (measure.accuracy(model, X, y), weights)
        return cache[key]

    slider = widgets.FloatSlider(value=sparsity, min=0.0, max=0.99, step=0.01, description="sparsity",
                                 continuous_update=False, readout_format=".0%")
    method = widgets.Dropdown(options=list(METHODS), value="global magnitude", description="method")
    summary = widgets.HTML()
    output = widgets.Output()

    def update(_=None) -> None:
        acc, weights = evaluate(METHODS[method.value], slider.value)
        summary.value = (f"<b>{method.value}</b>, {slider.value:.0%} of weights removed: test accuracy "
                         f"<b>{acc:.1%}</b> (dense {dense_acc:.1%}, change {100 * (acc - dense_acc):+.1f} points)")
        output.clear_output(wait=True)
        with output:
            fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
            kept = torch.cat([w.flatten() for w in weights])
            ax1.hist(kept[kept != 0].numpy(), bins=80, color="tab:blue")
            ax1.set(xlabel="weight value", ylabel="count of surviving weights", title="surviving weights")
            names = [name for name, _ in layers]
            ax2.bar(names, [1 - float((w != 0).float().mean()) for w in weights], color="tab:orange")
            ax2.set(ylim=(0, 1), xlabel="layer", ylabel="fraction of weights removed", title="layer-wise sparsity")
            fig.tight_layout()
            display(fig)
            plt.close(fig)

    slider.observe(update, names="value")
    method.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([slider, method]), summary, output])
