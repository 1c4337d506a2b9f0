"""Check a learner's function against the reference, and say what is wrong without raising.

A checker runs the learner's function and the reference on several inputs, compares the
results, prints one line per failing case (which input, expected vs got) and returns a bool,
so a notebook keeps running after a wrong answer. An untouched stub that raises
``NotImplementedError`` is reported as "not attempted yet". Each outcome is also noted in the
learner's progress file (:func:`compresskit.course.progress.record`; ``progress.show()`` prints it).

Usage inside ``compresskit.course.exercises.<topic>``::

    def check_tensor_bytes(fn):
        return check_function(fn, reference=measure.tensor_bytes, cases=[
            Case("1000 float32", (1000, torch.float32)),
            Case("1000 int8", (1000, torch.int8)),
        ], name="tensor_bytes")
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from compresskit.course.progress import FAILED, NOT_ATTEMPTED, PASSED, record

PASS = "\u2705"  # shown before a passing exercise
FAIL = "\u274c"


@dataclass
class Case:
    """One input to try: a short description, positional and keyword arguments."""

    description: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def _clone(value: Any) -> Any:
    """A deep copy of tensors and arrays, so a learner's function that writes to its input
    cannot change what the reference sees."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, torch.nn.Module):
        import copy

        return copy.deepcopy(value)
    return value


@dataclass(frozen=True)
class Expected:
    """The right answer to one case, and ``(wrong answer, what went wrong)`` for the mistakes
    learners often make, so that feedback can name the mistake and not only the difference."""

    value: Any
    mistakes: tuple[tuple[Any, str], ...] = ()


def naming_mistakes(compare: Callable[[Any, Any], str | None]) -> Callable[[Expected, Any], str | None]:
    """A ``compare`` for :class:`Expected` answers: ``compare``'s reason, followed by the name of
    the first known mistake that gives exactly what the learner returned (a "mistake" equal to
    the right answer is never named)."""

    def compare_expected(expected: Expected, got: Any) -> str | None:
        reason = compare(expected.value, got)
        if reason is None:
            return None
        for wrong, what in expected.mistakes:
            if compare(expected.value, wrong) is not None and compare(wrong, got) is None:
                return f"{reason}: {what}"
        return reason

    return compare_expected


