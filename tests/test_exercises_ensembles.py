"""Each ensembles checker accepts a right answer, rejects a plausible wrong one (returning False
and printing the failing case) and reports an untouched stub as not attempted."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from compresskit.course.exercises import ensembles as ex


# --- solutions, as in solutions/05_ensembles.ipynb -------------------------------------------

def bootstrap_sample(n_samples, random_state):
    indices = np.random.default_rng(random_state).integers(0, n_samples, n_samples)
    out_of_bag = np.ones(n_samples, dtype=bool)
    out_of_bag[indices] = False
    return indices, out_of_bag


def samme_round(y, y_pred, sample_weight, n_classes, learning_rate):
    incorrect = y_pred != y
    error = np.sum(sample_weight * incorrect) / np.sum(sample_weight)
    alpha = learning_rate * (np.log((1 - error) / error) + np.log(n_classes - 1))
    new_weight = sample_weight * np.exp(alpha * incorrect)
    return error, alpha, new_weight / new_weight.sum()


def out_of_fold_predictions(estimator, X, y, n_splits):
    out = np.zeros((len(X), len(np.unique(y))))
    for train, held_out in StratifiedKFold(n_splits).split(X, y):
        model = clone(estimator).fit(X[train], y[train])
        out[held_out] = model.predict_proba(X[held_out])
    return out


# --- plausible wrong answers ---------------------------------------------------------------

def half_without_replacement(n_samples, random_state):  # the article's "subsets of half the data"
    indices = np.random.default_rng(random_state).choice(n_samples, n_samples // 2, replace=False)
    out_of_bag = np.ones(n_samples, dtype=bool)
    out_of_bag[indices] = False
    return indices, out_of_bag


def ignores_the_seed(n_samples, random_state):
    indices = np.random.default_rng().integers(0, n_samples, n_samples)
    out_of_bag = np.ones(n_samples, dtype=bool)
    out_of_bag[indices] = False
    return indices, out_of_bag


def two_class_adaboost(y, y_pred, sample_weight, n_classes, learning_rate):  # forgets log(K - 1)
    return samme_round(y, y_pred, sample_weight, 2, learning_rate)


def in_sample_predictions(estimator, X, y, n_splits):  # leaks every label into its own prediction
    return clone(estimator).fit(X, y).predict_proba(X)


def stub(*args):
    raise NotImplementedError  # your code here


CHECKS = [
    (ex.check_bootstrap_sample, bootstrap_sample, half_without_replacement, "n=10: indices: expected n = 10 draws"),
    (ex.check_bootstrap_sample, bootstrap_sample, ignores_the_seed, "must come from `random_state` only"),
    (ex.check_samme_round, samme_round, two_class_adaboost, "10 classes, uneven weights"),
    (ex.check_out_of_fold_predictions, out_of_fold_predictions, in_sample_predictions, "a tree, 3 folds"),
]


@pytest.mark.parametrize("check, right, wrong, message", CHECKS, ids=lambda v: getattr(v, "__name__", ""))
def test_checker_accepts_right_and_rejects_wrong(check, right, wrong, message, capsys):
    assert check(right) is True
    assert "\u2705" in capsys.readouterr().out
    assert check(wrong) is False
    assert message in capsys.readouterr().out


@pytest.mark.parametrize("check", [ex.check_bootstrap_sample, ex.check_samme_round, ex.check_out_of_fold_predictions])
def test_stub_is_not_attempted(check, capsys):
    assert check(stub) is False
    assert "not attempted yet" in capsys.readouterr().out


def test_a_learner_bug_is_reported_not_raised(capsys):
    def crashes(n_samples, random_state):
        return np.arange(n_samples)[n_samples]  # IndexError

    assert ex.check_bootstrap_sample(crashes) is False
    assert "raised IndexError" in capsys.readouterr().out
