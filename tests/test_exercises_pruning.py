"""Chapter 2's exercise checkers: each accepts an independent worked answer, rejects the wrong
answers a learner plausibly writes (each with a line that names the mistake), and reports an
untouched stub as not attempted. The global mask's cases agree with torch.nn.utils.prune."""

from __future__ import annotations

import math

import numpy as np
import pytest
from exercise_contract import contract_tests
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from compresskit.course.exercises import pruning as ex


# --- worked answers, written without the checkers' references (compresskit.pruning) --------

def threshold_mask(weight, threshold):
    return torch.from_numpy((np.abs(weight.numpy()) >= threshold).astype(np.float32))


def row_norm_mask(weight, k):
    order = weight.abs().sum(dim=1).argsort()  # rows, smallest L1 norm first
    mask = torch.ones_like(weight)
    mask[order[:k]] = 0
    return mask


def global_magnitude_masks(weights, amount):
    flat = torch.cat([w.abs().reshape(-1) for w in weights])
    k = round(amount * flat.numel())  # Python's round: halves go to the even neighbour, as in torch
    mask = torch.ones_like(flat)
    mask[flat.argsort()[:k]] = 0
    out, start = [], 0
    for w in weights:
        out.append(mask[start:start + w.numel()].reshape(w.shape))
        start += w.numel()
    return out


def remove_hidden_unit(W1, b1, W2, unit):
    return (torch.cat([W1[:unit], W1[unit + 1:]]), torch.cat([b1[:unit], b1[unit + 1:]]),
            torch.cat([W2[:, :unit], W2[:, unit + 1:]], dim=1))


def cubic_sparsity(step, final_sparsity, begin_step, end_step):
    if step <= begin_step:
        return 0.0
    if step >= end_step:
        return final_sparsity
    remaining = (end_step - step) / (end_step - begin_step)
    return final_sparsity - final_sparsity * remaining ** 3


# --- plausible wrong answers, and the words the checker must print for each ----------------

def _global_with(rounding):
    def wrong(weights, amount):
        flat = torch.cat([w.abs().flatten() for w in weights])
        mask = torch.ones_like(flat)
        mask[flat.argsort()[:rounding(amount * flat.numel())]] = 0
        return [m.view_as(w) for m, w in zip(mask.split([w.numel() for w in weights]), weights)]
    return wrong


def _signed_values_ranked(weights, amount):
    """Ranks w, not |w|: large negative weights are pruned first."""
    flat = torch.cat([w.flatten() for w in weights])
    mask = torch.ones_like(flat)
    mask[flat.argsort()[:round(amount * flat.numel())]] = 0
    return [m.view_as(w) for m, w in zip(mask.split([w.numel() for w in weights]), weights)]


def _rows_with(norms_of, largest=False, extra=0):
    def wrong(weight, k):
        norms = norms_of(weight)
        mask = torch.ones_like(weight)
        if k + extra > 0:
            mask[torch.topk(norms, k + extra, largest=largest).indices] = 0
        return mask
    return wrong


def _keep_but(unit_of):
    def wrong(W1, b1, W2, unit):
        keep = torch.arange(W1.shape[0]) != unit_of(unit)
        return W1[keep], b1[keep], W2[:, keep]
    return wrong


def _zeroed_unit(W1, b1, W2, unit):
    W1, b1, W2 = W1.clone(), b1.clone(), W2.clone()
    W1[unit], b1[unit], W2[:, unit] = 0, 0, 0  # zeroed, not removed
    return W1, b1, W2


def _progress(step, begin_step, end_step):
    return min(max((step - begin_step) / (end_step - begin_step), 0.0), 1.0)