def describe(value: Any, limit: int = 120) -> str:
    """A short, readable rendering of a value for feedback lines."""
    if isinstance(value, torch.Tensor):
        text = f"tensor{tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
        if value.numel() <= 12:
            text += f" {value.tolist()}"
        return text
    if isinstance(value, np.ndarray):
        text = f"array{value.shape} {value.dtype}"
        if value.size <= 12:
            text += f" {value.tolist()}"
        return text
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def close(expected: Any, got: Any, rtol: float = 1e-5, atol: float = 1e-6) -> str | None:
    """None when ``got`` matches ``expected``; otherwise a reason. Tensors, arrays, numbers,
    bools, strings and (nested) tuples / lists / dicts are compared element-wise."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {type(got).__name__}"
        if got.shape != expected.shape:
            return f"shape: expected {tuple(expected.shape)}, got {tuple(got.shape)}"
        if got.dtype.is_floating_point != expected.dtype.is_floating_point or (got.dtype == torch.bool) != (expected.dtype == torch.bool):
            return f"dtype: expected {expected.dtype}, got {got.dtype}"
        if expected.dtype == torch.bool or not expected.dtype.is_floating_point:
            wrong = int((got != expected).sum())
        else:
            wrong = int((~torch.isclose(got.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True)).sum())
        return None if wrong == 0 else f"{wrong} of {expected.numel()} entries differ"
    if isinstance(expected, np.ndarray):
        got_arr = np.asarray(got)
        if got_arr.shape != expected.shape:
            return f"shape: expected {expected.shape}, got {got_arr.shape}"
        ok = np.isclose(got_arr.astype(float), expected.astype(float), rtol=rtol, atol=atol, equal_nan=True)
        wrong = int((~ok).sum())
        return None if wrong == 0 else f"{wrong} of {expected.size} entries differ"
    if isinstance(expected, (bool, np.bool_)) or isinstance(expected, str) or expected is None:
        return None if got == expected else f"expected {describe(expected)}, got {describe(got)}"
    if isinstance(expected, (int, float, np.integer, np.floating)):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float, np.integer, np.floating)) or isinstance(got, bool):
            return f"expected a number, got {type(got).__name__} {describe(got)}"
        return None if math.isclose(float(got), float(expected), rel_tol=rtol, abs_tol=atol) else f"expected {expected!r}, got {got!r}"
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"expected a sequence of {len(expected)} items, got {describe(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            reason = close(e, g, rtol, atol)
            if reason:
                return f"item {i}: {reason}"
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            return f"expected keys {sorted(expected)}, got {describe(got)}"
        for k in expected:
            reason = close(expected[k], got[k], rtol, atol)
            if reason:
                return f"key {k!r}: {reason}"
        return None
    return None if got == expected else f"expected {describe(expected)}, got {describe(got)}"


def check_function(
    fn: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[Case],
    *,
    name: str | None = None,
    compare: Callable[[Any, Any], str | None] = close,
    expect_errors: Sequence[tuple[Case, type[BaseException]]] = (),
    hint: str | None = None,
) -> bool:
    """Run ``fn`` and ``reference`` on every case; print what differs; return True if all match.

    ``expect_errors`` lists bad inputs on which ``fn`` must raise the given exception type
    (as the reference does). Never raises because of the learner's code.
    """
    name = name or getattr(fn, "__name__", "your function")
    if not callable(fn):
        print(f"{FAIL} {name}: expected a function, got {type(fn).__name__}")
        record(name, FAILED, f"expected a function, got {type(fn).__name__}")
        return False
    failures = []
    for case in cases:
        expected = reference(*_clone(case.args), **_clone(case.kwargs))
        try:
            got = fn(*_clone(case.args), **_clone(case.kwargs))
        except NotImplementedError:
            print(f"\u23f3 {name}: not attempted yet (it still raises NotImplementedError)")
            record(name, NOT_ATTEMPTED)
            return False
        except Exception as exc:  # the learner's bug, reported, not raised
            where = traceback.extract_tb(exc.__traceback__)[-1]
            failures.append(f"{case.description}: raised {type(exc).__name__}: {exc} (line {where.lineno})")
            continue
        reason = compare(expected, got)
        if reason:
            failures.append(f"{case.description}: {reason}")
    for case, error in expect_errors:
        try:
            fn(*_clone(case.args), **_clone(case.kwargs))
        except NotImplementedError:
            print(f"\u23f3 {name}: not attempted yet (it still raises NotImplementedError)")
            record(name, NOT_ATTEMPTED)
            return False
        except error:
            continue
        except Exception as exc:
            failures.append(f"{case.description}: expected {error.__name__}, got {type(exc).__name__}: {exc}")
            continue
        failures.append(f"{case.description}: expected {error.__name__}, but nothing was raised")
    total = len(cases) + len(expect_errors)
    if failures:
        print(f"{FAIL} {name}: {len(failures)} of {total} checks failed")
        for line in failures:
            print(f"   - {line}")
        if hint:
            print(f"   hint: {hint}")
        record(name, FAILED, failures[0])
        return False
    print(f"{PASS} {name}: all {total} checks pass")
    record(name, PASSED)
    return True


def check_value(got: Any, expected: Any, *, name: str, compare: Callable[[Any, Any], str | None] = close, hint: str | None = None) -> bool:
    """Check a single value a learner computed (not a function); print and return a bool."""
    if got is NotImplemented or got is Ellipsis:
        print(f"\u23f3 {name}: not attempted yet")
        record(name, NOT_ATTEMPTED)
        return False
    reason = compare(expected, got)
    if reason:
        print(f"{FAIL} {name}: {reason}" + (f"\n   hint: {hint}" if hint else ""))
        record(name, FAILED, reason)
        return False
    print(f"{PASS} {name}: correct")
    record(name, PASSED)
    return True


def report_failure(name: str, message: str) -> None:
    """Print one more thing wrong with ``name``'s answer, found after its checks ran, and note
    it in the learner's progress (an exercise that printed this has not passed)."""
    print(f"{FAIL} {name}: {message}")
    record(name, FAILED, message)
