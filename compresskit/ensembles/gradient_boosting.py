"""Gradient boosting for K classes: regression trees fitted to the negative gradient of the
multinomial log-loss, with a Newton step in every leaf.

[1] J. H. Friedman, "Greedy Function Approximation: A Gradient Boosting Machine",
    Annals of Statistics 29(5):1189-1232, 2001 (Algorithm 6, LK_TreeBoost).
[2] J. Friedman, T. Hastie, R. Tibshirani, "Additive Logistic Regression: a Statistical View
    of Boosting", Annals of Statistics 28(2):337-407, 2000.
[3] J. H. Friedman, "Stochastic Gradient Boosting", Computational Statistics & Data Analysis
    38(4):367-378, 2002.

The model keeps one raw score F_k(x) per class; p_k(x) = softmax(F(x))_k. With the log-loss
L = -sum_k y_k log p_k (y one-hot), starting from F_k0, for m = 1..M and each k:

    r_ik   = -dL/dF_k(x_i) = y_ik - p_k(x_i)                                   Eq. (1)
    fit a regression tree with leaves R_jkm to {(x_i, r_ik)}
    gamma_jkm = (K-1)/K * sum_{i in R_jkm} r_ik / sum_{i in R_jkm} |r_ik| (1 - |r_ik|)   Eq. (2)
    F_k(x) <- F_k(x) + learning_rate * gamma_jkm  for x in R_jkm               Eq. (3)

Eq. (2) is one Newton step on the loss inside each leaf ([1], Algorithm 6); the factor
(K-1)/K is Friedman's, kept (as scikit-learn keeps it) so that results match.

The start F_k0: Friedman's Algorithm 6 starts from F_k0 = 0 (every class equally likely).
We start, as scikit-learn does, from F_k0 = log(prior of class k), the best constant model,
which saves the first rounds the work of learning the class frequencies; the trees that
follow are fitted the same way either way.

Stochastic gradient boosting [3]: with ``subsample`` < 1, each round draws a fraction of the
training samples without replacement; that round's trees are fitted, and their leaf values
Eq. (2) computed, on those samples only, while Eq. (3) updates the scores of every sample.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils import check_random_state

from compresskit._validation import check_int, check_real
from compresskit.ensembles._common import fit_inputs, fitting, predict_inputs, softmax


def multinomial_negative_gradient(Y: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """r = Y - softmax(raw), Eq. (1): what each round's trees are fitted to.

    ``Y`` is one-hot (n_samples, K); ``raw`` the current scores F (n_samples, K).
    """
    return Y - softmax(raw)  # Eq. (1)


def newton_leaf_values(
    tree: DecisionTreeRegressor,
    X: np.ndarray,
    residual: np.ndarray,
    n_classes: int,
    sample_mask: np.ndarray | None = None,
) -> None:
    """Replace each leaf's value of a fitted ``tree`` by gamma of Eq. (2), in place.

    Only the samples in ``sample_mask`` (default: all) count; a leaf none of them reaches gets 0.
    scikit-learn's own gradient boosting does the same, writing into ``tree.tree_.value``.
    """
    leaf_of = tree.apply(X)
    in_bag = np.ones(len(X), dtype=bool) if sample_mask is None else np.asarray(sample_mask, dtype=bool)
    values = tree.tree_.value  # (n_nodes, 1, 1), a writable view of the tree's leaf values
    for leaf in np.flatnonzero(tree.tree_.children_left == -1):
        r = residual[in_bag & (leaf_of == leaf)]
        numerator = (n_classes - 1) / n_classes * r.sum()
        denominator = np.sum(np.abs(r) * (1 - np.abs(r)))
        values[leaf, 0, 0] = numerator / denominator if denominator > 1e-150 else 0.0  # Eq. (2)


def subsample_mask(n_samples: int, n_in_bag: int, random_state: int | np.random.RandomState | None = None) -> np.ndarray:
    """A boolean mask of exactly ``n_in_bag`` of ``n_samples`` samples, drawn without replacement.

    Selection sampling (Knuth, The Art of Computer Programming vol. 2, Algorithm S): sample i
    is taken with probability (still needed) / (still left). One uniform draw per sample, the
    draws scikit-learn's gradient boosting makes, so the same generator picks the same samples.
    """
    n_samples = check_int("n_samples", n_samples, 1)
    n_in_bag = check_int("n_in_bag", n_in_bag, 0, n_samples)
    u = check_random_state(random_state).uniform(size=n_samples)
    mask = np.zeros(n_samples, dtype=bool)
    taken = 0
    for i in range(n_samples):
        if u[i] * (n_samples - i) < n_in_bag - taken:
            mask[i] = True
            taken += 1
    return mask


class GradientBoostingClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial gradient boosting with regression trees (LK_TreeBoost, [1]).

    Parameters
    ----------
    n_estimators : int, default=100
        Boosting rounds M; each round fits one tree per class.
    learning_rate : float, default=0.1
        Shrinkage of every tree's contribution, Eq. (3); must be > 0.
    max_depth : int, default=3
        Depth of each regression tree.
    subsample : float, default=1.0
        Fraction of the training samples, in (0, 1], drawn without replacement for each
        round: stochastic gradient boosting [3] when < 1 (``max(1, int(subsample * n))`` samples,
        as in scikit-learn).
    random_state : int, RandomState or None, default=None
        Seeds each tree's ``random_state`` (it breaks ties between equally good splits).

    Attributes
    ----------
    estimators_ : ndarray of DecisionTreeRegressor, shape (n_estimators, n_classes)
        Tree (m, k) moves the score of class k in round m.
    init_ : ndarray of shape (n_classes,)
        F_k0 = log of the class priors (scikit-learn's start; Friedman's Algorithm 6 starts from 0).
    classes_ : ndarray of shape (n_classes,)
    n_classes_ : int
    n_features_in_ : int

    Notes
    -----
    Two classes are treated as K = 2 (two trees per round), where scikit-learn fits one tree on
    the binomial loss; predictions agree closely but not exactly.

    References
    ----------
    .. [1] J. H. Friedman, "Greedy Function Approximation: A Gradient Boosting Machine",
           Annals of Statistics 29(5):1189-1232, 2001.
    .. [2] J. Friedman, T. Hastie, R. Tibshirani, "Additive Logistic Regression: a Statistical
           View of Boosting", Annals of Statistics 28(2):337-407, 2000.
    .. [3] J. H. Friedman, "Stochastic Gradient Boosting", Computational Statistics & Data
           Analysis 38(4):367-378, 2002.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> gb = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y)
    >>> gb.estimators_.shape
    (10, 3)
    """

    def __init__(
        self,
        n_estimators: int = 100,
        *,
        learning_rate: float = 0.1,
        max_depth: int = 3,
        subsample: float = 1.0,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> "GradientBoostingClassifier":
        """Fit ``n_estimators`` rounds of K regression trees to the negative gradient."""
        n_estimators = check_int("n_estimators", self.n_estimators, 1)  # every parameter before anything is set
        learning_rate = check_real("learning_rate", self.learning_rate, 0.0, low_open=True)
        max_depth = check_int("max_depth", self.max_depth, 1)
        subsample = check_real("subsample", self.subsample, 0.0, 1.0, low_open=True)
        with fitting(self):
            X, y = fit_inputs(self, X, y)
            rng = check_random_state(self.random_state)
            K = self.n_classes_
            Y = np.eye(K)[y]  # one-hot (n, K)
            init = np.log(Y.mean(axis=0))  # F_k0: log prior, scikit-learn's start (Friedman's is 0)
            raw = np.tile(init, (len(X), 1))  # (n, K)
            n_in_bag = max(1, int(subsample * len(X)))
            trees = np.empty((n_estimators, K), dtype=object)
            for m in range(n_estimators):
                # [3]: this round's sample; scikit-learn draws it from the trees' generator too.
                in_bag = subsample_mask(len(X), n_in_bag, rng) if subsample < 1 else None
                residual = multinomial_negative_gradient(Y, raw)  # Eq. (1), fixed for the whole round
                for k in range(K):
                    trees[m, k] = self._fit_tree(X, residual[:, k], in_bag, max_depth, rng)
                    raw[:, k] += learning_rate * trees[m, k].predict(X)  # Eq. (3), every sample
            self.init_, self.estimators_ = init, trees
        return self

    def _fit_tree(
        self, X: np.ndarray, r: np.ndarray, in_bag: np.ndarray | None, max_depth: int, rng: np.random.RandomState
    ) -> DecisionTreeRegressor:
        """One regression tree on the residuals r of the in-bag samples, with Newton leaf values."""
        # Every tree draws from the one generator, as in scikit-learn, so the trees match its own.
        tree = DecisionTreeRegressor(max_depth=max_depth, random_state=rng)
        # Out-of-bag samples get weight 0, as scikit-learn does (rather than dropping the rows).
        tree.fit(X, r, sample_weight=None if in_bag is None else in_bag.astype(np.float64))
        newton_leaf_values(tree, X, r, self.n_classes_, in_bag)  # Eq. (2)
        return tree

    def _staged_raw(self, X: np.ndarray) -> Iterator[np.ndarray]:
        """The scores F(x) after rounds 1, 2, ..., M (one array, updated in place)."""
        raw = np.tile(self.init_, (len(X), 1))
        for trees in self.estimators_:
            for k, tree in enumerate(trees):
                raw[:, k] += self.learning_rate * tree.predict(X)  # Eq. (3)
            yield raw

    def predict_proba(self, X: Any) -> np.ndarray:
        """softmax(F(x)): shape (n_samples, n_classes)."""
        X = predict_inputs(self, X)
        *_, raw = self._staged_raw(X)  # the scores after the last round
        return softmax(raw)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the highest score F_k(x)."""
        proba = self.predict_proba(X)  # checks first that the model is fitted
        return self.classes_[proba.argmax(axis=1)]

    def staged_predict(self, X: Any) -> Iterator[np.ndarray]:
        """Predictions after 1, 2, ..., M rounds."""
        X = predict_inputs(self, X)
        for raw in self._staged_raw(X):
            yield self.classes_[raw.argmax(axis=1)]
