"""Exercise checkers for the pruning chapter. Each ``check_*`` prints feedback and returns a bool."""

from __future__ import annotations

from typing import Any, Callable

import torch

from compresskit import pruning
from compresskit.course.checker import Case, check_function, close


def _weights(*shape: int, seed: int) -> torch.Tensor:
    """Random weights with distinct magnitudes (no ties, so the right mask is unique)."""
    g = torch.Generator().manual_seed(seed)
    n = torch.Size(shape).numel()
    magnitudes = (torch.randperm(n, generator=g).float() + 1) / n
    return (magnitudes * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)).reshape(shape)


def _as_float(value: Any) -> Any:
    """Accept bool masks as well as 0/1 float masks."""
    if isinstance(value, torch.Tensor) and value.dtype == torch.bool:
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_as_float(v) for v in value)
    return value


def _compare_masks(expected: Any, got: Any) -> str | None:
    return close(expected, _as_float(got))


def check_threshold_mask(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """``fn(weight, threshold)``: a 0/1 mask keeping the entries with ``|w| >= threshold``."""
    return check_function(fn, reference=pruning.threshold_mask, cases=[
        Case("hand case with negatives", (torch.tensor([0.3, -0.05, -0.3, 0.1, 0.0]), 0.2)),
        Case("an entry exactly at the threshold is kept", (torch.tensor([0.1, -0.1, 0.09]), 0.1)),
        Case("a 2-D weight", (_weights(4, 6, seed=0), 0.5)),
        Case("threshold 0 keeps everything", (_weights(3, 3, seed=1), 0.0)),
        Case("a threshold above every weight", (_weights(3, 3, seed=2), 5.0)),
    ], name="threshold_mask", compare=_compare_masks,
        hint="compare the magnitude |w| (torch.abs), not w itself, and return a mask of w's shape")


def check_row_norm_mask(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """``fn(weight, k)``: a 0/1 mask of ``weight``'s shape that zeroes the ``k`` rows of smallest L1 norm."""
    def reference(weight: torch.Tensor, k: int) -> torch.Tensor:
        return pruning.ln_structured_mask(weight, k, n=1, dim=0)

    return check_function(fn, reference=reference, cases=[
        Case("3x2 by hand: row norms 7, 2, 6", (torch.tensor([[3.0, 4.0], [1.0, 1.0], [-6.0, 0.0]]), 1)),
        Case("L1, not L2: norms 4 vs 3.2", (torch.tensor([[2.0, 2.0], [3.2, 0.0]]), 1)),
        Case("8x5 weight, k=3", (_weights(8, 5, seed=3), 3)),
        Case("k=0 keeps every row", (_weights(4, 4, seed=4), 0)),
    ], name="row_norm_mask", compare=_compare_masks,
        hint="row norms: weight.abs().sum(dim=1); zero the whole row of each of the k smallest")


def check_global_magnitude_masks(fn: Callable[[list[torch.Tensor], float], list[torch.Tensor]]) -> bool:
    """``fn(weights, amount)``: one mask per tensor, pruning the ``round(amount * total)``
    smallest magnitudes of all tensors ranked together."""
    return check_function(fn, reference=pruning.global_magnitude_masks, cases=[
        Case("two layers by hand", ([torch.tensor([0.1, 0.2, 0.3]), torch.tensor([[5.0, 0.05]])], 0.6)),
        Case("layers of different scales", ([_weights(4, 4, seed=5) * 0.1, _weights(3, 5, seed=6)], 0.5)),
        Case("three layers, 90%", ([_weights(6, 4, seed=7), _weights(4, 4, seed=8) * 2, _weights(10, seed=9)], 0.9)),
        Case("amount 0 keeps all", ([_weights(2, 2, seed=10), _weights(3, seed=11)], 0.0)),
    ], name="global_magnitude_masks", compare=_compare_masks,
        hint="concatenate all |w| with torch.cat, find the k smallest there, then split the mask back per layer")


def remove_hidden_unit_reference(W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, unit: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Remove hidden unit ``unit``: row ``unit`` of ``W1`` and ``b1``, column ``unit`` of ``W2``."""
    keep = [j for j in range(W1.shape[0]) if j != unit]
    return W1[keep], b1[keep], W2[:, keep]


def check_remove_hidden_unit(fn: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> bool:
    """``fn(W1, b1, W2, unit)`` -> ``(W1_new, b1_new, W2_new)`` without hidden unit ``unit``."""
    def case(description: str, hidden: int, unit: int, seed: int) -> Case:
        g = torch.Generator().manual_seed(seed)
        return Case(description, (torch.randn(hidden, 5, generator=g), torch.randn(hidden, generator=g),
                                  torch.randn(3, hidden, generator=g), unit))

    return check_function(fn, reference=remove_hidden_unit_reference, cases=[
        case("unit 1 of 4", 4, 1, 0),
        case("the first unit", 6, 0, 1),
        case("the last unit", 6, 5, 2),
        case("a wide layer", 32, 17, 3),
    ], name="remove_hidden_unit",
        hint="the unit is a ROW of W1 (its output) and a COLUMN of W2 (the next layer's input)")


def check_cubic_sparsity(fn: Callable[[int, float, int, int], float]) -> bool:
    """``fn(step, final_sparsity, begin_step, end_step)``: Zhu & Gupta's schedule from 0."""
    return check_function(fn, reference=pruning.cubic_sparsity, cases=[
        Case("before begin_step", (5, 0.9, 10, 110)),
        Case("at begin_step", (10, 0.9, 10, 110)),
        Case("a quarter of the way", (35, 0.9, 10, 110)),
        Case("half way", (60, 0.8, 10, 110)),
        Case("at end_step", (110, 0.95, 10, 110)),
        Case("after end_step", (500, 0.95, 10, 110)),
    ], name="cubic_sparsity",
        hint="s_t = s_f * (1 - (1 - p)**3) with p = (t - t0) / (t_end - t0), clipped to [0, 1]")
