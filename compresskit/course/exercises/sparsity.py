"""Exercise checkers for the sparsity chapter. Each ``check_*`` prints feedback and returns a bool.

The cases are chosen so that each common mistake fails a case whose description names it
(an empty row, empty last rows and columns, a column-major walk, negative weights, ties,
activations that can be negative, a negative bias behind a ReLU, float64 inputs, ...).

What the instructions of chapters/04_sparsity.ipynb ask, and these checkers hold to:

* indices (``crow_indices``, ``col_indices``) are int64, as ``torch``'s ``to_sparse_csr``;
* every float result keeps the dtype of the float input it comes from (float64 stays float64);
* an N:M mask holds only 0 and 1, as bool or any numeric dtype, with exactly ``n`` ones in
  every group of ``m``; among entries of equal magnitude any choice is right;
* no function writes into its inputs (``check_function`` reports an argument that changed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from compresskit import sparsity
from compresskit.course.checker import Case, check_function, close, describe
from compresskit.course.predict import check_prediction


def _matrix(rows: int, cols: int, density: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(rows, cols, generator=g)
    return dense * (torch.rand(rows, cols, generator=g) < density)


def _exact_dtype(expected: Any, got: Any) -> str | None:
    """``close``, and the exact dtype the instructions ask: int64 indices, float results in the
    dtype of the float input (``close`` alone lets int32 pass for int64 and float32 for float64)."""
    if isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor) and got.dtype != expected.dtype:
        if expected.dtype == torch.int64 and not got.dtype.is_floating_point and got.dtype != torch.bool:
            return f"dtype: expected torch.int64 (indices are int64, as the instructions ask), got {got.dtype}"
        if expected.dtype.is_floating_point and got.dtype.is_floating_point:
            return f"dtype: expected {expected.dtype} (keep the dtype of the input), got {got.dtype}"
    return close(expected, got)


def _named(names: tuple[str, ...]) -> Callable[[Any, Any], str | None]:
    """Compare tuples item by item (exact dtypes) and name the item that differs."""
    def compare(expected: tuple, got: Any) -> str | None:
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"return a tuple ({', '.join(names)}); got {type(got).__name__}"
        for name, e, g in zip(names, expected, got):
            reason = _exact_dtype(e, g)
            if reason:
                return f"{name}: {reason}"
        return None
    return compare


# --- 1. CSR encode -------------------------------------------------------------------------

def reference_csr_encode(dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    csr = sparsity.to_csr(dense, index_dtype=torch.int64)
    return csr.crow_indices, csr.col_indices, csr.values


def check_csr_encode(fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> bool:
    """``fn(dense)`` -> ``(crow_indices, col_indices, values)`` of a 2-D tensor, as ``torch``'s CSR."""
    return check_function(fn, reference=reference_csr_encode, cases=[
        Case("3x4 by hand, non-zeros of a row in several columns (CSR walks row by row)",
             (torch.tensor([[0.0, 2.0, 0.0, 7.0], [0.0, 0.0, 0.0, 0.0], [1.5, 0.0, -3.0, 0.0]]),)),
        Case("an empty first row (crow_indices has R + 1 entries and starts at 0)",
             (torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 5.0]]),)),
        Case("a matrix with zeros among the values (store only the non-zeros)", (_matrix(6, 5, 0.4, 0),)),
        Case("a wide 4x30 matrix", (_matrix(4, 30, 0.2, 1),)),
        Case("a fully dense row", (torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]]),)),
        Case("empty last rows and columns (crow_indices still has rows + 1 entries)",
             (torch.tensor([[0.0, 3.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]),)),
        Case("a float64 matrix (values keep its dtype)", (_matrix(5, 4, 0.5, 4).double(),)),
    ], name="csr_encode", compare=_named(("crow_indices", "col_indices", "values")),
        hint="crow_indices[r+1] - crow_indices[r] is the number of non-zeros in row r, for every row, empty ones too; "
             "walk row by row, columns increasing; indices int64, values in the dtype of dense")


# --- 2. CSR decode -------------------------------------------------------------------------

