"""Exercise checkers for chapter 6, distillation. Each ``check_*`` prints feedback and returns a bool.

Each checker compares the learner's answer with the reference in :mod:`compresskit.distillation`
and, when it differs, with the answers the usual mistakes give (the T² left out, the logarithm
on the wrong side of the KL divergence, ``reduction="mean"``, the wrong axis ...), so the
message names the mistake rather than only the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from compresskit.course.checker import Case, check_function, close
from compresskit.distillation import distillation_loss, soften, truncated_svd


@dataclass
class Expected:
    """The right answer, and what each known mistake would return instead."""

    value: Any
    mistakes: dict[str, Any] = field(default_factory=dict)


def _pointed(expected: Expected, got: Any, rtol: float = 1e-4, atol: float = 1e-6) -> str | None:
    reason = close(expected.value, got, rtol=rtol, atol=atol)
    if reason is None:
        return None
    for message, wrong in expected.mistakes.items():
        if wrong is not None and close(wrong, got, rtol=rtol, atol=atol) is None:
            return message
    return reason


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- exercise 1: the softened softmax --------------------------------------------------------

def _soften_expected(logits: torch.Tensor, temperature: float) -> Expected:
    return Expected(soften(logits, temperature), {
        "you returned softmax(z): divide the logits by the temperature first": torch.softmax(logits, dim=-1),
        "you multiplied by T: divide the logits by the temperature": torch.softmax(logits * temperature, dim=-1),
        "the softmax runs over the wrong axis: each row (one sample) must sum to 1, use dim=-1 (or dim=1)":
            torch.softmax(logits / temperature, dim=0) if logits.dim() == 2 else None,
        "you returned log-probabilities (log_softmax): return the probabilities": torch.log_softmax(logits / temperature, dim=-1),
        "you divided the probabilities by T after the softmax: divide the logits before it": torch.softmax(logits, dim=-1) / temperature,
    })


def check_softened_softmax(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """``fn(logits, temperature)`` -> softmax(logits / T) over the classes (the last axis)."""
    z = 3 * torch.randn(5, 10, generator=_g(0))
    return check_function(fn, reference=_soften_expected, cases=[
        Case("5 digits x 10 classes, T = 4", (z, 4.0)),
        Case("the same logits, T = 1 (the ordinary softmax)", (z, 1.0)),
        Case("T = 0.5 sharpens", (torch.tensor([[2.0, 1.0, 0.0]]), 0.5)),
        Case("a 3 x 3 batch, T = 10", (torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0], [4.0, -1.0, 0.0]]), 10.0)),
    ], name="softened_softmax", compare=_pointed,
        hint="torch.softmax(logits / temperature, dim=-1)")


# --- exercise 2: the distillation loss -------------------------------------------------------

def _kd_expected(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> Expected:
    T = temperature
    log_p, q = F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1)
    right = distillation_loss(student_logits, teacher_logits, temperature=T, alpha=1.0)
    n_classes = student_logits.shape[1]
    return Expected(right, {
        "missing T²: multiply the KL divergence by temperature ** 2, or its gradient shrinks as 1/T²": right / T**2,
        'reduction="mean" divides by the number of classes too: use reduction="batchmean" (the sum over classes, '
        "the mean over the batch)": right / n_classes,
        "log of the wrong side: F.kl_div(input, target) takes the STUDENT's log-probabilities as input and the "
        "teacher's probabilities as target":
            T**2 * F.kl_div(F.log_softmax(teacher_logits / T, dim=1), F.softmax(student_logits / T, dim=1), reduction="batchmean"),
        "the student's logits must be divided by T too (both sides are softened)":
            T**2 * F.kl_div(F.log_softmax(student_logits, dim=1), q, reduction="batchmean"),
        "the teacher's logits must be divided by T too (both sides are softened)":
            T**2 * F.kl_div(log_p, F.softmax(teacher_logits, dim=1), reduction="batchmean"),
        "you summed over the batch: average over the samples (reduction=\"batchmean\")": right * len(student_logits),
    })


def check_distillation_loss(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> bool:
    """``fn(student_logits, teacher_logits, temperature)`` -> T² · KL(softmax(teacher/T) ‖ softmax(student/T)),
    averaged over the batch (a scalar tensor)."""
    s, t = torch.randn(8, 10, generator=_g(1)), 4 * torch.randn(8, 10, generator=_g(2))
    return check_function(fn, reference=_kd_expected, cases=[
        Case("8 digits, 10 classes, T = 4", (s, t, 4.0)),
        Case("the same logits, T = 2", (s, t, 2.0)),
        Case("3 samples, 5 classes, T = 8", (torch.randn(3, 5, generator=_g(3)), 3 * torch.randn(3, 5, generator=_g(4)), 8.0)),
    ], name="distillation_loss", compare=_pointed,
        hint="T**2 * F.kl_div(F.log_softmax(student / T, dim=1), F.softmax(teacher / T, dim=1), reduction='batchmean')")


# --- exercise 3: the SVD initialisation ------------------------------------------------------

def _svd_expected(weight: torch.Tensor, rank: int) -> Expected:
    first, second = truncated_svd(weight, rank)
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    mistakes = {
        "you left the singular values out: second @ first must be U_r diag(S_r) V_r^T": U[:, :rank] @ Vh[:rank],
        "you kept the smallest singular values: torch.linalg.svd returns them largest first, keep the first `rank`":
            U[:, -rank:] @ torch.diag(S[-rank:]) @ Vh[-rank:],
        "off by one: keep exactly `rank` singular values (S[:rank]), not rank + 1": (
            U[:, : rank + 1] @ torch.diag(S[: rank + 1]) @ Vh[: rank + 1]) if rank < len(S) else None,
        "off by one: keep exactly `rank` singular values (S[:rank]), not rank - 1": (
            U[:, : rank - 1] @ torch.diag(S[: rank - 1]) @ Vh[: rank - 1]) if rank > 1 else None,
    }
    return Expected((first, second), mistakes)


def _svd_compare(expected: Expected, got: Any) -> str | None:
    first, second = expected.value
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and all(isinstance(g, torch.Tensor) for g in got)):
        return f"expected a pair of tensors (first, second), got {type(got).__name__}"
    rank = first.shape[0]
    if got[0].dim() == 2 and got[0].shape[0] in (rank - 1, rank + 1) and got[0].shape[1] == first.shape[1]:
        return f"off by one: keep exactly `rank` = {rank} singular values (S[:rank]); got {got[0].shape[0]}"
    if got[0].shape != first.shape or got[1].shape != second.shape:
        return (f"shapes: first must be (rank, in) = {tuple(first.shape)} and second (out, rank) = {tuple(second.shape)}, so that "
                f"second @ first has the weight's shape; got {tuple(got[0].shape)} and {tuple(got[1].shape)} "
                "(torch.linalg.svd already returns V^T as its third output: do not transpose it again)")
    return _pointed(Expected(second @ first, expected.mistakes), got[1] @ got[0], rtol=1e-3, atol=1e-4)


def check_svd_init(fn: Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """``fn(weight, rank)`` -> ``(first, second)`` of shapes (rank, in) and (out, rank) whose product
    ``second @ first`` is the best rank-``rank`` approximation of ``weight`` (out, in)."""
    return check_function(fn, reference=_svd_expected, cases=[
        Case("a 6 x 4 weight, rank 2", (torch.randn(6, 4, generator=_g(5)), 2)),
        Case("a 32 x 64 weight (64 inputs, 32 units), rank 8", (torch.randn(32, 64, generator=_g(6)), 8)),
        Case("a 10 x 32 weight, rank 1", (torch.randn(10, 32, generator=_g(7)), 1)),
        Case("a 5 x 5 weight at full rank 5: exact", (torch.randn(5, 5, generator=_g(8)), 5)),
    ], name="svd_init", compare=_svd_compare,
        hint="U, S, Vh = torch.linalg.svd(weight, full_matrices=False); first = S[:r].sqrt()[:, None] * Vh[:r]; "
             "second = U[:, :r] * S[:r].sqrt()")
