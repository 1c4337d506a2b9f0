"""Bagging: bootstrap aggregating, with the out-of-bag estimate of accuracy.

[1] L. Breiman, "Bagging Predictors", Machine Learning 24(2):123-140, 1996.
[2] L. Breiman, "Out-of-bag estimation", technical report, UC Berkeley, 1996.

Each member b = 1..B is fitted on a bootstrap sample: n indices drawn uniformly **with
replacement** from the n training samples (not half of the data). The ensemble averages the
members' class probabilities::

    p(k | x) = (1/B) * sum_b p_b(k | x)                                     Eq. (1)

A given sample is missed by all n draws with probability::

    (1 - 1/n)^n  ->  1/e ~= 0.368  as n grows                                Eq. (2)

so a bootstrap sample holds about 63.2% of the distinct training samples, and each member
leaves about 36.8% "out of bag". Predicting every sample only with the members that did not
see it gives an honest accuracy estimate without a held-out set (the OOB score, [2]).

The random-subspace method [3] draws features instead of samples: each member sees only
``max_features`` of the d columns, drawn without replacement (or with, ``bootstrap_features``).
Both draws combine as in scikit-learn's ``BaggingClassifier``: a member's features are drawn
first, then its bootstrap sample, from one generator seeded per member.

[3] T. K. Ho, "The Random Subspace Method for Constructing Decision Forests", IEEE Transactions
    on Pattern Analysis and Machine Intelligence 20(8):832-844, 1998.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Iterator

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import check_random_state
from sklearn.utils.random import sample_without_replacement
from sklearn.utils.validation import check_is_fitted

from compresskit._validation import check_int, check_real, check_type
from compresskit.ensembles._common import (
    _MAX_SEED,
    check_classifier,
    class_probabilities,
    fit_inputs,
    fitting,
    predict_inputs,
    seeded_clone,
)


def bootstrap_sample(
    n_samples: int, n_draws: int | None = None, random_state: int | np.random.RandomState | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a bootstrap sample: ``n_draws`` indices (default ``n_samples``) with replacement.

    Returns ``(indices, out_of_bag)``: the drawn indices (repeats allowed) and a boolean mask
    of the samples never drawn.

    Examples
    --------
    >>> indices, out_of_bag = bootstrap_sample(10_000, random_state=0)
    >>> round(len(np.unique(indices)) / 10_000, 2)   # Eq. (2): 1 - 1/e
    0.63
    """
    n_samples = check_int("n_samples", n_samples, 1)
    n_draws = n_samples if n_draws is None else check_int("n_draws", n_draws, 1)
    rng = check_random_state(random_state)
    indices = rng.randint(0, n_samples, n_draws)  # n draws, each uniform over all samples
    out_of_bag = np.ones(n_samples, dtype=bool)
    out_of_bag[indices] = False
    return indices, out_of_bag


def random_subspace(
    n_features: int,
    n_chosen: int,
    *,
    bootstrap_features: bool = False,
    random_state: int | np.random.RandomState | None = None,
) -> np.ndarray:
    """The feature indices of one member in the random-subspace method [3]: ``n_chosen`` of
    ``n_features``, drawn without replacement (distinct, in random order) or, with
    ``bootstrap_features``, with replacement, as scikit-learn's bagging draws them.

    Examples
    --------
    >>> features = random_subspace(64, 8, random_state=0)
    >>> len(features), len(set(features.tolist()))
    (8, 8)
    """
    n_features = check_int("n_features", n_features, 1)
    n_chosen = check_int("n_chosen", n_chosen, 1, None if bootstrap_features else n_features)
    rng = check_random_state(random_state)
    if bootstrap_features:
        return rng.randint(0, n_features, n_chosen)
    return sample_without_replacement(n_features, n_chosen, random_state=rng)


