"""Check a number a learner predicted by reasoning, before the next cell measures it.

A predict-then-measure exercise asks for one number worked out on paper (the density below
which CSR beats dense, the probability a temperature moves, the MACs of a network), not by
running code. The learner writes it down (``my_prediction = 0.49``); the checker compares it
with the value the library measures, the same value the next cell prints, and says whether the
reasoning was right. When it was not, the usual wrong reasonings are worked out beforehand
(``mistakes``: the number each one gives, and what went wrong), so the checker can name the
one the learner most likely followed instead of only saying "no".

Like every checker of the course it prints, records the outcome in the learner's progress
(:mod:`compresskit.course.progress`) and returns a bool; it never raises, whatever it is given.
An untouched ``...`` is "not attempted yet".

Usage inside ``compresskit.course.exercises.<topic>``::

    def check_csr_crossover_prediction(prediction):
        actual = crossover_density("csr", (256, 64), value_bytes=2, index_bytes=2)
        return check_prediction("csr_crossover_prediction", prediction, actual, rel_tol=0.005,
                                mistakes={0.5: "you forgot the row pointers"})
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import numpy as np
import torch

from compresskit.course.checker import FAIL, PASS, Expected, describe, naming_mistakes
from compresskit.course.progress import FAILED, NOT_ATTEMPTED, PASSED, record

__all__ = ["as_number", "check_prediction"]


def as_number(value: Any) -> float | str:
    """``value`` as a finite float, or a sentence saying why it is not a prediction.

    Accepted: ints, floats, fractions, numpy scalars, and one-element real tensors or arrays.
    Refused: bools, strings, None, complex numbers, NaN and infinities, anything with several
    elements (a huge tensor is refused by its size, its data never read)."""
    try:
        return _as_number(value)
    except Exception as exc:  # noqa: BLE001 - an object that breaks on inspection is still refused
        return f"a prediction is one number; got {describe(value)} ({type(exc).__name__}: {exc})"


def _as_number(value: Any) -> float | str:
    one = "a prediction is one number (e.g. 0.25 or 3000)"
    if isinstance(value, (bool, np.bool_)):
        return f"{one}; got the bool {value}"
    if isinstance(value, str):
        return f"{one}, written without quotes; got the string {value!r}"
    if value is None:
        return f"{one}; got None (did you assign `my_prediction`?)"
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.numel() != 1:
            return f"{one}; got {describe(value)}"
        if value.is_complex() or value.dtype == torch.bool:
            return f"{one}; got {describe(value)}"
        value = value.item()
    elif isinstance(value, np.ndarray):
        if value.size != 1 or value.dtype.kind not in "iuf":
            return f"{one}; got {describe(value)}"
        value = value.item()
    if isinstance(value, np.generic) and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        return f"{one}, a real one; got the complex number {value!r}"
    if not isinstance(value, numbers.Real):
        return f"{one}; got {type(value).__name__} {describe(value)}"
    number = float(value)
    if not math.isfinite(number):
        return f"{one}, a finite one; got {number}"
    return number


def _shown(x: float) -> str:
    """3116 as "3,116", 1384.89 as "1,384.9", 0.492126 as "0.4921", 2.1e-07 as "2.09e-07"."""
    if abs(x) >= 100:
        return f"{x:,.1f}".removesuffix(".0")
    return f"{x:.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def check_prediction(
    name: str,
    predicted: Any,
    actual: float,
    *,
    rel_tol: float,
    abs_tol: float = 0.0,
    mistakes: Mapping[float, str] | None = None,
    hint: str | None = None,
) -> bool:
    """Compare a learner's ``predicted`` number with the ``actual`` one; print and return a bool.

    It passes when ``|predicted - actual| <= max(rel_tol * max(|predicted|, |actual|),
    abs_tol)`` (:func:`math.isclose`). ``mistakes`` maps the number a usual wrong reasoning
    gives to what went wrong; a failing prediction within the same tolerance of one of them is
    told that explanation (of those that fit, the nearest; a "mistake" within tolerance of the
    right answer is never named). ``hint`` is printed after a failure that
    matches no known mistake. ``...`` is "not attempted yet"; a non-number is a failure that
    says what a prediction is. Never raises because of ``predicted``.
    """
    if predicted is Ellipsis or predicted is NotImplemented:
        print(f"\u23f3 {name}: not attempted yet (replace `...` with your prediction, a number)")
        record(name, NOT_ATTEMPTED)
        return False
    number = as_number(predicted)
    if isinstance(number, str):
        print(f"{FAIL} {name}: checks failed: {number}")
        record(name, FAILED, number)
        return False
    actual = float(actual)

    def compare(expected: float, got: float) -> str | None:
        if math.isclose(got, expected, rel_tol=rel_tol, abs_tol=abs_tol):
            return None
        return f"you predicted {_shown(got)}, the measurement is {_shown(expected)}"

    known = sorted(((float(value), str(what)) for value, what in (mistakes or {}).items()),
                   key=lambda mistake: abs(mistake[0] - number))  # the nearest wrong reasoning first
    reason = naming_mistakes(compare)(Expected(actual, mistakes=tuple(known)), number)
    if reason is None:
        print(f"{PASS} {name}: checks pass: you predicted {_shown(number)}, the measurement is "
              f"{_shown(actual)} (within {rel_tol:.1%}); your reasoning was right")
        record(name, PASSED)
        return True
    named = reason != compare(actual, number)
    print(f"{FAIL} {name}: checks failed: {reason}" + (f"\n   hint: {hint}" if hint and not named else ""))
    record(name, FAILED, reason)
    return False
