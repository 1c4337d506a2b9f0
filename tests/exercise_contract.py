"""The contract every exercise checker keeps, as tests a test module takes with one line.

``WRONG`` maps an exercise's name to ``(checker, independent worked answer, [(wrong answer,
words the checker's message must contain), ...])``; ``stub`` raises NotImplementedError like
an untouched exercise. In a test module::

    globals().update(contract_tests(WRONG, stub))
"""

from __future__ import annotations

from typing import Callable

import pytest


def contract_tests(wrong: dict, stub: Callable) -> dict[str, Callable]:
    """The four tests: the worked answer passes, at least three wrong answers, each wrong answer
    is rejected with a message naming the mistake, and a stub is reported as not attempted."""
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

    return {f.__name__: f for f in (
        test_checker_accepts_an_independent_worked_answer,
        test_every_checker_has_at_least_three_plausible_wrong_answers,
        test_checker_rejects_a_plausible_wrong_answer_and_names_the_mistake,
        test_checker_reports_a_stub_as_not_attempted,
    )}
