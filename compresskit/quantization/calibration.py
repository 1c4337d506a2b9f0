"""Calibration: choosing the range ``[min_val, max_val]`` that activations are quantized to.

Weights are known before inference, so their range is simply their min and max. Activations
are not: we run a *calibration set* (a few hundred training images,
:func:`compresskit.data.calibration_batch`) through the model and pick a range from what we see.

* min-max: the smallest and largest value seen. One outlier stretches the grid and wastes
  most of its levels on values that never occur.
* moving average: min and max per batch, smoothed ``m <- m + c (m_batch - m)``, as PyTorch's
  ``MovingAverageMinMaxObserver`` does (Jacob et al. 2018, section 3.1).
* percentile: clip at the p-th percentile (e.g. 99.99%), trading a little clipping error
  on the rare outliers for a finer grid everywhere else [2].
* entropy (KL divergence), TensorRT's 8-bit calibration [1]: build a 2048-bin histogram of
  ``|x|``; for each candidate threshold ``T`` (bin ``i``), form P = the histogram clipped at
  ``T`` (outliers added to the last bin) and Q = P merged into 2^(bits-1) levels and
  expanded back; pick the ``T`` that minimises

      KL(P || Q) = sum_k P_k log(P_k / Q_k)                                 # the criterion of [1]

References
----------
[1] S. Migacz, "8-bit Inference with TensorRT", NVIDIA GTC 2017.
[2] H. Wu, P. Judd, X. Zhang, M. Isaev, P. Micikevicius, "Integer Quantization for Deep
    Learning Inference: Principles and Empirical Evaluation", 2020, arXiv:2004.09602.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from compresskit._validation import check_choice, check_int, check_real, check_tensor
from compresskit.quantization.linear import check_bits

METHODS = ("minmax", "percentile", "entropy")


def _calibration_data(x: torch.Tensor) -> torch.Tensor:
    """Finite, non-empty, not constant: otherwise no range can be learned from it."""
    x = check_tensor("x", x, floating=True, finite=True)
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        raise ValueError(f"`x` must not be constant: every calibration value equals {lo!r}, so it gives no range to calibrate")
    return x.detach().float().flatten()


def minmax_range(x: torch.Tensor) -> tuple[float, float]:
    """The smallest and largest value of ``x``."""
    x = _calibration_data(x)
    return float(x.min()), float(x.max())


def moving_average_range(batches: Iterable[torch.Tensor], averaging_constant: float = 0.01) -> tuple[float, float]:
    """Min and max per batch, smoothed exponentially, as ``MovingAverageMinMaxObserver`` does.

    The first batch sets the range; each later one moves it by ``averaging_constant`` of the way.
    """
    c = check_real("averaging_constant", averaging_constant, 0.0, 1.0, low_open=True)
    min_val = max_val = None
    for i, batch in enumerate(batches):
        x = check_tensor(f"batches[{i}]", batch, floating=True, finite=True)
        lo, hi = float(x.min()), float(x.max())
        if min_val is None:
            min_val, max_val = lo, hi
        else:
            min_val += c * (lo - min_val)
            max_val += c * (hi - max_val)
    if min_val is None:
        raise ValueError("`batches` must hold at least one batch; got none")
    if min_val == max_val:
        raise ValueError(f"`batches` must not be constant: every calibration value equals {min_val!r}")
    return min_val, max_val


def percentile_range(x: torch.Tensor, percentile: float = 99.99, symmetric: bool = False) -> tuple[float, float]:
    """Clip the range at the ``percentile``-th percentile (and the ``100 - percentile``-th below).

    ``symmetric=True`` takes the percentile of ``|x|`` and returns ``(-t, t)``.
    """
    x = _calibration_data(x).numpy()
    p = check_real("percentile", percentile, 50.0, 100.0)
    if symmetric:
        t = float(np.percentile(np.abs(x), p))
        return -t, t
    return float(np.percentile(x, 100.0 - p)), float(np.percentile(x, p))


def _expand(hist: np.ndarray, levels: int) -> np.ndarray:
    """Merge ``hist`` into ``levels`` groups, then spread each group's count evenly over the
    non-empty bins it came from: the histogram as a ``levels``-level quantizer sees it."""
    group = np.minimum(np.arange(len(hist)) // (len(hist) // levels), levels - 1)  # the last group takes the remainder
    nonzero = hist > 0
    totals = np.bincount(group, weights=hist, minlength=levels)
    counts = np.bincount(group, weights=nonzero, minlength=levels)
    return np.where(nonzero, totals[group] / np.maximum(counts[group], 1), 0.0)


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(P || Q) of two histograms after normalising each; Q gets a tiny floor where P > 0."""
    p = p / p.sum()
    q = q / q.sum()
    support = p > 0
    q = np.maximum(q[support], 1e-12)
    return float(np.sum(p[support] * np.log(p[support] / q)))  # KL(P || Q), the criterion of [1]


def entropy_threshold(x: torch.Tensor, bits: int = 8, num_bins: int = 2048) -> float:
    """TensorRT's entropy calibration: the threshold ``T`` on ``|x|`` minimising KL(P || Q)."""
    bits = check_bits(bits)
    levels = 2 ** (bits - 1)  # TensorRT: 128 levels of a symmetric int8 grid for |x|
    num_bins = check_int("num_bins", num_bins, levels)
    x = _calibration_data(x)
    hist, edges = np.histogram(x.abs().numpy(), bins=num_bins, range=(0.0, float(x.abs().max())))
    hist = hist.astype(np.float64)
    best_kl, best_i = np.inf, num_bins
    for i in range(levels, num_bins + 1):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()  # values beyond T are clipped to T
        q = _expand(hist[:i], levels)
        kl = _kl_divergence(p, q)
        if kl < best_kl:
            best_kl, best_i = kl, i
    return float(edges[best_i])


def entropy_range(x: torch.Tensor, bits: int = 8, num_bins: int = 2048) -> tuple[float, float]:
    """``(0, T)`` for non-negative data (ReLU outputs), ``(-T, T)`` otherwise."""
    t = entropy_threshold(x, bits, num_bins)
    return (0.0 if float(x.min()) >= 0 else -t), t


def calibrate(x: torch.Tensor, method: str = "minmax", bits: int = 8, percentile: float = 99.99) -> tuple[float, float]:
    """``(min_val, max_val)`` of ``x`` by ``method`` in {"minmax", "percentile", "entropy"}."""
    check_choice("method", method, METHODS)
    if method == "minmax":
        return minmax_range(x)
    if method == "percentile":
        return percentile_range(x, percentile)
    return entropy_range(x, bits)
