"""Chapter 8's exercise checkers: each accepts an independent worked answer, rejects the wrong
answers a learner plausibly writes (each with a line that names the mistake), and reports an
untouched stub as not attempted. The STE's reference is torch's own fake quantization, and the
schedule's is what compresskit.pruning.GradualPruner does to a real model."""

from __future__ import annotations

import heapq
import itertools
import math

import pytest
from exercise_contract import contract_tests
import torch
from torch import nn

from compresskit.course.exercises import training as ex
from compresskit.pruning import GradualPruner, prunable_parameters

# --- worked answers, written without the checkers' references ---------------------------------


def huffman_lengths(counts):
    tie = itertools.count()  # so that the heap never compares lists
    heap = [(c, next(tie), [s]) for s, c in counts.items()]
    heapq.heapify(heap)
    lengths = {s: 0 for s in counts}
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, next(tie), s1 + s2))
    return lengths


def huffman_lengths_other_ties(counts):
    """Another optimal code: ties broken the other way (the newest subtree first), so lengths
    can differ from the reference's where counts tie; the checker must accept it too."""
    tie = itertools.count()
    heap = [(c, -next(tie), [s]) for s, c in counts.items()]
    heapq.heapify(heap)
    lengths = {s: 0 for s in counts}
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, -next(tie), s1 + s2))
    return lengths


def fake_quantize_ste(x, scale, zero_point, quant_min, quant_max):
    q = torch.round(x / scale) + zero_point
    inside = ((q >= quant_min) & (q <= quant_max)).float()
    fake = (torch.clamp(q, quant_min, quant_max) - zero_point) * scale
    return fake.detach() + inside * (x - x.detach())  # value: fake; gradient: 1 inside, 0 outside


def pruning_schedule(step, amount, start_step, end_step, every):
    if step < start_step:
        return 0.0
    last = end_step if step >= end_step else step - (step - start_step) % every
    p = (last - start_step) / (end_step - start_step)
    return amount - amount * (1 - p) ** 3


# --- plausible wrong answers --------------------------------------------------------------------


def fixed_width(counts):
    return {s: math.ceil(math.log2(len(counts))) for s in counts}


def one_too_long(counts):
    return {s: n + 1 for s, n in huffman_lengths(counts).items()}


def shannon_lengths(counts):
    total = sum(counts.values())
    return {s: max(1, math.ceil(math.log2(total / c))) for s, c in counts.items()}


def merge_two_largest(counts):
    heap = [(-c, i, [s]) for i, (s, c) in enumerate(counts.items())]
    heapq.heapify(heap)
    lengths, tie = {s: 0 for s in counts}, len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def frequent_gets_longest(counts):
    right = huffman_lengths(counts)
    ascending = sorted(counts, key=counts.get)
    return dict(zip(ascending, sorted(right.values())))


def no_ste(x, scale, zero_point, quant_min, quant_max):
    q = torch.clamp(torch.round(x / scale) + zero_point, quant_min, quant_max)
    return (q - zero_point) * scale  # round() has a zero gradient


def no_clipping_in_the_gradient(x, scale, zero_point, quant_min, quant_max):
    fake = (torch.clamp(torch.round(x / scale) + zero_point, quant_min, quant_max) - zero_point) * scale
    return x + (fake - x).detach()


def exclusive_range(x, scale, zero_point, quant_min, quant_max):
    q = torch.round(x / scale) + zero_point
    inside = ((q > quant_min) & (q < quant_max)).float()
    fake = (torch.clamp(q, quant_min, quant_max) - zero_point) * scale
    return fake.detach() + inside * (x - x.detach())


def unrounded_range(x, scale, zero_point, quant_min, quant_max):
    """Clip the real value to the range first (a clamp's own gradient), then round with STE."""
    v = torch.clamp(x / scale + zero_point, quant_min, quant_max)
    q = v + (torch.round(v) - v).detach()
    return (q - zero_point) * scale


def floor_forward(x, scale, zero_point, quant_min, quant_max):
    q = torch.floor(x / scale) + zero_point
    inside = ((torch.round(x / scale) + zero_point >= quant_min) & (torch.round(x / scale) + zero_point <= quant_max)).float()
    fake = (torch.clamp(q, quant_min, quant_max) - zero_point) * scale
    return fake.detach() + inside * (x - x.detach())


