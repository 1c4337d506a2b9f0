"""An explorer for chapter 3: how bits and scheme change a layer's grid, its error and the accuracy."""

from __future__ import annotations

import functools

import ipywidgets as widgets
from IPython.display import display
import matplotlib.pyplot as plt
import torch
from torch import nn

from compresskit import measure
from compresskit.quantization import kmeans_quantize, quantize_weights, tensor_range, calculate_qparams, qrange

SCHEMES = {
    "per-tensor symmetric": ("linear", "symmetric", False),
    "per-tensor affine": ("linear", "affine", False),
    "per-channel symmetric": ("linear", "symmetric", True),
    "per-channel affine": ("linear", "affine", True),
    "k-means": ("kmeans", "affine", False),
}


def _levels(weight: torch.Tensor, bits: int, method: str, scheme: str, per_channel: bool) -> torch.Tensor:
    """The values the quantized weight can take (for per-channel: those of row 0)."""
    if method == "kmeans":
        return kmeans_quantize(weight, bits)[0]
    w = weight[0] if per_channel else weight
    quant_min, quant_max = qrange(bits, signed=scheme == "symmetric")
    scale, zero_point = calculate_qparams(*tensor_range(w), quant_min, quant_max, scheme)
    return (torch.arange(quant_min, quant_max + 1) - zero_point).float() * scale


def quantization_explorer(model: nn.Module, X: torch.Tensor, y: torch.Tensor, layer: str = "fc2") -> widgets.VBox:
    """Sliders for bits and scheme; shows ``layer``'s weight histogram with the grid, the error and the accuracy."""
    modules = dict(model.named_modules())
    if layer not in modules or not hasattr(modules[layer], "weight"):
        raise ValueError(f"`layer` must name a layer of `model` with a weight; got {layer!r}")
    weight = modules[layer].weight.detach()
    fp32 = measure.accuracy(model, X, y)

    @functools.lru_cache(maxsize=None)
    def result(bits: int, name: str) -> tuple[float, float, torch.Tensor, torch.Tensor]:
        method, scheme, per_channel = SCHEMES[name]
        quantized, _ = quantize_weights(model, bits, scheme, per_channel, method)
        w_hat = dict(quantized.named_modules())[layer].weight.detach()
        rms = float(((w_hat - weight) ** 2).mean().sqrt())
        return measure.accuracy(quantized, X, y), rms, w_hat, _levels(weight, bits, method, scheme, per_channel)

    bits = widgets.IntSlider(value=4, min=2, max=8, description="bits", continuous_update=False)
    scheme = widgets.Dropdown(options=list(SCHEMES), value="per-tensor symmetric", description="scheme")
    summary = widgets.HTML()
    out = widgets.Output()

    def update(_=None) -> None:
        acc, rms, w_hat, levels = result(bits.value, scheme.value)
        summary.value = (
            f"<b>{bits.value}-bit {scheme.value}</b> ({layer}): {len(levels)} levels, weight RMS error "
            f"{rms:.5f}; accuracy {acc:.1%} (float32 {fp32:.1%})"
        )
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(7, 3))
            ax.hist(weight.flatten().numpy(), bins=120, color="0.6", label="float32 weights")
            lo, hi = float(weight.min()), float(weight.max())
            shown = levels[(levels >= lo - (hi - lo) * 0.1) & (levels <= hi + (hi - lo) * 0.1)]
            for i, v in enumerate(shown[:64]):
                ax.axvline(float(v), color="C1", lw=0.8, alpha=0.8, label="quantization levels" if i == 0 else None)
            ax.set_xlabel(f"{layer} weight value")
            ax.set_ylabel("number of weights")
            ax.set_title(f"{bits.value}-bit {scheme.value}" + (" (levels of row 0)" if "per-channel" in scheme.value else ""))
            ax.legend(loc="upper right", fontsize=8)
            display(fig)
            plt.close(fig)

    bits.observe(update, names="value")
    scheme.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([bits, scheme]), summary, out])
