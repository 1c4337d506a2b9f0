"""Each ensembles checker accepts independent right answers, rejects the wrong answers a learner
plausibly writes (returning False, with a message that names the mistake) and reports an
untouched stub as not attempted."""

from __future__ import annotations

import numpy as np
import pytest
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


RIGHT = [
    (ex.check_bootstrap_sample, bootstrap_sample),
    (ex.check_bootstrap_sample, bootstrap_sample_by_choice),
    (ex.check_samme_round, samme_round),
    (ex.check_samme_round, samme_round_in_a_loop),
    (ex.check_out_of_fold_predictions, out_of_fold_predictions),
    (ex.check_out_of_fold_predictions, out_of_fold_by_cross_val_predict),
]

WRONG = [
    (ex.check_bootstrap_sample, half_without_replacement, "n=10: indices: expected n = 10 draws, got shape (5,): a bootstrap sample is as large as the data, not half"),
    (ex.check_bootstrap_sample, a_permutation, "n=5000: all 5000 indices are distinct: that is sampling without replacement"),
    (ex.check_bootstrap_sample, never_draws_the_last, "sample(s) [2] were never drawn in 40 seeds"),
    (ex.check_bootstrap_sample, may_draw_n, "integers(0, n_samples) already excludes n_samples"),
    (ex.check_bootstrap_sample, mask_of_the_drawn, "out_of_bag is True for the samples drawn"),
    (ex.check_bootstrap_sample, ignores_the_seed, "must come from `random_state` only"),
    (ex.check_samme_round, two_class_adaboost, "3 classes by hand: estimator_weight: expected 1.79176, got 1.09861: log(K - 1) is missing"),
    (ex.check_samme_round, log_k, "log(n_classes) instead of log(n_classes - 1): off by one in the number of classes"),
    (ex.check_samme_round, unweighted_error, "10 classes, uneven weights: error: expected"),
    (ex.check_samme_round, unweighted_error, "that is the unweighted share of mistakes"),
    (ex.check_samme_round, error_not_divided_by_the_weights, "weights that do not sum to 1: error: expected"),
    (ex.check_samme_round, error_not_divided_by_the_weights, "divide the weighted mistakes by the sum of the weights"),
    (ex.check_samme_round, not_renormalised, "divide the new weights by their sum (renormalise)"),
    (ex.check_samme_round, forgets_the_learning_rate, "two classes, learning_rate 0.5: estimator_weight: expected"),
    (ex.check_samme_round, forgets_the_learning_rate, "multiply by learning_rate"),
    (ex.check_samme_round, scales_up_the_right_ones, "you scaled up the samples classified correctly"),
    (ex.check_out_of_fold_predictions, in_sample_predictions, "a tree, 3 folds: "),
    (ex.check_out_of_fold_predictions, in_sample_predictions, "fitted on that very row (in-sample)"),
    (ex.check_out_of_fold_predictions, plain_kfold, "these are KFold's folds"),
    (ex.check_out_of_fold_predictions, train_and_held_out_swapped, "fitted on one fold and predicted the others"),
    (ex.check_out_of_fold_predictions, labels_not_probabilities, "from predict_proba (predict gives labels)"),
]


@pytest.mark.parametrize("check, right", RIGHT, ids=lambda v: getattr(v, "__name__", ""))
def test_checker_accepts_an_independent_right_answer(check, right, capsys):
    assert check(right) is True
    out = capsys.readouterr().out
    assert "\u2705" in out and "\u274c" not in out


@pytest.mark.parametrize("check, wrong, message", WRONG, ids=lambda v: getattr(v, "__name__", None) or "")
def test_checker_rejects_a_plausible_mistake_and_names_it(check, wrong, message, capsys):
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "\u274c" in out
    assert message in out, out


def test_every_exercise_has_at_least_three_wrong_answers():
    wrong_answers = {}
    for check, wrong, _ in WRONG:
        wrong_answers.setdefault(check, set()).add(wrong)
    assert {check: len(w) >= 3 for check, w in wrong_answers.items()} == {
        ex.check_bootstrap_sample: True, ex.check_samme_round: True, ex.check_out_of_fold_predictions: True}


@pytest.mark.parametrize("check", [ex.check_bootstrap_sample, ex.check_samme_round, ex.check_out_of_fold_predictions])
def test_stub_is_not_attempted(check, capsys):
    assert check(stub) is False
    out = capsys.readouterr().out
    assert "not attempted yet" in out and "\u274c" not in out


def test_a_learner_bug_is_reported_not_raised(capsys):
    def crashes(n_samples, random_state):
        return np.arange(n_samples)[n_samples]  # IndexError

    assert ex.check_bootstrap_sample(crashes) is False
    assert "raised IndexError" in capsys.readouterr().out