def integers_returned(x, scale, zero_point, quant_min, quant_max):
    q = torch.round(x / scale) + zero_point
    inside = ((q >= quant_min) & (q <= quant_max)).float()
    return torch.clamp(q, quant_min, quant_max).detach() + inside * (x - x.detach())


def linear_schedule(step, amount, start_step, end_step, every):
    if step < start_step:
        return 0.0
    last = end_step if step >= end_step else step - (step - start_step) % every
    return amount * (last - start_step) / (end_step - start_step)


def off_by_one_step(step, amount, start_step, end_step, every):
    return pruning_schedule(step - 1, amount, start_step, end_step, every)


def not_clamped_after_end(step, amount, start_step, end_step, every):
    if step < start_step:
        return 0.0
    last = step - (step - start_step) % every
    if step == end_step:
        last = end_step
    p = (last - start_step) / (end_step - start_step)
    return amount * (1 - (1 - p) ** 3)


def reached_at_start(step, amount, start_step, end_step, every):
    p = min(max((step - (step - start_step) % every - start_step) / (end_step - start_step), 0.0), 1.0)
    return amount * (1 - p) ** 3


def no_hold(step, amount, start_step, end_step, every):
    p = min(max((step - start_step) / (end_step - start_step), 0.0), 1.0)
    return amount * (1 - (1 - p) ** 3)


def forgot_the_last_update(step, amount, start_step, end_step, every):
    if step < start_step:
        return 0.0
    last = min(step, end_step)
    last -= (last - start_step) % every
    return amount * (1 - (1 - (last - start_step) / (end_step - start_step)) ** 3)


def pops_from_counts(counts):
    """Builds the heap by popping the caller's dict empty: the lengths are right, the caller's counts are gone."""
    tie = itertools.count()
    heap = []
    while counts:
        s, c = counts.popitem()
        heap.append((c, next(tie), [s]))
    heapq.heapify(heap)
    lengths = {s: 0 for _, _, (s,) in heap}
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, next(tie), s1 + s2))
    return lengths


def round_half_up(x, scale, zero_point, quant_min, quant_max):
    q = torch.floor(x / scale + 0.5) + zero_point  # the school rule: halves up
    inside = ((q >= quant_min) & (q <= quant_max)).float()
    fake = (torch.clamp(q, quant_min, quant_max) - zero_point) * scale
    return fake.detach() + inside * (x - x.detach())


def float32_always(x, scale, zero_point, quant_min, quant_max):
    return fake_quantize_ste(x.float(), scale, zero_point, quant_min, quant_max)


def divides_x_in_place(x, scale, zero_point, quant_min, quant_max):
    x /= scale  # writes into the caller's tensor
    q = torch.round(x) + zero_point
    inside = ((q >= quant_min) & (q <= quant_max)).float()
    fake = (torch.clamp(q, quant_min, quant_max) - zero_point) * scale
    return fake.detach() + inside * (x * scale - (x * scale).detach())


def updates_at_multiples_of_every(step, amount, start_step, end_step, every):
    """Updates at every, 2 every, ... (from step 0) instead of start_step, start_step + every, ..."""
    if step < start_step:
        return 0.0
    last = end_step if step >= end_step else max(start_step, step - step % every)
    p = (last - start_step) / (end_step - start_step)
    return amount - amount * (1 - p) ** 3


def stub(*args):
    raise NotImplementedError  # your code here


WRONG = {
    "huffman_lengths": (ex.check_huffman_lengths, huffman_lengths, [
        (fixed_width, "fixed-width lengths"),
        (one_too_long, "every length is one too long"),
        (shannon_lengths, "Shannon's lengths"),
        (merge_two_largest, "you merged the two LARGEST counts"),
        (frequent_gets_longest, "the most frequent symbols must get the shortest codes"),
        (pops_from_counts, "changed its argument `counts`"),
    ]),
    "fake_quantize_ste": (ex.check_fake_quantize_ste, fake_quantize_ste, [
        (no_ste, "the gradient is zero everywhere"),
        (no_clipping_in_the_gradient, "zero it outside [quant_min, quant_max]"),
        (exclusive_range, "the range is inclusive"),
        (unrounded_range, "test the ROUNDED value"),
        (floor_forward, "floor instead of round"),
        (integers_returned, "you returned the integers"),
        (round_half_up, "halves rounded up"),
        (float32_always, "must keep it; got torch.float32"),
        (divides_x_in_place, "changed its argument `x`"),
    ]),
    "pruning_schedule": (ex.check_pruning_schedule, pruning_schedule, [
        (linear_schedule, "linear, not cubic"),
        (off_by_one_step, "off by one step"),
        (not_clamped_after_end, "not clamped after end_step"),
        (reached_at_start, "the sparsity is reached at the start"),
        (no_hold, "the masks change only every"),
        (forgot_the_last_update, "the last update happens at end_step"),
        (updates_at_multiples_of_every, "count from start_step"),
    ]),
}

