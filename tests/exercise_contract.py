"""The contract every exercise checker keeps, as tests a test module takes with one line.

``WRONG`` maps an exercise's name to ``(checker, independent worked answer, [(wrong answer,
words the checker's message must contain), ...])``; ``stub`` raises NotImplementedError like
an untouched exercise. In a test module::

    globals().update(contract_tests(WRONG, stub))
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import pytest
import torch


def _raises_value_error(*args, **kwargs):
    raise ValueError("a learner's own check went off")


# Answers no checker may raise on: each must be reported (False), never raised.
HOSTILE = {
    "returns None": lambda *args, **kwargs: None,
    "returns a string": lambda *args, **kwargs: "done",
    "returns a sparse tensor": lambda *args, **kwargs: torch.ones(4, 3).to_sparse(),
    "returns a tensor of the wrong dtype": lambda *args, **kwargs: torch.zeros(4, 3, dtype=torch.complex64),
    "returns a huge tensor (a view of 10**14 elements)": lambda *args, **kwargs: torch.zeros(1).expand(10**7, 10**7),
    "raises ValueError": _raises_value_error,
    "returns NaN": lambda *args, **kwargs: float("nan"),
    "returns a NaN tensor": lambda *args, **kwargs: torch.full((3,), float("nan")),
    "returns an object whose == raises": lambda *args, **kwargs: _Uncomparable(),
}


class _Uncomparable:
    def __eq__(self, other):
        raise RuntimeError("cannot be compared")

    __hash__ = object.__hash__


def _write_into(value) -> bool:
    """Write into one argument in place, as a learner's ``w.abs_()`` or ``d.pop(k)`` does."""
    if isinstance(value, torch.Tensor) and value.numel() and not value.requires_grad:
        value.add_(1)
    elif isinstance(value, np.ndarray) and value.size and value.dtype.kind in "iuf" and value.flags.writeable:
        value += 1
    elif isinstance(value, torch.nn.Module) and any(True for _ in value.parameters()):
        with torch.no_grad():
            next(value.parameters()).zero_()
    elif isinstance(value, list) and value:
        value.pop()
    elif isinstance(value, dict) and value:
        value.pop(next(iter(value)))
    else:
        return False
    return True


def _writes_into_its_input(solution: Callable, wrote: list) -> Callable:
    """The worked answer, which then also writes into its first argument that can be written."""

    @functools.wraps(solution)
    def answer(*args, **kwargs):
        result = solution(*args, **kwargs)
        for value in (*args, *kwargs.values()):
            if _write_into(value):
                wrote.append(True)
                break
        return result

    return answer


def contract_tests(wrong: dict, stub: Callable) -> dict[str, Callable]:
    """The five tests: the worked answer passes, at least three wrong answers, each wrong answer
    is rejected with a message naming the mistake, a stub is reported as not attempted, and no
    hostile answer (None, a string, a sparse or huge tensor, NaN, an error, a write into its
    input) makes the checker raise."""
    cases = [(name, i) for name, (_, _, wrongs) in wrong.items() for i in range(len(wrongs))]

    @pytest.mark.parametrize("name", list(wrong))
    def test_checker_accepts_an_independent_worked_answer(name, capsys):
        check, solution, _ = wrong[name]
        assert check(solution) is True
        assert "checks pass" in capsys.readouterr().out

    @pytest.mark.parametrize("name", list(wrong))
    def test_every_checker_has_at_least_three_plausible_wrong_answers(name):
        assert len(wrong[name][2]) >= 3

    @pytest.mark.parametrize("name, i", cases, ids=[f"{n}-{i}" for n, i in cases])
    def test_checker_rejects_a_plausible_wrong_answer_and_names_the_mistake(name, i, capsys):
        check, _, wrongs = wrong[name]
        answer, words = wrongs[i]
        assert check(answer) is False
        out = capsys.readouterr().out
        assert "checks failed" in out
        assert words in out, out

    @pytest.mark.parametrize("name", list(wrong))
    def test_checker_reports_a_stub_as_not_attempted(name, capsys):
        assert wrong[name][0](stub) is False
        assert "not attempted yet" in capsys.readouterr().out

    hostile = [(name, h) for name in wrong for h in [*HOSTILE, "writes into its input"]]

    @pytest.mark.parametrize("name, answer", hostile, ids=[f"{n}-{h}" for n, h in hostile])
    def test_no_answer_makes_the_checker_raise(name, answer, capsys):
        check, solution, _ = wrong[name]
        if answer == "writes into its input":
            wrote: list = []
            result = check(_writes_into_its_input(solution, wrote))
            out = capsys.readouterr().out
            if not wrote:  # every argument is a number or a type: nothing to write into
                assert result is True, out
                return
            assert result is False, out
            assert "your function changed its argument `" in out, out
            return
        assert check(HOSTILE[answer]) is False
        assert "checks failed" in capsys.readouterr().out

    return {f.__name__: f for f in (
        test_checker_accepts_an_independent_worked_answer,
        test_every_checker_has_at_least_three_plausible_wrong_answers,
        test_checker_rejects_a_plausible_wrong_answer_and_names_the_mistake,
        test_checker_reports_a_stub_as_not_attempted,
        test_no_answer_makes_the_checker_raise,
    )}
