"""Knowledge distillation with soft targets and a temperature (Hinton, Vinyals, Dean 2015).

[1] G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network",
    NIPS 2014 Deep Learning Workshop, arXiv:1503.02531.

A teacher's class probabilities say more than a label: "this 7 is a little like a 1 and not
at all like a 6". At temperature 1 those small probabilities are almost zero; dividing the
logits by a temperature T > 1 before the softmax makes them visible::

    q_i = exp(z_i / T) / sum_j exp(z_j / T)                                        Eq. (1)

The student is trained on a mix of two losses: the KL divergence from the teacher's softened
distribution q^T to the student's softened distribution p^T, and the usual cross-entropy
with the labels at T = 1. The soft term's gradient with respect to the student's logits is
(p^T - q^T) / T, which shrinks as 1/T² for large T (Section 2.1 of [1]); multiplying the
soft term by T² keeps its share of the gradient the same whatever T is::

    L = alpha * T² * KL(q^T || p^T) + (1 - alpha) * CE(y, p^1)                     Eq. (2)

KL(q || p) = sum_k q_k (log q_k - log p_k), averaged over the batch ("batchmean" in
``F.kl_div``; "mean" would also divide by the number of classes). We compute it as the core's
:func:`compresskit.train.soft_cross_entropy` minus the teacher's entropy, which does not depend
on the student. A teacher that only gives probabilities p (a scikit-learn model) is softened
the same way, since softmax(log p / T) = p^(1/T) / sum_j p_j^(1/T).
"""

from __future__ import annotations

import torch
from torch import nn

from compresskit._validation import check_int, check_module, check_real, check_seed, check_tensor
from compresskit.data import make_loader
from compresskit.distillation._modes import keeping_modes
from compresskit.models import copy_model
from compresskit.train import History, fit, soft_cross_entropy


def _check_temperature(temperature: float) -> float:
    return check_real("temperature", temperature, 0.0, low_open=True)


def _check_teacher_logits(name: str, logits: torch.Tensor) -> None:
    """Finite logits, or -inf (the log of a zero probability), with at least one finite logit per row."""
    if torch.isnan(logits).any() or (logits == float("inf")).any():
        bad = int((torch.isnan(logits) | (logits == float("inf"))).sum())
        raise ValueError(f"`{name}` must be finite or -inf (log of a zero probability); got {bad} NaN or +inf value(s) "
                         f"in shape {tuple(logits.shape)}")
    rows = torch.isinf(logits).all(dim=-1).reshape(-1)
    if rows.any():
        raise ValueError(f"`{name}` must have a finite logit in every row (a row of -inf is no distribution); got "
                         f"{int(rows.sum())} row(s) of only -inf, the first at row {int(rows.nonzero()[0])}")


