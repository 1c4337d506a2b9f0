"""Exercise checkers for chapter 2 (pruning). Each ``check_*`` prints feedback and returns a bool.

Each checker runs the learner's function against the reference on several inputs, prints the
failing inputs, prints "not attempted yet" for an untouched stub and never raises. The inputs
are chosen so that each mistake a learner plausibly makes fails on a case whose description
names it, and the comparison says what differs in the learner's terms (how many entries a mask
prunes, which rows it zeroes, which of ``W1_new``, ``b1_new``, ``W2_new`` has the wrong shape):

* :func:`check_threshold_mask`: magnitudes, ``>=`` at the threshold, a 0/1 mask of the
  weight's shape.
* :func:`check_row_norm_mask`: L1 (not L2, not a signed sum) norms of rows (not columns), the
  ``k`` smallest (not largest), exactly ``k`` of them.
* :func:`check_global_magnitude_masks`: all layers ranked together (not each alone), by
  ``|w|``, and ``k = round(amount * total)`` as ``torch.nn.utils.prune`` counts it: Python's
  ``round``, which rounds halves to the even neighbour (``round(2.5) == 2``). Cases where
  ``amount * total`` is 2.5, 4.9 and 2.1 reject ``ceil``, truncation and rounding half up.
* :func:`check_remove_hidden_unit`: a row of ``W1``, an entry of ``b1`` and a column of
  ``W2``, counted from 0.
* :func:`check_cubic_sparsity`: Zhu & Gupta's cubic schedule, progress counted from
  ``begin_step`` and clipped to [0, 1].
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from compresskit import pruning
from compresskit.course.checker import Case, Expected, check_function, close, describe, naming_mistakes


def _weights(*shape: int, seed: int) -> torch.Tensor:
    """Random weights with distinct magnitudes (no ties, so the right mask is unique)."""
    g = torch.Generator().manual_seed(seed)
    n = torch.Size(shape).numel()
    magnitudes = (torch.randperm(n, generator=g).float() + 1) / n
    return (magnitudes * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)).reshape(shape)


def _as_float(value: Any) -> Any:
    """Accept bool and integer 0/1 masks (``(w.abs() >= t).long()``) as well as float ones; an
    integer mask with other values is converted too, and then named as not a 0/1 mask."""
    if isinstance(value, torch.Tensor) and value.layout == torch.strided and (
            value.dtype == torch.bool or not (value.is_floating_point() or value.is_complex())):
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_as_float(v) for v in value)
    return value


def _mask_problem(expected: torch.Tensor, got: Any) -> str | None:
    """What is wrong with one mask, in a learner's terms; None if it equals ``expected``."""
    got = _as_float(got)
    reason = close(expected, got)
    if reason is None or reason.startswith(("expected a torch.Tensor", "dtype")):
        return reason
    if reason.startswith("shape"):
        return f"{reason}: return a mask of the weight's shape"
    if not bool(((got == 0) | (got == 1)).all()):
        odd = got[(got != 0) & (got != 1)].flatten()[0].item()
        return f"expected a 0/1 mask, got other values such as {odd:.3g}: return the mask, not the pruned weight"
    if got.numel() > 1 and torch.equal(got, 1 - expected):
        return "the mask is inverted: 1 must mean keep and 0 prune"
    pruned, want = int((got == 0).sum()), int((expected == 0).sum())
    if pruned != want:
        return f"prunes {pruned} of {got.numel()} entries, expected {want}"
    return f"prunes the right number of entries ({want}) but not the right ones"


# --- exercise 1: threshold mask -------------------------------------------------------------

THRESHOLD_CASES = [
    Case("negative weights: |-0.3| >= 0.2 is kept (compare magnitudes |w|, not signed values)",
         (torch.tensor([0.3, -0.05, -0.3, 0.1, 0.0]), 0.2)),
    Case("entries exactly at the threshold are kept (>=, not >)", (torch.tensor([0.1, -0.1, 0.09]), 0.1)),
    Case("a 4x6 weight", (_weights(4, 6, seed=0), 0.5)),
    Case("threshold 0 keeps everything", (_weights(3, 3, seed=1), 0.0)),
    Case("a threshold above every weight prunes everything", (_weights(3, 3, seed=2), 5.0)),
]


def _threshold_expected(weight: torch.Tensor, threshold: float) -> Expected:
    return Expected(pruning.threshold_mask(weight, threshold), mistakes=(
        ((weight >= threshold).float(), "you compared w, not |w|: a large negative weight is kept too"),
        ((weight.abs() > threshold).float(), "you used >: an entry exactly at the threshold is kept (>=)"),
    ))


