"""Any model that gives class probabilities can teach: a network, an ensemble, a scikit-learn model.

Distillation (:mod:`compresskit.distillation.hinton`) needs the teacher's logits z on the
transfer set. A network gives them directly. A model that only gives probabilities p (a
scikit-learn ``predict_proba``) gives log p instead: log p differs from the logits that
produced p by a constant per row, and softmax ignores such a constant, so::

    softmax(log p / T) = p^(1/T) / sum_j p_j^(1/T)                                 Eq. (1)

is the same softened distribution the teacher's own logits would give. A zero probability
becomes a logit of -inf, which the softmax turns back into 0.

:class:`ProbabilityTeacher` wraps ``predict_proba`` as an ``nn.Module`` that returns log p and
refuses outputs that are not probabilities (rows that do not sum to 1: logits by mistake).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from compresskit._validation import check_int, check_module, check_tensor
from compresskit.distillation._modes import keeping_modes

ROW_SUM_TOLERANCE = 1e-3


def check_probabilities(name: str, probs: torch.Tensor) -> torch.Tensor:
    """A 2-D tensor whose rows are probability distributions: >= 0, each summing to 1."""
    check_tensor(name, probs, ndim=2, floating=True, finite=True)
    if (probs < 0).any():
        raise ValueError(f"`{name}` must be probabilities (>= 0, rows summing to 1); got a minimum of {probs.min().item():.4g}: "
                         "are these logits?")
    sums = probs.sum(dim=1)
    worst = int((sums - 1).abs().argmax())
    if abs(float(sums[worst]) - 1) > ROW_SUM_TOLERANCE:
        raise ValueError(f"`{name}` must be probabilities with rows summing to 1; got row {worst} summing to "
                         f"{float(sums[worst]):.4g}: are these logits? Apply softmax first, or wrap the network as the teacher")
    return probs


class ProbabilityTeacher(nn.Module):
    """A teacher that gives probabilities, seen as a network that returns log-probabilities.

    ``predict_proba`` is a fitted scikit-learn estimator (anything with ``predict_proba``) or a
    function from a float32 array (N, d) to probabilities (N, K). Inputs are flattened to
    (N, d) first, so the image tensors (N, 1, 8, 8) the networks take work unchanged.
    """

    def __init__(self, predict_proba: Any) -> None:
        super().__init__()
        fn = getattr(predict_proba, "predict_proba", predict_proba)
        if not callable(fn):
            raise TypeError(f"`predict_proba` must be an estimator with predict_proba or a function; got {type(predict_proba).__name__}")
        self.predict_proba: Callable[[np.ndarray], Any] = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.detach().reshape(len(x), -1).cpu().numpy().astype(np.float32)
        probs = torch.as_tensor(np.asarray(self.predict_proba(flat), dtype=np.float32))
        if probs.dim() != 2 or len(probs) != len(x):
            raise ValueError(f"`teacher` must return probabilities of shape (N, K) with N = {len(x)}; got {tuple(probs.shape)}")
        check_probabilities("teacher", probs)
        return torch.log(probs)  # Eq. (1): log p stands for the logits


@torch.no_grad()
def teacher_logits(teacher: nn.Module, X: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """The teacher's logits (N, K) on X, computed in eval mode, batch by batch, on the CPU.

    A :class:`ProbabilityTeacher` returns log-probabilities (Eq. (1)). ``teacher`` comes back in
    the mode it came in, even on failure.
    """
    check_module("teacher", teacher)
    check_tensor("X", X, floating=True, finite=True)
    batch_size = check_int("batch_size", batch_size, 1)
    with keeping_modes(teacher):
        teacher.eval()
        out = torch.cat([teacher(X[i : i + batch_size]).float().cpu() for i in range(0, len(X), batch_size)])
    if out.dim() != 2 or len(out) != len(X):
        raise ValueError(f"`teacher` must return one row of logits per sample ({len(X)}, K); got {tuple(out.shape)}")
    if torch.isnan(out).any():
        raise ValueError("`teacher` returned NaN logits")
    return out
