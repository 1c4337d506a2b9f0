"""Ensembles from scratch as scikit-learn estimators, and their compression into one small network.

One module per method, each opening with its paper and equations:

* :mod:`~compresskit.ensembles.bagging`: :class:`BaggingClassifier`, :func:`bootstrap_sample`
  (Breiman 1996), :func:`random_subspace` (Ho 1998).
* :mod:`~compresskit.ensembles.adaboost`: :class:`AdaBoostClassifier`, :func:`samme_round`
  (multi-class SAMME, Zhu, Zou, Rosset, Hastie 2009).
* :mod:`~compresskit.ensembles.gradient_boosting`: :class:`GradientBoostingClassifier`,
  :func:`multinomial_negative_gradient` (Friedman 2001), :func:`subsample_mask` (Friedman 2002).
* :mod:`~compresskit.ensembles.stacking`: :class:`StackingClassifier`,
  :func:`out_of_fold_predictions` (Wolpert 1992).
* :mod:`~compresskit.ensembles.distill`: :func:`munge`, :func:`distill_ensemble`
  (Buciluǎ, Caruana, Niculescu-Mizil 2006, "Model Compression"). Its loss,
  :func:`~compresskit.train.soft_cross_entropy`, lives in the core and is re-exported here.

Ensembles make models bigger; in a compression course they are the accurate, expensive
teacher whose knowledge is moved into one small network.
"""

from compresskit.ensembles.adaboost import AdaBoostClassifier, samme_round
from compresskit.ensembles.bagging import BaggingClassifier, bootstrap_sample, random_subspace
from compresskit.ensembles.distill import distill_ensemble, munge
from compresskit.ensembles.gradient_boosting import (
    GradientBoostingClassifier,
    multinomial_negative_gradient,
    newton_leaf_values,
    subsample_mask,
)
from compresskit.ensembles.stacking import StackingClassifier, out_of_fold_predictions, stack_columns
from compresskit.train import soft_cross_entropy

__all__ = [
    "AdaBoostClassifier",
    "BaggingClassifier",
    "GradientBoostingClassifier",
    "StackingClassifier",
    "bootstrap_sample",
    "distill_ensemble",
    "multinomial_negative_gradient",
    "munge",
    "newton_leaf_values",
    "out_of_fold_predictions",
    "random_subspace",
    "samme_round",
    "soft_cross_entropy",
    "stack_columns",
    "subsample_mask",
]
