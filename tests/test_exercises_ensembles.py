"""Each ensembles checker accepts independent right answers, rejects the wrong answers a learner
plausibly writes (returning False, with a message that names the mistake) and reports an
untouched stub as not attempted."""

from __future__ import annotations

import numpy as np
import pytest
from exercise_contract import contract_tests
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

from compresskit.course.exercises import ensembles as ex


# --- right answers, written independently of compresskit.ensembles ---------------------------

def bootstrap_sample(n_samples, random_state):  # as in solutions/05_ensembles.ipynb
    indices = np.random.default_rng(random_state).integers(0, n_samples, n_samples)
    out_of_bag = np.ones(n_samples, dtype=bool)
    out_of_bag[indices] = False
    return indices, out_of_bag


def bootstrap_sample_by_choice(n_samples, random_state):  # another generator, another API
    indices = np.random.RandomState(random_state).choice(n_samples, size=n_samples, replace=True)
    return indices, np.bincount(indices, minlength=n_samples) == 0


def samme_round(y, y_pred, sample_weight, n_classes, learning_rate):  # as in the solutions
    incorrect = y_pred != y
    error = np.sum(sample_weight * incorrect) / np.sum(sample_weight)
    alpha = learning_rate * (np.log((1 - error) / error) + np.log(n_classes - 1))
    new_weight = sample_weight * np.exp(alpha * incorrect)
    return error, alpha, new_weight / new_weight.sum()


def samme_round_in_a_loop(y, y_pred, sample_weight, n_classes, learning_rate):  # one sample at a time
    total = sum(sample_weight)
    error = sum(w for w, a, b in zip(sample_weight, y, y_pred) if a != b) / total
    alpha = learning_rate * (np.log(1 - error) - np.log(error) + np.log(n_classes - 1))
    scaled = [w * np.exp(alpha) if a != b else w for w, a, b in zip(sample_weight, y, y_pred)]
    return error, alpha, np.array(scaled) / sum(scaled)


def out_of_fold_predictions(estimator, X, y, n_splits):  # as in the solutions
    out = np.zeros((len(X), len(np.unique(y))))
    for train, held_out in StratifiedKFold(n_splits).split(X, y):
        model = clone(estimator).fit(X[train], y[train])
        out[held_out] = model.predict_proba(X[held_out])
    return out


def out_of_fold_by_cross_val_predict(estimator, X, y, n_splits):  # scikit-learn's own
    return cross_val_predict(estimator, X, y, cv=n_splits, method="predict_proba")


# --- plausible wrong answers ---------------------------------------------------------------

def _with_mask(indices, n_samples):
    out_of_bag = np.ones(n_samples, dtype=bool)
    out_of_bag[indices] = False
    return indices, out_of_bag


