"""compresskit.course.checker: reports what is wrong, never raises, returns a bool."""

import numpy as np
import torch

from compresskit.course import checker
from compresskit.course.checker import Case, check_function, check_value, close


def reference(x, k=1):
    return x * k


CASES = [Case("small", (torch.tensor([1.0, 2.0]),)), Case("k=3", (torch.tensor([1.0]),), {"k": 3})]


def test_accepts_the_reference(capsys):
    assert check_function(reference, reference, CASES, name="scale") is True
    assert "all 2 checks pass" in capsys.readouterr().out


def test_rejects_a_wrong_answer_and_names_the_case(capsys):
    assert check_function(lambda x, k=1: x + k, reference, CASES, name="scale") is False
    out = capsys.readouterr().out
    assert "2 checks failed" in out and "small" in out and "entries differ" in out


def test_stub_is_not_attempted(capsys):
    def stub(x, k=1):
        raise NotImplementedError

    assert check_function(stub, reference, CASES, name="scale") is False
    assert "not attempted yet" in capsys.readouterr().out


def test_learner_exception_is_reported_not_raised(capsys):
    def buggy(x, k=1):
        return x.undefined_method()

    assert check_function(buggy, reference, CASES) is False
    assert "raised AttributeError" in capsys.readouterr().out


# The cloning tests share ONE input object across cases, as a checker's module-level cases
# do: the reference runs first in each case, so a test with a fresh input per case would
# pass with cloning removed. Each is proven to fail without cloning below.
def _scales_in_place(x, k=1):
    """A right answer that writes into its input: x *= k, returned."""
    return x.mul_(k)


def _doubles_in_place_then_flattens(x):
    """A wrong answer (2x) that writes into its input."""
    return x.mul_(2).reshape(-1)


def _flatten(x):
    """A reference whose result is a view of its input, as reshape, transpose or slicing give."""
    return x.reshape(-1)


def _learner_mutates_the_shared_input():
    shared = torch.tensor([1.0, 2.0])
    cases = [Case("k=2", (shared,), {"k": 2}), Case("k=3", (shared,), {"k": 3})]
    accepted = check_function(_scales_in_place, reference, cases)
    return accepted, shared


def _learner_mutates_what_the_reference_returned():
    shared = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    cases = [Case("2x2", (shared,)), Case("the same 2x2 again", (shared,))]
    return check_function(_doubles_in_place_then_flattens, _flatten, cases)


def test_learner_cannot_change_the_cases_input():
    accepted, shared = _learner_mutates_the_shared_input()
    assert accepted is True  # its values are right for the input it was given
    assert shared.tolist() == [1.0, 2.0]  # and the next case (or the next run) sees the input unchanged


def test_learner_cannot_change_what_the_reference_returned():
    # Without a clone, the reference's view and the learner's answer are the same memory:
    # the learner's doubling would change the expected value too and pass.
    assert check_function(_doubles_in_place_then_flattens, _flatten, [Case("2x2", (torch.ones(2, 2),))]) is False
    assert _learner_mutates_what_the_reference_returned() is False


def test_the_cloning_tests_fail_without_cloning(monkeypatch):
    monkeypatch.setattr(checker, "_clone", lambda value: value)
    accepted, shared = _learner_mutates_the_shared_input()
    assert shared.tolist() != [1.0, 2.0]  # the shared input is changed: the first test would fail
    assert _learner_mutates_what_the_reference_returned() is True  # the wrong answer passes: the second would fail


def test_expected_errors(capsys):
    def ref(x):
        if x < 0:
            raise ValueError("negative")
        return x

    cases = [Case("x=1", (1,))]
    bad = [(Case("x=-1", (-1,)), ValueError)]
    assert check_function(ref, ref, cases, expect_errors=bad) is True
    assert check_function(lambda x: x, ref, cases, expect_errors=bad) is False
    assert "nothing was raised" in capsys.readouterr().out


def test_not_a_function(capsys):
    assert check_function(42, reference, CASES, name="scale") is False
    assert "expected a function" in capsys.readouterr().out


def test_close_compares_kinds():
    assert close(torch.tensor([1, 2]), torch.tensor([1, 2])) is None
    assert "shape" in close(torch.zeros(2), torch.zeros(3))
    assert "dtype" in close(torch.zeros(2), torch.zeros(2, dtype=torch.int64))
    assert close(np.array([1.0, 2.0]), [1.0, 2.0]) is None
    assert close(3, 3.0000001) is None
    assert "expected a number" in close(3, "3")
    assert "expected a number" in close(1, True)
    assert close((1, torch.ones(1)), (1, torch.ones(1))) is None
    assert "item 1" in close((1, 2), (1, 3))
    assert "key 'a'" in close({"a": 1}, {"a": 2})


def test_check_value(capsys):
    assert check_value(4.0, 4, name="ratio") is True
    assert check_value(3.0, 4, name="ratio", hint="divide") is False
    out = capsys.readouterr().out
    assert "hint: divide" in out
    assert check_value(..., 4, name="ratio") is False
    assert "not attempted" in capsys.readouterr().out
