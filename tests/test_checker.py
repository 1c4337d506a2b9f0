"""compresskit.course.checker: reports what is wrong, never raises, returns a bool."""

import numpy as np
import pytest
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
# pass with cloning removed. Each is proven to fail without cloning below. They opt out of
# the in-place check (modifies_inputs=True), so that they test the cloning alone.
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
    accepted = check_function(_scales_in_place, reference, cases, modifies_inputs=True)
    return accepted, shared


def _learner_mutates_what_the_reference_returned():
    shared = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    cases = [Case("2x2", (shared,)), Case("the same 2x2 again", (shared,))]
    return check_function(_doubles_in_place_then_flattens, _flatten, cases, modifies_inputs=True)


def test_learner_cannot_change_the_cases_input():
    accepted, shared = _learner_mutates_the_shared_input()
    assert accepted is True  # its values are right for the input it was given
    assert shared.tolist() == [1.0, 2.0]  # and the next case (or the next run) sees the input unchanged


def test_learner_cannot_change_what_the_reference_returned():
    # Without a clone, the reference's view and the learner's answer are the same memory:
    # the learner's doubling would change the expected value too and pass.
    assert check_function(_doubles_in_place_then_flattens, _flatten, [Case("2x2", (torch.ones(2, 2),))],
                          modifies_inputs=True) is False
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


# --- an answer that writes into its input is a failure that names the argument ----------------

def _absolute(weight, threshold=0.0):
    return weight.abs() >= threshold


def _abs_in_place(weight, threshold=0.0):
    return weight.abs_() >= threshold  # right values, but the caller's weight is changed


def test_an_answer_that_writes_into_its_input_fails_and_names_the_argument(capsys):
    cases = [Case("signed weights", (torch.tensor([-1.0, 0.5, -0.2]),), {"threshold": 0.4})]
    assert check_function(_abs_in_place, _absolute, cases, name="mask") is False
    out = capsys.readouterr().out
    assert "signed weights: your function changed its argument `weight`" in out
    assert "work on a copy, e.g. weight.clone()" in out
    assert check_function(_absolute, _absolute, cases, name="mask") is True  # the same without the write passes


def _divides_in_place(logits, temperature):
    logits /= temperature
    return logits.softmax(-1)


def _pops(counts):
    counts.pop(next(iter(counts)))
    return len(counts) + 1


def _appends(weights):
    weights.append(torch.zeros(1))
    return len(weights) - 1


def _adds_to_second_array(a, b):
    b += 1
    return a + b - 1


def _zeroes_a_weight(model):
    with torch.no_grad():
        model.weight.zero_()
    return 4


def _switches_to_eval(model):
    model.eval()
    return 4


def _prunes_the_callers_model(model):
    torch.nn.utils.prune.identity(model, "weight")
    return 4


@pytest.mark.parametrize("answer, reference, args, kwargs, name, copy_hint", [
    (_divides_in_place, lambda logits, temperature: (logits / temperature).softmax(-1),
     (torch.tensor([[1.0, 2.0, 3.0]]), 2.0), {}, "logits", "logits.clone()"),
    (_pops, len, ({"a": 1, "b": 2},), {}, "counts", "dict(counts)"),
    (_appends, len, ([torch.ones(1)],), {}, "weights", "list(weights)"),
    (_adds_to_second_array, lambda a, b: a + b, (np.ones(3), np.arange(3.0)), {}, "b", "b.copy()"),
    (_adds_to_second_array, lambda a, b: a + b, (np.ones(3),), {"b": np.arange(3.0)}, "b", "b.copy()"),
    (_zeroes_a_weight, lambda model: 4, (torch.nn.Linear(2, 2),), {}, "model", "copy_model(model)"),
    (_switches_to_eval, lambda model: 4, (torch.nn.Linear(2, 2),), {}, "model", "copy_model(model)"),
    (_prunes_the_callers_model, lambda model: 4, (torch.nn.Linear(2, 2),), {}, "model", "copy_model(model)"),
    (lambda *tensors: tensors[1].zero_().sum() + 3, lambda *tensors: torch.tensor(3.0),
     (torch.ones(2), torch.ones(2)), {}, "tensors[1]", "clone()"),
], ids=["logits /= T", "dict.pop", "list.append", "b += 1", "b += 1 by keyword", "weight.zero_()", "model.eval()",
        "prune the caller's model", "*args"])
def test_every_kind_of_write_into_an_input_is_named(answer, reference, args, kwargs, name, copy_hint, capsys):
    assert check_function(answer, reference, [Case("the case", args, kwargs)], name="ex") is False
    out = capsys.readouterr().out
    assert f"the case: your function changed its argument `{name}`" in out, out
    assert copy_hint in out


