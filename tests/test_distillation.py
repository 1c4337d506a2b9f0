"""compresskit.distillation: Hinton's loss by hand and against F.kl_div, the pitfalls it avoids,
teachers that give probabilities, FitNets hints, and students initialised from the teacher."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.special
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import LogisticRegression
from torch import nn

from compresskit import models
from compresskit.distillation import (
    ProbabilityTeacher,
    distill,
    distillation_loss,
    fit_hints,
    hint_loss,
    keep_important_units,
    layer_output,
    low_rank_mlp,
    shift_class_bias,
    soften,
    teacher_logits,
    truncated_svd,
    unit_importance,
)


def logits(n=8, k=10, seed=0, scale=3.0):
    return scale * torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- the softened softmax and Hinton's loss -------------------------------------------------

def test_soften_by_hand():
    z = torch.tensor([[2 * math.log(3), 0.0]])
    assert torch.allclose(soften(z, 2.0), torch.tensor([[0.75, 0.25]]))
    assert torch.allclose(soften(z, 1.0), torch.tensor([[0.9, 0.1]]))


@given(st.floats(0.05, 50.0), st.integers(0, 100))
@settings(max_examples=40, deadline=None)
def test_soften_is_a_distribution_that_keeps_the_order(temperature, seed):
    z = logits(seed=seed)
    q = soften(z, temperature)
    assert torch.allclose(q.sum(dim=1), torch.ones(len(z), dtype=z.dtype))
    assert torch.equal(q.argsort(dim=1), z.argsort(dim=1)) or torch.equal(q.argmax(dim=1), z.argmax(dim=1))
    # held against SciPy's softmax and a NumPy computation written out, not the implementation's expression
    np.testing.assert_allclose(q.numpy(), scipy.special.softmax(z.numpy() / temperature, axis=1), rtol=1e-12, atol=1e-300)
    e = np.exp((z.numpy() - z.numpy().max(axis=1, keepdims=True)) / temperature)
    np.testing.assert_allclose(q.numpy(), e / e.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-300)


@given(st.floats(0.1, 20.0), st.integers(0, 100))
@settings(max_examples=30, deadline=None)
def test_soften_with_logits_of_minus_infinity_equals_scipy(temperature, seed):
    z = logits(seed=seed)
    z[:, ::3] = -math.inf  # zero probabilities (a teacher that gives probabilities, log 0)
    q = soften(z, temperature)
    np.testing.assert_allclose(q.numpy(), scipy.special.softmax(z.numpy() / temperature, axis=1), rtol=1e-12, atol=1e-300)
    assert bool((q[:, ::3] == 0).all())


@pytest.mark.parametrize("temperature", [1.0, 3.0, 10.0])
def test_the_soft_gradient_is_t_times_p_minus_q_over_n(temperature):
    """d/ds of T² KL(q^T || p^T), batchmean, is T (p^T - q^T) / N (Section 2 of Hinton et al.), computed
    here with SciPy: the T² factor and the student's softening both show in the gradient."""
    s = logits(seed=11).requires_grad_()
    t = logits(seed=12)
    t[0, 1] = -math.inf
    distillation_loss(s, t, temperature=temperature, alpha=1.0).backward()
    p = scipy.special.softmax(s.detach().numpy() / temperature, axis=1)
    q = scipy.special.softmax(t.numpy() / temperature, axis=1)
    np.testing.assert_allclose(s.grad.numpy(), temperature * (p - q) / len(p), rtol=1e-10, atol=1e-14)


def test_higher_temperature_is_softer():
    z = logits()
    entropy = [-(soften(z, t) * soften(z, t).log()).sum(dim=1).mean() for t in (0.5, 1, 2, 4, 8, 100)]
    assert all(a < b for a, b in zip(entropy, entropy[1:]))
    assert torch.allclose(soften(z, 1e4), torch.full_like(z, 0.1), atol=1e-3)  # -> uniform


