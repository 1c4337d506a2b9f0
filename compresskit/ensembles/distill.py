"""Compressing an ensemble into one small network: model compression by mimicry, with MUNGE.

[1] C. Buciluǎ, R. Caruana, A. Niculescu-Mizil, "Model Compression", KDD 2006.

An ensemble (the teacher) is accurate but large and slow. [1] trains a small neural network
(the student) to reproduce the teacher's predictions, not the original labels, and on far more
inputs than the training set: the teacher can label any point, so [1] invents points with
MUNGE. For each training example e, with e' its nearest neighbour, every attribute a is,
with probability ``p_swap``, replaced by a draw near the neighbour's value::

    e_a  <-  Normal(e'_a, |e_a - e'_a| / s)                                      Eq. (1)

(Section 3.3 and Fig. 1 of [1]; [1] also changes e' symmetrically, we keep e' as it is, so
every pass is one vectorised draw). The student then minimises the cross-entropy to the
teacher's class probabilities q(x) on the real and invented points::

    L = -(1/N) sum_i sum_k q_k(x_i) log softmax(student(x_i))_k                 Eq. (2)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch import nn

from compresskit._validation import check_array, check_int, check_real
from compresskit.data import make_loader
from compresskit.models import mlp
from compresskit.train import fit, soft_cross_entropy


def munge(
    X: np.ndarray,
    *,
    n_copies: int = 4,
    p_swap: float = 0.5,
    s: float = 1.0,
    random_state: int | np.random.RandomState | None = None,
) -> np.ndarray:
    """``n_copies`` synthetic versions of every row of X, by Eq. (1); shape (n_copies * n, d).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Real-valued training inputs (at least 2 rows, for the nearest neighbour).
    n_copies : int, default=4
        Passes over the training set; [1] calls it k.
    p_swap : float, default=0.5
        Probability that an attribute is redrawn near the neighbour's value.
    s : float, default=1.0
        Spread divisor: the draw's standard deviation is |e_a - e'_a| / s.
    random_state : int, RandomState or None
        Seeds the draws.

    References
    ----------
    .. [1] C. Buciluǎ, R. Caruana, A. Niculescu-Mizil, "Model Compression", KDD 2006.
    """
    X = check_array("X", X, ndim=2).astype(np.float64)
    n_copies = check_int("n_copies", n_copies, 1)
    p_swap = check_real("p_swap", p_swap, 0.0, 1.0)
    s = check_real("s", s, 0.0, low_open=True)
    if len(X) < 2:
        raise ValueError(f"`X` must have at least 2 rows (each needs a nearest neighbour); got {len(X)}")
    rng = check_random_state(random_state)
    neighbour = X[NearestNeighbors(n_neighbors=2).fit(X).kneighbors(X, return_distance=False)[:, 1]]
    copies = []
    for _ in range(n_copies):
        swap = rng.random_sample(X.shape) < p_swap
        drawn = rng.normal(neighbour, np.abs(X - neighbour) / s)  # Eq. (1)
        copies.append(np.where(swap, drawn, X))
    return np.concatenate(copies)


def soft_target_loss(model: nn.Module, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Eq. (2) on one batch: the student's cross-entropy to the teacher's probabilities q."""
    return soft_cross_entropy(model(x), q)  # Eq. (2)


def distill_ensemble(
    teacher: Any,
    X: np.ndarray,
    *,
    hidden: Sequence[int] = (32,),
    n_copies: int = 4,
    p_swap: float = 0.5,
    s: float = 1.0,
    epochs: int = 60,
    lr: float = 5e-3,
    batch_size: int = 128,
    seed: int = 0,
) -> nn.Sequential:
    """Train a small MLP on ``teacher.predict_proba`` over X plus ``n_copies`` MUNGE copies of X.

    ``n_copies=0`` trains on the real inputs only. The student's logit k stands for
    ``teacher.classes_[k]``. Training is :func:`compresskit.train.fit` with the loss of Eq. (2);
    the same ``seed`` gives the same synthetic points, initial weights and batch order.

    References
    ----------
    .. [1] C. Buciluǎ, R. Caruana, A. Niculescu-Mizil, "Model Compression", KDD 2006.
    """
    if not hasattr(teacher, "predict_proba"):
        raise TypeError(f"`teacher` must have a predict_proba method (the student learns its probabilities); got {type(teacher).__name__}")
    check_is_fitted(teacher)
    X = check_array("X", X, ndim=2).astype(np.float32)
    n_copies = check_int("n_copies", n_copies, 0)
    batch_size = check_int("batch_size", batch_size, 1)  # before the teacher labels anything
    seed = check_int("seed", seed, 0)
    check_int("epochs", epochs, 1)
    check_real("lr", lr, 0.0, low_open=True)
    if n_copies > 0:
        X = np.concatenate([X, munge(X, n_copies=n_copies, p_swap=p_swap, s=s, random_state=seed).astype(np.float32)])
    targets = torch.as_tensor(teacher.predict_proba(X), dtype=torch.float32)  # q(x), (N, K)
    student = mlp(hidden, in_features=X.shape[1], num_classes=targets.shape[1], seed=seed)
    # Each batch pairs inputs with the teacher's probabilities for them, in a new seeded order every epoch.
    loader = make_loader(torch.from_numpy(X), targets, batch_size, shuffle=True, seed=seed)
    fit(student, loader, epochs=epochs, lr=lr, loss_fn=soft_target_loss, seed=seed, progress=False, device="cpu")
    return student.eval()