globals().update(contract_tests(WRONG, stub))  # the four contract tests: tests/exercise_contract.py


def test_a_crashing_answer_is_reported_not_raised(capsys):
    assert ex.check_huffman_lengths(lambda counts: counts["missing"]) is False
    assert ex.check_fake_quantize_ste(lambda x, *args: x.reshape(7, 7)) is False
    assert ex.check_pruning_schedule(lambda *args: 1 / 0) is False
    out = capsys.readouterr().out
    assert "raised KeyError" in out and "raised RuntimeError" in out and "raised ZeroDivisionError" in out


# --- the checkers' cases are right, by hand and against trusted implementations ---------------


def test_any_optimal_huffman_code_is_accepted_when_counts_tie(capsys):
    tied = {"a": 1, "b": 1, "c": 2, "d": 2}  # lengths (2, 2, 2, 2) or (3, 3, 2, 1): both cost 12 bits
    assert sorted(huffman_lengths(tied).values()) != sorted(huffman_lengths_other_ties(tied).values())
    assert ex.check_huffman_lengths(huffman_lengths_other_ties) is True
    assert ex._compare_lengths(ex._huffman_reference(tied), {"a": 2, "b": 2, "c": 2, "d": 2}) is None
    assert ex._compare_lengths(ex._huffman_reference(tied), {"a": 3, "b": 3, "c": 2, "d": 1}) is None


def test_huffman_cases_by_hand():
    assert huffman_lengths({"a": 1, "b": 2, "c": 4, "d": 8, "e": 16}) == {"a": 4, "b": 4, "c": 3, "d": 2, "e": 1}
    # 10, 15, 30, 16, 29: merge 10+15, then 16+25, then 29+30, then 41+59
    assert huffman_lengths({"a": 10, "b": 15, "c": 30, "d": 16, "e": 29}) == {"a": 3, "b": 3, "c": 2, "d": 2, "e": 2}
    assert ex._huffman_reference({"x": 99, "y": 1}).optimal_bits == 100


def test_lengths_that_break_kraft_are_refused_with_the_reason():
    reason = ex._compare_lengths(ex._huffman_reference({"a": 5, "b": 3, "c": 2}), {"a": 1, "b": 1, "c": 2})
    assert reason is not None and "Kraft" in reason


def test_the_ste_reference_is_torch_fake_quantize_and_the_worked_answer_agrees():
    for case in ex.STE_CASES:
        x, scale, zero_point, qmin, qmax = case.args
        x_torch = x.clone().requires_grad_(True)
        torch.fake_quantize_per_tensor_affine(x_torch, scale, zero_point, qmin, qmax).sum().backward()
        x_ours = x.clone().requires_grad_(True)
        y = fake_quantize_ste(x_ours, scale, zero_point, qmin, qmax)
        y.sum().backward()
        assert torch.allclose(y, torch.fake_quantize_per_tensor_affine(x, scale, zero_point, qmin, qmax), atol=1e-6)
        assert torch.equal(x_ours.grad, x_torch.grad), case.description
        if "clipped" in case.description or "zero point" in case.description or "2 bits" in case.description:
            assert 0 < int(x_torch.grad.sum()) < x.numel(), case.description  # some entries in range, some clipped


def test_the_boundary_cases_sit_on_the_boundaries():
    x, scale, zero_point, qmin, qmax = ex.STE_CASES[1].args
    q = torch.round(x / scale) + zero_point
    assert (q == qmin).any() and (q == qmax).any()
    x, scale, zero_point, qmin, qmax = ex.STE_CASES[2].args
    unrounded = x / scale + zero_point
    assert ((unrounded < qmin) | (unrounded > qmax))[:4].all()  # outside before rounding, inside after
    assert ((torch.round(unrounded) >= qmin) & (torch.round(unrounded) <= qmax)).all()