class BaggingClassifier(ClassifierMixin, BaseEstimator):
    """Bootstrap aggregating of any scikit-learn classifier, with an out-of-bag score.

    Parameters
    ----------
    estimator : classifier, default=None
        The base learner, cloned for each member. ``None`` means a fully grown
        ``DecisionTreeClassifier``, the high-variance learner bagging helps most.
    n_estimators : int, default=10
        Number of members B.
    max_samples : float, default=1.0
        Draws per bootstrap sample as a fraction of the training set, in (0, 1].
        1.0 is Breiman's bootstrap: n draws with replacement.
    max_features : int or float, default=1.0
        Features each member sees (the random-subspace method [3]): an int is a count in
        [1, n_features], a float a fraction in (0, 1] (``max(1, int(max_features * n_features))``
        features, as in scikit-learn). 1.0 with ``bootstrap_features=False`` is plain bagging.
    bootstrap_features : bool, default=False
        Draw each member's features with replacement instead of without.
    oob_score : bool, default=False
        Whether to compute ``oob_score_`` and ``oob_decision_function_``.
    random_state : int, RandomState or None, default=None
        Seeds the bootstrap draws and each member's own ``random_state``.

    Attributes
    ----------
    estimators_ : list of classifiers
        The fitted members, trained on labels 0..K-1.
    estimators_samples_ : list of ndarray
        The bootstrap indices each member was trained on, redrawn on demand from each
        member's seed (as scikit-learn does): the fitted model stores B seeds, not B * n
        indices that prediction never needs.
    estimators_features_ : list of ndarray
        The feature indices each member was trained on (all of them, in order, unless
        ``max_features`` or ``bootstrap_features`` asks for a random subspace).
    classes_ : ndarray of shape (n_classes,)
    n_classes_ : int
    oob_score_ : float
        Accuracy of the out-of-bag vote over the samples left out by at least one member.
    oob_decision_function_ : ndarray of shape (n_samples, n_classes)
        Out-of-bag class probabilities (NaN for a sample every member saw).
    n_features_in_ : int

    References
    ----------
    .. [1] L. Breiman, "Bagging Predictors", Machine Learning 24(2):123-140, 1996.
    .. [2] L. Breiman, "Out-of-bag estimation", technical report, UC Berkeley, 1996.
    .. [3] T. K. Ho, "The Random Subspace Method for Constructing Decision Forests", IEEE
           Transactions on Pattern Analysis and Machine Intelligence 20(8):832-844, 1998.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> bag = BaggingClassifier(n_estimators=25, oob_score=True, random_state=0).fit(X, y)
    >>> 0.85 < bag.oob_score_ < 1.0
    True
    """

    def __init__(
        self,
        estimator: Any = None,
        n_estimators: int = 10,
        *,
        max_samples: float = 1.0,
        max_features: int | float = 1.0,
        bootstrap_features: bool = False,
        oob_score: bool = False,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.bootstrap_features = bootstrap_features
        self.oob_score = oob_score
        self.random_state = random_state

    def _check_params(self) -> tuple[int, float, BaseEstimator]:
        n_estimators = check_int("n_estimators", self.n_estimators, 1)
        max_samples = check_real("max_samples", self.max_samples, 0.0, 1.0, low_open=True)
        if isinstance(self.max_features, numbers.Integral) and not isinstance(self.max_features, bool):
            check_int("max_features", self.max_features, 1)
        else:
            check_real("max_features", self.max_features, 0.0, 1.0, low_open=True)
        check_type("bootstrap_features", self.bootstrap_features, (bool, np.bool_), "a bool")
        check_type("oob_score", self.oob_score, (bool, np.bool_), "a bool")
        base = DecisionTreeClassifier() if self.estimator is None else self.estimator
        check_classifier("estimator", base)
        return n_estimators, max_samples, base

    def _n_features_chosen(self, n_features: int) -> int:
        """``max_features`` as a count: an int as given (at most ``n_features``), a fraction as scikit-learn rounds it."""
        if isinstance(self.max_features, numbers.Integral) and not isinstance(self.max_features, bool):
            return check_int("max_features", self.max_features, 1, n_features)
        return max(1, int(self.max_features * n_features))

    def fit(self, X: Any, y: Any) -> "BaggingClassifier":
        """Fit ``n_estimators`` members, each on its own bootstrap sample of (X, y) and its own
        subset of the features."""
        n_estimators, max_samples, base = self._check_params()  # before anything is set
        with fitting(self):
            X, y = fit_inputs(self, X, y)
            n_chosen = self._n_features_chosen(X.shape[1])
            self._subspace = (n_chosen, bool(self.bootstrap_features))
            rng = check_random_state(self.random_state)
            n_draws = max(1, round(max_samples * len(X)))
            self._sample_shape = (len(X), n_draws)
            members, seeds, member_features = [], [], []
            for _ in range(n_estimators):
                seed = rng.randint(_MAX_SEED)  # the member's features and bootstrap sample come from this seed
                features, indices = self._draws(seed)
                members.append(seeded_clone(base, rng).fit(X[indices][:, features], y[indices]))
                seeds.append(seed)
                member_features.append(features)
            self.estimators_, self._sample_seeds = members, seeds
            # Prediction needs each member's features; all of them, in order, are not worth storing.
            self._member_features = member_features if self._uses_subspace() else None
            if self.oob_score:
                self._set_oob_score(X, y)
        return self

    def _uses_subspace(self) -> bool:
        n_chosen, with_replacement = self._subspace
        return with_replacement or n_chosen < self.n_features_in_

    def _draws(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """One member's (features, bootstrap indices), both from ``seed``: features first, as scikit-learn."""
        rng = np.random.RandomState(seed)
        n_chosen, with_replacement = self._subspace
        if self._uses_subspace():
            features = random_subspace(self.n_features_in_, n_chosen, bootstrap_features=with_replacement, random_state=rng)
        else:
            features = np.arange(self.n_features_in_)
        indices, _ = bootstrap_sample(*self._sample_shape, rng)
        return features, indices

    @property
    def estimators_samples_(self) -> list[np.ndarray]:
        """The bootstrap indices of each member, redrawn from its seed."""
        check_is_fitted(self)
        return [self._draws(seed)[1] for seed in self._sample_seeds]

    @property
    def estimators_features_(self) -> list[np.ndarray]:
        """The feature indices of each member."""
        check_is_fitted(self)
        if self._member_features is None:
            return [np.arange(self.n_features_in_) for _ in self.estimators_]
        return self._member_features

    def _member_probabilities(self, X: np.ndarray) -> Iterator[np.ndarray]:
        """Each member's class probabilities on its own features of X."""
        for member, features in zip(self.estimators_, self.estimators_features_):
            yield class_probabilities(member, X[:, features], self.n_classes_)

    def _set_oob_score(self, X: np.ndarray, y: np.ndarray) -> None:
        votes = np.zeros((len(X), self.n_classes_))
        for member, features, indices in zip(self.estimators_, self.estimators_features_, self.estimators_samples_):
            oob = np.ones(len(X), dtype=bool)
            oob[indices] = False
            if oob.any():
                votes[oob] += class_probabilities(member, X[oob][:, features], self.n_classes_)
        counted = votes.sum(axis=1) > 0
        if not counted.all():
            warnings.warn(
                f"{int((~counted).sum())} of {len(X)} samples were drawn by every member and have no "
                "out-of-bag prediction; raise `n_estimators` for a reliable oob_score_",
                UserWarning,
                stacklevel=3,
            )
        with np.errstate(invalid="ignore", divide="ignore"):
            self.oob_decision_function_ = votes / votes.sum(axis=1, keepdims=True)
        self.oob_score_ = float(np.mean(votes[counted].argmax(axis=1) == y[counted])) if counted.any() else float("nan")

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, the members' average (Eq. (1)); shape (n_samples, n_classes)."""
        X = predict_inputs(self, X)
        total = sum(self._member_probabilities(X))
        return total / len(self.estimators_)  # Eq. (1)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the highest average probability."""
        proba = self.predict_proba(X)  # checks first that the model is fitted
        return self.classes_[proba.argmax(axis=1)]

    def staged_predict(self, X: Any) -> Iterator[np.ndarray]:
        """Predictions of the first 1, 2, ..., B members: how accuracy grows with B."""
        X = predict_inputs(self, X)
        total = np.zeros((len(X), self.n_classes_))
        for proba in self._member_probabilities(X):
            total += proba
            yield self.classes_[total.argmax(axis=1)]