def reference_csr_decode(crow_indices: torch.Tensor, col_indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return sparsity.from_csr(sparsity.CSR(tuple(shape), crow_indices, col_indices, values))


def _csr_case(description: str, dense: torch.Tensor) -> Case:
    crow, col, values = reference_csr_encode(dense)
    return Case(description, (crow, col, values, tuple(dense.shape)))


def check_csr_decode(fn: Callable[..., torch.Tensor]) -> bool:
    """``fn(crow_indices, col_indices, values, shape)`` -> the dense matrix."""
    return check_function(fn, reference=reference_csr_decode, cases=[
        _csr_case("3x4 by hand with an empty middle row", torch.tensor([[0.0, 2.0, 0.0, 7.0], [0.0, 0.0, 0.0, 0.0], [1.5, 0.0, -3.0, 0.0]])),
        _csr_case("a tall 5x2 matrix (rows and columns are not interchangeable)", torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0], [3.0, 4.0], [0.0, 5.0]])),
        _csr_case("the last row holds the last non-zero (row r ends at crow_indices[r+1])", torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 9.0]])),
        _csr_case("a random 7x6 matrix", _matrix(7, 6, 0.5, 2)),
        _csr_case("empty last rows and columns (the size comes from shape, not from the largest index)",
                  torch.tensor([[0.0, 6.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])),
        _csr_case("float64 values (the matrix keeps their dtype)", _matrix(4, 5, 0.5, 5).double()),
    ], name="csr_decode", compare=_exact_dtype,
        hint="a (shape) matrix of zeros in the dtype of values; row r holds values[crow_indices[r]:crow_indices[r+1]] at columns col_indices[crow_indices[r]:crow_indices[r+1]]")


# --- 3. a 2:4 mask --------------------------------------------------------------------------

def reference_nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """One right mask (the checker accepts any that keeps the rule, see :func:`_compare_nm`)."""
    return sparsity.nm_mask(weight, n, m)


def _distinct(rows: int, cols: int, seed: int) -> torch.Tensor:
    """Weights with distinct magnitudes, so the right mask is unique."""
    g = torch.Generator().manual_seed(seed)
    magnitudes = (torch.randperm(rows * cols, generator=g).float() + 1) / (rows * cols)
    return (magnitudes * torch.where(torch.rand(rows * cols, generator=g) < 0.5, -1.0, 1.0)).reshape(rows, cols)


@dataclass(frozen=True)
class _NMExpected:
    """What a right N:M mask must satisfy for this weight (any choice among equal magnitudes)."""

    weight: torch.Tensor
    n: int
    m: int


def _nm_rule(weight: torch.Tensor, n: int, m: int) -> _NMExpected:
    return _NMExpected(weight.detach().clone(), n, m)


def _compare_nm(expected: _NMExpected, got: Any) -> str | None:
    """The rule itself, not one particular mask: 0/1 values, exactly n kept in every group of m
    along each row, and no dropped |w| larger than a kept one (so ties may go either way)."""
    w, n, m = expected.weight, expected.n, expected.m
    if not isinstance(got, torch.Tensor) or got.layout != torch.strided:
        return f"expected a dense torch.Tensor mask, got {describe(got)}"
    if got.shape != w.shape:
        return f"shape: expected {tuple(w.shape)} (the weight's shape), got {tuple(got.shape)}"
    if got.is_complex():
        return f"dtype: a mask holds 0 and 1, got {got.dtype}"
    values = got.double()
    bad = (values != 0) & (values != 1)
    if bool(bad.any()):
        hint = " (did you return weight * mask instead of the mask?)" if bool(torch.isclose(values[bad], w.double()[bad]).all()) else ""
        return f"a mask holds only 0 and 1; got {values[bad][0].item():g}{hint}"
    kept = values.reshape(-1, m) == 1
    size = w.abs().double().reshape(-1, m)
    counts = kept.sum(dim=1)
    if bool((counts != n).any()):
        g = int((counts != n).nonzero()[0])
        return (f"group {g} (|w| = {[round(v, 4) for v in size[g].tolist()]}) keeps {int(counts[g])} entries; "
                f"keep exactly n = {n} of every m = {m}, on ties too")
    low_kept = torch.where(kept, size, torch.inf).min(dim=1).values
    high_dropped = torch.where(kept, -torch.inf, size).max(dim=1).values
    wrong = high_dropped > low_kept
    if bool(wrong.any()):
        g = int(wrong.nonzero()[0])
        return (f"group {g} (|w| = {[round(v, 4) for v in size[g].tolist()]}) keeps |w| = {low_kept[g].item():.4g} "
                f"but drops |w| = {high_dropped[g].item():.4g}: keep the n largest magnitudes")
    return None