WRONG = {
    "threshold_mask": (ex.check_threshold_mask, threshold_mask, [
        (lambda w, t: (w >= t).float(), "you compared w, not |w|"),
        (lambda w, t: (w.abs() > t).float(), "you used >: an entry exactly at the threshold is kept (>=)"),
        (lambda w, t: w * (w.abs() >= t), "return the mask, not the pruned weight"),
        (lambda w, t: (w.abs() < t).float(), "the mask is inverted"),
        (lambda w, t: (w.abs() >= t).float().flatten(), "return a mask of the weight's shape"),
    ]),
    "row_norm_mask": (ex.check_row_norm_mask, row_norm_mask, [
        (_rows_with(lambda w: w.norm(dim=1)), "you ranked rows by the L2 norm"),
        (_rows_with(lambda w: w.sum(dim=1)), "you ranked rows by their plain sum"),
        (_rows_with(lambda w: w.abs().sum(dim=1), largest=True), "zeroes rows [0], expected rows [1]: you zeroed the k LARGEST rows"),
        (_rows_with(lambda w: w.abs().sum(dim=1), extra=1), "zeroes 4 whole rows"),
        (lambda w, k: _rows_with(lambda v: v.abs().sum(dim=0))(w.T, k).T, "zeroes whole columns"),
    ]),
    "global_magnitude_masks": (ex.check_global_magnitude_masks, global_magnitude_masks, [
        (lambda ws, a: [_global_with(round)([w], a)[0] for w in ws], "you pruned each layer alone"),
        (_global_with(math.ceil), "prunes 3 entries in all, expected 2: amount * total = 2.1 rounded up (ceil, or half up) to 3"),
        (_global_with(math.ceil), "prunes 3 entries in all, expected 2: amount * total = 2.5 rounded up (ceil, or half up) to 3; torch's round() gives 2 (it rounds halves to the even neighbour)"),
        (_global_with(int), "prunes 4 entries in all, expected 5: amount * total = 4.9 truncated (int, floor) to 4; torch's round() gives 5"),
        (_global_with(lambda x: math.floor(x + 0.5)), "amount * total = 2.5 rounded up (ceil, or half up) to 3"),
        (_signed_values_ranked, "you ranked w, not |w|"),
        (lambda ws, a: torch.cat([m.flatten() for m in global_magnitude_masks(ws, a)]), "one per weight tensor"),
    ]),
    "remove_hidden_unit": (ex.check_remove_hidden_unit, remove_hidden_unit, [
        (lambda W1, b1, W2, unit: (*remove_hidden_unit(W1, b1, W2, unit)[:2], W2), "column `unit` of W2; drop it"),
        (lambda W1, b1, W2, unit: (remove_hidden_unit(W1, b1, W2, unit)[0], b1, remove_hidden_unit(W1, b1, W2, unit)[2]),
         "drop the unit's bias b1[unit] too"),
        (_zeroed_unit, "zeroing a row does not remove it"),
        (lambda W1, b1, W2, unit: (W1[:, torch.arange(W1.shape[1]) != unit], b1[torch.arange(len(b1)) != unit],
                                   W2[:, torch.arange(W2.shape[1]) != unit]), "the unit is a ROW of W1, not a column"),
        (lambda W1, b1, W2, unit: (W1[torch.arange(len(W1)) != unit], b1[torch.arange(len(b1)) != unit],
                                   W2[torch.arange(len(W2)) != unit]), "the unit is a COLUMN of W2, not a row"),
        (_keep_but(lambda unit: unit - 1), "(counting from 0)"),
    ]),
    "cubic_sparsity": (ex.check_cubic_sparsity, cubic_sparsity, [
        (lambda t, s, t0, t1: s * _progress(t, t0, t1), "cubic, not linear"),
        (lambda t, s, t0, t1: s * (1 - (1 - max((t - t0) / (t1 - t0), 0.0)) ** 3), "clip the progress at 1"),
        (lambda t, s, t0, t1: s * (1 - (1 - min((t - t0) / (t1 - t0), 1.0)) ** 3), "clip the progress at 0"),
        (lambda t, s, t0, t1: s * (1 - _progress(t, t0, t1)) ** 3, "the schedule starts dense"),
        (lambda t, s, t0, t1: s * (1 - (1 - min(max(t / t1, 0.0), 1.0)) ** 3), "counts from begin_step"),
    ]),
}


def stub(*args):
    raise NotImplementedError  # your code here


globals().update(contract_tests(WRONG, stub))  # the four contract tests: tests/exercise_contract.py


def test_bool_masks_are_accepted_too(capsys):
    assert ex.check_threshold_mask(lambda w, t: w.abs() >= t) is True
    assert ex.check_global_magnitude_masks(lambda ws, a: [m.bool() for m in global_magnitude_masks(ws, a)]) is True


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_integer_0_1_masks_are_accepted_like_float_and_bool(dtype, capsys):
    """An int64 0/1 mask was refused ("dtype") while float and bool masks passed."""
    assert ex.check_threshold_mask(lambda w, t: (w.abs() >= t).to(dtype)) is True
    assert ex.check_row_norm_mask(lambda w, k: row_norm_mask(w, k).to(dtype)) is True
    assert ex.check_global_magnitude_masks(lambda ws, a: [m.to(dtype) for m in global_magnitude_masks(ws, a)]) is True
    assert ex.check_threshold_mask(lambda w, t: (w.abs() >= t).to(dtype) * 2) is False
    assert "expected a 0/1 mask, got other values such as 2" in capsys.readouterr().out


def test_a_crashing_answer_is_reported_not_raised(capsys):
    assert ex.check_remove_hidden_unit(lambda W1, b1, W2, unit: W1[unit + 100]) is False
    assert "raised IndexError" in capsys.readouterr().out


def test_the_fractional_cases_separate_the_roundings():
    """2.5, 4.9 and 2.1 pruned entries: only round (half to even) is right on all three."""
    products = {}
    for case in ex.GLOBAL_MASK_CASES:
        weights, amount = case.args
        products[case.description] = amount * sum(w.numel() for w in weights)
    fractional = [p for p in products.values() if p != int(p)]
    rounders = {"ceil": math.ceil, "int": int, "half up": lambda x: math.floor(x + 0.5)}
    for name, rounder in rounders.items():
        assert any(rounder(p) != round(p) for p in fractional), name


def test_global_mask_cases_agree_with_torch_prune():
    """The reference prunes exactly what torch.nn.utils.prune.global_unstructured prunes."""
    for case in ex.GLOBAL_MASK_CASES:
        weights, amount = case.args
        modules = []
        for w in weights:
            m = nn.Module()
            m.weight = nn.Parameter(w.clone())
            modules.append(m)
        torch_prune.global_unstructured([(m, "weight") for m in modules], torch_prune.L1Unstructured, amount=amount)
        expected = [m.weight_mask for m in modules]
        assert ex._compare_mask_lists(expected, global_magnitude_masks(weights, amount)) is None, case.description