def test_distillation_loss_by_hand():
    # teacher at T=2: softmax([ln 3, 0]) = (0.75, 0.25); student (0.5, 0.5); KL = 0.75 ln 1.5 + 0.25 ln 0.5
    student, teacher = torch.tensor([[0.0, 0.0]]), torch.tensor([[2 * math.log(3), 0.0]])
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert distillation_loss(student, teacher, temperature=2.0, alpha=1.0).item() == pytest.approx(4 * kl, rel=1e-6)
    mixed = distillation_loss(student, teacher, torch.tensor([0]), temperature=2.0, alpha=0.5).item()
    assert mixed == pytest.approx(0.5 * 4 * kl + 0.5 * math.log(2), rel=1e-6)  # CE of (0.5, 0.5) at T=1 is ln 2


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 20.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_distillation_loss_equals_kl_div_batchmean_times_t_squared(temperature, alpha):
    s, t = logits(seed=1), logits(seed=2)
    y = torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(3))
    soft = F.kl_div(F.log_softmax(s / temperature, dim=1), F.softmax(t / temperature, dim=1), reduction="batchmean")
    expected = alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(s, y)
    got = distillation_loss(s, t, y, temperature=temperature, alpha=alpha)
    assert torch.allclose(got, expected, rtol=1e-10)


def test_a_zero_teacher_probability_is_a_logit_of_minus_infinity():
    s = logits(n=2, k=3, seed=4)
    p = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    got = distillation_loss(s, p.log(), temperature=3.0, alpha=1.0)
    q = p ** (1 / 3) / (p ** (1 / 3)).sum(dim=1, keepdim=True)
    expected = 9 * F.kl_div(F.log_softmax(s / 3, dim=1), q, reduction="batchmean")
    assert torch.isfinite(got) and torch.allclose(got, expected)


def test_the_pitfalls_give_other_numbers():
    s, t, T = logits(seed=5, scale=1.0), logits(seed=6, scale=6.0), 4.0  # a confident teacher, an unsure student
    right = distillation_loss(s, t, temperature=T, alpha=1.0)
    with warnings.catch_warnings():  # PyTorch warns that "mean" is not the KL divergence
        warnings.simplefilter("ignore")
        mean = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="mean") * T**2   # divides by N*K, not N
    no_t2 = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean")     # missing T²
    swapped = F.kl_div(F.log_softmax(t / T, 1), F.softmax(s / T, 1), reduction="batchmean") * T**2  # log of the teacher
    unsoftened = F.kl_div(F.log_softmax(s, 1), F.softmax(t / T, 1), reduction="batchmean") * T**2   # student not divided by T
    assert torch.allclose(mean * 10, right)  # "mean" is off by exactly the number of classes
    assert torch.allclose(no_t2 * T**2, right)
    for wrong in (mean, no_t2, swapped, unsoftened):
        assert abs(wrong / right - 1) > 0.1, wrong


def _soft_gradient_norm(temperature: float, scaled: bool) -> float:
    s = logits(seed=7, scale=1.0).requires_grad_()
    t = logits(seed=8, scale=1.0)
    loss = distillation_loss(s, t, temperature=temperature, alpha=1.0)
    (loss if scaled else loss / temperature**2).backward()
    return s.grad.norm().item()


def test_t_squared_keeps_the_gradient_scale_across_temperatures():
    """Section 2.1 of Hinton et al.: the soft gradient falls as 1/T² for large T unless scaled by T²."""
    ours = [_soft_gradient_norm(t, scaled=True) for t in (4, 8, 16, 32)]
    without = [_soft_gradient_norm(t, scaled=False) for t in (4, 8, 16, 32)]
    assert max(ours) / min(ours) < 1.5
    assert without[0] / without[-1] > 40  # (32 / 4)² = 64 in the limit


