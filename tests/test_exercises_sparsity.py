"""Chapter 4's exercise checkers keep tests/exercise_contract.py's contract: each accepts an
independent worked answer (written here, not the library's reference), rejects the wrong
answers a learner plausibly writes from the notebook's instructions (ties, empty last rows,
int32 indices, float64 inputs, writing into an input, ...) with a line that names the mistake,
and reports an untouched stub as not attempted. The N:M checker accepts any mask that keeps
the rule (any choice among ties) and any 0/1 dtype, as the instructions say."""

from __future__ import annotations

import warnings

import pytest
import torch
from exercise_contract import contract_tests

from compresskit import sparsity
from compresskit.course.exercises import sparsity as ex


def stub(*args):
    raise NotImplementedError  # your code here


# --- independent worked answers (as in solutions/04_sparsity.ipynb) ---------------------------

def csr_encode(dense):
    crow, cols, values = [0], [], []
    for row in dense:
        for j, v in enumerate(row.tolist()):
            if v != 0:
                cols.append(j)
                values.append(v)
        crow.append(len(values))
    return torch.tensor(crow), torch.tensor(cols, dtype=torch.long), torch.tensor(values, dtype=dense.dtype)


def csr_decode(crow_indices, col_indices, values, shape):
    dense = torch.zeros(shape, dtype=values.dtype)
    for r in range(shape[0]):
        start, end = int(crow_indices[r]), int(crow_indices[r + 1])
        dense[r, col_indices[start:end]] = values[start:end]
    return dense


def nm_mask(weight, n, m):
    groups = weight.abs().reshape(-1, m)
    order = groups.argsort(dim=1, descending=True)
    mask = torch.zeros_like(groups)
    mask.scatter_(1, order[:, :n], 1.0)
    return mask.reshape(weight.shape)


def apoz(activations):
    dims = [0] + list(range(2, activations.dim()))
    return (activations == 0).float().mean(dim=dims)


def fold_dead_unit(W1, b1, W2, b2, unit):
    keep = torch.arange(W1.shape[0]) != unit
    return W1[keep], b1[keep], W2[:, keep], b2 + W2[:, unit] * b1[unit].clamp(min=0)


# --- plausible wrong answers, with the phrase the feedback must show ----------------------------

def csr_no_leading_zero(dense):
    crow, col, values = csr_encode(dense)
    return crow[1:], col, values


def csr_column_major(dense):  # walks the matrix column by column (that is CSC)
    crow, _, _ = csr_encode(dense)
    t = dense.T
    nz = t.nonzero()
    return crow, nz[:, 0], t[nz[:, 0], nz[:, 1]]


def csr_keeps_zeros(dense):  # stores every entry
    rows, cols = dense.shape
    return torch.arange(rows + 1) * cols, torch.arange(cols).repeat(rows), dense.flatten()


def csr_float_indices(dense):
    crow, col, values = csr_encode(dense)
    return crow.float(), col.float(), values


def decode_transposed(crow_indices, col_indices, values, shape):
    dense = torch.zeros(shape[::-1], dtype=values.dtype)
    for r in range(shape[0]):
        s, e = int(crow_indices[r]), int(crow_indices[r + 1])
        dense[col_indices[s:e], r] = values[s:e]
    return dense.reshape(shape) if dense.shape != shape else dense.T


def decode_off_by_one(crow_indices, col_indices, values, shape):  # drops the last entry of each row
    dense = torch.zeros(shape, dtype=values.dtype)
    for r in range(shape[0]):
        s, e = int(crow_indices[r]), int(crow_indices[r + 1]) - 1
        dense[r, col_indices[s:e]] = values[s:e]
    return dense


def decode_row_by_count(crow_indices, col_indices, values, shape):  # reads crow as "row of entry k"
    dense = torch.zeros(shape, dtype=values.dtype)
    for k in range(len(values)):
        dense[min(int(crow_indices[k]), shape[0] - 1), col_indices[k]] = values[k]
    return dense


def nm_by_value(weight, n, m):  # forgets the absolute value
    groups = weight.reshape(-1, m)
    mask = torch.zeros_like(groups).scatter_(1, groups.topk(n, dim=1).indices, 1.0)
    return mask.reshape(weight.shape)


def nm_down_columns(weight, n, m):  # groups of m down each column
    return nm_mask(weight.T.contiguous(), n, m).T


def nm_keeps_smallest(weight, n, m):
    groups = weight.abs().reshape(-1, m)
    mask = torch.zeros_like(groups).scatter_(1, groups.topk(n, dim=1, largest=False).indices, 1.0)
    return mask.reshape(weight.shape)


def nm_keeps_m_minus_n(weight, n, m):  # prunes n instead of keeping n
    return nm_mask(weight, m - n, m)


def apoz_percent(activations):
    return 100 * apoz(activations)


def apoz_nonzeros(activations):
    return 1 - apoz(activations)


def apoz_per_sample(activations):  # averages over the wrong axis
    return (activations == 0).float().flatten(1).mean(dim=1)


def apoz_samples_only(activations):  # forgets the positions of a feature map
    return (activations == 0).float().mean(dim=0)


