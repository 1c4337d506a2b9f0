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

import copy
import inspect
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
        from compresskit.models import copy_model  # deepcopy that also copies a pruned model

        return copy_model(value)
    if hasattr(value, "get_params") and hasattr(value, "fit"):  # a scikit-learn estimator
        return copy.deepcopy(value)
    return value


def _same_tensor(before: torch.Tensor, after: torch.Tensor) -> bool:
    if before.layout != after.layout:
        return False
    if before.layout != torch.strided:
        before, after = before.to_dense(), after.to_dense()
    if before.shape != after.shape or before.dtype != after.dtype:
        return False
    before, after = before.detach().cpu(), after.detach().cpu()
    if before.dtype.is_floating_point or before.dtype.is_complex:
        return bool(((before == after) | (torch.isnan(before) & torch.isnan(after))).all())
    return torch.equal(before, after)


def _same_array(before: np.ndarray, after: np.ndarray) -> bool:
    if before.shape != after.shape or before.dtype != after.dtype:
        return False
    try:
        return bool(np.array_equal(before, after, equal_nan=True))
    except TypeError:  # object or string arrays: no NaN test
        return bool(np.array_equal(before, after))


def _pruning_hooks(module: torch.nn.Module) -> list[tuple[str, str, str]]:
    from torch.nn.utils import prune

    return [(name, type(hook).__name__, getattr(hook, "_tensor_name", "")) for name, sub in module.named_modules()
            for hook in sub._forward_pre_hooks.values() if isinstance(hook, (prune.BasePruningMethod, prune.PruningContainer))]


def _unchanged(before: Any, after: Any) -> bool:
    """Whether ``after`` (an argument the learner's function received) still equals ``before``
    (a pristine copy taken before the call): tensors and arrays by dtype, shape and values (NaN
    equal to NaN), containers item by item, modules by state_dict, pruning hooks and mode,
    scikit-learn estimators by their parameters and fitted attributes."""
    if type(before) is not type(after) and not (isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor)):
        return False
    if isinstance(before, torch.Tensor):
        return _same_tensor(before, after)
    if isinstance(before, np.ndarray):
        return _same_array(before, after)
    if isinstance(before, (tuple, list)):
        return len(before) == len(after) and all(_unchanged(b, a) for b, a in zip(before, after))
    if isinstance(before, dict):
        return list(before) == list(after) and all(_unchanged(before[k], after[k]) for k in before)
    if isinstance(before, torch.nn.Module):
        if _pruning_hooks(before) != _pruning_hooks(after):
            return False
        if [m.training for m in before.modules()] != [m.training for m in after.modules()]:
            return False
        b, a = before.state_dict(), after.state_dict()
        return list(b) == list(a) and all(_unchanged(b[k], a[k]) for k in b)
    if hasattr(before, "get_params") and hasattr(before, "fit"):
        return sorted(vars(before)) == sorted(vars(after)) and repr(before.get_params()) == repr(after.get_params())
    return True  # numbers, strings, other objects: passed as they are, nothing to compare


