"""Each pruning checker accepts a right answer, rejects a plausible wrong one (returning False
and printing the failing case) and reports an untouched stub as not attempted."""

from __future__ import annotations

import pytest
import torch

from compresskit.course.exercises import pruning as ex


# --- solutions, as in solutions/02_pruning.ipynb -------------------------------------------

def threshold_mask(weight, threshold):
    return (weight.abs() >= threshold).float()


def row_norm_mask(weight, k):
    norms = weight.abs().sum(dim=1)
    mask = torch.ones_like(weight)
    if k > 0:
        mask[torch.topk(norms, k, largest=False).indices] = 0
    return mask


def global_magnitude_masks(weights, amount):
    flat = torch.cat([w.abs().flatten() for w in weights])
    k = round(amount * flat.numel())
    mask = torch.ones_like(flat)
    if k > 0:
        mask[torch.topk(flat, k, largest=False).indices] = 0
    return [m.view_as(w) for m, w in zip(mask.split([w.numel() for w in weights]), weights)]


def remove_hidden_unit(W1, b1, W2, unit):
    keep = torch.arange(W1.shape[0]) != unit
    return W1[keep], b1[keep], W2[:, keep]


def cubic_sparsity(step, final_sparsity, begin_step, end_step):
    progress = min(max((step - begin_step) / (end_step - begin_step), 0.0), 1.0)
    return final_sparsity * (1 - (1 - progress) ** 3)


# --- plausible wrong answers ---------------------------------------------------------------

def threshold_without_abs(weight, threshold):
    return (weight >= threshold).float()


def row_norm_l2(weight, k):
    norms = weight.norm(dim=1)
    mask = torch.ones_like(weight)
    if k > 0:
        mask[torch.topk(norms, k, largest=False).indices] = 0
    return mask


def layer_wise_instead_of_global(weights, amount):
    out = []
    for w in weights:
        k = round(amount * w.numel())
        mask = torch.ones_like(w).flatten()
        if k > 0:
            mask[torch.topk(w.abs().flatten(), k, largest=False).indices] = 0
        out.append(mask.view_as(w))
    return out


def remove_row_of_w2(W1, b1, W2, unit):
    keep = torch.arange(W1.shape[0]) != unit
    return W1[keep], b1[keep], W2  # forgets to repair the next layer


def linear_schedule(step, final_sparsity, begin_step, end_step):
    return final_sparsity * min(max((step - begin_step) / (end_step - begin_step), 0.0), 1.0)


def stub(*args):
    raise NotImplementedError  # your code here


CHECKS = [
    (ex.check_threshold_mask, threshold_mask, threshold_without_abs),
    (ex.check_row_norm_mask, row_norm_mask, row_norm_l2),
    (ex.check_global_magnitude_masks, global_magnitude_masks, layer_wise_instead_of_global),
    (ex.check_remove_hidden_unit, remove_hidden_unit, remove_row_of_w2),
    (ex.check_cubic_sparsity, cubic_sparsity, linear_schedule),
]
IDS = [c[0].__name__ for c in CHECKS]


@pytest.mark.parametrize("check,solution,wrong", CHECKS, ids=IDS)
def test_checker_accepts_the_solution(check, solution, wrong, capsys):
    assert check(solution) is True
    assert "all" in capsys.readouterr().out


@pytest.mark.parametrize("check,solution,wrong", CHECKS, ids=IDS)
def test_checker_rejects_a_plausible_wrong_answer(check, solution, wrong, capsys):
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "checks failed" in out and " - " in out  # names the failing input


@pytest.mark.parametrize("check,solution,wrong", CHECKS, ids=IDS)
def test_checker_reports_a_stub_as_not_attempted(check, solution, wrong, capsys):
    assert check(stub) is False
    assert "not attempted yet" in capsys.readouterr().out


def test_bool_masks_are_accepted_too(capsys):
    assert ex.check_threshold_mask(lambda w, t: w.abs() >= t) is True


def test_a_crashing_answer_is_reported_not_raised(capsys):
    assert ex.check_remove_hidden_unit(lambda W1, b1, W2, unit: W1[unit + 100]) is False
    assert "raised IndexError" in capsys.readouterr().out