def fold_forgotten(W1, b1, W2, b2, unit):  # removes the unit but drops its constant output
    keep = torch.arange(W1.shape[0]) != unit
    return W1[keep], b1[keep], W2[:, keep], b2


def fold_without_relu(W1, b1, W2, b2, unit):
    keep = torch.arange(W1.shape[0]) != unit
    return W1[keep], b1[keep], W2[:, keep], b2 + W2[:, unit] * b1[unit]


def fold_wrong_axis(W1, b1, W2, b2, unit):  # removes a row of W2 instead of a column
    keep = torch.arange(W1.shape[0]) != unit
    out_keep = torch.arange(W2.shape[0]) != min(unit, W2.shape[0] - 1)
    return W1[keep], b1[keep], W2[out_keep], b2


def csr_int32_indices(dense):  # torch.int32 indices (the instructions ask for int64)
    crow, col, values = csr_encode(dense)
    return crow.int(), col.int(), values


def csr_values_float32(dense):  # torch.tensor(list) makes float32, whatever the input's dtype
    crow, col, values = csr_encode(dense)
    return crow, col, torch.tensor(values.tolist())


def csr_stops_at_last_nonempty_row(dense):  # counts rows from the non-zeros, so empty last rows vanish
    rows = dense.nonzero()[:, 0]
    counts = torch.bincount(rows)
    crow = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    _, col, values = csr_encode(dense)
    return crow, col, values


def decode_size_from_indices(crow_indices, col_indices, values, shape):  # ignores shape
    dense = torch.zeros(len(crow_indices) - 1, int(col_indices.max()) + 1, dtype=values.dtype)
    for r in range(len(crow_indices) - 1):
        s, e = int(crow_indices[r]), int(crow_indices[r + 1])
        dense[r, col_indices[s:e]] = values[s:e]
    return dense


def decode_float32(crow_indices, col_indices, values, shape):  # torch.zeros(shape) is float32
    dense = torch.zeros(shape)
    for r in range(shape[0]):
        s, e = int(crow_indices[r]), int(crow_indices[r + 1])
        dense[r, col_indices[s:e]] = values[s:e].float()
    return dense


def decode_returns_sparse(crow_indices, col_indices, values, shape):  # torch's sparse tensor, not the dense matrix
    with warnings.catch_warnings():  # torch's "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow_indices, col_indices, values, size=shape)


def nm_threshold_ge(weight, n, m):  # |w| >= the n-th largest of its group: keeps every tie
    groups = weight.abs().reshape(-1, m)
    nth = groups.sort(dim=1, descending=True).values[:, n - 1:n]
    return (groups >= nth).float().reshape(weight.shape)


def nm_threshold_gt(weight, n, m):  # |w| > the (n+1)-th largest: drops every tie
    groups = weight.abs().reshape(-1, m)
    if n == m:
        return torch.ones_like(weight)
    nxt = groups.sort(dim=1, descending=True).values[:, n:n + 1]
    return (groups > nxt).float().reshape(weight.shape)


def nm_abs_in_place(weight, n, m):  # weight.abs_() changes the caller's weight
    groups = weight.abs_().reshape(-1, m)
    return torch.zeros_like(groups).scatter_(1, groups.topk(n, dim=1).indices, 1.0).reshape(weight.shape)


def nm_masked_weight(weight, n, m):  # returns the pruned weight, not the mask
    return weight * nm_mask(weight, n, m)


def apoz_nonpositive(activations):  # counts negative outputs as zeros
    dims = [0] + list(range(2, activations.dim()))
    return (activations <= 0).float().mean(dim=dims)


def apoz_nearly_zero(activations):  # "close to 0" instead of exactly 0
    dims = [0] + list(range(2, activations.dim()))
    return (activations.abs() < 1e-6).float().mean(dim=dims)


def fold_in_place(W1, b1, W2, b2, unit):  # b2 += ... changes the caller's b2
    keep = torch.arange(W1.shape[0]) != unit
    b2 += W2[:, unit] * b1[unit].clamp(min=0)
    return W1[keep], b1[keep], W2[:, keep], b2


def fold_keeps_b1(W1, b1, W2, b2, unit):  # forgets to drop the unit's bias
    keep = torch.arange(W1.shape[0]) != unit
    return W1[keep], b1, W2[:, keep], b2 + W2[:, unit] * b1[unit].clamp(min=0)


def fold_float32_copy(W1, b1, W2, b2, unit):  # builds the new W2 with torch.zeros: float32
    keep = [j for j in range(W1.shape[0]) if j != unit]
    new_W2 = torch.zeros(W2.shape[0], len(keep))
    for i, j in enumerate(keep):
        new_W2[:, i] = W2[:, j]
    return W1[keep], b1[keep], new_W2, b2 + W2[:, unit] * b1[unit].clamp(min=0)