def check_nm_mask(fn: Callable[[torch.Tensor, int, int], torch.Tensor]) -> bool:
    """``fn(weight, n, m)`` -> a 0/1 mask keeping the ``n`` largest ``|w|`` in every group of ``m``
    consecutive entries along each row: exactly ``n`` per group, any of them where magnitudes
    tie; bool or 0/1 of any numeric dtype."""
    return check_function(fn, reference=_nm_rule, cases=[
        Case("one row by hand: positive weights, 2:4", (torch.tensor([[0.1, 0.9, 0.3, 0.2, 5.0, 4.0, 3.0, 0.5]]), 2, 4)),
        Case("negative weights: rank by magnitude |w|, not by value", (torch.tensor([[-0.9, 0.1, -0.8, 0.2]]), 2, 4)),
        Case("4x8: groups run along each row, not down the columns", (_distinct(4, 8, 0), 2, 4)),
        Case("1:2 keeps one of every two", (_distinct(3, 6, 1), 1, 2)),
        Case("3:4 keeps three of every four", (_distinct(2, 8, 2), 3, 4)),
        Case("ties: equal magnitudes (0.5 and -0.5, a group of zeros); keep exactly n, any of the tied ones",
             (torch.tensor([[0.5, -0.5, 0.5, 0.1, 0.0, 0.0, 0.0, 0.0], [0.2, 0.2, 0.9, -0.2, 0.3, 0.3, 0.3, 0.3]]), 2, 4)),
        Case("a float64 weight", (_distinct(2, 8, 3).double(), 2, 4)),
    ], name="nm_mask", compare=_compare_nm,
        hint="reshape to (-1, m) groups of a row, take torch.topk of |w| with k=n in each, scatter ones into a mask "
             "(a threshold such as |w| >= the n-th largest keeps too many where magnitudes tie)")


# --- 4. APoZ ------------------------------------------------------------------------------

def reference_apoz(activations: torch.Tensor) -> torch.Tensor:
    return sparsity.apoz(activations)


def check_apoz(fn: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """``fn(activations)`` -> the fraction (in [0, 1]) of zero outputs of each unit (dim 1),
    over samples and, for feature maps (N, C, H, W), over positions."""
    g = torch.Generator().manual_seed(3)
    relu = lambda *shape: torch.relu(torch.randn(*shape, generator=g))  # noqa: E731
    return check_function(fn, reference=reference_apoz, cases=[
        Case("(N, units) by hand: one value per unit, a fraction not a percentage",
             (torch.tensor([[0.0, 1.0, 0.0], [0.0, 2.0, 3.0]]),)),
        Case("more samples than units (average over samples, dim 0)", (relu(9, 4),)),
        Case("feature maps (N, C, H, W): average over samples AND positions", (relu(5, 3, 4, 4),)),
        Case("a unit that is never zero", (torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 5.0]]),)),
        Case("activations that can be negative (LeakyReLU, tanh): count only outputs exactly 0",
             (torch.tensor([[-0.5, 0.0, 1.0], [0.0, -2.0, 0.0], [-0.1, 0.3, 0.0]]),)),
        Case("tiny outputs such as 1e-7 are not zero (exactly 0, not nearly)",
             (torch.tensor([[1e-7, 0.0], [0.0, 1e-9], [2e-8, 0.0], [0.0, 0.0]]),)),
    ], name="apoz",
        hint="(activations == 0).float().mean over every dimension except dim 1 (== 0: not <= 0, not close to 0)")


# --- 5. one structure-repair step -----------------------------------------------------------

