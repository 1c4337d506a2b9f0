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
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from compresskit._validation import check_int, check_real
from compresskit.ensembles._common import (
    _MAX_SEED,
    check_classifier,
    class_probabilities,
    fit_inputs,
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
        oob_score: bool = False,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.oob_score = oob_score
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> "BaggingClassifier":
        """Fit ``n_estimators`` members, each on its own bootstrap sample of (X, y)."""
        X, y = fit_inputs(self, X, y)
        n_estimators = check_int("n_estimators", self.n_estimators, 1)
        max_samples = check_real("max_samples", self.max_samples, 0.0, 1.0, low_open=True)
        base = DecisionTreeClassifier() if self.estimator is None else self.estimator
        check_classifier("estimator", base)
        rng = check_random_state(self.random_state)
        n_draws = max(1, round(max_samples * len(X)))
        self.estimators_, self._sample_seeds, self._sample_shape = [], [], (len(X), n_draws)
        for _ in range(n_estimators):
            seed = rng.randint(_MAX_SEED)  # the member's bootstrap sample is bootstrap_sample(n, n_draws, seed)
            indices, _ = bootstrap_sample(len(X), n_draws, seed)
            self.estimators_.append(seeded_clone(base, rng).fit(X[indices], y[indices]))
            self._sample_seeds.append(seed)
        if self.oob_score:
            self._set_oob_score(X, y)
        return self

    @property
    def estimators_samples_(self) -> list[np.ndarray]:
        """The bootstrap indices of each member, redrawn from its seed."""
        check_is_fitted(self)
        return [bootstrap_sample(*self._sample_shape, seed)[0] for seed in self._sample_seeds]

    def _set_oob_score(self, X: np.ndarray, y: np.ndarray) -> None:
        votes = np.zeros((len(X), self.n_classes_))
        for member, indices in zip(self.estimators_, self.estimators_samples_):
            oob = np.ones(len(X), dtype=bool)
            oob[indices] = False
            if oob.any():
                votes[oob] += class_probabilities(member, X[oob], self.n_classes_)
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
        total = sum(class_probabilities(m, X, self.n_classes_) for m in self.estimators_)
        return total / len(self.estimators_)  # Eq. (1)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the highest average probability."""
        proba = self.predict_proba(X)  # checks first that the model is fitted
        return self.classes_[proba.argmax(axis=1)]

    def staged_predict(self, X: Any) -> Iterator[np.ndarray]:
        """Predictions of the first 1, 2, ..., B members: how accuracy grows with B."""
        X = predict_inputs(self, X)
        total = np.zeros((len(X), self.n_classes_))
        for member in self.estimators_:
            total += class_probabilities(member, X, self.n_classes_)
            yield self.classes_[total.argmax(axis=1)]