def check_threshold_mask(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """``fn(weight, threshold)``: a 0/1 mask keeping the entries with ``|w| >= threshold``."""
    return check_function(fn, reference=_threshold_expected, cases=THRESHOLD_CASES, name="threshold_mask",
                          compare=naming_mistakes(_mask_problem),
                          hint="keep where weight.abs() >= threshold; return that 0/1 (or bool) mask, of w's shape")


# --- exercise 2: norm pruning of rows ----------------------------------------------------------

def _zero_rows(mask: torch.Tensor) -> list[int]:
    return [i for i in range(mask.shape[0]) if bool((mask[i] == 0).all())]


def _compare_row_masks(expected: torch.Tensor, got: Any) -> str | None:
    """Which whole rows the learner zeroed, against the rows expected."""
    reason = _mask_problem(expected, got)
    if reason is None or not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return reason
    got = _as_float(got)
    if not bool(((got == 0) | (got == 1)).all()):
        return reason
    rows, want = _zero_rows(got), _zero_rows(expected)
    if int((got == 0).sum()) != len(rows) * got.shape[1]:
        zero_cols = [j for j in range(got.shape[1]) if bool((got[:, j] == 0).all())]
        if zero_cols:
            return f"zeroes whole columns {zero_cols}, expected whole rows {want}: a unit is a row (dim 0)"
        return f"{reason}: zero whole rows, not single entries"
    if len(rows) != len(want):
        return f"zeroes {len(rows)} whole rows {rows}, expected {len(want)}: {want}"
    return f"zeroes rows {rows}, expected rows {want}"


def _rows_zeroed(weight: torch.Tensor, scores: torch.Tensor, k: int, largest: bool = False) -> torch.Tensor:
    mask = torch.ones_like(weight)
    mask[torch.topk(scores, k, largest=largest).indices] = 0
    return mask


def _row_norm_expected(weight: torch.Tensor, k: int) -> Expected:
    return Expected(pruning.ln_structured_mask(weight, k, n=1, dim=0), mistakes=(
        (_rows_zeroed(weight, weight.norm(dim=1), k), "you ranked rows by the L2 norm; the L1 norm is the sum of |w|"),
        (_rows_zeroed(weight, weight.sum(dim=1), k), "you ranked rows by their plain sum; the L1 norm sums |w|"),
        (_rows_zeroed(weight, weight.abs().sum(dim=1), k, largest=True),
         "you zeroed the k LARGEST rows (torch.topk's default); prune the smallest: largest=False"),
    ))


ROW_NORM_CASES = [
    Case("3x2 by hand: row L1 norms 7, 2, 6, so the SMALLEST, row 1, is zeroed",
         (torch.tensor([[3.0, 4.0], [1.0, 1.0], [-6.0, 0.0]]), 1)),
    Case("L1, not L2: L1 norms 4 and 3.2 (L2 norms 2.83 and 3.2)", (torch.tensor([[2.0, 2.0], [3.2, 0.0]]), 1)),
    Case("the norm sums |w|, not w: row [-5, 1] has L1 norm 6 (its plain sum is -4)",
         (torch.tensor([[-5.0, 1.0], [2.0, 1.0], [1.0, 1.5]]), 1)),
    Case("rows of an 8x5 weight (a row's norm runs along dim=1), k=3", (_weights(8, 5, seed=3), 3)),
    Case("exactly k=2 rows of a 6x3 weight", (_weights(6, 3, seed=12), 2)),
    Case("k=0 keeps every row", (_weights(4, 4, seed=4), 0)),
]


def check_row_norm_mask(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """``fn(weight, k)``: a 0/1 mask of ``weight``'s shape that zeroes the ``k`` rows of smallest L1 norm."""
    return check_function(fn, reference=_row_norm_expected, cases=ROW_NORM_CASES, name="row_norm_mask",
                          compare=naming_mistakes(_compare_row_masks),
                          hint="row norms: weight.abs().sum(dim=1); zero the whole row of each of the k smallest "
                               "(torch.topk(norms, k, largest=False))")


# --- exercise 3: global magnitude masks ------------------------------------------------------

def _compare_mask_lists(expected: list[torch.Tensor], got: Any) -> str | None:
    """Masks for several layers: the total pruned, then how it is spread over the layers."""
    if not isinstance(got, (list, tuple)) or len(got) != len(expected):
        return f"expected a list of {len(expected)} masks, one per weight tensor; got {describe(got)}"
    got = [_as_float(g) for g in got]
    for i, (e, g) in enumerate(zip(expected, got)):
        if not isinstance(g, torch.Tensor) or g.shape != e.shape or not bool(((g == 0) | (g == 1)).all()):
            return f"mask {i}: {_mask_problem(e, g)}"
    counts = [int((g == 0).sum()) for g in got]
    want = [int((e == 0).sum()) for e in expected]
    if sum(counts) != sum(want):
        return f"prunes {sum(counts)} entries in all, expected {sum(want)}"
    if counts != want:
        return f"prunes {counts} entries per layer, expected {want}"
    for i, (e, g) in enumerate(zip(expected, got)):
        problem = _mask_problem(e, g)
        if problem:
            return f"mask {i}: {problem}"
    return None


GLOBAL_MASK_CASES = [
    Case("two layers by hand, amount * total = 3", ([torch.tensor([0.1, 0.2, 0.3]), torch.tensor([[5.0, 0.05]])], 0.6)),
    Case("negative weights: rank by |w|, so -5 is the largest (amount * total = 2)",
         ([torch.tensor([-5.0, 0.1, -0.2]), torch.tensor([0.3, -0.05])], 0.4)),
    Case("layers of different scales (0.1x and 1x): rank all layers together",
         ([_weights(4, 4, seed=5) * 0.1, _weights(3, 5, seed=6)], 0.5)),
    Case("three layers, 90%", ([_weights(6, 4, seed=7), _weights(4, 4, seed=8) * 2, _weights(10, seed=9)], 0.9)),
    Case("amount * total = 0.5 x 5 = 2.5, exactly a half",
         ([torch.tensor([0.1, -0.4, 0.5]), torch.tensor([-0.2, 0.3])], 0.5)),
    Case("amount * total = 0.7 x 7 = 4.9",
         ([_weights(4, seed=15), _weights(3, seed=16)], 0.7)),
    Case("amount * total = 0.3 x 7 = 2.1",
         ([_weights(4, seed=17), _weights(3, seed=18)], 0.3)),
    Case("amount 0 keeps all", ([_weights(2, 2, seed=10), _weights(3, seed=11)], 0.0)),
]


def _ranked_together(weights: list[torch.Tensor], scores: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Masks pruning the ``k`` entries of smallest ``|score|`` among all layers together."""
    flat = torch.cat([s.abs().flatten() for s in scores])
    mask = torch.ones_like(flat)
    mask[torch.topk(flat, k, largest=False).indices] = 0
    return [m.view_as(w) for m, w in zip(mask.split([w.numel() for w in weights]), weights)]


def _global_expected(weights: list[torch.Tensor], amount: float) -> Expected:
    total = sum(w.numel() for w in weights)
    x, k = amount * total, round(amount * total)
    lowest = min(float(w.min()) for w in weights)
    mistakes = [
        ([pruning.magnitude_mask(w, amount) for w in weights],
         "you pruned each layer alone; rank all layers together (global)"),
        (_ranked_together(weights, [w - lowest for w in weights], k),
         "you ranked w, not |w|: a large negative weight is pruned first"),
    ]
    for wrong_k in sorted({math.ceil(x), math.floor(x + 0.5), math.floor(x)} - {k}):
        how = "rounded up (ceil, or half up)" if wrong_k > k else "truncated (int, floor)"
        mistakes.append((_ranked_together(weights, [w.abs() for w in weights], wrong_k),
                         f"amount * total = {x:g} {how} to {wrong_k}; torch's round() gives {k}"
                         + (" (it rounds halves to the even neighbour)" if x % 1 == 0.5 else "")))
    return Expected(pruning.global_magnitude_masks(weights, amount), mistakes=tuple(mistakes))


def check_global_magnitude_masks(fn: Callable[[list[torch.Tensor], float], list[torch.Tensor]]) -> bool:
    """``fn(weights, amount)``: one mask per tensor, pruning the ``round(amount * total)``
    smallest magnitudes of all tensors ranked together (``round`` as torch.nn.utils.prune uses it)."""
    return check_function(fn, reference=_global_expected, cases=GLOBAL_MASK_CASES,
                          name="global_magnitude_masks", compare=naming_mistakes(_compare_mask_lists),
                          hint="flat = torch.cat of every |w|; k = round(amount * flat.numel()) (Python's round, "
                               "as torch.nn.utils.prune); prune the k smallest of flat, then split the mask per layer")


# --- exercise 4: remove a hidden unit -------------------------------------------------------

def remove_hidden_unit_reference(W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, unit: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Remove hidden unit ``unit``: row ``unit`` of ``W1`` and ``b1``, column ``unit`` of ``W2``."""
    keep = [j for j in range(W1.shape[0]) if j != unit]
    return W1[keep], b1[keep], W2[:, keep]


def _shape_problem(name: str, expected: torch.Tensor, got: torch.Tensor) -> str | None:
    """Name the axis a learner got wrong for W1_new (units are rows), b1_new and W2_new (columns)."""
    unit_dim = 1 if name == "W2_new" else 0
    e, g = tuple(expected.shape), tuple(got.shape)
    if g == e:
        return None
    where = f"shape: expected {e}, got {g}"
    if len(g) != len(e):
        return f"{name}: {where}"
    if g[unit_dim] == e[unit_dim] + 1 and all(g[d] == e[d] for d in range(len(e)) if d != unit_dim):
        if name == "b1_new":
            return f"{name}: {where}: drop the unit's bias b1[unit] too"
        if name == "W2_new":
            return f"{name}: {where}: the next layer reads the unit through column `unit` of W2; drop it"
        return f"{name}: {where}: it still has all {g[0]} rows; remove row `unit` (zeroing a row does not remove it)"
    axis = "a COLUMN of W2, not a row" if name == "W2_new" else "a ROW of W1, not a column"
    return f"{name}: {where}: the unit is {axis}"


def _compare_removed(expected: tuple[torch.Tensor, ...], got: Any) -> str | None:
    names = ("W1_new", "b1_new", "W2_new")
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return f"expected a tuple (W1_new, b1_new, W2_new), got {describe(got)}"
    for name, e, g in zip(names, expected, got):
        if not isinstance(g, torch.Tensor):
            return f"{name}: expected a torch.Tensor, got {type(g).__name__}"
        problem = _shape_problem(name, e, g)
        if problem:
            return problem
    for name, e, g in zip(names, expected, got):
        if close(e, g) is not None:
            return (f"{name}: the right shape but not the right entries: remove index `unit` "
                    f"(counting from 0) and keep the others in order")
    return None


def _unit_case(description: str, hidden: int, unit: int, seed: int) -> Case:
    g = torch.Generator().manual_seed(seed)
    return Case(description, (torch.randn(hidden, 5, generator=g), torch.randn(hidden, generator=g),
                              torch.randn(3, hidden, generator=g), unit))


REMOVE_UNIT_CASES = [
    _unit_case("unit 1 of 4 (W1 4x5, W2 3x4)", 4, 1, 0),
    _unit_case("the first unit, unit 0 (units count from 0)", 6, 0, 1),
    _unit_case("the last unit, unit 5 of 6", 6, 5, 2),
    _unit_case("a square W1 (5x5), unit 2", 5, 2, 4),
    _unit_case("a square W2 (3x3), unit 1", 3, 1, 5),
    _unit_case("a wide layer, unit 17 of 32", 32, 17, 3),
]


def check_remove_hidden_unit(fn: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> bool:
    """``fn(W1, b1, W2, unit)`` -> ``(W1_new, b1_new, W2_new)`` without hidden unit ``unit``."""
    return check_function(fn, reference=remove_hidden_unit_reference, cases=REMOVE_UNIT_CASES,
                          name="remove_hidden_unit", compare=_compare_removed,
                          hint="the unit is a ROW of W1 and an entry of b1 (its output), and a COLUMN of W2 "
                               "(the next layer's input)")


# --- exercise 5: the cubic schedule ----------------------------------------------------------

CUBIC_CASES = [
    Case("before begin_step: 0 (clip the progress at 0)", (5, 0.9, 10, 110)),
    Case("at begin_step: 0, the schedule starts dense", (10, 0.9, 10, 110)),
    Case("a quarter of the way: cubic, not linear (0.9 * (1 - 0.75**3))", (35, 0.9, 10, 110)),
    Case("half way; the progress counts from begin_step, not from step 0", (60, 0.8, 10, 110)),
    Case("at end_step: final_sparsity", (110, 0.95, 10, 110)),
    Case("after end_step: stays at final_sparsity (clip the progress at 1)", (500, 0.95, 10, 110)),
]


def check_cubic_sparsity(fn: Callable[[int, float, int, int], float]) -> bool:
    """``fn(step, final_sparsity, begin_step, end_step)``: Zhu & Gupta's schedule from 0."""
    return check_function(fn, reference=pruning.cubic_sparsity, cases=CUBIC_CASES, name="cubic_sparsity",
                          hint="s_t = s_f * (1 - (1 - p)**3) with p = (t - t0) / (t_end - t0), clipped to [0, 1]")
