"""AdaBoost for K classes: SAMME (Stagewise Additive Modeling using a Multi-class Exponential loss).

[1] J. Zhu, H. Zou, S. Rosset, T. Hastie, "Multi-class AdaBoost", Statistics and Its
    Interface 2(3):349-360, 2009.
[2] Y. Freund, R. E. Schapire, "A Decision-Theoretic Generalization of On-Line Learning and an
    Application to Boosting", Journal of Computer and System Sciences 55(1):119-139, 1997.

Algorithm 2 (SAMME) in [1], with sample weights w_i starting at 1/n. For m = 1..M:

    (a) fit a classifier T_m to the training data with weights w
    (b) err_m   = sum_i w_i * [c_i != T_m(x_i)] / sum_i w_i                      Eq. (b)
    (c) alpha_m = log((1 - err_m) / err_m) + log(K - 1)                          Eq. (c)
    (d) w_i    <- w_i * exp(alpha_m * [c_i != T_m(x_i)]), then renormalise       Eq. (d)

Output C(x) = argmax_k sum_m alpha_m * [T_m(x) = k].                              Eq. (e)

The extra log(K - 1) is the whole difference from two-class AdaBoost [2]: alpha_m > 0 as soon
as T_m beats random guessing among K classes (err_m < 1 - 1/K), not only when err_m < 1/2.
``learning_rate`` multiplies alpha_m, as in scikit-learn.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import check_random_state
from sklearn.utils.validation import has_fit_parameter

from compresskit._validation import check_array, check_int, check_real
from compresskit.ensembles._common import check_classifier, fit_inputs, fitting, predict_inputs, seeded_clone, softmax


def _check_round(y: Any, y_pred: Any, sample_weight: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D labels and predictions of one length; weights of that length, finite, >= 0, summing to > 0."""
    y = check_array("y", y, ndim=1)
    y_pred = check_array("y_pred", y_pred, ndim=1)
    weight = check_array("sample_weight", sample_weight, ndim=1).astype(float)
    if not len(y) == len(y_pred) == len(weight):
        raise ValueError(
            f"`y`, `y_pred` and `sample_weight` must have the same length; got {len(y)}, {len(y_pred)} and {len(weight)}"
        )
    if (weight < 0).any():
        raise ValueError(f"`sample_weight` must be >= 0; got {int((weight < 0).sum())} negative value(s), the lowest {float(weight.min())!r}")
    if weight.sum() <= 0:
        raise ValueError("`sample_weight` must have a positive sum (the error is a weighted mean); got 0.0")
    return y, y_pred, weight


def samme_round(
    y: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray, n_classes: int, learning_rate: float = 1.0
) -> tuple[float, float, np.ndarray]:
    """One SAMME round, steps (b)-(d) of Algorithm 2 in [1].

    Returns ``(error, estimator_weight, new_sample_weight)``; the new weights sum to 1.
    A perfect learner (error 0) keeps the weights and gets estimator weight 1, scikit-learn's
    convention (Eq. (c) would give infinity); the caller then stops boosting.
    """
    y, y_pred, sample_weight = _check_round(y, y_pred, sample_weight)
    n_classes = check_int("n_classes", n_classes, 2)
    learning_rate = check_real("learning_rate", learning_rate, 0.0, low_open=True)
    incorrect = y_pred != y
    error = float(np.average(incorrect, weights=sample_weight))  # Eq. (b)
    if error <= 0:
        return 0.0, 1.0, sample_weight / sample_weight.sum()
    alpha = learning_rate * (np.log((1 - error) / error) + np.log(n_classes - 1))  # Eq. (c)
    new_weight = sample_weight * np.exp(alpha * incorrect)  # Eq. (d)
    return error, float(alpha), new_weight / new_weight.sum()


