"""Knowledge distillation: a small student learns from a large teacher (chapter 6).

One module per method, each opening with its paper and equations:

* :mod:`~compresskit.distillation.hinton`: soft targets at a temperature and the T²-scaled
  loss, :func:`soften`, :func:`distillation_loss`, :func:`distill`, and
  :func:`shift_class_bias` for a class the transfer set lacks (Hinton, Vinyals, Dean 2015).
* :mod:`~compresskit.distillation.teachers`: any model that gives probabilities as a teacher,
  :class:`ProbabilityTeacher` (a scikit-learn ``predict_proba``), :func:`teacher_logits`.
* :mod:`~compresskit.distillation.hints`: FitNets hints through a learned regressor,
  :func:`fit_hints`, :func:`hint_loss`, :func:`layer_output` (Romero et al. 2015).
* :mod:`~compresskit.distillation.parameters`: a student initialised from the teacher's
  weights, :func:`keep_important_units`, :func:`truncated_svd`, :func:`low_rank_mlp`.
"""

from compresskit.distillation.hints import fit_hints, hint_loss, layer_output
from compresskit.distillation.hinton import distill, distillation_loss, shift_class_bias, soften
from compresskit.distillation.parameters import keep_important_units, low_rank_mlp, truncated_svd, unit_importance
from compresskit.distillation.teachers import ProbabilityTeacher, check_probabilities, teacher_logits

__all__ = [
    "ProbabilityTeacher",
    "check_probabilities",
    "distill",
    "distillation_loss",
    "fit_hints",
    "hint_loss",
    "keep_important_units",
    "layer_output",
    "low_rank_mlp",
    "shift_class_bias",
    "soften",
    "teacher_logits",
    "truncated_svd",
    "unit_importance",
]
