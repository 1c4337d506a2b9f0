"""Each sparsity checker accepts an independent worked answer (written here, not the library's
reference), rejects at least three plausible wrong answers with a message that points at the
mistake, and reports an untouched stub as not attempted."""

from __future__ import annotations

import pytest
import torch

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


CHECKS = {
    "csr_encode": (ex.check_csr_encode, csr_encode, [
        (csr_no_leading_zero, "crow_indices: shape"),
        (csr_column_major, "col_indices:"),
        (csr_keeps_zeros, "store only the non-zeros"),
        (csr_float_indices, "crow_indices: dtype"),
    ]),
    "csr_decode": (ex.check_csr_decode, csr_decode, [
        (decode_transposed, "tall 5x2 matrix (rows and columns are not interchangeable)"),
        (decode_off_by_one, "row r ends at crow_indices[r+1]"),
        (decode_row_by_count, "3x4 by hand"),
    ]),
    "nm_mask": (ex.check_nm_mask, nm_mask, [
        (nm_by_value, "rank by magnitude |w|, not by value"),
        (nm_down_columns, "groups run along each row, not down the columns"),
        (nm_keeps_smallest, "one row by hand"),
        (nm_keeps_m_minus_n, "3:4 keeps three of every four"),
    ]),
    "apoz": (ex.check_apoz, apoz, [
        (apoz_percent, "a fraction not a percentage"),
        (apoz_nonzeros, "a unit that is never zero"),
        (apoz_per_sample, "average over samples, dim 0"),
        (apoz_samples_only, "average over samples AND positions"),
    ]),
    "fold_dead_unit": (ex.check_fold_dead_unit, fold_dead_unit, [
        (fold_forgotten, "its constant output must go into b2"),
        (fold_without_relu, "ReLU makes its output 0, so b2 does not change"),
        (fold_wrong_axis, "W2 loses a column, not a row"),
    ]),
}


@pytest.mark.parametrize("name", CHECKS)
def test_checker_accepts_an_independent_answer(name, capsys):
    check, solution, _ = CHECKS[name]
    assert check(solution) is True
    assert "all" in capsys.readouterr().out


@pytest.mark.parametrize("name", CHECKS)
def test_checker_rejects_plausible_wrong_answers_with_a_pointed_message(name, capsys):
    check, _, wrongs = CHECKS[name]
    assert len(wrongs) >= 3
    for wrong, phrase in wrongs:
        assert check(wrong) is False, wrong.__name__
        out = capsys.readouterr().out
        assert "checks failed" in out and phrase in out, f"{wrong.__name__}: {out}"


@pytest.mark.parametrize("name", CHECKS)
def test_checker_reports_a_stub_as_not_attempted(name, capsys):
    check, _, _ = CHECKS[name]
    assert check(stub) is False
    assert "not attempted yet" in capsys.readouterr().out


def test_bool_masks_are_accepted(capsys):
    assert ex.check_nm_mask(lambda w, n, m: nm_mask(w, n, m).bool()) is True


def test_the_independent_answers_agree_with_torch_and_the_library():
    dense = torch.tensor([[0.0, 2.0, 0.0], [3.0, 0.0, 4.0]])
    crow, col, values = csr_encode(dense)
    torch_csr = dense.to_sparse_csr()
    assert torch.equal(crow, torch_csr.crow_indices()) and torch.equal(col, torch_csr.col_indices())
    assert torch.equal(csr_decode(crow, col, values, (2, 3)), dense)
