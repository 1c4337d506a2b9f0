"""Each distillation checker accepts an independent worked answer, rejects the plausible wrong
answers a learner writes with a message that names the mistake, and reports an untouched stub."""

from __future__ import annotations

import math

import pytest
import torch

from compresskit.course.exercises import distillation as ex


# --- worked answers, written without compresskit.distillation -------------------------------

def softened_softmax(logits, temperature):
    e = torch.exp((logits - logits.max(dim=-1, keepdim=True).values) / temperature)
    return e / e.sum(dim=-1, keepdim=True)


def kd_loss(student_logits, teacher_logits, temperature):
    T = temperature
    q = softened_softmax(teacher_logits, T)
    log_p = torch.log(softened_softmax(student_logits, T))
    return T * T * (q * (torch.log(q) - log_p)).sum(dim=1).mean()


def svd_init(weight, rank):
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    return Vh[:rank], U[:, :rank] * S[:rank]  # all of S on one side: the product is the same


# --- plausible wrong answers ------------------------------------------------------------------

def no_temperature(logits, temperature):
    return torch.softmax(logits, dim=-1)


def times_temperature(logits, temperature):
    return torch.softmax(logits * temperature, dim=-1)


def wrong_axis(logits, temperature):
    return torch.softmax(logits / temperature, dim=0)


def log_probabilities(logits, temperature):
    return torch.log_softmax(logits / temperature, dim=-1)


def missing_t_squared(s, t, T):
    return kd_loss(s, t, T) / (T * T)


def mean_reduction(s, t, T):
    q = torch.softmax(t / T, dim=1)
    return T * T * torch.nn.functional.kl_div(torch.log_softmax(s / T, dim=1), q, reduction="none").mean()


def log_of_the_wrong_side(s, t, T):
    return T * T * torch.nn.functional.kl_div(torch.log_softmax(t / T, dim=1), torch.softmax(s / T, dim=1), reduction="batchmean")


def student_not_divided(s, t, T):
    return T * T * torch.nn.functional.kl_div(torch.log_softmax(s, dim=1), torch.softmax(t / T, dim=1), reduction="batchmean")


def summed_over_the_batch(s, t, T):
    return kd_loss(s, t, T) * len(s)


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


def transposed_twice(weight, rank):
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    return Vh.T[:, :rank], U[:, :rank] * S[:rank]


def stub(*args):
    raise NotImplementedError  # your code here


RIGHT = [(ex.check_softened_softmax, softened_softmax), (ex.check_distillation_loss, kd_loss), (ex.check_svd_init, svd_init)]

WRONG = [
    (ex.check_softened_softmax, no_temperature, "divide the logits by the temperature first"),
    (ex.check_softened_softmax, times_temperature, "you multiplied by T"),
    (ex.check_softened_softmax, wrong_axis, "wrong axis"),
    (ex.check_softened_softmax, log_probabilities, "you returned log-probabilities"),
    (ex.check_distillation_loss, missing_t_squared, "missing T²"),
    (ex.check_distillation_loss, mean_reduction, 'reduction="mean" divides by the number of classes'),
    (ex.check_distillation_loss, log_of_the_wrong_side, "log of the wrong side"),
    (ex.check_distillation_loss, student_not_divided, "the student's logits must be divided by T"),
    (ex.check_distillation_loss, summed_over_the_batch, "you summed over the batch"),
    (ex.check_svd_init, without_singular_values, "you left the singular values out"),
    (ex.check_svd_init, smallest_singular_values, "you kept the smallest singular values"),
    (ex.check_svd_init, one_too_many, "off by one"),
    (ex.check_svd_init, transposed_twice, "do not transpose it again"),
]


@pytest.mark.parametrize("check, right", RIGHT, ids=lambda v: getattr(v, "__name__", ""))
def test_checker_accepts_an_independent_answer(check, right, capsys):
    assert check(right) is True
    assert "\u2705" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, message", WRONG, ids=lambda v: getattr(v, "__name__", "") if callable(v) else "")
def test_checker_rejects_a_plausible_mistake_and_names_it(check, wrong, message, capsys):
    assert check(wrong) is False
    assert message in capsys.readouterr().out


@pytest.mark.parametrize("check", [c for c, _ in RIGHT])
def test_checker_reports_a_stub(check, capsys):
    assert check(stub) is False
    assert "not attempted yet" in capsys.readouterr().out


def test_the_worked_loss_is_the_kl_divergence_by_hand():
    # teacher at T=2: (0.75, 0.25); student (0.5, 0.5): T² * KL = 4 * (0.75 ln 1.5 + 0.25 ln 0.5)
    got = kd_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[2 * math.log(3), 0.0]]), 2.0)
    assert got.item() == pytest.approx(4 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5)), rel=1e-6)
