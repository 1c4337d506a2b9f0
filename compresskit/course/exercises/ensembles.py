"""Exercise checkers for the ensembles chapter. Each ``check_*`` prints feedback and returns a bool.

When an answer is wrong, the checkers try to name the mistake, not only the numbers that
differ: each knows the slips a learner makes most often (sampling without replacement, the
missing ``log(K - 1)``, forgetting to renormalise, in-sample predictions, ...) and says which
one the answer matches. To see the inputs as well as the expected value, the references below
return an :class:`_Expected` (the value and the arguments that produced it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

from compresskit.course.checker import Case, check_function, close, describe, report_failure
from compresskit.ensembles import bootstrap_sample, out_of_fold_predictions, samme_round


@dataclass
class _Expected:
    """A reference's result together with the inputs it was computed from."""

    value: Any
    args: tuple


def _with_inputs(reference: Callable[..., Any]) -> Callable[..., _Expected]:
    return lambda *args: _Expected(reference(*args), args)


def _number(value: Any) -> str:
    """A number as a learner reads it (``1.09861``, not ``np.float64(1.0986122886681098)``)."""
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return describe(value)


def _first_match(got: Any, candidates: dict[str, Callable[[], np.ndarray]], **tolerance: float) -> str | None:
    """The message of the first plausible mistake whose result ``got`` equals."""
    try:
        got = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return None
    for message, compute in candidates.items():
        with np.errstate(all="ignore"):
            candidate = np.asarray(compute(), dtype=float)
        if candidate.shape == got.shape and np.allclose(got, candidate, **tolerance):
            return message
    return None


# --- Exercise 1: a bootstrap sampler ----------------------------------------------------------

def _bootstrap_properties(expected: _Expected, got: Any) -> str | None:
    """Any seeded draw is right if it has the properties of a bootstrap sample; the exact
    numbers depend on the generator the learner picked."""
    n = expected.args[0]
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        return f"expected a pair (indices, out_of_bag), got {describe(got)}"
    indices, out_of_bag = np.asarray(got[0]), np.asarray(got[1])
    if indices.shape != (n,):
        reason = f"indices: expected n = {n} draws, got shape {indices.shape}"
        if indices.ndim == 1 and len(indices) == n // 2:
            reason += ": a bootstrap sample is as large as the data, not half of it"
        return reason
    if not np.issubdtype(indices.dtype, np.integer):
        return f"indices must be integers (positions of samples); got dtype {indices.dtype}"
    if indices.min() < 0 or indices.max() >= n:
        reason = f"indices must lie in [0, {n}); got range [{indices.min()}, {indices.max()}]"
        if indices.max() == n:
            reason += ": integers(0, n_samples) already excludes n_samples (the high end is exclusive)"
        return reason
    if out_of_bag.shape != (n,) or out_of_bag.dtype != bool:
        return f"out_of_bag: expected a boolean mask of shape ({n},), got {out_of_bag.dtype} of shape {out_of_bag.shape}"
    never_drawn = ~np.isin(np.arange(n), indices)
    if not np.array_equal(out_of_bag, never_drawn):
        if np.array_equal(out_of_bag, ~never_drawn):
            return "out_of_bag is True for the samples drawn; it must be True for the samples never drawn (invert it)"
        return "out_of_bag must be True exactly for the samples your indices never drew"
    unique = len(np.unique(indices)) / n
    expected_unique = 1 - (1 - 1 / n) ** n
    if n >= 1000 and unique == 1.0:
        return (f"all {n} indices are distinct: that is sampling without replacement (a permutation); "
                f"draw with replacement, so that about {1 - expected_unique:.1%} of the samples are never drawn")
    if n >= 1000 and abs(unique - expected_unique) > 0.02:
        return f"{unique:.1%} of the samples were drawn; a bootstrap sample holds about {expected_unique:.1%} (draw with replacement)"
    return None


def _every_index_reachable(fn: Callable[[int, int], Any], n: int = 3, seeds: int = 40) -> str | None:
    """Over many seeds, every one of the n samples must be drawn at least once."""
    drawn = np.zeros(n, dtype=bool)
    for seed in range(seeds):
        indices = np.asarray(fn(n, seed)[0])
        drawn[indices[(indices >= 0) & (indices < n)].astype(int)] = True
    if not drawn.all():
        never = np.flatnonzero(~drawn).tolist()
        return (f"with n_samples = {n}, sample(s) {never} were never drawn in {seeds} seeds: every sample "
                "must be possible; integers(0, n_samples) draws from 0 to n_samples - 1 (the high end is exclusive)")
    return None