WRONG = {
    "csr_encode": (ex.check_csr_encode, csr_encode, [
        (csr_no_leading_zero, "crow_indices: shape"),
        (csr_column_major, "col_indices:"),
        (csr_keeps_zeros, "store only the non-zeros"),
        (csr_float_indices, "crow_indices: dtype"),
        (csr_int32_indices, "crow_indices: dtype: expected torch.int64 (indices are int64, as the instructions ask), got torch.int32"),
        (csr_values_float32, "a float64 matrix (values keep its dtype): values: dtype: expected torch.float64"),
        (csr_stops_at_last_nonempty_row, "empty last rows and columns (crow_indices still has rows + 1 entries): crow_indices: shape"),
    ]),
    "csr_decode": (ex.check_csr_decode, csr_decode, [
        (decode_transposed, "tall 5x2 matrix (rows and columns are not interchangeable)"),
        (decode_off_by_one, "row r ends at crow_indices[r+1]"),
        (decode_row_by_count, "3x4 by hand"),
        (decode_size_from_indices, "empty last rows and columns (the size comes from shape, not from the largest index): shape"),
        (decode_float32, "float64 values (the matrix keeps their dtype): dtype: expected torch.float64"),
        (decode_returns_sparse, "got a sparse_csr one"),
    ]),
    "nm_mask": (ex.check_nm_mask, nm_mask, [
        (nm_by_value, "rank by magnitude |w|, not by value"),
        (nm_down_columns, "groups run along each row, not down the columns"),
        (nm_keeps_smallest, "one row by hand"),
        (nm_keeps_m_minus_n, "3:4 keeps three of every four"),
        (nm_threshold_ge, "ties: equal magnitudes (0.5 and -0.5, a group of zeros); keep exactly n, any of the tied ones: group 0"),
        (nm_threshold_gt, "keep exactly n = 2 of every m = 4, on ties too"),
        (nm_abs_in_place, "your function changed its argument `weight`"),
        (nm_masked_weight, "did you return weight * mask instead of the mask?"),
    ]),
    "apoz": (ex.check_apoz, apoz, [
        (apoz_percent, "a fraction not a percentage"),
        (apoz_nonzeros, "a unit that is never zero"),
        (apoz_per_sample, "average over samples, dim 0"),
        (apoz_samples_only, "average over samples AND positions"),
        (apoz_nonpositive, "activations that can be negative (LeakyReLU, tanh): count only outputs exactly 0"),
        (apoz_nearly_zero, "tiny outputs such as 1e-7 are not zero"),
    ]),
    "fold_dead_unit": (ex.check_fold_dead_unit, fold_dead_unit, [
        (fold_forgotten, "its constant output must go into b2"),
        (fold_without_relu, "ReLU makes its output 0, so b2 does not change"),
        (fold_wrong_axis, "W2 loses a column, not a row"),
        (fold_in_place, "your function changed its argument `b2`"),
        (fold_keeps_b1, "b1: shape"),
        (fold_float32_copy, "float64 weights (keep their dtype): W2: dtype: expected torch.float64"),
    ]),
}

globals().update(contract_tests(WRONG, stub))


def test_bool_masks_are_accepted(capsys):
    assert ex.check_nm_mask(lambda w, n, m: nm_mask(w, n, m).bool()) is True


def test_the_independent_answers_agree_with_torch_and_the_library():
    dense = torch.tensor([[0.0, 2.0, 0.0], [3.0, 0.0, 4.0]])
    crow, col, values = csr_encode(dense)
    torch_csr = dense.to_sparse_csr()
    assert torch.equal(crow, torch_csr.crow_indices()) and torch.equal(col, torch_csr.col_indices())
    assert torch.equal(csr_decode(crow, col, values, (2, 3)), dense)


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float16, torch.float64])
def test_a_zero_one_mask_of_any_dtype_is_accepted_as_the_instructions_say(dtype, capsys):
    assert ex.check_nm_mask(lambda w, n, m: nm_mask(w, n, m).to(dtype)) is True


def test_any_choice_among_tied_magnitudes_is_accepted(capsys):
    """torch.topk (the hint) and a stable sort keep different entries of a tie: both are right."""
    def by_topk(weight, n, m):
        groups = weight.abs().reshape(-1, m)
        return torch.zeros_like(groups).scatter_(1, groups.topk(n, dim=1).indices, 1.0).reshape(weight.shape)

    def by_stable_sort(weight, n, m):
        groups = weight.abs().reshape(-1, m)
        keep = groups.sort(dim=1, descending=True, stable=True).indices[:, :n]
        return torch.zeros_like(groups).scatter_(1, keep, 1.0).reshape(weight.shape)

    tie = torch.tensor([[0.5, -0.5, 0.5, 0.1]])
    assert not torch.equal(by_topk(tie, 2, 4), by_stable_sort(tie, 2, 4))  # the two really differ here
    assert ex.check_nm_mask(by_topk) is True and ex.check_nm_mask(by_stable_sort) is True


def test_the_independent_nm_answer_agrees_with_the_library_where_magnitudes_are_distinct():
    weight = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    for n, m in ((2, 4), (1, 2), (3, 4), (2, 8)):
        assert torch.equal(nm_mask(weight, n, m), sparsity.nm_mask(weight, n, m))
