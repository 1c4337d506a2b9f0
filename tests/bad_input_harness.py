"""What every bad-input sweep (tests/test_bad_input*.py) shares, written once.

A sweep is a list of :class:`Bad` rows, one per (function, bad call): the error type and the
words its message must contain (the argument's name, the rule, the value received). ``watch``
names the positional arguments (models) that a failed call must give back exactly as they were:
:func:`assert_refused` compares a :func:`snapshot` of each before and after the call. A
completeness test per sweep uses :func:`missing_rows`: every public name has a row or a reason.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pytest
import torch
from torch import nn


@dataclass
class Bad:
    fn: Callable[..., Any]
    make: Callable[[], tuple[tuple, dict]]  # builds fresh arguments for each run
    error: type[Exception]
    words: list[str]
    watch: int | tuple[int, ...] | None = None  # positional arguments (models) that must come back unchanged
    note: str = ""
    id: str = field(init=False, default="")

    def watched(self) -> tuple[int, ...]:
        return () if self.watch is None else (self.watch,) if isinstance(self.watch, int) else tuple(self.watch)


def a(*args, **kwargs) -> Callable[[], tuple[tuple, dict]]:
    """Arguments as a factory, so that every run gets fresh tensors and models."""
    return lambda: (args, kwargs)


def lazy(build: Callable[[], tuple[tuple, dict]]) -> Callable[[], tuple[tuple, dict]]:
    """Arguments that must be built per run (they hold a model to watch)."""
    return build


def snapshot(model: nn.Module) -> tuple:
    """Everything a failed call must leave as it was: every tensor of the state dict (parameters,
    BatchNorm statistics, observers), the parameters' names, the pruning hooks, every module's mode."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    hooks = [(n, k, type(h).__name__, tuple(type(x).__name__ for x in getattr(h, "_pruning_methods", ())))
             for n, m in model.named_modules() for k, h in m._forward_pre_hooks.items()]  # a PruningContainer's methods too
    return state, [n for n, _ in model.named_parameters()], hooks, [(n, m.training) for n, m in model.named_modules()]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal, NaN where NaN (NaN != NaN)."""
    if a.is_floating_point() or a.is_complex():
        return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
    return torch.equal(a, b)


def assert_unchanged(before: tuple, model: nn.Module) -> None:
    after = snapshot(model)
    assert after[0].keys() == before[0].keys()
    for key, value in after[0].items():
        assert _same(value, before[0][key]), f"{key} changed by a failed call"
    assert after[1:] == before[1:]


def assert_refused(case: Bad, call: Callable[..., Any] | None = None) -> str:
    """Run ``case`` (through ``call(case, args, kwargs)`` if given); check the error, its words and
    that the watched models are unchanged; return the message."""
    args, kwargs = case.make()
    before = {i: snapshot(args[i]) for i in case.watched()}
    with pytest.raises(case.error) as info:
        result = call(case, args, kwargs) if call is not None else case.fn(*args, **kwargs)
        if inspect.isgenerator(result):  # a generator checks its arguments on the first next()
            list(result)
    message = str(info.value)
    for word in case.words:
        assert word in message, f"{word!r} is not in the message: {message}"
    for i, state in before.items():
        assert_unchanged(state, args[i])
    return message


def name_rows(cases: Iterable[Bad], words: Callable[[Bad], list[str]] = lambda c: c.words) -> None:
    """Give each row a readable test id: the function's name and the words its message must hold."""
    for case in cases:
        case.id = f"{getattr(case.fn, '__qualname__', case.fn)}-{'-'.join(words(case))}"


def missing_rows(cases: Iterable[Bad], public: Iterable[str], reasons: Iterable[str] = ()) -> list[str]:
    """The public names that have neither a row nor a stated reason for having none."""
    covered = {getattr(c.fn, "__qualname__", "").split(".")[0] for c in cases}
    return sorted(set(public) - covered - set(reasons))