def _argument_names(fn: Callable[..., Any], args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
    """``(name, value)`` for each argument of a call, by the function's parameter names where
    its signature says them (``argument 2`` where it does not)."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return [(f"argument {i + 1}", a) for i, a in enumerate(args)] + list(kwargs.items())
    named = []
    for name, value in bound.arguments.items():
        kind = inspect.signature(fn).parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            named += [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named += list(value.items())
        else:
            named.append((name, value))
    return named


def _how_to_copy(name: str, value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{name}.clone()"
    if isinstance(value, np.ndarray):
        return f"{name}.copy()"
    if isinstance(value, torch.nn.Module):
        return f"compresskit.models.copy_model({name})"
    if isinstance(value, (dict, list)):
        return f"{type(value).__name__}({name})"
    if hasattr(value, "get_params"):
        return f"sklearn.base.clone({name})"
    return f"copy.deepcopy({name})"


def changed_arguments(fn: Callable[..., Any], pristine: tuple[tuple, dict], received: tuple[tuple, dict]) -> list[str]:
    """A line for each argument that ``fn`` changed: ``received`` (what it was given) compared
    with ``pristine`` (an untouched copy of the same arguments)."""
    lines = []
    before = _argument_names(fn, *pristine)
    after = dict(_argument_names(fn, *received))
    for name, value in before:
        if name in after and not _unchanged(value, after[name]):
            lines.append(f"your function changed its argument `{name}` (an input must not be modified; "
                         f"work on a copy, e.g. {_how_to_copy(name, value)})")
    return lines


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
    """A short, readable rendering of a value for feedback lines; never raises."""
    try:
        return _describe(value, limit)
    except Exception:  # noqa: BLE001 - an object whose repr raises is still described
        return f"a {type(value).__name__}"


def _describe(value: Any, limit: int) -> str:
    if isinstance(value, torch.Tensor):
        text = f"tensor{tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
        if value.layout != torch.strided:
            return text + f" ({str(value.layout).replace('torch.', '')})"
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
            reason = f"expected a torch.Tensor, got {type(got).__name__}"
            return reason + (" (torch.from_numpy turns an array into a tensor)" if isinstance(got, np.ndarray) else "")
        if got.layout != expected.layout:
            return (f"expected a {str(expected.layout).replace('torch.', '')} tensor, got a "
                    f"{str(got.layout).replace('torch.', '')} one" + (" (call .to_dense())" if expected.layout == torch.strided else ""))
        if expected.layout != torch.strided:
            expected, got = expected.to_dense(), got.to_dense()
        if got.is_complex() != expected.is_complex():
            return f"dtype: expected {expected.dtype}, got {got.dtype}"
        expected, got = expected.detach().cpu(), got.detach().cpu()
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
        if isinstance(got, torch.Tensor):
            got = got.detach().cpu().to_dense().numpy()
        try:
            got_arr = np.asarray(got)
        except Exception:  # noqa: BLE001 - a ragged list, an object numpy cannot read
            return f"expected an array of shape {expected.shape}, got {describe(got)}"
        if got_arr.shape != expected.shape:
            return f"shape: expected {expected.shape}, got {got_arr.shape}"
        if expected.dtype.kind in "biuf" and got_arr.dtype.kind not in "biuf":
            return f"expected numbers, got an array of {got_arr.dtype}"
        if expected.dtype.kind not in "biufc":
            return None if np.array_equal(got_arr, expected) else f"expected {describe(expected)}, got {describe(got)}"
        ok = np.isclose(got_arr.astype(float), expected.astype(float), rtol=rtol, atol=atol, equal_nan=True)
        wrong = int((~ok).sum())
        return None if wrong == 0 else f"{wrong} of {expected.size} entries differ"
    if isinstance(expected, (bool, np.bool_)) or isinstance(expected, str) or expected is None:
        return None if _equal(got, expected) else f"expected {describe(expected)}, got {describe(got)}"
    if isinstance(expected, (int, float, np.integer, np.floating)):
        if isinstance(got, torch.Tensor) and got.numel() == 1 and got.layout == torch.strided:
            got = got.item()
        if isinstance(got, (np.ndarray, np.generic)) and got.size == 1 and got.dtype.kind in "biuf":
            got = got.item()  # numpy scalars and one-element arrays count like one-element tensors
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
    return None if _equal(got, expected) else f"expected {describe(expected)}, got {describe(got)}"


def _equal(got: Any, expected: Any) -> bool:
    """``got == expected`` as a plain bool (a tensor or array compared with a bool is not equal)."""
    if isinstance(got, (torch.Tensor, np.ndarray)) and not isinstance(expected, (torch.Tensor, np.ndarray)):
        return False
    try:
        result = got == expected
    except Exception:  # noqa: BLE001 - an object whose == raises is not equal
        return False
    return result if isinstance(result, bool) else bool(result) if isinstance(result, np.bool_) else False


def _compared(compare: Callable[[Any, Any], str | None], expected: Any, got: Any) -> str | None:
    """``compare(expected, got)``, where a compare that raises (on an answer of a type or dtype
    nobody expected) becomes a reason naming what the answer returned."""
    try:
        reason = compare(expected, got)
    except Exception as exc:  # noqa: BLE001 - the answer's odd value, reported, not raised
        return f"your answer could not be compared with the expected one ({type(exc).__name__}: {exc}); it returned {describe(got)}"
    return None if reason is None else str(reason)


def check_function(
    fn: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[Case],
    *,
    name: str | None = None,
    compare: Callable[[Any, Any], str | None] = close,
    expect_errors: Sequence[tuple[Case, type[BaseException]]] = (),
    hint: str | None = None,
    modifies_inputs: bool = False,
) -> bool:
    """Run ``fn`` and ``reference`` on every case; print what differs; return True if all match.

    ``expect_errors`` lists bad inputs on which ``fn`` must raise the given exception type
    (as the reference does). An answer that changes an argument it was given (``w.abs_()``,
    ``x /= t``, ``d.pop(k)``) fails, naming the argument, unless ``modifies_inputs`` says the
    exercise asks for an in-place change. Never raises because of the learner's code.
    """
    name = name or getattr(fn, "__name__", "your function")
    if not callable(fn):
        print(f"{FAIL} {name}: expected a function, got {type(fn).__name__}")
        record(name, FAILED, f"expected a function, got {type(fn).__name__}")
        return False
    failures = []
    for case in cases:
        expected = reference(*_clone(case.args), **_clone(case.kwargs))
        pristine = (_clone(case.args), _clone(case.kwargs))
        received = (_clone(case.args), _clone(case.kwargs))
        try:
            got = fn(*received[0], **received[1])
        except NotImplementedError:
            print(f"\u23f3 {name}: not attempted yet (it still raises NotImplementedError)")
            record(name, NOT_ATTEMPTED)
            return False
        except Exception as exc:  # the learner's bug, reported, not raised
            where = traceback.extract_tb(exc.__traceback__)[-1]
            failures.append(f"{case.description}: raised {type(exc).__name__}: {exc} (line {where.lineno})")
            continue
        if not modifies_inputs:
            try:
                changed = changed_arguments(fn, pristine, received)
            except Exception as exc:  # noqa: BLE001 - an argument the answer left uncomparable
                changed = [f"your function left its arguments in a state that cannot be compared ({type(exc).__name__}: {exc})"]
            if changed:
                failures += [f"{case.description}: {line}" for line in changed]
                continue
        reason = _compared(compare, expected, got)
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
    reason = _compared(compare, expected, got)
    if reason:
        print(f"{FAIL} {name}: {reason}" + (f"\n   hint: {hint}" if hint else ""))
        record(name, FAILED, reason)
        return False
    print(f"{PASS} {name}: correct")
    record(name, PASSED)
    return True


def report_failure(name: str, message: str) -> None:
    """Print one more thing wrong with ``name``'s answer, found after its checks ran, and note
    it in the learner's progress (an exercise that printed this has not passed). Printed as a
    failed check, in the shape :func:`check_function` prints them."""
    print(f"{FAIL} {name}: further checks failed\n   - {message}")
    record(name, FAILED, message)