def test_a_fitted_estimator_is_a_changed_argument(capsys):
    from sklearn.linear_model import LogisticRegression
    from sklearn.base import clone

    X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])

    def fits_the_callers_estimator(estimator, X, y):
        return estimator.fit(X, y).predict(X)

    def fits_a_clone(estimator, X, y):
        return clone(estimator).fit(X, y).predict(X)

    cases = [Case("logistic regression", (LogisticRegression(), X, y))]
    assert check_function(fits_the_callers_estimator, fits_a_clone, cases) is False
    assert "changed its argument `estimator`" in capsys.readouterr().out
    assert check_function(fits_a_clone, fits_a_clone, cases) is True


def test_unchanged_inputs_with_nan_or_a_pruned_model_pass(capsys):
    model = torch.nn.Linear(3, 2)
    torch.nn.utils.prune.l1_unstructured(model, "weight", amount=0.5)
    cases = [Case("NaN and a pruned model", (torch.tensor([float("nan"), 1.0]), model))]

    def reads_only(x, model):
        return torch.nan_to_num(x).sum() + int((model.weight == 0).sum())

    assert check_function(reads_only, reads_only, cases) is True
    assert [n for n, _ in model.named_buffers()] == ["weight_mask"]  # the case's model is still pruned


def test_an_exercise_that_asks_for_an_in_place_change_can_opt_out(capsys):
    def zero_first(x):
        x[0] = 0
        return x

    cases = [Case("two", (torch.ones(2),))]
    assert check_function(zero_first, zero_first, cases, modifies_inputs=True) is True
    assert check_function(zero_first, zero_first, cases) is False


def test_the_in_place_check_can_fail():
    """Proof that the check is what rejects _abs_in_place: without it, the answer passes."""
    cases = [Case("signed", (torch.tensor([-1.0, 0.5]),))]
    assert check_function(_abs_in_place, _absolute, cases, modifies_inputs=True) is True


# --- the compare step never raises, whatever the answer returns ------------------------------

class _Uncomparable:
    def __eq__(self, other):
        raise RuntimeError("no comparing me")

    def __repr__(self):
        raise RuntimeError("no printing me either")


@pytest.mark.parametrize("answer, words", [
    (lambda x: x.to_sparse(), "expected a strided tensor, got a sparse_coo one (call .to_dense())"),
    (lambda x: x.reshape(1, 3).to_sparse_csr(), "got a sparse_csr one"),
    (lambda x: x.to(torch.complex64), "dtype: expected torch.float32, got torch.complex64"),
    (lambda x: x.numpy(), "expected a torch.Tensor, got ndarray (torch.from_numpy"),
    (lambda x: _Uncomparable(), "expected a torch.Tensor, got _Uncomparable"),
    (lambda x: x.expand(10**6, 10**6, 3)[0, 0], None),  # a right answer through a huge view
    (lambda x: x.reshape(1, 3).expand(10**9, 3), "shape: expected (3,), got (1000000000, 3)"),
])
def test_odd_tensor_answers_are_reported_not_raised(answer, words, capsys):
    cases = [Case("three", (torch.tensor([1.0, 2.0, 3.0]),))]
    result = check_function(answer, lambda x: x.clone(), cases, name="ex")
    out = capsys.readouterr().out
    if words is None:
        assert result is True, out
    else:
        assert result is False and words in out, out


def test_a_compare_that_raises_becomes_a_failure_naming_what_was_returned(capsys):
    def fussy(expected, got):
        return None if got.dtype == expected.dtype and bool((got == expected).all()) else "differ"

    cases = [Case("two factors", (torch.ones(2),))]
    for answer in (lambda x: (x, x.double()), lambda x: None, lambda x: "a string", lambda x: x.to_sparse()):
        assert check_function(answer, lambda x: x.clone(), cases, name="ex", compare=fussy) is False
        out = capsys.readouterr().out
        assert "could not be compared with the expected one" in out and "it returned" in out, out
    assert check_value(_Uncomparable(), 3, name="v", compare=fussy) is False
    assert "it returned a _Uncomparable" in capsys.readouterr().out


def test_close_never_raises_on_odd_answers():
    x = torch.tensor([1.0, 2.0])
    for got in (None, "x", _Uncomparable(), x.to_sparse(), x.requires_grad_(), [1.0, [2.0]], {"a": 1}, object()):
        for expected in (x.detach(), np.array([1.0, 2.0]), 3, 3.0, True, "x", None, (1, 2), {"a": 1}):
            reason = close(expected, got)
            assert reason is None or isinstance(reason, str)
    assert close(True, torch.tensor([True, True])) is not None  # a tensor is not the bool True
    assert close(np.array([1.0, 2.0]), torch.tensor([1.0, 2.0], requires_grad=True)) is None
    assert "expected numbers" in close(np.array([1.0, 2.0]), np.array(["a", "b"]))