@given(st.integers(0, 1000), st.floats(0.1, 30.0), st.floats(-5, 5))
@settings(max_examples=40, deadline=None)
def test_loss_is_zero_when_the_student_copies_the_teacher_and_positive_otherwise(seed, temperature, shift):
    t = logits(seed=seed)
    assert distillation_loss(t + shift, t, temperature=temperature, alpha=1.0).item() == pytest.approx(0.0, abs=1e-9)
    assert distillation_loss(logits(seed=seed + 1), t, temperature=temperature, alpha=1.0).item() > 0


# --- teachers that give probabilities -------------------------------------------------------

def test_probability_teacher_gives_log_probabilities_that_soften_like_p_to_the_one_over_t():
    rng = np.random.default_rng(0)
    X, y = rng.random((60, 64)).astype(np.float32), np.arange(60) % 3
    lr = LogisticRegression(max_iter=500).fit(X, y)
    images = torch.from_numpy(X).reshape(-1, 1, 8, 8)
    z = teacher_logits(ProbabilityTeacher(lr), images)
    p = torch.from_numpy(lr.predict_proba(X)).float()
    assert torch.allclose(z.exp(), p, atol=1e-6)
    assert torch.allclose(soften(z, 4.0), p ** 0.25 / (p ** 0.25).sum(dim=1, keepdim=True), atol=1e-6)
    assert torch.equal(teacher_logits(ProbabilityTeacher(lr.predict_proba), images), z)  # a function works too


def test_teacher_logits_of_a_network_in_batches():
    net = models.mlp((16,), seed=0)
    X = torch.rand(70, 1, 8, 8)
    assert torch.allclose(teacher_logits(net, X, batch_size=32), net(X).detach(), atol=1e-6)
    assert net.training  # the caller's mode, given back
    teacher_logits(net.eval(), X)
    assert not net.training


# --- training -------------------------------------------------------------------------------

def _toy(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 1, 8, 8, generator=g)
    y = (X.reshape(n, -1)[:, :10].argmax(dim=1))  # class = brightest of the first 10 pixels
    return X, y


def test_distill_copies_the_teacher_and_is_deterministic():
    X, y = _toy()
    teacher = models.mlp((64,), seed=1)
    z = teacher_logits(teacher, X)
    students = []
    for _ in range(2):
        student = models.mlp((32,), seed=2)
        history = distill(student, X, z, temperature=2.0, alpha=1.0, epochs=30, lr=1e-2, seed=3)
        students.append(student)
    assert history.train_loss[-1] < 0.3 * history.train_loss[0]
    agreement = (students[0](X).argmax(1) == z.argmax(1)).float().mean()
    untrained = (models.mlp((32,), seed=2)(X).argmax(1) == z.argmax(1)).float().mean()
    assert agreement > 0.75 and agreement > untrained + 0.4
    assert all(torch.equal(a, b) for a, b in zip(students[0].state_dict().values(), students[1].state_dict().values()))


def test_distill_with_alpha_zero_learns_the_labels():
    X, y = _toy()
    teacher = models.mlp((8,), seed=1)  # an untrained teacher: alpha = 0 ignores it
    student = models.mlp((32,), seed=2)
    distill(student, X, teacher_logits(teacher, X), y, alpha=0.0, epochs=40, lr=1e-2)
    assert (student(X).argmax(1) == y).float().mean() > 0.8


def test_shift_class_bias_moves_one_logit_and_copies():
    model = models.mlp((8,), seed=0)
    X = torch.rand(5, 1, 8, 8)
    shifted = shift_class_bias(model, 3, 2.5)
    diff = (shifted(X) - model(X)).detach()
    assert torch.allclose(diff[:, 3], torch.full((5,), 2.5)) and diff[:, [0, 1, 2, 4, 5, 6, 7, 8, 9]].abs().max() < 1e-6
    assert model.fc2.bias is not shifted.fc2.bias


# --- FitNets hints ---------------------------------------------------------------------------

