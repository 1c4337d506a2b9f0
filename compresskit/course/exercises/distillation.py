"""Exercise checkers for chapter 6, distillation. Each ``check_*`` prints feedback and returns a bool.

Each checker compares the learner's answer with the reference in :mod:`compresskit.distillation`
and, when it differs, with the answers the usual mistakes give (the T² left out, the logarithm
on the wrong side of the KL divergence, ``reduction="mean"``, the wrong axis ...), so the
message names the mistake rather than only the numbers. The inputs include what real mistakes
need to show: teacher logits of -inf (a teacher that gives probabilities, some 0), float64
inputs (the dtype must be kept), and for the loss its gradient with respect to the student's
logits as well as its value (a detached loss has the right value and teaches nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from compresskit.course.checker import Case, check_function, close
from compresskit.course.predict import check_prediction
from compresskit.distillation import distillation_loss, soften, truncated_svd


@dataclass
class Expected:
    """The right answer, what each known mistake would return instead, and what to say when the
    answer has NaN where the right one has none (a logit of -inf handled wrongly)."""

    value: Any
    mistakes: dict[str, Any] = field(default_factory=dict)
    nan_message: str = "your answer has NaN where the right one has none"


def _dtype_reason(expected: torch.Tensor, got: torch.Tensor) -> str | None:
    if expected.dtype == got.dtype:
        return None
    return (f"dtype: the inputs are {expected.dtype}, your answer is {got.dtype}: keep the inputs' dtype "
            "(no .float(), no new tensor of another dtype)")


def _pointed(expected: Expected, got: Any, rtol: float = 1e-4, atol: float = 1e-6) -> str | None:
    value = expected.value
    if isinstance(value, torch.Tensor) and isinstance(got, torch.Tensor) and got.layout == torch.strided \
            and got.is_floating_point() and got.shape == value.shape and bool(torch.isnan(got).any()) \
            and not bool(torch.isnan(value).any()):
        return expected.nan_message
    reason = close(value, got, rtol=rtol, atol=atol)
    if reason is None:
        return _dtype_reason(value, got) if isinstance(value, torch.Tensor) else None
    for message, wrong in expected.mistakes.items():
        if wrong is not None and close(wrong, got, rtol=rtol, atol=atol) is None:
            return message
    return reason


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _with_zero_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """The logits of a teacher that gives probabilities (log p), with p = 0 for every third class: -inf."""
    out = torch.log_softmax(logits, dim=-1)
    out[..., ::3] = -math.inf
    return out


# --- exercise 1: the softened softmax --------------------------------------------------------

def _soften_expected(logits: torch.Tensor, temperature: float) -> Expected:
    return Expected(soften(logits, temperature), {
        "you returned softmax(z): divide the logits by the temperature first": torch.softmax(logits, dim=-1),
        "you multiplied by T: divide the logits by the temperature": torch.softmax(logits * temperature, dim=-1),
        "the softmax runs over the wrong axis: each row (one sample) must sum to 1, use dim=-1 (or dim=1)":
            torch.softmax(logits / temperature, dim=0) if logits.dim() == 2 else None,
        "you returned log-probabilities (log_softmax): return the probabilities": torch.log_softmax(logits / temperature, dim=-1),
        "you divided the probabilities by T after the softmax: divide the logits before it": torch.softmax(logits, dim=-1) / temperature,
        "you normalised over the whole batch: each row (one sample) must sum to 1; sum over the last axis "
        "with keepdim=True": torch.exp(logits / temperature) / torch.exp(logits / temperature).sum()
            if logits.dim() == 2 and len(logits) > 1 and bool(torch.isfinite(logits).all()) else None,
        "you raised the probabilities to the power 1/T without renormalising: softmax(z / T) is p^(1/T) divided "
        "by its row sum": torch.softmax(logits, dim=-1) ** (1 / temperature),
    }, nan_message="NaN where a logit is -inf (a zero probability): softmax(z / T) must give exactly 0 there; for "
                   "stability subtract each row's maximum (finite), not its mean or minimum, or use torch.softmax")


def check_softened_softmax(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """``fn(logits, temperature)`` -> softmax(logits / T) over the classes (the last axis), of the
    logits' dtype; a logit of -inf gives exactly 0."""
    z = 3 * torch.randn(5, 10, generator=_g(0))
    return check_function(fn, reference=_soften_expected, cases=[
        Case("5 digits x 10 classes, T = 4", (z, 4.0)),
        Case("the same logits, T = 1 (the ordinary softmax)", (z, 1.0)),
        Case("T = 0.5 sharpens", (torch.tensor([[2.0, 1.0, 0.0]]), 0.5)),
        Case("a 3 x 3 batch, T = 10", (torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0], [4.0, -1.0, 0.0]]), 10.0)),
        Case("float64 logits, T = 3: the answer stays float64", (z.double(), 3.0)),
        Case("logits of -inf (a teacher's zero probabilities, log 0), T = 4: exactly 0 there", (_with_zero_probabilities(z), 4.0)),
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
        "you computed the cross-entropy -sum q log p: the KL divergence also subtracts the teacher's entropy "
        "(sum q log q; F.kl_div does it)": T**2 * -(q * log_p).sum(dim=1).mean(),
    }, nan_message="NaN with teacher logits of -inf (a teacher probability of 0): the term 0 · log 0 must count as 0; "
                   "use F.kl_div or torch.special.xlogy(q, q), not q * torch.log(q)")


