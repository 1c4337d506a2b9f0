"""Sparsity explorer: a sparsity slider, a storage format and a batch size -> the bytes of the
format (measured from the arrays and by formula) and the measured time of a dense against a
CSR matrix multiply, with a verdict on this machine.

Each update sparsifies one weight matrix by magnitude and times both kernels for a few dozen
calls (``compresskit.measure.latency_ratio``), so it takes well under a second; results are
cached per (sparsity, batch).
"""

from __future__ import annotations

import ipywidgets as widgets
import torch

from compresskit import measure
from compresskit import sparsity as S

FORMATS = {"CSR": "csr", "COO": "coo", "bitmask": "bitmask", "relative indices (4 bits)": "relative"}


def format_summary(weight: torch.Tensor, sparsity: float, fmt: str) -> tuple[torch.Tensor, int, int, int]:
    """``weight`` with the fraction ``sparsity`` of smallest magnitudes zeroed, and the bytes of
    ``fmt`` (a value of :data:`FORMATS`): (sparse weight, measured bytes, formula bytes, dense bytes)."""
    sparse = weight * S.global_masks({"w": weight.abs()}, sparsity)["w"]
    nnz = int((sparse != 0).sum())
    measured = S.nbytes(S.encode(sparse, fmt))
    formula = S.format_bytes(fmt, tuple(sparse.shape), nnz, fillers=S.count_fillers(sparse) if fmt == "relative" else 0)
    return sparse, measured, formula, sparse.numel() * sparse.element_size()


def sparsity_explorer(weight: torch.Tensor, *, sparsity: float = 0.9, repeats: int = 20) -> widgets.VBox:
    """A slider (sparsity), a dropdown (format) and a dropdown (batch) showing the bytes of the
    format against dense and the measured speed of a CSR matrix multiply against a dense one."""
    weight = weight.detach().clone()
    slider = widgets.FloatSlider(value=sparsity, min=0.5, max=0.99, step=0.01, description="sparsity",
                                 continuous_update=False, readout_format=".0%")
    fmt = widgets.Dropdown(options=list(FORMATS), value="CSR", description="format")
    batch = widgets.Dropdown(options=[1, 16, 64, 256], value=64, description="batch")
    summary = widgets.HTML()
    timings: dict[tuple[float, int], float] = {}

    def speedup(sparse: torch.Tensor, b: int) -> float:
        key = (round(slider.value, 4), b)
        if key not in timings:
            x = torch.randn(b, sparse.shape[1], generator=torch.Generator().manual_seed(0))
            xT, csr = x.T.contiguous(), sparse.to_sparse_csr()
            ratio = measure.latency_ratio(lambda: torch.nn.functional.linear(x, sparse), lambda: torch.sparse.mm(csr, xT),
                                          warmup=3, repeats=repeats)
            timings[key] = ratio.q1_ratio
        return timings[key]

    def update(_=None) -> None:
        sparse, measured, formula, dense = format_summary(weight, slider.value, FORMATS[fmt.value])
        ratio = speedup(sparse, batch.value)
        faster = "faster" if ratio > 1 else "slower"
        summary.value = (
            f"<b>{fmt.value}</b> at {slider.value:.0%} sparsity: <b>{measured:,}</b> bytes "
            f"(formula {formula:,}; dense {dense:,}; {measured / dense:.3f}x)<br>"
            f"CSR matrix multiply at batch {batch.value}: <b>{ratio:.2f}x</b> dense time / CSR time "
            f"(CSR is {faster} on this machine{'; random test clock' if measure.clock_is_random() else ''})")

    for control in (slider, fmt, batch):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([slider, fmt, batch]), summary])