def test_hint_loss_by_hand_and_against_mse():
    reg = nn.Identity()
    s, t = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    assert hint_loss(s, t, reg).item() == pytest.approx(0.5 * (4 + 25) / 2)
    reg = nn.Linear(5, 3)
    s, t = torch.randn(6, 5), torch.randn(6, 3)
    expected = 0.5 * F.mse_loss(reg(s), t, reduction="sum") / 6
    assert torch.allclose(hint_loss(s, t, reg), expected)


def test_fit_hints_trains_the_guided_layers_only_and_lowers_the_hint_loss():
    X, _ = _toy()
    teacher = models.mlp((48, 48), seed=0)
    student = models.mlp((12, 12), seed=1)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    target = layer_output(teacher, "relu1", X)
    regressor, history = fit_hints(student, teacher, X, student_layer="relu1", teacher_layer="relu1", epochs=20, lr=1e-2)
    assert isinstance(regressor, nn.Linear) and (regressor.in_features, regressor.out_features) == (12, 48)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert hint_loss(layer_output(student, "relu1", X), target, regressor) < history.train_loss[0]
    after = student.state_dict()
    assert not torch.equal(after["fc1.weight"], before["fc1.weight"])
    for name in ("fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"):  # after the guided layer: untouched
        assert torch.equal(after[name], before[name])


def test_layer_output_is_the_named_layer():
    model = models.mlp((16, 8), seed=0)
    X = torch.rand(4, 1, 8, 8)
    expected = torch.relu(model.fc1(X.reshape(4, -1)))
    assert torch.allclose(layer_output(model, "relu1", X), expected)
    assert layer_output(model, "fc3", X).shape == (4, 10)


# --- parameter distillation -----------------------------------------------------------------

def test_unit_importance_by_hand():
    incoming = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])   # row norms 5, 1, 2
    outgoing = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])      # column norms 1, 0, 3
    assert torch.equal(unit_importance(incoming, outgoing), torch.tensor([5.0, 0.0, 6.0]))


def test_keep_important_units_drops_units_that_nothing_reads_without_changing_the_function():
    teacher = models.mlp((20, 12), seed=0)
    with torch.no_grad():
        teacher.fc2.weight[:, 5:] = 0     # units 5..19 of layer 1 are read by nobody
        teacher.fc3.weight[:, ::2] = 0    # the even units of layer 2 neither
    student = keep_important_units(teacher, (5, 6))
    X = torch.rand(10, 1, 8, 8)
    assert student.fc1.weight.shape == (5, 64) and student.fc2.weight.shape == (6, 5) and student.fc3.weight.shape == (10, 6)
    assert torch.allclose(student(X), teacher(X), atol=1e-6)
    assert teacher.fc1.weight.shape == (20, 64)  # the teacher is unchanged


def test_keep_all_units_is_the_teacher():
    teacher = models.mlp((16,), seed=3)
    X = torch.rand(10, 1, 8, 8)
    assert torch.allclose(keep_important_units(teacher, (16,))(X), teacher(X), atol=1e-6)


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_truncated_svd_is_the_best_rank_r_approximation(rank):
    W = torch.randn(12, 20, generator=torch.Generator().manual_seed(rank))
    first, second = truncated_svd(W, rank)
    assert first.shape == (rank, 20) and second.shape == (12, rank)
    approx = second @ first
    S = torch.linalg.svdvals(W.double())
    assert torch.linalg.matrix_norm(W - approx).item() == pytest.approx(S[rank:].pow(2).sum().sqrt().item(), rel=1e-4)  # Eckart-Young
    svd = TruncatedSVD(n_components=rank, algorithm="arpack", random_state=0).fit(W.numpy().astype(np.float64))
    sk = svd.inverse_transform(svd.transform(W.numpy().astype(np.float64)))
    assert np.allclose(approx.numpy(), sk, atol=1e-4)
    assert torch.allclose(first.norm(), second.norm(), rtol=1e-4)  # S split evenly between the two