def soften(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The softened softmax of Eq. (1): softmax(logits / T) over the last axis (classes).

    A logit of -inf (the log of a zero probability) gives a probability of exactly 0."""
    check_tensor("logits", logits, ndim=(1, 2), floating=True)
    _check_teacher_logits("logits", logits)
    temperature = _check_temperature(temperature)
    return torch.softmax(logits / temperature, dim=-1)  # Eq. (1)


def _check_labels(labels: torch.Tensor | None, n: int, n_classes: int) -> torch.Tensor:
    check_tensor("labels", labels, ndim=1)
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"`labels` must be an integer tensor of class indices; got dtype {labels.dtype}")
    if len(labels) != n:
        raise ValueError(f"`labels` must hold one label per row of `student_logits` ({n}); got {len(labels)}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= n_classes:
        raise ValueError(f"`labels` must be in [0, {n_classes - 1}] (one logit per class); got values in [{low}, {high}]")
    return labels.long()


def _kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, hard_targets: torch.Tensor | None,
             temperature: float, alpha: float) -> torch.Tensor:
    """Eq. (2) without the argument checks (the training loop calls it on every batch)."""
    q = torch.softmax(teacher_logits / temperature, dim=1)                          # Eq. (1), teacher
    entropy = -torch.special.xlogy(q, q).sum(dim=1).mean()
    kl = soft_cross_entropy(student_logits / temperature, q) - entropy              # KL(q^T || p^T), batchmean
    loss = alpha * temperature**2 * kl                                              # Eq. (2), soft term
    if alpha < 1:
        loss = loss + (1 - alpha) * soft_cross_entropy(student_logits, hard_targets)  # Eq. (2), hard term
    return loss


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """Hinton's loss, Eq. (2): alpha * T² * KL(teacher^T || student^T) + (1 - alpha) * CE(labels).

    ``student_logits`` and ``teacher_logits`` are (N, K). ``labels`` (N,) class indices may be
    None only when ``alpha == 1`` (soft targets alone). A teacher that gives probabilities p
    passes log p as its logits (see :class:`compresskit.distillation.ProbabilityTeacher`).
    Equal to ``alpha * T**2 * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1),
    reduction="batchmean") + (1 - alpha) * F.cross_entropy(s, labels)``.
    """
    check_tensor("student_logits", student_logits, ndim=2, floating=True, finite=True)
    check_tensor("teacher_logits", teacher_logits, ndim=2, floating=True)
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"`teacher_logits` must have the shape of `student_logits` {tuple(student_logits.shape)}; "
                         f"got {tuple(teacher_logits.shape)}")
    _check_teacher_logits("teacher_logits", teacher_logits)
    temperature = _check_temperature(temperature)
    alpha = check_real("alpha", alpha, 0.0, 1.0)
    hard = None
    if labels is None:
        if alpha < 1:
            raise ValueError(f"`labels` are needed when `alpha` < 1 (the hard-label term); got None with alpha={alpha}")
    else:
        n, k = student_logits.shape
        hard = nn.functional.one_hot(_check_labels(labels, n, k), k).to(student_logits.dtype)
    return _kd_loss(student_logits, teacher_logits, hard, temperature, alpha)


def distill(
    student: nn.Module,
    X: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
    epochs: int = 30,
    lr: float = 1e-2,
    batch_size: int = 64,
    seed: int = 0,
) -> History:
    """Train ``student`` in place on Eq. (2) over the transfer set X with :func:`compresskit.train.fit`.

    ``teacher_logits`` (N, K) are the teacher's outputs on X, computed once (the teacher does
    not change); ``labels`` (N,) are needed when ``alpha < 1``. ``seed`` sets the batch order
    (the student's initial weights are the caller's). Returns fit's History.
    """
    check_module("student", student)
    check_tensor("X", X, floating=True, finite=True)
    check_tensor("teacher_logits", teacher_logits, ndim=2, floating=True)
    if len(teacher_logits) != len(X):
        raise ValueError(f"`teacher_logits` must have one row per sample of `X` ({len(X)}); got {len(teacher_logits)}")
    n, k = teacher_logits.shape
    with keeping_modes(student):
        width = _output_width(student, X)
    if width != k:
        raise ValueError(f"`teacher_logits` must have the shape of `student_logits` ({n}, {width}), one column per "
                         f"class the student predicts; got {tuple(teacher_logits.shape)}")
    # Validate every argument of Eq. (2) once, on the whole set, before training changes anything.
    distillation_loss(torch.zeros(n, k, dtype=teacher_logits.dtype), teacher_logits, labels, temperature=temperature, alpha=alpha)
    check_int("epochs", epochs, 0)
    check_real("lr", lr, 0.0, low_open=True)
    seed = check_seed("seed", seed)
    hard = torch.zeros(n, k) if labels is None else nn.functional.one_hot(labels.long(), k).float()
    targets = torch.stack([teacher_logits.float(), hard], dim=1)  # (N, 2, K): the teacher's logits and the one-hot label
    loader = make_loader(X, targets, check_int("batch_size", batch_size, 1), shuffle=True, seed=seed)
    temperature, alpha = float(temperature), float(alpha)

    def loss_fn(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return _kd_loss(model(x), t[:, 0], t[:, 1], temperature, alpha)

    with keeping_modes(student):  # fit leaves a model training: give the caller's mode back
        return fit(student, loader, epochs=epochs, lr=lr, loss_fn=loss_fn, seed=seed, progress=False, device="cpu")


@torch.no_grad()
def _output_width(model: nn.Module, X: torch.Tensor) -> int:
    """The number of outputs of ``model`` on one sample of X, in eval mode (a BatchNorm must not
    update its statistics on this probe); a clear error if X does not fit the model."""
    try:
        out = model.eval()(X[:1])
    except RuntimeError as exc:
        raise ValueError(f"`X` must fit the input of `student` ({type(model).__name__}); got shape {tuple(X.shape)}, "
                         f"on which the model fails: {exc}") from exc
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ValueError(f"`student` must return logits of shape (N, K) on `X`; got {type(out).__name__} "
                         f"{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}")
    return out.shape[-1]


def shift_class_bias(model: nn.Module, class_index: int, shift: float) -> nn.Module:
    """A copy of ``model`` whose last Linear layer's bias for ``class_index`` is raised by ``shift``.

    Section 3 of [1]: a student that never saw a class in its transfer set learns from the soft
    targets to recognise it, but under-predicts it; raising that class's bias corrects this.
    """
    check_module("model", model)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last or last[-1].bias is None:
        raise ValueError(f"`model` must end in an nn.Linear with a bias; got {type(model).__name__} without one")
    n_classes = last[-1].out_features
    class_index = check_int("class_index", class_index, 0, n_classes - 1)
    shift = check_real("shift", shift)
    shifted = copy_model(model)  # a pruned model too
    layer = [m for m in shifted.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        layer.bias[class_index] += shift
    return shifted