def _gradient_reason(fn: Callable[..., Any], student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     temperature: float) -> str | None:
    """None when the gradient of the learner's loss with respect to the student's logits is the
    reference's: a loss can have the right value and still teach nothing (detached, .item(), NumPy)."""
    s = student_logits.detach().clone().requires_grad_(True)
    try:
        loss = fn(s, teacher_logits.detach().clone(), temperature)
        grad = torch.autograd.grad(loss, s, allow_unused=True)[0] if isinstance(loss, torch.Tensor) and loss.requires_grad else None
    except Exception as exc:  # noqa: BLE001 - the learner's code, reported
        return f"raised {type(exc).__name__} when the student's logits require gradients: {exc}"
    if grad is None:
        return ("your loss carries no gradient back to `student_logits` (a .detach(), .item(), torch.tensor(...) or NumPy "
                "on the student's side): training would not move the student")
    ref_s = student_logits.detach().clone().requires_grad_(True)
    (want,) = torch.autograd.grad(distillation_loss(ref_s, teacher_logits, temperature=temperature, alpha=1.0), ref_s)
    reason = close(want, grad, rtol=1e-4, atol=1e-7)
    if reason is None:
        return None
    return f"the gradient with respect to `student_logits` differs from the reference's ({reason})"


def check_distillation_loss(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> bool:
    """``fn(student_logits, teacher_logits, temperature)`` -> T² · KL(softmax(teacher/T) ‖ softmax(student/T)),
    averaged over the batch (a scalar tensor of the logits' dtype, with the gradient of the reference
    with respect to ``student_logits``)."""
    s, t = torch.randn(8, 10, generator=_g(1)), 4 * torch.randn(8, 10, generator=_g(2))
    seen: dict[str, tuple] = {}

    def reference(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> Expected:
        seen["args"] = (student_logits, teacher_logits, temperature)
        return _kd_expected(student_logits, teacher_logits, temperature)

    def compare(expected: Expected, got: Any) -> str | None:
        return _pointed(expected, got) or _gradient_reason(fn, *seen["args"])

    return check_function(fn, reference=reference, cases=[
        Case("8 digits, 10 classes, T = 4", (s, t, 4.0)),
        Case("the same logits, T = 2", (s, t, 2.0)),
        Case("3 samples, 5 classes, T = 8", (torch.randn(3, 5, generator=_g(3)), 3 * torch.randn(3, 5, generator=_g(4)), 8.0)),
        Case("a teacher that gives probabilities, some of them 0 (logits of -inf), T = 4", (s, _with_zero_probabilities(t), 4.0)),
        Case("float64 logits, T = 3: the loss stays float64", (s.double(), t.double(), 3.0)),
    ], name="distillation_loss", compare=compare,
        hint="T**2 * F.kl_div(F.log_softmax(student / T, dim=1), F.softmax(teacher / T, dim=1), reduction='batchmean')")


# --- exercise 3: the SVD initialisation ------------------------------------------------------

def _svd_expected(weight: torch.Tensor, rank: int) -> Expected:
    first, second = truncated_svd(weight, rank)
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    mistakes = {  # keeping rank + 1 or rank - 1 values is named by its shape, in _svd_compare
        "you left the singular values out: second @ first must be U_r diag(S_r) V_r^T": U[:, :rank] @ Vh[:rank],
        "you kept the smallest singular values: torch.linalg.svd returns them largest first, keep the first `rank`":
            U[:, -rank:] @ torch.diag(S[-rank:]) @ Vh[-rank:],
        "you put S on both sides: second @ first holds S_r twice; split it as S_r^(1/2) on each side (or all of it on one)":
            U[:, :rank] @ torch.diag(S[:rank] ** 2) @ Vh[:rank],
        "torch.svd returns V, not V^T: its rows are not the right singular vectors; use torch.linalg.svd (which "
        "returns Vh = V^T) or take V[:, :rank].T": U[:, :rank] @ torch.diag(S[:rank]) @ Vh.T[:rank]
            if Vh.shape[0] == Vh.shape[1] else None,
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
    if got[0].dtype != first.dtype or got[1].dtype != second.dtype:
        return (f"dtype: the weight is {first.dtype}, your factors are {got[0].dtype} and {got[1].dtype}: keep the "
                "weight's dtype (no .float())")
    return _pointed(Expected(second @ first, expected.mistakes), got[1] @ got[0], rtol=1e-3, atol=1e-4)


def check_svd_init(fn: Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """``fn(weight, rank)`` -> ``(first, second)`` of shapes (rank, in) and (out, rank), of the weight's
    dtype, whose product ``second @ first`` is the best rank-``rank`` approximation of ``weight`` (out, in)."""
    return check_function(fn, reference=_svd_expected, cases=[
        Case("a 6 x 4 weight, rank 2", (torch.randn(6, 4, generator=_g(5)), 2)),
        Case("a 32 x 64 weight (64 inputs, 32 units), rank 8", (torch.randn(32, 64, generator=_g(6)), 8)),
        Case("a 10 x 32 weight, rank 1", (torch.randn(10, 32, generator=_g(7)), 1)),
        Case("a 5 x 5 weight at full rank 5: exact", (torch.randn(5, 5, generator=_g(8)), 5)),
        Case("a float64 8 x 8 weight, rank 3: the factors stay float64", (torch.randn(8, 8, generator=_g(9), dtype=torch.float64), 3)),
    ], name="svd_init", compare=_svd_compare,
        hint="U, S, Vh = torch.linalg.svd(weight, full_matrices=False); first = S[:r].sqrt()[:, None] * Vh[:r]; "
             "second = U[:, :r] * S[:r].sqrt()")


# --- 4. predict, then measure: dark knowledge at a temperature ----------------------------------

def check_dark_knowledge_prediction(prediction: float) -> bool:
    """The learner's prediction of the probability that logits (ln 81 for the label, 0 for the
    nine other digits) put off the label at T = 4 (at T = 1: 9 / (9 + 81) = 0.1), against
    ``soften``, with the usual wrong reasonings named."""
    logits = torch.zeros(1, 10, dtype=torch.float64)
    logits[0, 0] = math.log(81)

    def off_label(temperature: float) -> float:
        return 1.0 - float(soften(logits, temperature)[0, 0])

    actual = off_label(4.0)
    return check_prediction("dark_knowledge_prediction", prediction, actual, rel_tol=0.02, abs_tol=1e-3, mistakes={
        off_label(1.0): ("that is the off-label mass at T = 1: the temperature divides the logits before the softmax, "
                         "so it does change the probabilities (dividing the probabilities by T and renormalising would not)"),
        4 * off_label(1.0): ("the mass does not grow in proportion to T: at T = 4 the label's logit becomes ln 81 / 4 = ln 3, "
                             "so the label weighs 3 against 1 for each of the nine other digits"),
        1 - actual: "that is the label's own probability at T = 4 (3 / 12): the off-label mass is the rest, 1 - that",
        actual / 9: "that is one other digit's probability (1 / 12): the question asks for the nine of them together",
        0.9: "0.9 is the limit T -> infinity, where all ten digits are equal; at T = 4 the label still weighs 3 to 1",
        off_label(16.0): "you divided the logits by T^2 = 16: the T^2 of Hinton's loss scales the loss, the logits are divided by T",
        off_label(0.25): "you multiplied the logits by T: that sharpens the softmax (less off the label); a softened softmax divides them",
    }, hint="softmax(z / T): at T = 4 the label's logit is ln 81 / 4 = ln 3, the others stay 0; "
            "the off-label mass is the nine others' share of the total")