def check_bootstrap_sample(fn: Callable[[int, int], tuple[np.ndarray, np.ndarray]]) -> bool:
    """``fn(n_samples, random_state)`` -> ``(indices, out_of_bag)``: n draws with replacement
    and the mask of samples never drawn; the same ``random_state`` gives the same draw."""
    ok = check_function(fn, reference=_with_inputs(lambda n, seed: bootstrap_sample(n, random_state=seed)), cases=[
        Case("n=1", (1, 0)),
        Case("n=10", (10, 1)),
        Case("n=5000", (5000, 2)),
        Case("n=20000", (20000, 3)),
    ], name="bootstrap_sample", compare=_bootstrap_properties,
        hint="np.random.default_rng(random_state).integers(0, n_samples, n_samples); "
             "out_of_bag[i] is True when i is not among the indices")
    try:
        fn(3, 0)
    except NotImplementedError:
        return False  # reported as not attempted above
    except Exception:  # noqa: BLE001 - the learner's bug, already reported case by case
        return False
    problems = []
    try:
        problems.append(_every_index_reachable(fn))
        if ok:
            same = np.array_equal(np.asarray(fn(1000, 7)[0]), np.asarray(fn(1000, 7)[0]))
            different = not np.array_equal(np.asarray(fn(1000, 7)[0]), np.asarray(fn(1000, 8)[0]))
            if not (same and different):
                problems.append("the draw must come from `random_state` only "
                                "(same seed, same indices; another seed, other indices)")
    except Exception as exc:  # the learner's bug, reported, not raised
        problems.append(f"raised {type(exc).__name__}: {exc}")
    problems = [p for p in problems if p]
    for problem in problems:
        report_failure("bootstrap_sample", problem)
    return ok and not problems


# --- Exercise 2: one SAMME round -------------------------------------------------------------

def _samme_diagnosis(expected: _Expected, got: Any) -> str | None:
    y, y_pred, w, k, lr = expected.args
    error, alpha, new_weight = expected.value
    if not (isinstance(got, (tuple, list)) and len(got) == 3):
        return f"expected a triple (error, estimator_weight, new_sample_weight), got {describe(got)}"
    incorrect = y_pred != y
    got_error, got_alpha = got[0], got[1]
    if close(error, got_error, rtol=1e-6, atol=1e-9):
        mistake = _first_match(got_error, {
            "that is the unweighted share of mistakes; weight each mistake by its sample_weight":
                lambda: np.mean(incorrect),
            "divide the weighted mistakes by the sum of the weights (they need not sum to 1)":
                lambda: np.sum(w * incorrect),
            "that is the weighted share of correct predictions, not of mistakes":
                lambda: 1 - error,
        }, rtol=1e-6, atol=1e-9)
        return f"error: expected {error:.6g}, got {_number(got_error)}" + (f": {mistake}" if mistake else "")
    if close(alpha, got_alpha, rtol=1e-6, atol=1e-9):
        two_class = np.log((1 - error) / error)
        mistake = _first_match(got_alpha, {
            "log(K - 1) is missing: SAMME adds log(n_classes - 1) to two-class AdaBoost's log((1 - error) / error)":
                lambda: lr * two_class,
            "log(n_classes) instead of log(n_classes - 1): off by one in the number of classes":
                lambda: lr * (two_class + np.log(k)),
            "log(n_classes - 2) instead of log(n_classes - 1): off by one in the number of classes":
                lambda: lr * (two_class + np.log(k - 2)) if k > 2 else np.nan,
            "multiply by learning_rate":
                lambda: two_class + np.log(k - 1),
        }, rtol=1e-6, atol=1e-9)
        return f"estimator_weight: expected {alpha:.6g}, got {_number(got_alpha)}" + (f": {mistake}" if mistake else "")
    got_weight = np.asarray(got[2], dtype=float)
    if got_weight.shape != new_weight.shape:
        return f"new_sample_weight: expected shape {new_weight.shape}, got {got_weight.shape}"
    if not np.allclose(got_weight, new_weight, rtol=1e-6, atol=1e-9):
        total = got_weight.sum()
        if not np.isclose(total, 1.0):
            return f"new_sample_weight sums to {total:.6g}, not 1: divide the new weights by their sum (renormalise)"
        mistake = _first_match(got_weight, {
            "you scaled up the samples classified correctly; multiply the mistakes' weights by exp(estimator_weight)":
                lambda: (u := w * np.exp(alpha * ~incorrect)) / u.sum(),
            "the update must use the estimator weight with learning_rate in it, exp(estimator_weight)":
                lambda: (u := w * np.exp(alpha / lr * incorrect)) / u.sum(),
            "every weight got the same factor, which renormalising undoes; only the mistakes are scaled up":
                lambda: w / w.sum(),
        }, rtol=1e-6, atol=1e-9)
        differ = int((~np.isclose(got_weight, new_weight, rtol=1e-6, atol=1e-9)).sum())
        return f"new_sample_weight: {differ} of {len(new_weight)} weights differ" + (f": {mistake}" if mistake else "")
    return None


