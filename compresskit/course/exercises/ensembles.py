"""Exercise checkers for the ensembles chapter. Each ``check_*`` prints feedback and returns a bool."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from compresskit.course.checker import FAIL, Case, check_function, close
from compresskit.ensembles import bootstrap_sample, out_of_fold_predictions, samme_round


def _bootstrap_properties(expected: Any, got: Any) -> str | None:
    """Any seeded draw is right if it has the properties of a bootstrap sample; the exact
    numbers depend on the generator the learner picked."""
    n = len(expected[1])
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        return f"expected a pair (indices, out_of_bag), got {type(got).__name__}"
    indices, out_of_bag = np.asarray(got[0]), np.asarray(got[1])
    if indices.shape != (n,):
        return f"indices: expected n = {n} draws, got shape {indices.shape}"
    if not np.issubdtype(indices.dtype, np.integer) or indices.min() < 0 or indices.max() >= n:
        return f"indices must be integers in [0, {n}); got dtype {indices.dtype}, range [{indices.min()}, {indices.max()}]"
    if out_of_bag.shape != (n,) or out_of_bag.dtype != bool:
        return f"out_of_bag: expected a boolean mask of shape ({n},), got {out_of_bag.dtype} of shape {out_of_bag.shape}"
    if not np.array_equal(out_of_bag, ~np.isin(np.arange(n), indices)):
        return "out_of_bag must be True exactly for the samples your indices never drew"
    unique = len(np.unique(indices)) / n
    expected_unique = 1 - (1 - 1 / n) ** n
    if n >= 1000 and abs(unique - expected_unique) > 0.02:
        return f"{unique:.1%} of the samples were drawn; a bootstrap sample holds about {expected_unique:.1%} (draw with replacement)"
    return None


def check_bootstrap_sample(fn: Callable[[int, int], tuple[np.ndarray, np.ndarray]]) -> bool:
    """``fn(n_samples, random_state)`` -> ``(indices, out_of_bag)``: n draws with replacement
    and the mask of samples never drawn; the same ``random_state`` gives the same draw."""
    ok = check_function(fn, reference=lambda n, seed: bootstrap_sample(n, random_state=seed), cases=[
        Case("n=1", (1, 0)),
        Case("n=10", (10, 1)),
        Case("n=5000", (5000, 2)),
        Case("n=20000", (20000, 3)),
    ], name="bootstrap_sample", compare=_bootstrap_properties,
        hint="np.random.default_rng(random_state).integers(0, n_samples, n_samples); "
             "out_of_bag[i] is True when i is not among the indices")
    if ok:
        try:
            same = np.array_equal(np.asarray(fn(1000, 7)[0]), np.asarray(fn(1000, 7)[0]))
            different = not np.array_equal(np.asarray(fn(1000, 7)[0]), np.asarray(fn(1000, 8)[0]))
        except Exception as exc:  # the learner's bug, reported, not raised
            print(f"{FAIL} bootstrap_sample: raised {type(exc).__name__}: {exc}")
            return False
        if not (same and different):
            print(f"{FAIL} bootstrap_sample: the draw must come from `random_state` only "
                  "(same seed, same indices; another seed, other indices)")
            return False
    return ok


def check_samme_round(fn: Callable[..., tuple[float, float, np.ndarray]]) -> bool:
    """``fn(y, y_pred, sample_weight, n_classes, learning_rate)`` -> ``(error, estimator_weight,
    new_sample_weight)``, one round of SAMME, with the new weights summing to 1."""
    rng = np.random.default_rng(0)
    y10 = rng.integers(0, 10, 40)
    pred10 = np.where(rng.random(40) < 0.3, (y10 + 1) % 10, y10)
    w10 = rng.random(40)
    return check_function(fn, reference=samme_round, cases=[
        Case("3 classes by hand", (np.array([0, 1, 2, 0]), np.array([0, 1, 1, 0]), np.full(4, 0.25), 3, 1.0)),
        Case("10 classes, uneven weights", (y10, pred10, w10 / w10.sum(), 10, 1.0)),
        Case("weights that do not sum to 1", (y10, pred10, w10, 10, 1.0)),
        Case("two classes, learning_rate 0.5", (np.array([0, 1, 1, 0, 1]), np.array([0, 1, 0, 0, 1]), np.full(5, 0.2), 2, 0.5)),
        Case("error above 1/2 with 10 classes", (y10, np.where(np.arange(40) < 24, (y10 + 1) % 10, y10), np.full(40, 1 / 40), 10, 1.0)),
    ], name="samme_round", compare=lambda e, g: close(e, g, rtol=1e-6, atol=1e-9),
        hint="error = weighted share of mistakes; alpha = learning_rate * (log((1-error)/error) + log(K-1)); "
             "multiply the mistakes' weights by exp(alpha), then divide by the sum")


def check_out_of_fold_predictions(fn: Callable[..., np.ndarray]) -> bool:
    """``fn(estimator, X, y, n_splits)`` -> (n_samples, n_classes) class probabilities, each
    row from a copy of ``estimator`` fitted on the folds that do not hold that sample
    (``StratifiedKFold(n_splits)``, no shuffling)."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return check_function(fn, reference=lambda est, X, y, k: out_of_fold_predictions(est, X, y, n_splits=k), cases=[
        Case("a tree, 3 folds", (DecisionTreeClassifier(max_depth=4, random_state=0), X[:150], y[:150], 3)),
        Case("logistic regression, 5 folds", (LogisticRegression(max_iter=300), X[150:400], y[150:400], 5)),
        Case("two classes, 2 folds", (DecisionTreeClassifier(max_depth=2, random_state=0), X[y < 2][:60], y[y < 2][:60], 2)),
    ], name="out_of_fold_predictions",
        hint="for train, held_out in StratifiedKFold(n_splits).split(X, y): fit clone(estimator) on "
             "X[train] and write its predict_proba(X[held_out]) into those rows")
