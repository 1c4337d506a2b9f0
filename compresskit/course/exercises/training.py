"""Exercise checkers for chapter 8, training-time compression. Each ``check_*`` prints feedback
and returns a bool; none raises because of the learner's code.

* :func:`check_huffman_lengths`: the code length of each symbol in a Huffman code for given
  counts. Huffman codes are not unique when counts tie, so any set of lengths that forms a
  prefix code (Kraft's sum at most 1) and costs as few bits as Huffman's is accepted. Rejected,
  with the mistake named: fixed-width lengths, every length one too long (the root counted as
  depth 1), Shannon's lengths ceil(log2 1/p), merging the two largest counts instead of the
  two smallest, and the longest codes given to the most frequent symbols. Lengths may be
  numpy integers (read out of an array); ``counts`` must be left unchanged.
* :func:`check_fake_quantize_ste`: fake quantization with a straight-through estimator, forward
  and gradient, checked against ``torch.fake_quantize_per_tensor_affine``. Rejected, named: a
  gradient of zero everywhere (``round`` has no gradient), of one everywhere (no clipping),
  a strict (exclusive) range, the range tested on the unrounded value, ``floor`` instead of
  ``round``, no clamp, the integers returned without dequantizing, halves rounded up instead of
  to even (exact half steps with an odd zero point, at the range's ends too), a float64 ``x``
  returned as float32, and an answer that writes into ``x`` (``x /= scale``).
* :func:`check_pruning_schedule`: the sparsity the masks hold after training step ``t`` when
  a pruning callback follows Zhu & Gupta's cubic schedule and updates the masks every
  ``every`` steps (and at ``end_step``), as :class:`compresskit.pruning.GradualPruner` does.
  Rejected, named: linear instead of cubic, no hold between updates, holding from the next
  update instead of the last, off by one step, not clamped after ``end_step`` or before
  ``start_step``, the initial and final sparsities swapped (the sparsity reached at the start),
  the cubic turned the wrong way (slow first), the last update at ``end_step`` forgotten, and
  updates at the multiples of ``every`` instead of counting from ``start_step``.

References
----------
[1] D. A. Huffman, "A Method for the Construction of Minimum-Redundancy Codes", Proc. IRE 1952.
[2] Y. Bengio, N. Léonard, A. Courville, "Estimating or Propagating Gradients Through
    Stochastic Neurons for Conditional Computation", 2013, arXiv:1308.3432 (the straight-through
    estimator).
[3] M. Zhu, S. Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
    compression", 2017, arXiv:1710.01878.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Hashable, Mapping

import numpy as np
import torch

from compresskit.course.checker import Case, Expected, check_function, close, describe, naming_mistakes
from compresskit.pruning import cubic_sparsity

# --- exercise 1: Huffman code lengths ---------------------------------------------------------


def _merge_lengths(counts: Mapping[Hashable, int], pick_largest: bool) -> dict[Hashable, int]:
    """Code lengths from repeatedly merging the two smallest (Huffman) or, the mistake, the two
    largest subtrees; each merge puts every symbol below it one level deeper."""
    trees = [(c, [s]) for s, c in counts.items()]
    depth = {s: 0 for s in counts}
    while len(trees) > 1:
        trees.sort(key=lambda t: t[0], reverse=pick_largest)
        (c1, s1), (c2, s2) = trees[0], trees[1]
        for s in s1 + s2:
            depth[s] += 1
        trees = trees[2:] + [(c1 + c2, s1 + s2)]
    return depth


@dataclass(frozen=True)
class _HuffmanAnswer:
    counts: dict
    optimal_bits: int


def _bits(counts: Mapping[Hashable, int], lengths: Mapping[Hashable, int]) -> int:
    return sum(c * lengths[s] for s, c in counts.items())


def _kraft(lengths: Mapping[Hashable, int]) -> Fraction:
    return sum((Fraction(1, 2**n) for n in lengths.values()), Fraction(0))


def _is_optimal(counts: Mapping[Hashable, int], lengths: Mapping[Hashable, int], optimal_bits: int) -> bool:
    return all(n >= 1 for n in lengths.values()) and _kraft(lengths) <= 1 and _bits(counts, lengths) == optimal_bits


def _huffman_reference(counts: dict) -> _HuffmanAnswer:
    return _HuffmanAnswer(dict(counts), _bits(counts, _merge_lengths(counts, pick_largest=False)))


def _huffman_mistake(counts: dict, lengths: dict, optimal_bits: int) -> str | None:
    n = len(counts)
    by_count = sorted(counts, key=lambda s: counts[s])
    if len(set(lengths.values())) == 1 and lengths[by_count[0]] == math.ceil(math.log2(n)):
        return (f"fixed-width lengths ({math.ceil(math.log2(n))} bits for {n} symbols): Huffman gives frequent "
                "symbols shorter codes and rare ones longer codes")
    if _is_optimal(counts, {s: v - 1 for s, v in lengths.items()}, optimal_bits):
        return ("every length is one too long: a symbol's code length is its depth in the tree, counting the root "
                "as depth 0 (two symbols get 1 bit each)")
    total = sum(counts.values())
    if lengths == {s: max(1, math.ceil(math.log2(total / c))) for s, c in counts.items()}:
        return ("these are Shannon's lengths ceil(log2 1/p), which can be longer than needed: build the tree "
                "by merging the two least frequent subtrees")
    if lengths == _merge_lengths(counts, pick_largest=True):
        return "you merged the two LARGEST counts each time: Huffman merges the two smallest"
    ordered = sorted(lengths.values())
    if _is_optimal(counts, dict(zip(by_count, reversed(ordered))), optimal_bits):
        return "the right lengths on the wrong symbols: the most frequent symbols must get the shortest codes"
    return None


def _compare_lengths(expected: _HuffmanAnswer, got: Any) -> str | None:
    counts = expected.counts
    if not isinstance(got, Mapping):
        return f"expected a dict {{symbol: code length}}, got {type(got).__name__} {describe(got)}"
    if set(got) != set(counts):
        return f"expected one length for each symbol {sorted(counts, key=str)}, got keys {sorted(got, key=str)}"
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in got.values()):
        return f"lengths must be whole numbers of bits (int); got {describe(got)}"
    lengths = {s: int(v) for s, v in got.items()}  # numpy integers (np.int64 from an array) count as whole numbers
    if _is_optimal(counts, lengths, expected.optimal_bits):
        return None
    bits = _bits(counts, lengths) if all(v >= 0 for v in lengths.values()) else None
    named = _huffman_mistake(counts, lengths, expected.optimal_bits)
    if named:
        return f"{bits} bits in all, a Huffman code needs {expected.optimal_bits}: {named}"
    if any(v < 1 for v in lengths.values()):
        return f"every symbol needs a code of at least 1 bit; got {describe(lengths)}"
    if _kraft(lengths) > 1:
        return (f"no prefix code has these lengths: the sum of 2**-length is {float(_kraft(lengths)):.3f} > 1 "
                "(Kraft's inequality), so some codes are too short")
    return f"{bits} bits in all, a Huffman code needs {expected.optimal_bits}"


HUFFMAN_CASES = [
    Case("two symbols: one bit each", ({"a": 5, "b": 3},)),
    Case("five symbols, counts 10, 15, 30, 16, 29", ({"a": 10, "b": 15, "c": 30, "d": 16, "e": 29},)),
    Case("counts 1, 2, 4, 8, 16: lengths 4, 4, 3, 2, 1 (each p is a power of 2)", ({"a": 1, "b": 2, "c": 4, "d": 8, "e": 16},)),
    Case("cluster indices after pruning: index 0 (the zeros) dominates", ({0: 900, 1: 40, 2: 30, 3: 20, 4: 6, 5: 4},)),
    Case("99 to 1: Shannon's ceil(log2 1/p) gives the rare symbol 7 bits, Huffman 1", ({"x": 99, "y": 1},)),
    Case("eight equal counts: 3 bits each", ({s: 7 for s in "abcdefgh"},)),
]


def check_huffman_lengths(fn: Callable[[dict], dict]) -> bool:
    """``fn(counts)`` -> ``{symbol: code length in bits}`` of a Huffman code for ``counts``
    (``{symbol: how often it occurs}``, at least two symbols). Any optimal prefix code passes."""
    return check_function(fn, reference=_huffman_reference, cases=HUFFMAN_CASES, name="huffman_lengths",
                          compare=_compare_lengths,
                          hint="keep a heap of (count, symbols); pop the two SMALLEST, add 1 to the length of every "
                               "symbol in both, push (sum, both); stop when one tree is left")


# --- exercise 2: fake quantization with a straight-through estimator -------------------------


def _forward_backward(fn: Callable[..., torch.Tensor]) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """Run ``fn`` on a leaf copy of ``x`` and backpropagate a fixed upstream gradient: returns
    ``(output, gradient with respect to x)``."""

    def run(x: torch.Tensor, scale: float, zero_point: int, quant_min: int, quant_max: int) -> tuple[torch.Tensor, torch.Tensor]:
        leaf = x.detach().clone().requires_grad_(True)
        given = leaf.clone()  # not a leaf, so an answer that writes into it (x /= scale) runs, and is seen
        y = fn(given, scale, zero_point, quant_min, quant_max)
        if not torch.equal(given.detach(), leaf.detach()):
            with torch.no_grad():
                x.copy_(given.detach())  # the caller's x changes too: check_function names the argument
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"return a tensor; got {type(y).__name__}")
        upstream = torch.linspace(0.5, 1.5, x.numel(), dtype=x.dtype).reshape(x.shape)  # not all ones: a scaled gradient shows
        if y.requires_grad:
            (y * upstream).sum().backward()
        grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        return y.detach(), grad.detach()

    return run


def _torch_fake_quantize(x: torch.Tensor, scale: float, zero_point: int, quant_min: int, quant_max: int) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max)


def _ste_expected(x: torch.Tensor, scale: float, zero_point: int, quant_min: int, quant_max: int) -> Expected:
    y, grad = _forward_backward(_torch_fake_quantize)(x, scale, zero_point, quant_min, quant_max)
    upstream = torch.linspace(0.5, 1.5, x.numel(), dtype=x.dtype).reshape(x.shape)
    unrounded = x / scale + zero_point
    q = torch.round(unrounded)
    return Expected((y, grad), mistakes=(
        ((y, torch.zeros_like(x)), "the gradient is zero everywhere: round() has a zero gradient, so pass it straight "
                                   "through, e.g. x + (fake - x).detach(), times the in-range mask"),
        ((y, upstream), "the gradient passes everywhere, also where the value was clipped: zero it outside "
                        "[quant_min, quant_max]"),
        ((y, upstream * ((q > quant_min) & (q < quant_max))), "the range is inclusive: a value that rounds to "
                                                              "quant_min or quant_max is in range (>=, <=)"),
        ((y, upstream * ((unrounded >= quant_min) & (unrounded <= quant_max))),
         "test the ROUNDED value round(x / scale) + zero_point against the range, as "
         "torch.fake_quantize_per_tensor_affine does, not x / scale + zero_point"),
        (((torch.clamp(torch.floor(unrounded), quant_min, quant_max) - zero_point) * scale, grad),
         "floor instead of round in the forward: round to the nearest level"),
        (((q - zero_point) * scale, grad), "the forward does not clamp to [quant_min, quant_max]"),
        _round_half_up(x, scale, zero_point, quant_min, quant_max, upstream),
        ((torch.clamp(q, quant_min, quant_max), grad), "you returned the integers: dequantize, (q - zero_point) * scale"),
        (((torch.clamp(torch.round(x / scale), quant_min, quant_max)) * scale, grad),
         "the zero point is missing: q = round(x / scale) + zero_point, and x_hat = (q - zero_point) * scale"),
    ))


def _round_half_up(x: torch.Tensor, scale: float, zero_point: int, quant_min: int, quant_max: int,
                   upstream: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], str]:
    """floor(v + 0.5): halves rounded up, where torch.round (and torch's fake quantization) rounds them to even."""
    q = torch.floor(x / scale + 0.5) + zero_point
    inside = (q >= quant_min) & (q <= quant_max)
    return (((torch.clamp(q, quant_min, quant_max) - zero_point) * scale, upstream * inside),
            "halves rounded up (floor(v + 0.5)): torch.round, like torch's fake quantization, rounds a half to the "
            "nearest EVEN integer (2.5 -> 2, -3.5 -> -4)")


def _compare_ste(expected: tuple[torch.Tensor, torch.Tensor], got: Any) -> str | None:
    y, grad = expected
    if isinstance(got[0], torch.Tensor) and got[0].dtype != y.dtype:
        return f"dtype: x is {y.dtype} and the result must keep it; got {got[0].dtype} (do not call .float() on x)"
    reason = close(y, got[0], rtol=1e-5, atol=1e-6)
    if reason:
        return f"forward: {reason}"
    reason = close(grad, got[1], rtol=1e-5, atol=1e-6)
    return f"gradient: {reason}" if reason else None


def _x(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


STE_CASES = [
    # scale 0.1, zero point 0, int4 [-8, 7]: levels -0.8 ... 0.7
    Case("int4 [-8, 7], scale 0.1: inside, between levels, and clipped on both sides",
         (_x(-2.0, -0.87, -0.3, -0.04, 0.0, 0.12, 0.26, 0.5, 0.9, 3.0), 0.1, 0, -8, 7)),
    Case("values that round exactly to quant_min and quant_max are in range (inclusive)",
         (_x(-0.8, -0.78, 0.7, 0.68, 0.2), 0.1, 0, -8, 7)),
    Case("within half a step outside the range: they ROUND to the end levels, so the gradient passes",
         (_x(-0.84, 0.74, 0.73, -0.83, 0.2), 0.1, 0, -8, 7)),
    Case("uint8-style [0, 15] with zero point 3, scale 0.25 (the zero point shifts the range)",
         (_x(-1.5, -0.8, -0.7, -0.1, 0.0, 0.3, 1.0, 2.9, 3.0, 3.3, 5.0), 0.25, 3, 0, 15)),
    Case("a 3 x 4 weight at 2 bits [-2, 1], scale 0.5",
         (torch.tensor([[-1.3, -0.9, -0.2, 0.1], [0.4, 0.6, 0.74, 0.9], [-1.1, 1.2, -0.6, 0.26]]), 0.5, 0, -2, 1)),
    Case("exact half steps, odd zero point 3, [0, 15], scale 0.5: halves round to even, at both ends of the range too",
         (_x(0.25, 0.75, -0.25, 1.25, -1.75, -1.25, 5.75, 6.25, 0.3), 0.5, 3, 0, 15)),
    Case("float64 input: the result keeps x's dtype", (torch.tensor([-1.3, -0.26, 0.0, 0.41, 0.77, 2.0], dtype=torch.float64), 0.1, 0, -8, 7)),
]


def check_fake_quantize_ste(fn: Callable[[torch.Tensor, float, int, int, int], torch.Tensor]) -> bool:
    """``fn(x, scale, zero_point, quant_min, quant_max)`` -> the fake-quantized x,
    ``(clamp(round(x / scale) + zero_point, quant_min, quant_max) - zero_point) * scale``, built so
    that autograd gives the straight-through gradient: the incoming gradient where
    ``round(x / scale) + zero_point`` lies in [quant_min, quant_max] (inclusive), zero elsewhere.
    The result keeps x's dtype (float32 or float64), ``x`` itself is left unchanged, and halves
    round to even as ``torch.round`` does. The checker compares the output and the gradient with
    ``torch.fake_quantize_per_tensor_affine``."""
    return check_function(_forward_backward(fn), reference=_ste_expected, cases=STE_CASES,
                          name="fake_quantize_ste", compare=naming_mistakes(_compare_ste),
                          hint="q = torch.round(x / scale) + zero_point; inside = (q >= quant_min) & (q <= quant_max); "
                               "fake = (q.clamp(quant_min, quant_max) - zero_point) * scale; "
                               "return x * inside + (fake - x * inside).detach()")


# --- exercise 3: the pruning schedule a callback follows -------------------------------------


def _held_step(step: int, start_step: int, end_step: int, every: int) -> int | None:
    """The step of the last mask update at or before ``step`` (None before ``start_step``)."""
    if step < start_step:
        return None
    if step >= end_step:
        return end_step
    return start_step + (step - start_step) // every * every


def _schedule_reference(step: int, amount: float, start_step: int, end_step: int, every: int) -> float:
    held = _held_step(step, start_step, end_step, every)
    return 0.0 if held is None else cubic_sparsity(held, amount, start_step, end_step)


def _schedule_expected(step: int, amount: float, start_step: int, end_step: int, every: int) -> Expected:
    def cubic(t: float) -> float:  # the formula without clipping, as a learner might write it
        return amount * (1 - (1 - (t - start_step) / (end_step - start_step)) ** 3)

    held = _held_step(step, start_step, end_step, every)
    p_held = 0.0 if held is None else (held - start_step) / (end_step - start_step)
    unclamped = start_step + (step - start_step) // every * every  # the last multiple, no clamp on either side
    mistakes: list[tuple[float, str]] = [
        (amount * p_held, "linear, not cubic: s_t = amount * (1 - (1 - p)**3) with p = (t - start_step) / (end_step - start_step)"),
        (cubic_sparsity(step, amount, start_step, end_step),
         f"the masks change only every {every} steps: between updates the sparsity holds the value of the last "
         "update (the last multiple of `every` from start_step)"),
        (amount * (1 - p_held) ** 3 if held is not None else amount,
         "the sparsity is reached at the start: initial and final are swapped; the schedule starts dense at "
         "start_step and reaches `amount` at end_step"),
        (amount * p_held**3, "the cubic is turned the wrong way: Zhu & Gupta prune fast at first and slowly at "
                             "the end, s_t = amount * (1 - (1 - p)**3), not amount * p**3"),
    ]
    if start_step <= step < end_step:
        following = min(start_step + math.ceil((step - start_step) / every) * every, end_step)
        mistakes.append((cubic_sparsity(following, amount, start_step, end_step),
                         "you held the value of the NEXT update: the masks hold the value set at the last update at or "
                         "before step t"))
    if step >= end_step:
        mistakes.append((cubic_sparsity(start_step + (end_step - start_step) // every * every, amount, start_step, end_step),
                         "the last update happens at end_step even when end_step - start_step is not a multiple of "
                         "`every`"))
    if step >= 1:
        before = _held_step(step - 1, start_step, end_step, every)
        mistakes.append((0.0 if before is None else cubic_sparsity(before, amount, start_step, end_step),
                         "off by one step: the update at step t has already happened after step t (fit calls "
                         "on_step(model, t) after optimizer step t)"))
    if step > end_step:
        mistakes.append((cubic(unclamped), "not clamped after end_step: from end_step on the sparsity stays at "
                                           "`amount` (clip the progress at 1)"))
    if step < start_step:
        mistakes.append((cubic(unclamped), "not clamped before start_step: the model is dense (sparsity 0) until "
                                           "start_step (clip the progress at 0)"))
    from_zero = step // every * every  # multiples of `every` counted from step 0, not from start_step
    if start_step <= from_zero < end_step and start_step % every and step < end_step:
        mistakes.append((cubic_sparsity(from_zero, amount, start_step, end_step),
                         f"the updates come at start_step, start_step + every, ... ({start_step}, {start_step + every}, ...), "
                         f"not at the multiples of every ({every}, {2 * every}, ...): count from start_step"))
    return Expected(_schedule_reference(step, amount, start_step, end_step, every), mistakes=tuple(mistakes))


def _compare_schedule(expected: float, got: Any) -> str | None:
    reason = close(expected, got, rtol=1e-6, atol=1e-9)
    if reason is None or not isinstance(got, (int, float)) or isinstance(got, bool):
        return reason
    return f"expected sparsity {expected:.4f}, got {got:.4f}"


SCHEDULE_CASES = [
    Case("before start_step: dense (0)", (5, 0.9, 10, 110, 10)),
    Case("at start_step: the first update, at sparsity 0", (10, 0.9, 10, 110, 10)),
    Case("step 19, between updates: the masks still hold the update of step 10", (19, 0.9, 10, 110, 10)),
    Case("step 20, an update: a tenth of the way, cubic", (20, 0.9, 10, 110, 10)),
    Case("step 47, updates every 10 steps: the update of step 40 holds", (47, 0.9, 10, 110, 10)),
    Case("step 60, half way (the progress counts from start_step)", (60, 0.8, 10, 110, 10)),
    Case("at end_step: amount", (110, 0.95, 10, 110, 10)),
    Case("after end_step: stays at amount", (500, 0.95, 10, 110, 10)),
    Case("start 0, end 100, every 30: the update of step 90 holds at step 99", (99, 0.9, 0, 100, 30)),
    Case("start 0, end 100, every 30: a last update at end_step 100, not a multiple of 30", (100, 0.9, 0, 100, 30)),
    Case("every step (every = 1): the plain cubic at step 37", (37, 0.75, 0, 100, 1)),
    Case("start 5, every 10: updates at 5, 15, 25, ...; at step 27 the update of step 25 holds", (27, 0.9, 5, 105, 10)),
    Case("start 5, every 10: at step 104 the update of step 95 holds", (104, 0.9, 5, 105, 10)),
]


def check_pruning_schedule(fn: Callable[[int, float, int, int, int], float]) -> bool:
    """``fn(step, amount, start_step, end_step, every)`` -> the sparsity the masks hold after
    training step ``step`` (fit counts steps from 1 and calls ``on_step(model, step)`` after each):
    a pruning callback updates the masks at ``start_step``, ``start_step + every``, ... and at
    ``end_step``, each time to Zhu & Gupta's ``amount * (1 - (1 - p)**3)`` with
    ``p = (update step - start_step) / (end_step - start_step)``; 0 before ``start_step``."""
    return check_function(fn, reference=_schedule_expected, cases=SCHEDULE_CASES, name="pruning_schedule",
                          compare=naming_mistakes(_compare_schedule),
                          hint="u = start_step + (step - start_step) // every * every (the last update), "
                               "u = end_step from end_step on; p = (u - start_step) / (end_step - start_step); "
                               "0 before start_step")