def check_samme_round(fn: Callable[..., tuple[float, float, np.ndarray]]) -> bool:
    """``fn(y, y_pred, sample_weight, n_classes, learning_rate)`` -> ``(error, estimator_weight,
    new_sample_weight)``, one round of SAMME, with the new weights summing to 1."""
    rng = np.random.default_rng(0)
    y10 = rng.integers(0, 10, 40)
    pred10 = np.where(rng.random(40) < 0.3, (y10 + 1) % 10, y10)
    w10 = rng.random(40)
    return check_function(fn, reference=_with_inputs(samme_round), cases=[
        Case("3 classes by hand", (np.array([0, 1, 2, 0]), np.array([0, 1, 1, 0]), np.full(4, 0.25), 3, 1.0)),
        Case("10 classes, uneven weights", (y10, pred10, w10 / w10.sum(), 10, 1.0)),
        Case("weights that do not sum to 1", (y10, pred10, w10, 10, 1.0)),
        Case("two classes, learning_rate 0.5", (np.array([0, 1, 1, 0, 1]), np.array([0, 1, 0, 0, 1]), np.full(5, 0.2), 2, 0.5)),
        Case("10 classes, learning_rate 0.5", (y10, pred10, w10 / w10.sum(), 10, 0.5)),
        Case("error above 1/2 with 10 classes", (y10, np.where(np.arange(40) < 24, (y10 + 1) % 10, y10), np.full(40, 1 / 40), 10, 1.0)),
    ], name="samme_round", compare=_samme_diagnosis,
        hint="error = weighted share of mistakes; alpha = learning_rate * (log((1-error)/error) + log(K-1)); "
             "multiply the mistakes' weights by exp(alpha), then divide by the sum")


# --- Exercise 3: out-of-fold predictions -----------------------------------------------------

def _folds_predicted(estimator: Any, X: np.ndarray, y: np.ndarray, splits: Any, swap: bool = False) -> np.ndarray:
    out = np.zeros((len(X), len(np.unique(y))))
    for train, held_out in splits:
        if swap:
            train, held_out = held_out, train
        out[held_out] = clone(estimator).fit(X[train], y[train]).predict_proba(X[held_out])
    return out


def _oof_diagnosis(expected: _Expected, got: Any) -> str | None:
    estimator, X, y, k = expected.args
    want = expected.value
    got_arr = np.asarray(got)
    if got_arr.shape != want.shape:
        reason = f"expected class probabilities of shape {want.shape}, got shape {got_arr.shape}"
        if got_arr.shape == (len(X),):
            reason += ": one column per class, from predict_proba (predict gives labels)"
        return reason
    got_arr = got_arr.astype(float)
    wrong_rows = ~np.isclose(got_arr, want, atol=1e-6).all(axis=1)
    if not wrong_rows.any():
        return None
    mistake = _first_match(got_arr, {
        "each row was predicted by a model fitted on that very row (in-sample); fit every copy on the other folds only":
            lambda: clone(estimator).fit(X, y).predict_proba(X),
        "these are KFold's folds; StratifiedKFold(n_splits) keeps each class's share in every fold":
            lambda: _folds_predicted(estimator, X, y, KFold(k).split(X, y)),
        "each copy was fitted on one fold and predicted the others; split() yields (train, held_out), in that order":
            lambda: _folds_predicted(estimator, X, y, StratifiedKFold(k).split(X, y), swap=True),
    }, atol=1e-6)
    return (f"{int(wrong_rows.sum())} of {len(X)} rows differ" + (f": {mistake}" if mistake else
            ": row i must come from the copy fitted without the fold that holds i"))


def check_out_of_fold_predictions(fn: Callable[..., np.ndarray]) -> bool:
    """``fn(estimator, X, y, n_splits)`` -> (n_samples, n_classes) class probabilities, each
    row from a copy of ``estimator`` fitted on the folds that do not hold that sample
    (``StratifiedKFold(n_splits)``, no shuffling)."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return check_function(fn, reference=_with_inputs(lambda est, X, y, k: out_of_fold_predictions(est, X, y, n_splits=k)), cases=[
        Case("a tree, 3 folds", (DecisionTreeClassifier(max_depth=4, random_state=0), X[:150], y[:150], 3)),
        Case("logistic regression, 5 folds", (LogisticRegression(max_iter=300), X[150:400], y[150:400], 5)),
        Case("two classes, 2 folds", (DecisionTreeClassifier(max_depth=2, random_state=0), X[y < 2][:60], y[y < 2][:60], 2)),
    ], name="out_of_fold_predictions", compare=_oof_diagnosis,
        hint="for train, held_out in StratifiedKFold(n_splits).split(X, y): fit clone(estimator) on "
             "X[train] and write its predict_proba(X[held_out]) into those rows")
