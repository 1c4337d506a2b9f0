"""Sparsity benchmark: bytes of each sparse format (exact, from the arrays stored), the speed of
a CSR matrix multiply against a dense one (torch.sparse and SciPy) from 50% to 99% sparsity at
batch 1, 64 and 256, and the accuracy of 2:4 sparsity on the digits MLP.

Reference from a prototype on a 2-core machine: torch CSR overtook dense near 90% sparsity
(2.7x at 90%, 5.1x at 95%, batch 64) and was 2-4x slower at 50%.
Run alone: ``python -c "from benchmarks import bench_sparsity as b; print(b.run())"``.
"""

from __future__ import annotations

import statistics
import warnings

import scipy.sparse
import torch

from benchmarks import table, torch_threads
from compresskit import data, measure, models
from compresskit import sparsity as S
from compresskit.train import fit

SHAPE = (512, 512)
SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.99)
BATCHES = (1, 64, 256)
REPEATS = 50


def _sparse_matrix(sparsity: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(SHAPE, generator=g)
    return w * S.global_masks({"w": w.abs()}, sparsity)["w"]


def _bytes_table() -> str:
    rows = []
    for sparsity in SPARSITIES:
        w = _sparse_matrix(sparsity)
        nnz = int((w != 0).sum())
        dense = w.numel() * 4
        cells = []
        for fmt in ("coo", "csr", "bitmask", "relative"):
            got = S.nbytes(S.encode(w, fmt))
            assert got == S.format_bytes(fmt, SHAPE, nnz, fillers=S.count_fillers(w))  # exact, every machine
            cells.append(f"{got:,} ({got / dense:.3f})")
        rows.append([f"{sparsity:.0%}", f"{dense:,}"] + cells)
    crossover = ", ".join(f"{fmt} below {S.crossover_density(fmt, SHAPE):.1%}" for fmt in ("coo", "csr", "bitmask"))
    return (f"Bytes of a {SHAPE[0]}x{SHAPE[1]} float32 matrix, int32 indices, 4-bit relative indices "
            f"(fraction of dense in brackets). Formats beat dense at a density {crossover}.\n\n"
            + table(["sparsity", "dense", "COO", "CSR", "bitmask", "relative"], rows))


def _speed_table() -> str:
    rows = []
    crossover: dict[str, float | None] = {}
    for lib in ("torch", "scipy"):
        for b in BATCHES:
            ratios = []
            for sparsity in SPARSITIES:
                w = _sparse_matrix(sparsity)
                x = torch.randn(b, SHAPE[1], generator=torch.Generator().manual_seed(1))
                xT = x.T.contiguous()
                if lib == "torch":
                    w_csr = w.to_sparse_csr()
                    sparse_mm = lambda: torch.sparse.mm(w_csr, xT)  # noqa: E731
                else:
                    w_csr, xT_np = scipy.sparse.csr_matrix(w.numpy()), xT.numpy()
                    sparse_mm = lambda: w_csr @ xT_np  # noqa: E731
                runs = [measure.latency_ratio(lambda: torch.nn.functional.linear(x, w), sparse_mm, repeats=REPEATS)
                        for _ in range(3)]
                ratios.append(statistics.median(r.q1_ratio for r in runs))
            faster = [s for i, s in enumerate(SPARSITIES) if all(r > 1 for r in ratios[i:])]
            crossover[f"{lib} batch {b}"] = faster[0] if faster else None
            rows.append([lib, b] + [f"{r:.2f}x" for r in ratios])
    found = "; ".join(f"{k}: {'from %.0f%%' % (100 * v) if v else 'none'}" for k, v in crossover.items())
    return (f"Dense time / CSR time for a {SHAPE[0]}x{SHAPE[1]} layer times a batch (above 1: CSR faster), one thread, "
            f"timed alternately (lower-quartile ratio, median of 3 runs of {REPEATS}). Target from the prototype: "
            f"CSR slower at 50%, faster from about 90% (torch, batch 64: 2.7x at 90%, 5.1x at 95%). "
            f"Crossover found: {found}.\n\n"
            + table(["library", "batch"] + [f"{s:.0%}" for s in SPARSITIES], rows))


def _nm_table() -> str:
    X, y = data.load_digits_split().tensors("test")
    rows = []
    for seed in (0, 1, 2):
        loader = lambda: data.digits_loaders(seed=seed)[0]  # noqa: E731
        dense = models.mlp((256, 256), seed=0)
        fit(dense, loader(), epochs=10, progress=False)
        masks = {n: S.nm_mask(w) for n, w in S.sparse_weights(dense).items()}
        nm = S.apply_masks(dense, masks)
        one_shot = measure.accuracy(nm, X, y)
        fit(nm, loader(), epochs=3, progress=False, on_step=S.MaskKeeper(nm, masks))
        dense_acc, nm_acc = measure.accuracy(dense, X, y), measure.accuracy(nm, X, y)
        rows.append([seed, f"{100 * dense_acc:.1f}", f"{100 * one_shot:.1f}", f"{100 * nm_acc:.1f}",
                     f"{100 * (nm_acc - dense_acc):+.1f}" + (" (met)" if nm_acc >= dense_acc - 0.02 else " (NOT met)")])
    weights = sum(w.numel() for w in S.sparse_weights(dense).values())
    return (f"2:4 sparsity on the digits MLP 64-256-256-10 (dense 10 epochs, then 3 epochs with the 2:4 mask), "
            f"test accuracy (%) by data-order seed; target: within 2 points of dense. Storage of the weights: "
            f"{S.nm_bytes(weights):,} bytes in 2:4 form vs {weights * 4:,} dense ({S.nm_bytes(weights) / (weights * 4):.4f}x).\n\n"
            + table(["seed", "dense", "2:4 one-shot", "2:4 fine-tuned", "change (points)"], rows))


def run() -> str:
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    with torch_threads(1):
        parts = ["### Sparsity", "", _bytes_table(), "", _speed_table(), "", _nm_table()]
    return "\n".join(parts) + "\n"