def half_without_replacement(n_samples, random_state):  # the article's "subsets of half the data"
    return _with_mask(np.random.default_rng(random_state).choice(n_samples, n_samples // 2, replace=False), n_samples)


def a_permutation(n_samples, random_state):  # right size, but without replacement
    return _with_mask(np.random.default_rng(random_state).permutation(n_samples), n_samples)


def never_draws_the_last(n_samples, random_state):  # treats integers' high end as inclusive
    return _with_mask(np.random.default_rng(random_state).integers(0, max(n_samples - 1, 1), n_samples), n_samples)


def may_draw_n(n_samples, random_state):  # endpoint=True: index n_samples is out of range
    indices = np.random.default_rng(random_state).integers(0, n_samples, n_samples, endpoint=True)
    return indices, ~np.isin(np.arange(n_samples), indices)


def mask_of_the_drawn(n_samples, random_state):  # out_of_bag inverted
    indices, out_of_bag = bootstrap_sample(n_samples, random_state)
    return indices, ~out_of_bag


def ignores_the_seed(n_samples, random_state):
    return _with_mask(np.random.default_rng().integers(0, n_samples, n_samples), n_samples)


def two_class_adaboost(y, y_pred, sample_weight, n_classes, learning_rate):  # forgets log(K - 1)
    return samme_round(y, y_pred, sample_weight, 2, learning_rate)


def log_k(y, y_pred, sample_weight, n_classes, learning_rate):  # off by one: log(K), not log(K - 1)
    return samme_round(y, y_pred, sample_weight, n_classes + 1, learning_rate)


def unweighted_error(y, y_pred, sample_weight, n_classes, learning_rate):  # counts mistakes
    error = np.mean(y_pred != y)
    alpha = learning_rate * (np.log((1 - error) / error) + np.log(n_classes - 1))
    new_weight = sample_weight * np.exp(alpha * (y_pred != y))
    return error, alpha, new_weight / new_weight.sum()


def error_not_divided_by_the_weights(y, y_pred, sample_weight, n_classes, learning_rate):
    error = np.sum(sample_weight * (y_pred != y))  # right only when the weights sum to 1
    with np.errstate(invalid="ignore"):  # error > 1 when the weights sum to more than 1
        alpha = learning_rate * (np.log((1 - error) / error) + np.log(n_classes - 1))
    new_weight = sample_weight * np.exp(alpha * (y_pred != y))
    return error, alpha, new_weight / new_weight.sum()


def not_renormalised(y, y_pred, sample_weight, n_classes, learning_rate):
    error, alpha, _ = samme_round(y, y_pred, sample_weight, n_classes, learning_rate)
    return error, alpha, sample_weight * np.exp(alpha * (y_pred != y))


def forgets_the_learning_rate(y, y_pred, sample_weight, n_classes, learning_rate):
    return samme_round(y, y_pred, sample_weight, n_classes, 1.0)


def scales_up_the_right_ones(y, y_pred, sample_weight, n_classes, learning_rate):
    error, alpha, _ = samme_round(y, y_pred, sample_weight, n_classes, learning_rate)
    new_weight = sample_weight * np.exp(alpha * (y_pred == y))
    return error, alpha, new_weight / new_weight.sum()


def in_sample_predictions(estimator, X, y, n_splits):  # leaks every label into its own prediction
    return clone(estimator).fit(X, y).predict_proba(X)


def plain_kfold(estimator, X, y, n_splits):  # folds that ignore the classes
    out = np.zeros((len(X), len(np.unique(y))))
    for train, held_out in KFold(n_splits).split(X, y):
        out[held_out] = clone(estimator).fit(X[train], y[train]).predict_proba(X[held_out])
    return out


def train_and_held_out_swapped(estimator, X, y, n_splits):
    out = np.zeros((len(X), len(np.unique(y))))
    for held_out, train in StratifiedKFold(n_splits).split(X, y):
        out[held_out] = clone(estimator).fit(X[train], y[train]).predict_proba(X[held_out])
    return out


def labels_not_probabilities(estimator, X, y, n_splits):
    out = np.zeros(len(X))
    for train, held_out in StratifiedKFold(n_splits).split(X, y):
        out[held_out] = clone(estimator).fit(X[train], y[train]).predict(X[held_out])
    return out


def stub(*args):
    raise NotImplementedError  # your code here


def fits_the_callers_estimator(estimator, X, y, n_splits):  # estimator.fit(...) instead of clone(estimator).fit(...)
    out = np.zeros((len(X), len(np.unique(y))))
    for train, held_out in StratifiedKFold(n_splits).split(X, y):
        out[held_out] = estimator.fit(X[train], y[train]).predict_proba(X[held_out])
    return out


def normalises_the_callers_weights(y, y_pred, sample_weight, n_classes, learning_rate):
    sample_weight /= sample_weight.sum()  # writes into the caller's array
    return samme_round(y, y_pred, sample_weight, n_classes, learning_rate)


def float_indices(n_samples, random_state):  # rng.uniform(0, n) instead of integers(0, n)
    indices = np.random.default_rng(random_state).uniform(0, n_samples, n_samples)
    return indices, ~np.isin(np.arange(n_samples), indices.astype(int))


WRONG = {
    "bootstrap_sample": (ex.check_bootstrap_sample, bootstrap_sample, [
        (half_without_replacement, "n=10: indices: expected n = 10 draws, got shape (5,): a bootstrap sample is as large as the data, not half"),
        (a_permutation, "n=5000: all 5000 indices are distinct: that is sampling without replacement"),
        (never_draws_the_last, "sample(s) [2] were never drawn in 40 seeds"),
        (may_draw_n, "integers(0, n_samples) already excludes n_samples"),
        (mask_of_the_drawn, "out_of_bag is True for the samples drawn"),
        (ignores_the_seed, "must come from `random_state` only"),
        (float_indices, "indices must be integers (positions of samples); got dtype float64"),
    ]),
    "samme_round": (ex.check_samme_round, samme_round, [
        (two_class_adaboost, "3 classes by hand: estimator_weight: expected 1.79176, got 1.09861: log(K - 1) is missing"),
        (log_k, "log(n_classes) instead of log(n_classes - 1): off by one in the number of classes"),
        (unweighted_error, "10 classes, uneven weights: error: expected"),
        (unweighted_error, "that is the unweighted share of mistakes"),
        (error_not_divided_by_the_weights, "weights that do not sum to 1: error: expected"),
        (error_not_divided_by_the_weights, "divide the weighted mistakes by the sum of the weights"),
        (not_renormalised, "divide the new weights by their sum (renormalise)"),
        (forgets_the_learning_rate, "two classes, learning_rate 0.5: estimator_weight: expected"),
        (forgets_the_learning_rate, "multiply by learning_rate"),
        (scales_up_the_right_ones, "you scaled up the samples classified correctly"),
        (normalises_the_callers_weights, "weights that do not sum to 1: your function changed its argument `sample_weight`"),
    ]),
    "out_of_fold_predictions": (ex.check_out_of_fold_predictions, out_of_fold_predictions, [
        (in_sample_predictions, "a tree, 3 folds: "),
        (in_sample_predictions, "fitted on that very row (in-sample)"),
        (plain_kfold, "these are KFold's folds"),
        (train_and_held_out_swapped, "fitted on one fold and predicted the others"),
        (labels_not_probabilities, "from predict_proba (predict gives labels)"),
        (fits_the_callers_estimator, "your function changed its argument `estimator` (an input must not be modified; "
                                     "work on a copy, e.g. sklearn.base.clone(estimator))"),
    ]),
}

globals().update(contract_tests(WRONG, stub))  # the five contract tests: tests/exercise_contract.py


@pytest.mark.parametrize("check, right", [
    (ex.check_bootstrap_sample, bootstrap_sample_by_choice),
    (ex.check_samme_round, samme_round_in_a_loop),
    (ex.check_out_of_fold_predictions, out_of_fold_by_cross_val_predict),
], ids=lambda v: getattr(v, "__name__", ""))
def test_checker_accepts_a_second_independent_right_answer(check, right, capsys):
    assert check(right) is True
    out = capsys.readouterr().out
    assert "\u2705" in out and "\u274c" not in out


@pytest.mark.parametrize("name", list(WRONG))
def test_a_stub_prints_no_failure(name, capsys):
    assert WRONG[name][0](stub) is False
    out = capsys.readouterr().out
    assert "not attempted yet" in out and "\u274c" not in out


def test_a_learner_bug_is_reported_not_raised(capsys):
    def crashes(n_samples, random_state):
        return np.arange(n_samples)[n_samples]  # IndexError

    assert ex.check_bootstrap_sample(crashes) is False
    assert "raised IndexError" in capsys.readouterr().out