def test_the_schedule_is_what_gradual_pruner_does_to_a_model():
    """fit calls on_step(model, t) after optimizer step t; after each call the model's sparsity is
    the schedule's value (to within one weight of rounding)."""
    for start, end, every in ((10, 110, 10), (0, 100, 30), (3, 40, 7)):
        model = nn.Sequential(nn.Linear(40, 50))
        params = prunable_parameters(model)
        pruner = GradualPruner(params, 0.9, begin_step=start, end_step=end, frequency=every)
        total = model[0].weight.numel()
        for step in range(1, end + 20):
            pruner(model, step)
            zeros = int((model[0].weight == 0).sum())
            assert abs(zeros - pruning_schedule(step, 0.9, start, end, every) * total) <= 1, (start, end, every, step)
            assert ex._schedule_reference(step, 0.9, start, end, every) == pytest.approx(pruning_schedule(step, 0.9, start, end, every))


def test_schedule_by_hand():
    assert pruning_schedule(20, 0.9, 10, 110, 10) == pytest.approx(0.9 * (1 - 0.9**3))
    assert pruning_schedule(99, 0.9, 0, 100, 30) == pytest.approx(0.9 * (1 - 0.1**3))
    assert pruning_schedule(100, 0.9, 0, 100, 30) == pytest.approx(0.9)


def test_the_schedule_is_what_prune_while_training_does_inside_fit():
    """Through fit_compressed's hooks: after fit's step t the masks hold pruning_schedule(t)."""
    from types import SimpleNamespace

    from compresskit import data, models
    from compresskit.training import PruneWhileTraining, fit_compressed

    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(64, 64, generator=g), torch.randint(0, 10, (64,), generator=g)
    model = models.mlp((16,), seed=0)
    seen = []
    weight_count = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))

    def record(m, step):
        zeros = sum(int((mod.weight_orig * mod.weight_mask == 0).sum()) for mod in m.modules() if hasattr(mod, "weight_mask"))
        seen.append((step, zeros))

    fit_compressed(model, data.make_loader(X, y, 8), epochs=3, lr=1e-3,
                   callbacks=[PruneWhileTraining(0.8, 2, 17, every=4), SimpleNamespace(on_step=record)])
    assert [s for s, _ in seen] == list(range(1, 25))
    for step, zeros in seen:
        assert abs(zeros - pruning_schedule(step, 0.8, 2, 17, 4) * weight_count) <= 1, step


def test_compresskit_codings_huffman_code_passes_the_checker(capsys):
    """The library's canonical Huffman code (compresskit.coding) is one of the optimal codes the checker accepts."""
    from compresskit import coding

    for case in ex.HUFFMAN_CASES:
        (counts,) = case.args
        assert ex._compare_lengths(ex._huffman_reference(counts), coding.code_lengths(counts)) is None, case.description
    assert ex.check_huffman_lengths(lambda counts: {s: len(c) for s, c in coding.huffman_code(counts).items()}) is True


def test_numpy_integer_code_lengths_are_whole_numbers_of_bits(capsys):
    """Lengths read out of a numpy array (np.int64) are whole numbers: accepted, not "not whole numbers of bits"."""
    import numpy as np

    def from_numpy(counts):
        symbols = list(counts)
        lengths = np.array([huffman_lengths(counts)[s] for s in symbols], dtype=np.int64)
        return dict(zip(symbols, lengths))

    assert ex.check_huffman_lengths(from_numpy) is True
    assert ex.check_huffman_lengths(lambda counts: {s: float(n) for s, n in huffman_lengths(counts).items()}) is False
    assert "whole numbers of bits" in capsys.readouterr().out


def test_the_new_ste_cases_sit_on_ties_and_keep_float64():
    x, scale, zero_point, qmin, qmax = next(c.args for c in ex.STE_CASES if "half steps" in c.description)
    v = x / scale
    assert ((v - v.floor()) == 0.5).sum() >= 6 and zero_point % 2 == 1
    ties = torch.round(v) != torch.floor(v + 0.5)
    assert (ties & ((torch.floor(v + 0.5) + zero_point < qmin) | (torch.floor(v + 0.5) + zero_point > qmax)
                    | (torch.round(v) + zero_point < qmin) | (torch.round(v) + zero_point > qmax))).any()  # a tie on the range's edge
    x64 = next(c.args[0] for c in ex.STE_CASES if "float64" in c.description)
    assert x64.dtype == torch.float64
    assert fake_quantize_ste(x64.clone().requires_grad_(True), 0.1, 0, -8, 7).dtype == torch.float64


def test_the_schedule_has_a_start_that_is_not_a_multiple_of_every():
    assert any(c.args[2] % c.args[4] for c in ex.SCHEDULE_CASES)