def test_close_treats_numpy_scalars_like_python_numbers_and_one_element_tensors():
    for got in (3, 3.0, np.int64(3), np.int32(3), np.float32(3.0), np.array(3), np.array([3.0]), torch.tensor(3),
                torch.tensor([3.0])):
        assert close(3, got) is None, got
        assert close(np.int64(3), got) is None, got
        assert close(np.float64(3.0), got) is None, got
    for got in (np.int64(4), np.array([3, 4]), np.bool_(True), True):
        assert close(3, got) is not None, got


def test_close_treats_every_mask_dtype_alike():
    """A 0/1 mask of another dtype is refused the same way whether it is float or int64 (a
    checker that accepts several mask dtypes converts them before comparing)."""
    expected = torch.tensor([True, False])
    reasons = {dtype: close(expected, expected.to(dtype)) for dtype in (torch.float32, torch.int64, torch.uint8)}
    assert all(r is not None and r.startswith("dtype: expected torch.bool") for r in reasons.values()), reasons
    expected = torch.tensor([1.0, 0.0])
    reasons = {dtype: close(expected, expected.to(dtype)) for dtype in (torch.bool, torch.int64, torch.int32)}
    assert all(r is not None and r.startswith("dtype: expected torch.float32") for r in reasons.values()), reasons


# --- over every chapter: an answer that writes into its input is rejected, naming it ---------

def _exercise_checkers():
    import importlib
    import pkgutil

    import compresskit.course.exercises as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, check in sorted(vars(module).items()):
            if name.startswith("check_") and callable(check) and getattr(check, "__module__", "") == module.__name__:
                yield pytest.param(module, check, id=f"{info.name}.{name}")


def _named_arguments(signature, args, kwargs):
    """(name, value) of each argument, as the checker names them (``args[1]`` for ``*args``)."""
    import inspect

    named = []
    for name, value in signature.bind(*args, **kwargs).arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            named += [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named += list(value.items())
        else:
            named.append((name, value))
    return named


def _first_mutable(named):
    """(name, value) of the first argument an answer can write into, and how to write into it."""
    for name, value in named:
        if isinstance(value, torch.Tensor) and value.numel():
            return name, (lambda v: v.mul_(1.0001) if v.is_floating_point() else v.add_(1))
        if isinstance(value, np.ndarray) and value.size and value.dtype.kind in "iuf":
            return name, (lambda v: v.__iadd__(1))
        if isinstance(value, torch.nn.Module) and any(True for _ in value.parameters()):
            return name, (lambda v: next(v.parameters()).data.zero_())
        if isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            return name, (lambda v: v[0].zero_())
        if isinstance(value, dict) and value:
            return name, (lambda v: v.pop(next(iter(v))))
    return None, None


@pytest.mark.parametrize("module, check", list(_exercise_checkers()))
def test_every_chapters_checker_rejects_an_answer_that_writes_into_its_input(module, check, monkeypatch, capsys):
    """Each checker's own reference, wrapped so that it also writes into its first tensor (array,
    model, list or dict) argument after computing the right result: rejected, naming that argument."""
    import functools
    import inspect

    captured = {}

    def spy(fn, reference, cases, **kwargs):
        captured.update(fn=fn, reference=reference, cases=cases)
        return False

    def stub(*args, **kwargs):
        raise NotImplementedError

    monkeypatch.setattr(module, "check_function", spy)
    try:
        check(stub)
    except TypeError:
        pytest.skip(f"{check.__name__} checks values, not a function")
    monkeypatch.undo()
    if not captured:
        pytest.skip(f"{check.__name__} does not run the answer through check_function")
    if captured["fn"] is not stub:
        pytest.skip(f"{check.__name__} runs the answer inside its own wrapper (on a leaf tensor that requires "
                    "grad, where torch itself refuses an in-place write, reported as the error torch raises)")
    reference = captured["reference"]
    signature = inspect.signature(reference)
    targets = [_first_mutable(_named_arguments(signature, c.args, c.kwargs)) for c in captured["cases"]]
    targets = [t for t in targets if t[0] is not None]
    if not targets:
        pytest.skip(f"{check.__name__}'s arguments are numbers or types: nothing to write into")
    argument = targets[0][0]

    @functools.wraps(reference)
    def writes_into_its_input(*args, **kwargs):
        result = reference(*args, **kwargs)
        named = _named_arguments(signature, args, kwargs)
        name, write = _first_mutable(named)
        if name is not None:
            write(dict(named)[name])
        return result

    capsys.readouterr()
    assert check(writes_into_its_input) is False
    out = capsys.readouterr().out
    assert f"your function changed its argument `{argument}`" in out, out
