"""Pruning: remove weights (masks) or whole units (a smaller dense model), one-shot or while training.

References
----------
[1] S. Han, J. Pool, J. Tran, W. J. Dally, "Learning both Weights and Connections for
    Efficient Neural Networks", NeurIPS 2015, arXiv:1506.02626.
[2] H. Li, A. Kadav, I. Durdanovic, H. Samet, H. P. Graf, "Pruning Filters for Efficient
    ConvNets", ICLR 2017, arXiv:1608.08710.
[3] M. Zhu, S. Gupta, "To prune, or not to prune: exploring the efficacy of pruning for
    model compression", 2017, arXiv:1710.01878.
[4] G. Fang, X. Ma, M. Song, M. Bi Mi, X. Wang, "DepGraph: Towards Any Structural
    Pruning", CVPR 2023, arXiv:2301.12900.

Key equations
-------------
* magnitude pruning [1]: keep ``w_i`` unless ``|w_i|`` is among the ``k`` smallest,
  ``k = round(amount * numel)``; threshold pruning: keep ``|w_i| >= threshold``.
* Ln norm of a row / filter [2]: ``s_j = ||W_j||_n``; the smallest are pruned or removed.
* gradual sparsity [3]: ``s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (n dt))^3``.

Three small modules, read in this order:

* :mod:`compresskit.pruning.masks`: pure mask functions and ``torch.nn.utils.prune``
  methods with torch's names (``l1_unstructured``, ``random_unstructured``,
  ``ln_structured``, ``global_unstructured``) plus ``threshold_unstructured``.
* :mod:`compresskit.pruning.units`: neuron / channel pruning, couplings, importance, removal.
* :mod:`compresskit.pruning.finetune`: the gradual schedule, iterative rounds, hybrid
  pruning and the sensitivity scan.

A mask does not make a model smaller or faster: the state dict holds ``weight_orig`` and
``weight_mask``, and the forward pass multiplies them. Removing units does.
"""

from compresskit.pruning.finetune import GradualPruner, cubic_sparsity, hybrid_prune, iterative_pruning, sensitivity_scan
from compresskit.pruning.masks import (
    L1Unstructured,
    LnStructured,
    RandomUnstructured,
    ThresholdUnstructured,
    copy_model,
    global_magnitude_masks,
    global_unstructured,
    l1_unstructured,
    layer_sparsity,
    ln_structured,
    ln_structured_mask,
    magnitude_mask,
    prunable_parameters,
    random_mask,
    random_unstructured,
    remove_masks,
    set_sparsity,
    slice_norms,
    threshold_mask,
    threshold_unstructured,
)
from compresskit.pruning.units import Coupling, find_couplings, keep_units, mask_units, prune_units, remove_units, unit_importance

__all__ = [
    "Coupling",
    "GradualPruner",
    "L1Unstructured",
    "LnStructured",
    "RandomUnstructured",
    "ThresholdUnstructured",
    "copy_model",
    "cubic_sparsity",
    "find_couplings",
    "global_magnitude_masks",
    "global_unstructured",
    "hybrid_prune",
    "iterative_pruning",
    "keep_units",
    "l1_unstructured",
    "layer_sparsity",
    "ln_structured",
    "ln_structured_mask",
    "magnitude_mask",
    "mask_units",
    "prunable_parameters",
    "prune_units",
    "random_mask",
    "random_unstructured",
    "remove_masks",
    "remove_units",
    "sensitivity_scan",
    "set_sparsity",
    "slice_norms",
    "threshold_mask",
    "threshold_unstructured",
    "unit_importance",
]