def test_truncated_svd_at_full_rank_reconstructs():
    W = torch.randn(6, 4)
    first, second = truncated_svd(W, 4)
    assert torch.allclose(second @ first, W, atol=1e-5)


def test_low_rank_mlp_factorises_the_layers_that_shrink():
    teacher = models.mlp((128,), seed=0)
    student = low_rank_mlp(teacher, 10)
    assert isinstance(student.fc1, nn.Sequential) and student.fc1.first.weight.shape == (10, 64)  # 10 * 192 < 8192
    assert isinstance(student.fc2, nn.Linear) and torch.equal(student.fc2.weight, teacher.fc2.weight)  # 10 * 138 > 1280: kept
    n_params = sum(p.numel() for p in student.parameters())
    assert n_params == 10 * 64 + 10 * 128 + 128 + 128 * 10 + 10
    assert isinstance(low_rank_mlp(teacher, 9).fc2, nn.Sequential)  # 9 * 138 < 1280
    full = low_rank_mlp(teacher, 40)  # 40 * (64 + 128) < 64 * 128
    X = torch.rand(10, 1, 8, 8)
    first, second = truncated_svd(teacher.fc1.weight, 40)
    expected = teacher.fc2(torch.relu(X.reshape(10, -1) @ (second @ first).T + teacher.fc1.bias))
    assert torch.allclose(full(X), expected, atol=1e-5)


def test_low_rank_mlp_random_init_is_seeded_and_not_the_teacher():
    teacher = models.mlp((128,), seed=0)
    a, b = low_rank_mlp(teacher, 10, init="random", seed=1), low_rank_mlp(teacher, 10, init="random", seed=1)
    assert torch.equal(a.fc1.first.weight, b.fc1.first.weight)
    assert not torch.equal(a.fc2.weight, teacher.fc2.weight)
    assert not torch.equal(a.fc1.first.weight, low_rank_mlp(teacher, 10, init="random", seed=2).fc1.first.weight)


# --- the caller's train / eval mode, pruned models, logits of -inf --------------------------

def _pruned(hidden=(16,), seed=0):
    from compresskit import pruning

    model = models.mlp(hidden, seed=seed)
    pruning.l1_unstructured(model.fc1, "weight", 0.5)
    return model


def _modes(model):
    return [m.training for m in model.modules()]


@pytest.mark.parametrize("training", [True, False])
def test_distill_layer_output_fit_hints_and_teacher_logits_give_back_the_callers_mode(training):
    X, y = _toy(64)
    student, teacher = models.mlp((8,), seed=0).train(training), models.mlp((16,), seed=1).train(training)
    distill(student, X, teacher_logits(teacher, X), y, epochs=1)
    assert _modes(student) == [training] * 5 and _modes(teacher) == [training] * 5
    layer_output(student, "fc1", X)
    assert _modes(student) == [training] * 5
    fit_hints(student, teacher, X, student_layer="relu1", teacher_layer="relu1", epochs=1)
    assert _modes(student) == [training] * 5 and _modes(teacher) == [training] * 5


@pytest.mark.parametrize("training", [True, False])
def test_a_failing_probe_gives_back_the_callers_mode_and_names_x(training):
    student = models.mlp((8,), seed=0).train(training)
    with pytest.raises(ValueError, match=r"`X` must fit the input of `student`.*\(4, 3\)"):
        distill(student, torch.rand(4, 3), torch.randn(4, 10))
    assert _modes(student) == [training] * 5
    with pytest.raises(ValueError, match=r"`X` must fit the input of `model`.*\(4, 3\)"):
        layer_output(student, "fc1", torch.rand(4, 3))
    assert _modes(student) == [training] * 5
    with pytest.raises(ValueError, match=r"`X` must fit the input of `teacher`.*\(4, 3\)"):
        fit_hints(student, models.mlp((16,), seed=1).train(training), torch.rand(4, 3), student_layer="relu1", teacher_layer="relu1")
    assert _modes(student) == [training] * 5