def reference_fold_dead_unit(W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, unit: int
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Remove hidden unit ``unit`` (its row of W1 is zero, so it outputs relu(b1[unit])) and fold
    that constant into the next layer's bias."""
    keep = [j for j in range(W1.shape[0]) if j != unit]
    constant = torch.relu(b1[unit])
    return W1[keep], b1[keep], W2[:, keep], b2 + W2[:, unit] * constant


def _fold_case(description: str, hidden: int, unit: int, bias: float, seed: int) -> Case:
    g = torch.Generator().manual_seed(seed)
    W1, b1 = torch.randn(hidden, 5, generator=g), torch.randn(hidden, generator=g)
    W1[unit] = 0
    b1[unit] = bias
    return Case(description, (W1, b1, torch.randn(3, hidden, generator=g), torch.randn(3, generator=g), unit))


def check_fold_dead_unit(fn: Callable[..., tuple[torch.Tensor, ...]]) -> bool:
    """``fn(W1, b1, W2, b2, unit)`` -> ``(W1, b1, W2, b2)`` without hidden unit ``unit``, whose
    incoming weights are all zero, computing the same function (ReLU between the layers)."""
    return check_function(fn, reference=reference_fold_dead_unit, cases=[
        _fold_case("a unit with a positive bias: its constant output must go into b2", 4, 1, 0.7, 0),
        _fold_case("a unit with a negative bias: ReLU makes its output 0, so b2 does not change", 5, 2, -0.6, 1),
        _fold_case("the last unit (W2 loses a column, not a row)", 6, 5, 1.2, 2),
        _fold_case("the first unit of a wide layer", 16, 0, 0.3, 3),
        Case("float64 weights (keep their dtype)", tuple(t.double() if isinstance(t, torch.Tensor) else t
                                                         for t in _fold_case("", 5, 3, 0.8, 4).args)),
    ], name="fold_dead_unit", compare=_named(("W1", "b1", "W2", "b2")),
        hint="the unit outputs relu(b1[unit]) for every input; b2 gains W2[:, unit] * that, then drop row unit of W1 and b1 and column unit of W2")


# --- 6. predict, then measure: the CSR crossover in half precision ------------------------------

CROSSOVER_SHAPE = (256, 64)  # fc1.weight of the chapter's MLP, Linear(64, 256): (out, in)


def check_csr_crossover_prediction(prediction: float) -> bool:
    """The learner's prediction of the largest density at which CSR with float16 values and
    int16 indices (row pointers too) takes fewer bytes than the dense float16 256 x 64 matrix,
    against ``sparsity.crossover_density``, with the usual wrong reasonings named."""
    rows, cols = CROSSOVER_SHAPE

    def crossover(value_bytes: int, index_bytes: int, shape: tuple[int, int] = CROSSOVER_SHAPE) -> float:
        return sparsity.crossover_density("csr", shape, value_bytes=value_bytes, index_bytes=index_bytes)

    actual = crossover(2, 2)
    only_indices = "you made the indices int16 but kept float32 values (v / (i + v) = 4 / 6): here the values are float16 too"
    only_values = ("that is float16 values with int32 indices (2 / 6), or COO, which stores two indices per non-zero: "
                   "here CSR's indices are int16 too")
    percent = "that is a percentage: write the density as a fraction of the entries (0.4 for 40%)"
    return check_prediction("csr_crossover_prediction", prediction, actual, rel_tol=0.005, mistakes={
        0.5: (f"0.5 = v / (i + v) leaves out the row pointers: CSR stores rows + 1 = {rows + 1} of them "
              f"({(rows + 1) * 2} bytes in int16) however few non-zeros there are, so on a {rows} x {cols} matrix "
              "it needs a little more sparsity than that (and halving both the value and the index size leaves "
              "v / (i + v) where float32 and int32 put it)"),
        1 - actual: "that is the sparsity (the fraction of zeros, 1 - density): the question asks for the density, nnz / numel",
        crossover(2, 2, (cols, rows)): (f"you counted {cols + 1} row pointers: the weight of Linear({cols}, {rows}) is "
                                        f"(out, in) = {rows} rows of {cols} columns, so {rows + 1} row pointers"),
        100 * actual: percent,
        50.0: percent,
        2 / 3: only_indices,
        crossover(4, 2): only_indices,
        1 / 3: only_values,
        crossover(2, 4): only_values,
        (math.ceil((rows * cols * 4 - (rows + 1) * 2) / 4) - 1) / (rows * cols): (
            "you compared with a float32 dense matrix: the dense copy of a half-precision model is float16, "
            "2 bytes per entry; compare like with like"),
    }, hint="CSR stores (rows + 1) row pointers and, per non-zero, one value and one column index; "
            "find the largest nnz with CSR bytes < dense bytes, then divide by rows * cols")
