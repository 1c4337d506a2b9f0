"""Stacking: a meta-learner trained on the base learners' out-of-fold predictions.

[1] D. H. Wolpert, "Stacked Generalization", Neural Networks 5(2):241-259, 1992.
[2] K. M. Ting, I. H. Witten, "Issues in Stacked Generalization", Journal of Artificial
    Intelligence Research 10:271-289, 1999 (stack class probabilities, not labels).

With base learners h_1..h_L and V folds, the meta-features of training sample i are::

    z_i = [h_1^(-v(i))(x_i), ..., h_L^(-v(i))(x_i)]                              Eq. (1)

where h_l^(-v) was fitted without fold v, the fold that holds sample i. The meta-learner g is
fitted on {(z_i, y_i)}; then every h_l is refitted on all the data, and g(h_1(x), ..., h_L(x))
predicts. Fitting g on in-sample predictions instead would teach it to trust the base learners
that overfit most (a fully grown tree is 100% right on its own training data).

With ``passthrough=True`` the meta-learner also sees the original features, z_i = [Eq. (1), x_i],
as in scikit-learn's ``StackingClassifier(passthrough=True)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from compresskit._validation import check_array, check_choice, check_int, check_type
from compresskit.ensembles._common import check_classifier, fit_inputs, fitting, predict_inputs

STACK_METHODS = ("predict_proba", "decision_function")


def stack_columns(model: BaseEstimator, X: np.ndarray, method: str, n_classes: int) -> np.ndarray:
    """A fitted base learner's meta-features for X: class probabilities (n_samples, n_classes),
    with zero columns for classes the model never saw, or decision values as 2-D columns."""
    check_choice("method", method, STACK_METHODS)
    if method == "predict_proba":
        out = np.zeros((len(X), n_classes))
        out[:, model.classes_] = model.predict_proba(X)
        return out
    return np.asarray(model.decision_function(X)).reshape(len(X), -1)


def out_of_fold_predictions(
    estimator: BaseEstimator, X: np.ndarray, y: np.ndarray, *, n_splits: int = 5, method: str = "predict_proba"
) -> np.ndarray:
    """Eq. (1) for one base learner: each sample predicted by a copy fitted without its fold.

    Folds come from ``StratifiedKFold(n_splits)`` without shuffling (no randomness), so the
    result is the same as ``sklearn.model_selection.cross_val_predict(..., method=method)``
    on labels 0..K-1.
    """
    n_splits = check_int("n_splits", n_splits, 2)
    check_choice("method", method, STACK_METHODS)
    X = check_array("X", X, ndim=2)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"`y` must be 1-D, one label per sample; got shape {y.shape}")
    if len(X) != len(y):
        raise ValueError(f"`X` and `y` must have the same number of samples; got {len(X)} and {len(y)}")
    classes, y = np.unique(y, return_inverse=True)
    out = None
    for train, held_out in StratifiedKFold(n_splits).split(X, y):
        model = clone(estimator).fit(X[train], y[train])
        columns = stack_columns(model, X[held_out], method, len(classes))
        if out is None:
            out = np.zeros((len(X), columns.shape[1]))
        out[held_out] = columns  # Eq. (1): row i comes from the model that did not see it
    return out


class StackingClassifier(ClassifierMixin, BaseEstimator):
    """Stacked generalization [1]: a final classifier on the base learners' out-of-fold outputs.

    Parameters
    ----------
    estimators : list of (str, classifier)
        The base learners, each with a name.
    final_estimator : classifier, default=None
        The meta-learner g; ``None`` means ``LogisticRegression(max_iter=1000)``. It must
        have ``predict_proba``.
    cv : int, default=5
        Number of stratified folds V for the out-of-fold predictions (no shuffling).
    stack_method : {"predict_proba", "decision_function"}, default="predict_proba"
        What each base learner contributes; every base learner must have that method.
    passthrough : bool, default=False
        Whether the meta-learner also sees the original features, appended after the base
        learners' columns (scikit-learn's order).

    Attributes
    ----------
    estimators_ : list of classifiers
        The base learners refitted on all the data.
    final_estimator_ : classifier
        The meta-learner, fitted on the out-of-fold meta-features.
    classes_ : ndarray of shape (n_classes,)
    n_classes_ : int
    n_features_in_ : int

    References
    ----------
    .. [1] D. H. Wolpert, "Stacked Generalization", Neural Networks 5(2):241-259, 1992.
    .. [2] K. M. Ting, I. H. Witten, "Issues in Stacked Generalization", Journal of Artificial
           Intelligence Research 10:271-289, 1999.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> stack = StackingClassifier([("nb", GaussianNB()), ("tree", DecisionTreeClassifier(max_depth=3))])
    >>> stack.fit(X, y).score(X, y) > 0.9
    True
    """

    def __init__(
        self,
        estimators: Sequence[tuple[str, Any]],
        final_estimator: Any = None,
        *,
        cv: int = 5,
        stack_method: str = "predict_proba",
        passthrough: bool = False,
    ) -> None:
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.cv = cv
        self.stack_method = stack_method
        self.passthrough = passthrough

    def _check_params(self) -> tuple[list[BaseEstimator], BaseEstimator, int]:
        cv = check_int("cv", self.cv, 2)
        method = check_choice("stack_method", self.stack_method, STACK_METHODS)
        check_type("passthrough", self.passthrough, (bool, np.bool_), "a bool")
        if not isinstance(self.estimators, (list, tuple)) or len(self.estimators) == 0:
            raise ValueError(f"`estimators` must be a non-empty list of (name, classifier) pairs; got {self.estimators!r}")
        base = []
        for i, pair in enumerate(self.estimators):
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
                raise TypeError(f"`estimators[{i}]` must be a (name, classifier) pair; got {pair!r}")
            check_classifier(f"estimators[{i}] ({pair[0]!r})", pair[1], method, f" (stack_method={method!r} needs it)")
            base.append(pair[1])
        final = LogisticRegression(max_iter=1000) if self.final_estimator is None else self.final_estimator
        check_classifier("final_estimator", final, "predict_proba")
        return base, final, cv

    def fit(self, X: Any, y: Any) -> "StackingClassifier":
        """Fit the meta-learner on out-of-fold predictions, then refit the base learners on all of (X, y)."""
        base, final, cv = self._check_params()  # before anything is set
        with fitting(self):
            X, y = fit_inputs(self, X, y)
            Z = np.hstack([out_of_fold_predictions(est, X, y, n_splits=cv, method=self.stack_method) for est in base])
            self.final_estimator_ = clone(final).fit(self._with_passthrough(Z, X), y)
            self.estimators_ = [clone(est).fit(X, y) for est in base]
        return self

    def _with_passthrough(self, Z: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Z, followed by the original features when ``passthrough`` is set."""
        return np.hstack([Z, X]) if self.passthrough else Z

    def meta_features(self, X: Any) -> np.ndarray:
        """The meta-features z = [h_1(x), ..., h_L(x)] (and x, with ``passthrough``) the meta-learner sees."""
        X = predict_inputs(self, X)
        Z = np.hstack([stack_columns(m, X, self.stack_method, self.n_classes_) for m in self.estimators_])
        return self._with_passthrough(Z, X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The meta-learner's class probabilities; shape (n_samples, n_classes)."""
        Z = self.meta_features(X)  # checks first that the model is fitted
        return self.final_estimator_.predict_proba(Z)

    def predict(self, X: Any) -> np.ndarray:
        """The class the meta-learner finds most probable."""
        proba = self.predict_proba(X)  # checks first that the model is fitted
        return self.classes_[proba.argmax(axis=1)]