def test_functions_that_copy_a_model_work_on_a_pruned_one():
    teacher, dense = _pruned(), models.mlp((16,), seed=0)
    with torch.no_grad():
        dense.fc1.weight.copy_(teacher.fc1.weight)  # the same function, without the pruning hook
    X = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(shift_class_bias(teacher, 2, 1.0)(X), shift_class_bias(dense, 2, 1.0)(X))
        torch.testing.assert_close(keep_important_units(teacher, [10])(X), keep_important_units(dense, [10])(X))
        for init in ("teacher", "random"):
            torch.testing.assert_close(low_rank_mlp(teacher, 4, init=init)(X), low_rank_mlp(dense, 4, init=init)(X))
        torch.testing.assert_close(low_rank_mlp(teacher, 64)(X), teacher(X))  # no layer shrinks: a copy, pruned weights kept
    assert hasattr(teacher.fc1, "weight_mask")  # the caller's pruned model is untouched


def test_distill_and_fit_hints_train_a_pruned_student_through_its_mask():
    X, y = _toy(64)
    student = _pruned((8,))
    mask = student.fc1.weight_mask.clone()
    distill(student, X, teacher_logits(models.mlp((16,), seed=1), X), y, epochs=2)
    fit_hints(student, models.mlp((16,), seed=1), X, student_layer="relu1", teacher_layer="relu1", epochs=1)
    assert torch.equal(student.fc1.weight_mask, mask) and bool((student.fc1.weight[mask == 0] == 0).all())


def test_teacher_logits_of_minus_infinity_give_finite_losses_and_gradients():
    # teacher (0.5, 0.5, 0): KL to a uniform student over 3 classes at T = 1 is ln(3/2), by hand
    t = torch.tensor([[0.0, 0.0, -math.inf]], dtype=torch.float64)
    s = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    loss = distillation_loss(s, t, temperature=1.0, alpha=1.0)
    assert loss.item() == pytest.approx(math.log(1.5), rel=1e-12)
    loss.backward()
    torch.testing.assert_close(s.grad, torch.tensor([[1 / 3 - 0.5, 1 / 3 - 0.5, 1 / 3]], dtype=torch.float64))  # p - q
    assert torch.equal(soften(t, 3.0), torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64))
    X, y = _toy(32)
    z = torch.randn(32, 10)
    z[:, ::2] = -math.inf
    history = distill(models.mlp((8,), seed=0), X, z, y, epochs=2)
    assert all(math.isfinite(v) for v in history.train_loss)


def test_a_row_of_only_minus_infinity_is_refused_not_nan():
    t = torch.tensor([[0.0, 1.0], [-math.inf, -math.inf]])
    with pytest.raises(ValueError, match=r"`teacher_logits` must have a finite logit in every row.*row 1"):
        distillation_loss(torch.zeros(2, 2), t, alpha=1.0)
    with pytest.raises(ValueError, match=r"`logits` must have a finite logit in every row"):
        soften(t, 2.0)
    with pytest.raises(ValueError, match=r"`logits` must be finite or -inf.*1 NaN or \+inf"):
        soften(torch.tensor([0.0, math.nan]), 2.0)


def test_float64_models_distill_and_take_hints():
    X, y = _toy(32)
    X = X.double()
    student, teacher = models.mlp((8,), seed=0).double(), models.mlp((16,), seed=1).double()
    assert all(math.isfinite(v) for v in distill(student, X, teacher_logits(teacher, X).double(), y, epochs=1).train_loss)
    regressor, history = fit_hints(student, teacher, X, student_layer="relu1", teacher_layer="relu1", epochs=1)
    assert regressor.weight.dtype == torch.float64 and all(math.isfinite(v) for v in history.train_loss)