class AdaBoostClassifier(ClassifierMixin, BaseEstimator):
    """Multi-class AdaBoost by SAMME [1], on any classifier that accepts ``sample_weight``.

    Parameters
    ----------
    estimator : classifier, default=None
        The weak learner; ``None`` means a decision stump, ``DecisionTreeClassifier(max_depth=1)``.
        Its ``fit`` must accept ``sample_weight``.
    n_estimators : int, default=50
        Maximum number of rounds M; boosting stops early after a perfect learner, or before a
        learner no better than chance (err >= 1 - 1/K).
    learning_rate : float, default=1.0
        Shrinks every estimator weight alpha_m; must be > 0.
    random_state : int, RandomState or None, default=None
        Seeds each member's own ``random_state``.

    Attributes
    ----------
    estimators_ : list of classifiers
    estimator_weights_ : ndarray of shape (n_fitted,)
        alpha_m of Eq. (c), times ``learning_rate``.
    estimator_errors_ : ndarray of shape (n_fitted,)
        err_m of Eq. (b).
    classes_ : ndarray of shape (n_classes,)
    n_classes_ : int
    n_features_in_ : int

    References
    ----------
    .. [1] J. Zhu, H. Zou, S. Rosset, T. Hastie, "Multi-class AdaBoost", Statistics and Its
           Interface 2(3):349-360, 2009.
    .. [2] Y. Freund, R. E. Schapire, "A Decision-Theoretic Generalization of On-Line Learning
           and an Application to Boosting", J. Computer and System Sciences 55(1), 1997.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> ada = AdaBoostClassifier(n_estimators=20, random_state=0).fit(X, y)
    >>> ada.score(X, y) > 0.9
    True
    """

    def __init__(
        self,
        estimator: Any = None,
        n_estimators: int = 50,
        *,
        learning_rate: float = 1.0,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.random_state = random_state

    def _check_params(self) -> tuple[int, float, BaseEstimator]:
        n_estimators = check_int("n_estimators", self.n_estimators, 1)
        learning_rate = check_real("learning_rate", self.learning_rate, 0.0, low_open=True)
        base = DecisionTreeClassifier(max_depth=1) if self.estimator is None else self.estimator
        check_classifier("estimator", base)
        if not has_fit_parameter(base, "sample_weight"):
            raise TypeError(f"`estimator` must accept `sample_weight` in fit (SAMME reweights samples); got {type(base).__name__}")
        return n_estimators, learning_rate, base

    def fit(self, X: Any, y: Any) -> "AdaBoostClassifier":
        """Run up to ``n_estimators`` SAMME rounds on (X, y)."""
        n_estimators, learning_rate, base = self._check_params()  # before anything is set
        with fitting(self):
            X, y = fit_inputs(self, X, y)
            rng = check_random_state(self.random_state)
            K = self.n_classes_
            weight = np.full(len(X), 1.0 / len(X))
            members, alphas, errors = [], [], []
            for _ in range(n_estimators):
                weight = np.clip(weight, np.finfo(float).eps, None)  # as scikit-learn: no weight underflows to 0
                member = seeded_clone(base, rng).fit(X, y, sample_weight=weight)
                error, alpha, weight = samme_round(y, member.predict(X), weight, K, learning_rate)
                chance = 1 - 1 / K
                if error >= chance:  # no better than guessing: alpha would be <= 0
                    if not members:
                        raise ValueError(
                            f"the first weak learner is no better than chance (error {error:.3f} >= {chance:.3f}); "
                            "use a stronger `estimator`"
                        )
                    break
                members.append(member)
                alphas.append(alpha)
                errors.append(error)
                if error == 0:
                    break
            self.estimators_ = members
            self.estimator_weights_ = np.array(alphas)
            self.estimator_errors_ = np.array(errors)
        return self

    def _votes(self, X: np.ndarray) -> np.ndarray:
        """sum_m alpha_m * [T_m(x) = k]: shape (n_samples, K)."""
        votes = np.zeros((len(X), self.n_classes_))
        for member, alpha in zip(self.estimators_, self.estimator_weights_):
            votes[np.arange(len(X)), member.predict(X)] += alpha
        return votes

    def predict(self, X: Any) -> np.ndarray:
        """C(x) = argmax_k sum_m alpha_m [T_m(x) = k], Eq. (e)."""
        X = predict_inputs(self, X)
        return self.classes_[self._votes(X).argmax(axis=1)]  # Eq. (e)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities as in scikit-learn: softmax(f(x) / (K - 1)), with
        f_k = sum_m alpha_m h_k(T_m(x)) / sum_m alpha_m, h_k = 1 for the voted class and
        -1/(K-1) for the others (the symmetric coding of [1], Section 2.1)."""
        X = predict_inputs(self, X)
        K = self.n_classes_
        share = self._votes(X) / self.estimator_weights_.sum()
        f = share - (1 - share) / (K - 1)  # alpha-weighted mean of the codes h_k
        return softmax(f / (K - 1))

    def staged_predict(self, X: Any) -> Iterator[np.ndarray]:
        """Predictions after 1, 2, ..., M rounds."""
        X = predict_inputs(self, X)
        votes = np.zeros((len(X), self.n_classes_))
        for member, alpha in zip(self.estimators_, self.estimator_weights_):
            votes[np.arange(len(X)), member.predict(X)] += alpha
            yield self.classes_[votes.argmax(axis=1)]
