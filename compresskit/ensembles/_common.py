"""Checks and small helpers shared by the ensembles: input validation, seeding, class probabilities.

Every estimator validates in ``fit`` (never in ``__init__``), with scikit-learn's own helpers
for X and y, and with :mod:`compresskit._validation` for its parameters, so a bad value reads
"`n_estimators` must be an integer in [1, inf]; got 0".

Order inside ``fit``, as in scikit-learn: check the hyper-parameters first, then the data, and
set fitted attributes (``classes_``, ``n_features_in_``, ``estimators_``) only once both passed.
:func:`fitting` guarantees the last part: a ``fit`` that raises leaves the estimator as it was,
so a fresh estimator whose ``fit`` failed still raises ``NotFittedError`` in ``predict``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

_MAX_SEED = np.iinfo(np.int32).max


@contextmanager
def fitting(estimator: BaseEstimator) -> Iterator[None]:
    """Run a ``fit`` body; if it raises, restore every attribute of ``estimator`` as it was.

    ``validate_data`` sets ``n_features_in_`` before a later check (one class in ``y``, a
    ``max_features`` larger than the number of features, a member that fails) can raise; without
    this, ``check_is_fitted`` would pass on a model that was never fitted.
    """
    before = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(before)
        raise


def fit_inputs(estimator: BaseEstimator, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate (X, y) for ``fit``; set ``classes_`` and ``n_classes_``; return X and y as 0..K-1.

    Mismatched lengths, NaN, sparse or 1-D X raise scikit-learn's own errors; a continuous
    target raises "Unknown label type"; a target with one class raises here.
    """
    X, y = validate_data(estimator, X, y)
    check_classification_targets(y)
    classes, y_encoded = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"`y` must hold at least 2 classes; got 1 class: {classes.tolist()}")
    estimator.classes_ = classes
    estimator.n_classes_ = len(classes)
    return X, y_encoded


def predict_inputs(estimator: BaseEstimator, X: Any) -> np.ndarray:
    """Check that ``estimator`` is fitted and that X has the features it was fitted on."""
    check_is_fitted(estimator)
    return validate_data(estimator, X, reset=False)


def check_classifier(name: str, estimator: Any, needs: str | None = None, why: str = "") -> None:
    """Raise TypeError unless ``estimator`` is a scikit-learn classifier with method ``needs``."""
    if not (isinstance(estimator, BaseEstimator) and is_classifier(estimator)):
        raise TypeError(f"`{name}` must be a scikit-learn classifier; got {type(estimator).__name__}")
    if needs is not None and not hasattr(estimator, needs):
        raise TypeError(f"`{name}` must have a {needs} method{why}; got {type(estimator).__name__}, which has none")


def seeded_clone(estimator: BaseEstimator, rng: np.random.RandomState) -> BaseEstimator:
    """An unfitted copy of ``estimator`` whose ``random_state`` (if it has one) is drawn from ``rng``,
    the way scikit-learn's ensembles seed their members."""
    member = clone(estimator)
    if "random_state" in member.get_params(deep=False):
        member.set_params(random_state=rng.randint(_MAX_SEED))
    return member


def class_probabilities(estimator: BaseEstimator, X: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_samples, n_classes) probabilities of a member fitted on labels 0..K-1.

    A member that saw only some classes (a small bootstrap sample) gets zero columns for the
    others; a member without ``predict_proba`` casts a one-hot vote.
    """
    out = np.zeros((len(X), n_classes))
    if hasattr(estimator, "predict_proba"):
        out[:, estimator.classes_] = estimator.predict_proba(X)
    else:
        out[np.arange(len(X)), estimator.predict(X).astype(int)] = 1.0
    return out


def softmax(raw: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so that exp never overflows."""
    z = np.exp(raw - raw.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
