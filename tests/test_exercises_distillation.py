"""Each distillation checker keeps the exercise contract (tests/exercise_contract.py): it accepts an
independent worked answer, rejects at least three plausible wrong answers with a message that names
the mistake, reports an untouched stub, and never raises. Every mistake message a checker knows is
triggered by one of the wrong answers below."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from exercise_contract import contract_tests

from compresskit.course.exercises import distillation as ex


# --- worked answers, written without compresskit.distillation -------------------------------

def softened_softmax(logits, temperature):
    e = torch.exp((logits - logits.max(dim=-1, keepdim=True).values) / temperature)
    return e / e.sum(dim=-1, keepdim=True)


def kd_loss(student_logits, teacher_logits, temperature):
    T = temperature
    q = softened_softmax(teacher_logits, T)
    log_p = torch.log(softened_softmax(student_logits, T))
    return T * T * (torch.special.xlogy(q, q) - q * log_p).sum(dim=1).mean()  # 0 log 0 = 0


def svd_init(weight, rank):
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    return Vh[:rank], U[:, :rank] * S[:rank]  # all of S on one side: the product is the same


def stub(*args):
    raise NotImplementedError  # your code here


# --- plausible wrong answers: the softened softmax ------------------------------------------------

def no_temperature(logits, temperature):
    return torch.softmax(logits, dim=-1)


def times_temperature(logits, temperature):
    return torch.softmax(logits * temperature, dim=-1)


def wrong_axis(logits, temperature):
    return torch.softmax(logits / temperature, dim=0)


def log_probabilities(logits, temperature):
    return torch.log_softmax(logits / temperature, dim=-1)


def divided_after_the_softmax(logits, temperature):
    return torch.softmax(logits, dim=-1) / temperature


def normalised_over_the_batch(logits, temperature):
    e = torch.exp(logits / temperature)
    return e / e.sum()


def power_without_renormalising(logits, temperature):  # p^(1/T), as the chapter's Eq. (1) reads, without its sum
    return torch.softmax(logits, dim=-1) ** (1 / temperature)


def converted_to_float32(logits, temperature):
    return torch.softmax(logits.float() / temperature, dim=-1)


def mean_subtracted(logits, temperature):  # "for stability", but -inf - (-inf) is NaN
    e = torch.exp((logits - logits.mean(dim=-1, keepdim=True)) / temperature)
    return e / e.sum(dim=-1, keepdim=True)


def divides_in_place(logits, temperature):
    logits /= temperature
    return torch.softmax(logits, dim=-1)


# --- plausible wrong answers: the distillation loss -----------------------------------------------

def missing_t_squared(s, t, T):
    return kd_loss(s, t, T) / (T * T)


def mean_reduction(s, t, T):
    q = torch.softmax(t / T, dim=1)
    return T * T * F.kl_div(torch.log_softmax(s / T, dim=1), q, reduction="none").mean()


def log_of_the_wrong_side(s, t, T):
    return T * T * F.kl_div(torch.log_softmax(t / T, dim=1), torch.softmax(s / T, dim=1), reduction="batchmean")


def student_not_divided(s, t, T):
    return T * T * F.kl_div(torch.log_softmax(s, dim=1), torch.softmax(t / T, dim=1), reduction="batchmean")


def teacher_not_divided(s, t, T):
    return T * T * F.kl_div(torch.log_softmax(s / T, dim=1), torch.softmax(t, dim=1), reduction="batchmean")


def summed_over_the_batch(s, t, T):
    return kd_loss(s, t, T) * len(s)


def cross_entropy_not_kl(s, t, T):
    return T * T * -(torch.softmax(t / T, dim=1) * torch.log_softmax(s / T, dim=1)).sum(dim=1).mean()


def q_log_q(s, t, T):  # the KL divergence written out; 0 * log 0 is NaN
    q, log_p = torch.softmax(t / T, dim=1), torch.log_softmax(s / T, dim=1)
    return T * T * (q * (torch.log(q) - log_p)).sum(dim=1).mean()


def detached_student(s, t, T):  # the right value, and no gradient reaches the student
    return T * T * F.kl_div(torch.log_softmax(s / T, dim=1).detach(), torch.softmax(t / T, dim=1), reduction="batchmean")


def loss_as_a_number(s, t, T):
    return torch.tensor(kd_loss(s, t, T).item(), dtype=s.dtype)


def loss_in_float32(s, t, T):
    return kd_loss(s.float(), t.float(), T)


def softens_in_place(s, t, T):
    s /= T
    t = t / T
    return T * T * F.kl_div(torch.log_softmax(s, dim=1), torch.softmax(t, dim=1), reduction="batchmean")


# --- plausible wrong answers: the SVD initialisation --------------------------------------------

def without_singular_values(weight, rank):
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    return Vh[:rank], U[:, :rank]


def smallest_singular_values(weight, rank):
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    return Vh[-rank:], U[:, -rank:] * S[-rank:]


def one_too_many(weight, rank):
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    r = min(rank + 1, len(S))
    return Vh[:r], U[:, :r] * S[:r]


def one_too_few(weight, rank):
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    r = max(rank - 1, 1)
    return Vh[:r], U[:, :r] * S[:r]


def transposed_twice(weight, rank):
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    return Vh.T[:, :rank], U[:, :rank] * S[:rank]


def s_on_both_sides(weight, rank):
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    return S[:rank, None] * Vh[:rank], U[:, :rank] * S[:rank]


def torch_svd_rows_of_v(weight, rank):  # torch.svd returns V; its rows taken as if it were V^T
    U, S, V = torch.svd(weight)
    return S[:rank].sqrt()[:, None] * V[:rank], U[:, :rank] * S[:rank].sqrt()


def factors_in_float32(weight, rank):
    return svd_init(weight.float(), rank)


WRITE = "your function changed its argument `"

WRONG = {
    "softened_softmax": (ex.check_softened_softmax, softened_softmax, [
        (no_temperature, "divide the logits by the temperature first"),
        (times_temperature, "you multiplied by T"),
        (wrong_axis, "wrong axis"),
        (log_probabilities, "you returned log-probabilities"),
        (divided_after_the_softmax, "you divided the probabilities by T after the softmax"),
        (normalised_over_the_batch, "you normalised over the whole batch"),
        (power_without_renormalising, "without renormalising"),
        (converted_to_float32, "dtype: the inputs are torch.float64, your answer is torch.float32"),
        (mean_subtracted, "NaN where a logit is -inf"),
        (divides_in_place, WRITE + "logits`"),
    ]),
    "distillation_loss": (ex.check_distillation_loss, kd_loss, [
        (missing_t_squared, "missing T²"),
        (mean_reduction, 'reduction="mean" divides by the number of classes'),
        (log_of_the_wrong_side, "log of the wrong side"),
        (student_not_divided, "the student's logits must be divided by T"),
        (teacher_not_divided, "the teacher's logits must be divided by T"),
        (summed_over_the_batch, "you summed over the batch"),
        (cross_entropy_not_kl, "you computed the cross-entropy"),
        (q_log_q, "NaN with teacher logits of -inf"),
        (detached_student, "carries no gradient back to `student_logits`"),
        (loss_as_a_number, "carries no gradient back to `student_logits`"),
        (loss_in_float32, "dtype: the inputs are torch.float64, your answer is torch.float32"),
        (softens_in_place, WRITE + "s`"),
    ]),
    "svd_init": (ex.check_svd_init, svd_init, [
        (without_singular_values, "you left the singular values out"),
        (smallest_singular_values, "you kept the smallest singular values"),
        (one_too_many, "off by one"),
        (one_too_few, "off by one"),
        (transposed_twice, "do not transpose it again"),
        (s_on_both_sides, "you put S on both sides"),
        (torch_svd_rows_of_v, "torch.svd returns V, not V^T"),
        (factors_in_float32, "dtype: the weight is torch.float64"),
    ]),
}

globals().update(contract_tests(WRONG, stub))


def _mistake_messages() -> dict[str, list[str]]:
    """Every mistake message each checker knows, from its Expected on inputs where every mistake applies."""
    z = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    soft = ex._soften_expected(z, 3.0)
    kd = ex._kd_expected(z, 2 * z.flip(0), 3.0)
    svd = ex._svd_expected(torch.randn(5, 5, generator=torch.Generator().manual_seed(1)), 2)
    return {"softened_softmax": [*soft.mistakes, soft.nan_message], "distillation_loss": [*kd.mistakes, kd.nan_message],
            "svd_init": list(svd.mistakes)}


@pytest.mark.parametrize("name", list(WRONG))
def test_every_mistake_message_is_triggered_by_a_wrong_answer(name, capsys):
    check, _, wrongs = WRONG[name]
    printed = ""
    for answer, _ in wrongs:
        check(answer)
        printed += capsys.readouterr().out
    never = [m for m in _mistake_messages()[name] if m not in printed]
    assert not never, f"mistake messages no wrong answer triggers: {never}"


def test_the_worked_loss_is_the_kl_divergence_by_hand():
    # teacher at T=2: (0.75, 0.25); student (0.5, 0.5): T² * KL = 4 * (0.75 ln 1.5 + 0.25 ln 0.5)
    got = kd_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[2 * math.log(3), 0.0]]), 2.0)
    assert got.item() == pytest.approx(4 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5)), rel=1e-6)


def test_the_worked_loss_and_its_gradient_agree_with_torch_on_zero_probabilities():
    s = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0.0, -math.inf, 1.0, 2.0]] * 3, dtype=torch.float64)
    ours = kd_loss(s, t, 2.0)
    theirs = 4 * F.kl_div(F.log_softmax(s / 2, 1), F.softmax(t / 2, 1), reduction="batchmean")
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad(ours, s)[0], torch.autograd.grad(theirs, s)[0])
