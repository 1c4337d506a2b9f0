"""compresskit.ensembles: scikit-learn's estimator checks, hand-computed cases, agreement with
scikit-learn's own ensembles, ensemble distillation, and clear errors on bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sklearn.ensemble as sk
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict, cross_val_score, train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from compresskit.ensembles import (
    AdaBoostClassifier,
    BaggingClassifier,
    GradientBoostingClassifier,
    StackingClassifier,
    bootstrap_sample,
    distill_ensemble,
    multinomial_negative_gradient,
    munge,
    newton_leaf_values,
    out_of_fold_predictions,
    random_subspace,
    samme_round,
    soft_cross_entropy,
    subsample_mask,
)


def small_stacking() -> StackingClassifier:
    return StackingClassifier([("tree", DecisionTreeClassifier(max_depth=3, random_state=0)), ("nb", GaussianNB())], cv=3)


# Small n_estimators keep the ~50 checks per estimator fast. No check is expected to fail.
# (Three bagged members leave some samples never out of bag, which our bagging warns about.)
@pytest.mark.filterwarnings("ignore:.*no out-of-bag prediction:UserWarning")
@parametrize_with_checks(
    [
        BaggingClassifier(n_estimators=3, oob_score=True, random_state=0),
        AdaBoostClassifier(n_estimators=5, random_state=0),
        GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0),
        small_stacking(),
        # The scikit-learn parameters that change the algorithm pass the same checks.
        BaggingClassifier(n_estimators=3, max_features=0.5, bootstrap_features=True, oob_score=True, random_state=0),
        GradientBoostingClassifier(n_estimators=5, max_depth=2, subsample=0.5, random_state=0),
        StackingClassifier(small_stacking().estimators, cv=3, passthrough=True),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


# --- bagging ---------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), seed=st.integers(0, 2**31 - 1))
def test_bootstrap_sample_draws_n_with_replacement_and_marks_the_rest_out_of_bag(n, seed):
    indices, out_of_bag = bootstrap_sample(n, random_state=seed)
    assert indices.shape == (n,) and indices.min() >= 0 and indices.max() < n
    np.testing.assert_array_equal(out_of_bag, ~np.isin(np.arange(n), indices))
    again, _ = bootstrap_sample(n, random_state=seed)
    np.testing.assert_array_equal(indices, again)


def test_bootstrap_sample_holds_about_63_percent_of_the_samples_not_half():
    n = 20_000
    unique = [len(np.unique(bootstrap_sample(n, random_state=s)[0])) / n for s in range(5)]
    expected = 1 - (1 - 1 / n) ** n  # Eq. (2): 0.6321...
    assert abs(np.mean(unique) - expected) < 0.005
    assert min(unique) > 0.6  # far from the "half of the data" the article claims


def test_bagging_averages_its_members_probabilities(digits):
    X, y = digits
    bag = BaggingClassifier(n_estimators=4, random_state=0).fit(X[:300], y[:300])
    by_hand = np.mean([m.predict_proba(X[300:400]) for m in bag.estimators_], axis=0)
    np.testing.assert_allclose(bag.predict_proba(X[300:400]), by_hand)
    for member, indices in zip(bag.estimators_, bag.estimators_samples_):
        assert member.get_depth() > 1 and len(indices) == 300  # n draws each, full-grown trees
    assert len({m.random_state for m in bag.estimators_}) == 4  # each member seeded on its own


def test_bagging_oob_score_is_the_vote_of_the_members_that_did_not_see_a_sample(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    bag = BaggingClassifier(n_estimators=25, oob_score=True, random_state=0).fit(X_train, y_train)
    votes = np.zeros(10)
    for member, indices in zip(bag.estimators_, bag.estimators_samples_):
        if 0 not in indices:
            votes += member.predict_proba(X_train[:1])[0]
    np.testing.assert_allclose(bag.oob_decision_function_[0], votes / votes.sum())
    assert abs(bag.oob_score_ - bag.score(X_test, y_test)) < 0.05  # an honest held-out estimate


def test_bagging_warns_when_a_sample_is_never_out_of_bag():
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10) % 2
    with pytest.warns(UserWarning, match="no out-of-bag prediction"):
        BaggingClassifier(n_estimators=1, oob_score=True, random_state=0).fit(X, y)


def test_bagging_members_that_missed_a_class_give_it_zero_probability():
    X, y = load_iris(return_X_y=True)
    bag = BaggingClassifier(n_estimators=10, max_samples=0.02, random_state=0).fit(X, y)  # 3 draws each
    assert any(len(m.classes_) < 3 for m in bag.estimators_)
    proba = bag.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_bagging_votes_with_members_that_have_no_predict_proba(digits):
    X, y = digits
    bag = BaggingClassifier(LinearSVC(), n_estimators=3, random_state=0).fit(X[:400], y[:400])
    proba = bag.predict_proba(X[400:450])
    assert set(np.unique(proba * 3).round(6)) <= {0.0, 1.0, 2.0, 3.0}  # one vote per member
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_random_subspace_draws_distinct_features_or_with_replacement():
    features = random_subspace(64, 16, random_state=0)
    assert len(set(features.tolist())) == 16 and features.min() >= 0 and features.max() < 64
    np.testing.assert_array_equal(features, random_subspace(64, 16, random_state=0))
    drawn = random_subspace(5, 40, bootstrap_features=True, random_state=0)  # more draws than features
    assert drawn.shape == (40,) and set(drawn.tolist()) == set(range(5))


def test_bagging_random_subspaces_fit_each_member_on_its_own_features(digits):
    X, y = digits
    bag = BaggingClassifier(n_estimators=5, max_features=0.25, random_state=0).fit(X[:300], y[:300])
    assert [len(f) for f in bag.estimators_features_] == [16] * 5  # int(0.25 * 64), as scikit-learn
    assert all(len(set(f.tolist())) == 16 for f in bag.estimators_features_)  # without replacement
    assert all(m.n_features_in_ == 16 for m in bag.estimators_)
    by_hand = np.mean([m.predict_proba(X[300:400][:, f]) for m, f in zip(bag.estimators_, bag.estimators_features_)], axis=0)
    np.testing.assert_allclose(bag.predict_proba(X[300:400]), by_hand)
    for member, features, indices in zip(bag.estimators_, bag.estimators_features_, bag.estimators_samples_):
        refit = clone(member).fit(X[:300][indices][:, features], y[:300][indices])
        np.testing.assert_array_equal(refit.predict(X[300:][:, features]), member.predict(X[300:][:, features]))
    with_replacement = BaggingClassifier(n_estimators=5, max_features=64, bootstrap_features=True, random_state=0).fit(X[:300], y[:300])
    assert all(len(set(f.tolist())) < 64 for f in with_replacement.estimators_features_)  # repeats: ~63% distinct
    plain = BaggingClassifier(n_estimators=3, random_state=0).fit(X[:300], y[:300])
    assert all(np.array_equal(f, np.arange(64)) for f in plain.estimators_features_)


def test_random_subspaces_have_the_out_of_bag_estimate_too(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    bag = BaggingClassifier(n_estimators=30, max_features=0.5, oob_score=True, random_state=0).fit(X_train, y_train)
    assert abs(bag.oob_score_ - bag.score(X_test, y_test)) < 0.05


# --- SAMME -----------------------------------------------------------------------------

def test_samme_round_by_hand():
    y = np.array([0, 1, 2, 0])
    y_pred = np.array([0, 1, 1, 0])
    error, alpha, weight = samme_round(y, y_pred, np.full(4, 0.25), n_classes=3)
    assert error == pytest.approx(0.25)
    assert alpha == pytest.approx(np.log(3) + np.log(2))  # log((1-e)/e) + log(K-1)
    np.testing.assert_allclose(weight, np.array([1, 1, 6, 1]) / 9)  # the mistake's weight x e^alpha = 6


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_classes=st.integers(2, 12), learning_rate=st.floats(0.05, 2.0))
def test_samme_round_properties(seed, n_classes, learning_rate):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, 30)
    y_pred = np.where(np.arange(30) < 10, (y + 1) % n_classes, y)  # 10 of 30 wrong
    weight = rng.random(30) + 0.1
    error, alpha, new = samme_round(y, y_pred, weight, n_classes, learning_rate)
    assert new.sum() == pytest.approx(1.0)
    wrong = y_pred != y
    np.testing.assert_allclose(new[wrong] / weight[wrong], np.exp(alpha) * new[~wrong][0] / weight[~wrong][0])
    assert (alpha > 0) == (error < 1 - 1 / n_classes)  # positive exactly when better than chance


@pytest.mark.parametrize(
    "args, error, match",
    [
        (([0, 1, 1], [0, 1], [0.5, 0.5, 0.0]), ValueError, r"same length; got 3, 2 and 3"),
        (([0, 1], [0, 1], [0.5, 0.5, 0.0]), ValueError, r"same length; got 2, 2 and 3"),
        (([0, 1], [0, 0], [1.0, -0.5]), ValueError, r"`sample_weight` must be >= 0; got 1 negative value\(s\), the lowest -0.5"),
        (([0, 1], [0, 0], [np.nan, 1.0]), ValueError, r"`sample_weight` must be finite; got 1 NaN"),
        (([0, 1], [0, 0], [0.0, 0.0]), ValueError, r"`sample_weight` must have a positive sum"),
        (([[0, 1]], [[0, 1]], [1.0]), ValueError, r"`y` must have 1 dimensions; got shape \(1, 2\)"),
        ((["a", "b"], ["a", "a"], [1.0, 1.0]), TypeError, r"`y` must hold numbers"),
    ],
    ids=["y_pred short", "weights long", "negative weight", "NaN weight", "weights sum to 0", "2-D y", "string labels"],
)
def test_samme_round_refuses_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        samme_round(*map(np.asarray, args), n_classes=2)


@pytest.mark.parametrize("learning_rate", [0.0, -1.0, np.nan])
def test_samme_round_refuses_a_learning_rate_that_is_not_positive(learning_rate):
    with pytest.raises(ValueError, match=r"`learning_rate` must be in \(0, inf\); got"):
        samme_round(np.array([0, 1]), np.array([0, 0]), np.array([0.5, 0.5]), 2, learning_rate)


def test_samme_with_two_classes_is_adaboost():
    y = np.array([0, 1, 1, 0, 1])
    y_pred = np.array([0, 1, 0, 0, 1])
    error, alpha, _ = samme_round(y, y_pred, np.full(5, 0.2), n_classes=2, learning_rate=0.5)
    assert alpha == pytest.approx(0.5 * np.log((1 - error) / error))  # log(K-1) = 0


def test_samme_round_gives_a_perfect_learner_weight_one_as_scikit_learn_does():
    error, alpha, weight = samme_round(np.array([0, 1]), np.array([0, 1]), np.array([0.3, 0.7]), 2)
    assert (error, alpha) == (0.0, 1.0)
    np.testing.assert_allclose(weight, [0.3, 0.7])


def test_samme_estimator_weights_equal_scikit_learns_given_its_fitted_learners(digits):
    X, y = digits
    theirs = sk.AdaBoostClassifier(n_estimators=30, random_state=0).fit(X, y)
    weight = np.full(len(X), 1 / len(X))
    for m, stump in enumerate(theirs.estimators_):
        weight = np.clip(weight, np.finfo(float).eps, None)
        error, alpha, weight = samme_round(y, stump.predict(X), weight, n_classes=10)
        assert alpha == pytest.approx(theirs.estimator_weights_[m], rel=1e-10)
        assert error == pytest.approx(theirs.estimator_errors_[m], rel=1e-10)


def test_adaboost_fit_reproduces_scikit_learns_with_the_same_random_state(digits):
    X, y = digits
    ours = AdaBoostClassifier(n_estimators=30, learning_rate=0.5, random_state=1).fit(X, y)
    theirs = sk.AdaBoostClassifier(n_estimators=30, learning_rate=0.5, random_state=1).fit(X, y)
    np.testing.assert_allclose(ours.estimator_weights_, theirs.estimator_weights_, rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    staged = list(ours.staged_predict(X))
    assert len(staged) == 30
    np.testing.assert_array_equal(staged[-1], ours.predict(X))


def test_adaboost_stops_at_a_perfect_learner():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    ada = AdaBoostClassifier(n_estimators=10, random_state=0).fit(X, y)
    assert len(ada.estimators_) == 1 and ada.estimator_errors_[0] == 0.0


# --- gradient boosting -----------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_negative_gradient_matches_autograd_of_the_log_loss(seed):
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(6, 4)) * 3
    y = rng.integers(0, 4, 6)
    F = torch.tensor(raw, requires_grad=True)
    torch.nn.functional.cross_entropy(F, torch.tensor(y), reduction="sum").backward()
    r = multinomial_negative_gradient(np.eye(4)[y], raw)
    np.testing.assert_allclose(r, -F.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(r.sum(axis=1), 0.0, atol=1e-12)  # probabilities and one-hot both sum to 1


def test_newton_leaf_values_by_hand():
    X = np.array([[0.0], [0.0], [1.0], [1.0]])
    r = np.array([0.5, 0.3, -0.2, -0.4])
    tree = DecisionTreeRegressor(max_depth=1).fit(X, r)
    newton_leaf_values(tree, X, r, n_classes=3)
    left = 2 / 3 * 0.8 / (0.5 * 0.5 + 0.3 * 0.7)  # (K-1)/K sum r / sum |r|(1-|r|)
    right = 2 / 3 * -0.6 / (0.2 * 0.8 + 0.4 * 0.6)
    np.testing.assert_allclose(tree.predict(np.array([[0.0], [1.0]])), [left, right])


def test_gradient_boosting_first_round_equals_scikit_learns(digits):
    X, y = digits
    ours = GradientBoostingClassifier(n_estimators=1, random_state=0).fit(X, y)
    theirs = sk.GradientBoostingClassifier(n_estimators=1, random_state=0).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    assert ours.estimators_.shape == theirs.estimators_.shape == (1, 10)


def test_gradient_boosting_predictions_agree_with_scikit_learns(digits):
    X, y = digits
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    ours = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X_train, y_train)
    theirs = sk.GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X_train, y_train)
    # Rounding can flip a near-tie between two splits, so a few trees differ.
    assert np.mean(ours.predict(X_test) == theirs.predict(X_test)) > 0.97
    staged = list(ours.staged_predict(X_test))
    np.testing.assert_array_equal(staged[-1], ours.predict(X_test))


def test_subsample_mask_takes_exactly_n_and_matches_scikit_learns_draws(digits):
    for n, k, seed in [(10, 3, 0), (100, 50, 1), (7, 7, 2), (5, 0, 3)]:
        mask = subsample_mask(n, k, random_state=seed)
        assert mask.dtype == bool and mask.sum() == k
    X, y = digits
    # One round of stochastic gradient boosting, fitted from the same generator, is scikit-learn's exactly:
    # the same in-bag samples, the same trees, the same leaf values.
    ours = GradientBoostingClassifier(n_estimators=1, subsample=0.5, random_state=0).fit(X, y)
    theirs = sk.GradientBoostingClassifier(n_estimators=1, subsample=0.5, random_state=0).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    full = GradientBoostingClassifier(n_estimators=1, random_state=0).fit(X, y)
    assert not np.allclose(ours.predict_proba(X), full.predict_proba(X))  # the subsample changed the trees


def test_newton_leaf_values_count_only_in_bag_samples():
    X = np.array([[0.0], [0.0], [1.0], [1.0]])
    r = np.array([0.5, 0.3, -0.2, -0.4])
    tree = DecisionTreeRegressor(max_depth=1).fit(X, r)
    newton_leaf_values(tree, X, r, n_classes=3, sample_mask=np.array([True, False, False, True]))
    left = 2 / 3 * 0.5 / (0.5 * 0.5)  # only sample 0 counts on the left, only sample 3 on the right
    right = 2 / 3 * -0.4 / (0.4 * 0.6)
    np.testing.assert_allclose(tree.predict(np.array([[0.0], [1.0]])), [left, right])
    newton_leaf_values(tree, X, r, n_classes=3, sample_mask=np.array([True, True, False, False]))
    assert tree.predict(np.array([[1.0]]))[0] == 0.0  # a leaf no in-bag sample reaches


def test_gradient_boosting_starts_from_the_log_prior_as_scikit_learn_not_from_zero():
    X = np.arange(8.0).reshape(8, 1)
    y = np.array([0, 0, 0, 0, 0, 0, 1, 2])
    gb = GradientBoostingClassifier(n_estimators=1, random_state=0).fit(X, y)
    np.testing.assert_allclose(gb.init_, np.log([6 / 8, 1 / 8, 1 / 8]))  # Friedman's Algorithm 6 would be [0, 0, 0]


# --- stacking --------------------------------------------------------------------------

def test_out_of_fold_predictions_equal_cross_val_predict(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    tree = DecisionTreeClassifier(max_depth=4, random_state=0)
    ours = out_of_fold_predictions(tree, X, y, n_splits=4)
    theirs = cross_val_predict(tree, X, y, cv=StratifiedKFold(4), method="predict_proba")
    np.testing.assert_allclose(ours, theirs)
    in_sample = tree.fit(X, y).predict_proba(X)
    assert np.mean(ours.argmax(1) == y) < np.mean(in_sample.argmax(1) == y)  # no peeking at the labels


def test_stacking_fits_its_meta_learner_on_out_of_fold_predictions(digits):
    X, y = digits
    X, y = X[:400], y[:400]
    stack = small_stacking().fit(X, y)
    Z = np.hstack([cross_val_predict(est, X, y, cv=StratifiedKFold(3), method="predict_proba") for _, est in stack.estimators])
    by_hand = LogisticRegression(max_iter=1000).fit(Z, y)
    np.testing.assert_allclose(stack.final_estimator_.coef_, by_hand.coef_, rtol=1e-6, atol=1e-8)
    assert stack.meta_features(X[:5]).shape == (5, 20)


def test_stacking_with_decision_function_takes_base_learners_without_predict_proba(digits):
    X, y = digits
    stack = StackingClassifier([("svm", LinearSVC())], stack_method="decision_function", cv=3).fit(X[:300], y[:300])
    assert stack.meta_features(X[:4]).shape == (4, 10)
    assert stack.score(X[300:600], y[300:600]) > 0.75  # chance is 0.1


def test_stacking_passthrough_gives_the_meta_learner_the_features_as_scikit_learn_does(digits):
    X, y = digits
    X, y = X[:400], y[:400]
    ours = StackingClassifier(small_stacking().estimators, cv=3, passthrough=True).fit(X, y)
    theirs = sk.StackingClassifier(
        small_stacking().estimators, LogisticRegression(max_iter=1000), cv=StratifiedKFold(3), stack_method="predict_proba", passthrough=True
    ).fit(X, y)
    assert ours.meta_features(X[:5]).shape == (5, 20 + 64)
    np.testing.assert_array_equal(ours.meta_features(X[:5])[:, 20:], X[:5])  # the features come after the learners' columns
    np.testing.assert_allclose(ours.final_estimator_.coef_, theirs.final_estimator_.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X[:50]), theirs.predict_proba(X[:50]), atol=1e-8)


# --- agreement with scikit-learn: accuracy on digits over 3 splits ----------------------

PAIRS = {
    "bagging": (BaggingClassifier(n_estimators=10, random_state=0), sk.BaggingClassifier(n_estimators=10, random_state=0)),
    "adaboost": (
        AdaBoostClassifier(DecisionTreeClassifier(max_depth=3), n_estimators=30, random_state=0),
        sk.AdaBoostClassifier(DecisionTreeClassifier(max_depth=3), n_estimators=30, random_state=0),
    ),
    "random subspaces": (
        BaggingClassifier(n_estimators=10, max_features=0.5, random_state=0),
        sk.BaggingClassifier(n_estimators=10, max_features=0.5, random_state=0),
    ),
    "random subspaces with replacement": (
        BaggingClassifier(n_estimators=10, max_features=0.5, bootstrap_features=True, random_state=0),
        sk.BaggingClassifier(n_estimators=10, max_features=0.5, bootstrap_features=True, random_state=0),
    ),
    "gradient boosting": (GradientBoostingClassifier(n_estimators=5, random_state=0), sk.GradientBoostingClassifier(n_estimators=5, random_state=0)),
    "stochastic gradient boosting": (
        GradientBoostingClassifier(n_estimators=5, subsample=0.5, random_state=0),
        sk.GradientBoostingClassifier(n_estimators=5, subsample=0.5, random_state=0),
    ),
    "stacking": (
        small_stacking(),
        sk.StackingClassifier(small_stacking().estimators, LogisticRegression(max_iter=1000), cv=StratifiedKFold(3), stack_method="predict_proba"),
    ),
    "stacking with passthrough": (
        StackingClassifier(small_stacking().estimators, cv=3, passthrough=True),
        sk.StackingClassifier(
            small_stacking().estimators, LogisticRegression(max_iter=1000), cv=StratifiedKFold(3), stack_method="predict_proba", passthrough=True
        ),
    ),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_accuracy_within_one_point_of_scikit_learn_on_digits_over_three_splits(digits, name):
    X, y = digits
    ours, theirs = PAIRS[name]
    gaps = []
    for split in range(3):
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=split, stratify=y)
        gaps.append(ours.fit(X_train, y_train).score(X_test, y_test) - theirs.fit(X_train, y_train).score(X_test, y_test))
    assert abs(np.mean(gaps)) <= 0.01, gaps


# --- scikit-learn tooling --------------------------------------------------------------

ESTIMATORS = [
    BaggingClassifier(n_estimators=5, random_state=0),
    AdaBoostClassifier(n_estimators=10, random_state=0),
    GradientBoostingClassifier(n_estimators=5, random_state=0),
    small_stacking(),
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_works_in_a_pipeline_and_cross_val_score(estimator):
    X, y = load_iris(return_X_y=True)
    scores = cross_val_score(make_pipeline(StandardScaler(), estimator), X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.85


def test_grid_search_tunes_our_parameters():
    X, y = load_iris(return_X_y=True)
    search = GridSearchCV(AdaBoostClassifier(random_state=0), {"n_estimators": [1, 20], "learning_rate": [0.5, 1.0]}, cv=3).fit(X, y)
    assert search.best_params_["n_estimators"] == 20  # one stump cannot separate three classes
    assert isinstance(search.best_estimator_, AdaBoostClassifier)
    nested = GridSearchCV(small_stacking(), {"final_estimator": [None, LogisticRegression(C=0.01, max_iter=1000)]}, cv=3).fit(X, y)
    assert nested.best_score_ > 0.85


# --- distillation ----------------------------------------------------------------------

def test_munge_by_hand_and_its_limits():
    X = np.array([[0.0, 0.0], [1.0, 10.0], [5.0, 50.0]])
    np.testing.assert_array_equal(munge(X, n_copies=2, p_swap=0.0, random_state=0), np.vstack([X, X]))
    # p_swap=1 and a huge s: every attribute becomes its nearest neighbour's value.
    nearest = np.array([[1.0, 10.0], [0.0, 0.0], [1.0, 10.0]])
    np.testing.assert_allclose(munge(X, n_copies=1, p_swap=1.0, s=1e12, random_state=0), nearest, atol=1e-9)
    a, b = munge(X, random_state=3), munge(X, random_state=3)
    assert a.shape == (12, 2) and np.array_equal(a, b)


def test_soft_cross_entropy_equals_torch_with_probability_targets():
    logits = torch.randn(5, 4)
    targets = torch.softmax(torch.randn(5, 4), dim=1)
    torch.testing.assert_close(soft_cross_entropy(logits, targets), torch.nn.functional.cross_entropy(logits, targets))


def test_distilled_student_learns_its_teacher(digits, one_thread):
    X, y = digits
    teacher = LogisticRegression(max_iter=500).fit(X[:500], y[:500])
    student = distill_ensemble(teacher, X[:500], hidden=(16,), n_copies=1, epochs=15, lr=1e-2, seed=0)
    with torch.no_grad():
        agree = (student(torch.tensor(X[500:900], dtype=torch.float32)).argmax(1).numpy() == teacher.predict(X[500:900])).mean()
    assert agree > 0.85
    again = distill_ensemble(teacher, X[:500], hidden=(16,), n_copies=1, epochs=15, lr=1e-2, seed=0)
    torch.testing.assert_close(again.fc1.weight, student.fc1.weight)  # same seed, same student


# --- bad input -------------------------------------------------------------------------

X4 = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
Y4 = np.array([0, 1, 1, 0])


@pytest.mark.parametrize("cls", [BaggingClassifier, AdaBoostClassifier, GradientBoostingClassifier])
@pytest.mark.parametrize("n", [0, -3])
def test_n_estimators_below_one(cls, n):
    with pytest.raises(ValueError, match=rf"`n_estimators` must be an integer in \[1, inf\]; got {n}"):
        cls(n_estimators=n).fit(X4, Y4)


@pytest.mark.parametrize("cls", [AdaBoostClassifier, GradientBoostingClassifier])
@pytest.mark.parametrize("lr", [0.0, -0.1])
def test_learning_rate_not_positive(cls, lr):
    with pytest.raises(ValueError, match=r"`learning_rate` must be in \(0, inf\); got"):
        cls(learning_rate=lr).fit(X4, Y4)


def test_base_learners_missing_a_method_they_need():
    with pytest.raises(TypeError, match="`estimators\\[0\\] \\('svm'\\)` must have a predict_proba method"):
        StackingClassifier([("svm", LinearSVC())]).fit(X4, Y4)
    with pytest.raises(TypeError, match="`final_estimator` must have a predict_proba method"):
        StackingClassifier([("nb", GaussianNB())], final_estimator=LinearSVC(), cv=2).fit(X4, Y4)
    with pytest.raises(TypeError, match="`estimator` must accept `sample_weight`"):
        AdaBoostClassifier(KNeighborsClassifier(1)).fit(X4, Y4)
    with pytest.raises(TypeError, match="`teacher` must have a predict_proba method"):
        distill_ensemble(LinearSVC().fit(X4, Y4), X4)
    with pytest.raises(TypeError, match="`estimator` must be a scikit-learn classifier"):
        BaggingClassifier(DecisionTreeRegressor()).fit(X4, Y4)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_single_class_target_and_mismatched_lengths(estimator):
    with pytest.raises(ValueError, match=r"`y` must hold at least 2 classes; got 1 class: \[7\]"):
        estimator.fit(X4, np.full(4, 7))
    with pytest.raises(ValueError, match="inconsistent numbers of samples: \\[4, 3\\]"):
        estimator.fit(X4, Y4[:3])


def test_other_bad_parameters():
    with pytest.raises(ValueError, match=r"`max_samples` must be in \(0, 1\]; got 1.5"):
        BaggingClassifier(max_samples=1.5).fit(X4, Y4)
    with pytest.raises(ValueError, match=r"`cv` must be an integer in \[2, inf\]; got 1"):
        StackingClassifier([("nb", GaussianNB())], cv=1).fit(X4, Y4)
    with pytest.raises(ValueError, match="`stack_method` must be one of"):
        StackingClassifier([("nb", GaussianNB())], stack_method="predict").fit(X4, Y4)
    with pytest.raises(ValueError, match="`estimators` must be a non-empty list"):
        StackingClassifier([]).fit(X4, Y4)
    with pytest.raises(ValueError, match=r"`p_swap` must be in \[0, 1\]; got 2.0"):
        munge(X4, p_swap=2.0)
    with pytest.raises(ValueError, match="`X` must have at least 2 rows"):
        munge(X4[:1])


@pytest.mark.parametrize(
    "estimator, match",
    [
        (BaggingClassifier(max_features=0), r"`max_features` must be an integer in \[1, inf\]; got 0"),
        (BaggingClassifier(max_features=1.5), r"`max_features` must be in \(0, 1\]; got 1.5"),
        (BaggingClassifier(max_features=0.0), r"`max_features` must be in \(0, 1\]; got 0.0"),
        (BaggingClassifier(max_features=3), r"`max_features` must be an integer in \[1, 2\]; got 3"),  # X4 has 2 features
        (GradientBoostingClassifier(subsample=0.0), r"`subsample` must be in \(0, 1\]; got 0.0"),
        (GradientBoostingClassifier(subsample=1.5), r"`subsample` must be in \(0, 1\]; got 1.5"),
        (GradientBoostingClassifier(max_depth=0), r"`max_depth` must be an integer in \[1, inf\]; got 0"),
    ],
    ids=lambda v: repr(v) if not isinstance(v, str) else "",
)
def test_bad_scikit_learn_parameters(estimator, match):
    with pytest.raises(ValueError, match=match):
        estimator.fit(X4, Y4)


@pytest.mark.parametrize(
    "estimator, match",
    [
        (BaggingClassifier(bootstrap_features="yes"), "`bootstrap_features` must be a bool; got str 'yes'"),
        (BaggingClassifier(max_features="sqrt"), "`max_features` must be a real number; got str 'sqrt'"),
        (BaggingClassifier(oob_score=1), "`oob_score` must be a bool; got int 1"),
        (StackingClassifier([("nb", GaussianNB())], cv=2, passthrough="yes"), "`passthrough` must be a bool; got str 'yes'"),
    ],
    ids=["bootstrap_features", "max_features", "oob_score", "passthrough"],
)
def test_parameters_of_the_wrong_type(estimator, match):
    with pytest.raises(TypeError, match=match):
        estimator.fit(X4, Y4)


FAILED_FITS = [
    (BaggingClassifier(n_estimators=0), ValueError),
    (BaggingClassifier(max_features=3), ValueError),  # checked against the data: X4 has 2 features
    (AdaBoostClassifier(learning_rate=-1.0), ValueError),
    (AdaBoostClassifier(KNeighborsClassifier(1)), TypeError),
    (GradientBoostingClassifier(subsample=2.0), ValueError),
    (StackingClassifier([("nb", GaussianNB())], cv=1), ValueError),
    (StackingClassifier([("nb", GaussianNB())], cv=2, passthrough="yes"), TypeError),
]


@pytest.mark.parametrize("estimator, error", FAILED_FITS, ids=lambda v: type(v).__name__ if not isinstance(v, type) else "")
def test_a_failed_fit_leaves_the_estimator_unfitted(estimator, error):
    params = estimator.get_params()
    with pytest.raises(error):
        estimator.fit(X4, Y4)
    assert not any(name.endswith("_") for name in vars(estimator)), sorted(vars(estimator))  # no classes_, no n_features_in_
    with pytest.raises(NotFittedError):
        estimator.predict(X4)
    assert estimator.get_params() == params


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_a_failed_fit_on_bad_data_leaves_the_estimator_unfitted(estimator):
    estimator = clone(estimator)
    with pytest.raises(ValueError, match="at least 2 classes"):
        estimator.fit(X4, np.zeros(4))  # validate_data has set n_features_in_ by then: it must be undone
    with pytest.raises(NotFittedError):
        estimator.predict(X4)


def test_a_failed_refit_keeps_the_model_fitted_before():
    ada = AdaBoostClassifier(n_estimators=3, random_state=0).fit(X4, Y4)
    before = ada.predict(X4)
    with pytest.raises(ValueError, match="no better than chance"):
        ada.fit(np.zeros((6, 1)), np.array([0, 1, 2, 0, 1, 2]))
    assert ada.n_features_in_ == 2 and list(ada.classes_) == [0, 1]
    np.testing.assert_array_equal(ada.predict(X4), before)


def test_adaboost_refuses_a_first_learner_no_better_than_chance():
    X = np.zeros((6, 1))  # nothing to split on: a stump predicts one class, error 2/3 with 3 classes
    with pytest.raises(ValueError, match="no better than chance"):
        AdaBoostClassifier(n_estimators=3, random_state=0).fit(X, np.array([0, 1, 2, 0, 1, 2]))


def test_bagging_stores_seeds_not_bootstrap_indices_and_redraws_the_same_samples(digits):
    X, y = digits
    bag = BaggingClassifier(n_estimators=4, random_state=0).fit(X[:300], y[:300])
    first, again = bag.estimators_samples_, bag.estimators_samples_
    for a, b, member in zip(first, again, bag.estimators_):
        np.testing.assert_array_equal(a, b)  # redrawn identically from the member's seed
        refit = clone(member).fit(X[:300][a], y[:300][a])
        np.testing.assert_array_equal(refit.predict(X[300:]), member.predict(X[300:]))  # the sample it was fit on
    # The pickle holds the members and 4 seeds, not 4 x 300 int64 indices (9,600 bytes).
    members = sum(len(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL)) for m in bag.estimators_)
    assert len(pickle.dumps(bag, protocol=pickle.HIGHEST_PROTOCOL)) < members + 2_000
