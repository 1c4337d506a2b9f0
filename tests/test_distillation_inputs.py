"""Every public function of compresskit.distillation refuses bad input with an error that names
the argument, the rule and the value received, before it changes anything."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compresskit import models
from compresskit.distillation import (
    ProbabilityTeacher,
    check_probabilities,
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

S = torch.randn(4, 3)
T = torch.randn(4, 3)
Y = torch.tensor([0, 1, 2, 0])
X = torch.rand(4, 1, 8, 8)

BAD_TEMPERATURES = [(0.0, ValueError, r"`temperature` must be in \(0, inf\); got 0.0"),
                    (-1.0, ValueError, r"`temperature` must be in \(0, inf\); got -1.0"),
                    (float("nan"), ValueError, r"`temperature` .* got nan"),
                    (float("inf"), ValueError, r"`temperature` .* got inf"),
                    ("4", TypeError, r"`temperature` must be a real number; got str '4'")]
BAD_ALPHAS = [(-0.1, r"`alpha` must be in \[0, 1\]; got -0.1"), (1.5, r"`alpha` must be in \[0, 1\]; got 1.5"),
              (float("nan"), r"`alpha` must be in \[0, 1\]; got nan")]


@pytest.mark.parametrize("temperature, error, match", BAD_TEMPERATURES)
def test_soften_temperature(temperature, error, match):
    with pytest.raises(error, match=match):
        soften(S, temperature)


def test_soften_logits():
    with pytest.raises(TypeError, match="`logits` must be a torch.Tensor; got list"):
        soften([[1.0, 2.0]], 1.0)
    with pytest.raises(TypeError, match="`logits` must be a floating-point tensor"):
        soften(torch.tensor([[1, 2]]), 1.0)


@pytest.mark.parametrize("temperature, error, match", BAD_TEMPERATURES)
def test_loss_temperature(temperature, error, match):
    with pytest.raises(error, match=match):
        distillation_loss(S, T, Y, temperature=temperature)


@pytest.mark.parametrize("alpha, match", BAD_ALPHAS)
def test_loss_alpha(alpha, match):
    with pytest.raises(ValueError, match=match):
        distillation_loss(S, T, Y, alpha=alpha)


def test_loss_shapes_and_labels():
    with pytest.raises(ValueError, match=r"`teacher_logits` must have the shape of `student_logits` \(4, 3\); got \(4, 5\)"):
        distillation_loss(S, torch.randn(4, 5), Y)
    with pytest.raises(ValueError, match=r"`labels` must be in \[0, 2\] \(one logit per class\); got values in \[0, 3\]"):
        distillation_loss(S, T, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match=r"`labels` must be in \[0, 2\].*got values in \[-1, 1\]"):
        distillation_loss(S, T, torch.tensor([0, 1, -1, 0]))
    with pytest.raises(ValueError, match=r"`labels` must hold one label per row of `student_logits` \(4\); got 3"):
        distillation_loss(S, T, Y[:3])
    with pytest.raises(TypeError, match="`labels` must be an integer tensor of class indices; got dtype torch.float32"):
        distillation_loss(S, T, Y.float())
    with pytest.raises(ValueError, match=r"`labels` are needed when `alpha` < 1.*got None with alpha=0.9"):
        distillation_loss(S, T, None, alpha=0.9)
    with pytest.raises(ValueError, match="`teacher_logits` must be finite or -inf"):
        distillation_loss(S, torch.full((4, 3), float("nan")), Y)
    with pytest.raises(ValueError, match="`student_logits` must be finite"):
        distillation_loss(torch.full((4, 3), float("inf")), T, Y)


def test_distill_checks_everything_before_training():
    student = models.mlp((8,), seed=0)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    z = torch.randn(4, 10)
    cases = [
        (dict(temperature=0.0), ValueError, "`temperature` must be in"),
        (dict(temperature=float("nan")), ValueError, "`temperature` must be in"),
        (dict(alpha=2.0), ValueError, r"`alpha` must be in \[0, 1\]; got 2.0"),
        (dict(labels=torch.tensor([0, 1, 10, 2])), ValueError, r"`labels` must be in \[0, 9\]"),
        (dict(teacher_logits=torch.randn(4, 7)), ValueError, r"`teacher_logits` must have the shape of `student_logits` \(4, 10\)"),
        (dict(teacher_logits=torch.randn(5, 10)), ValueError, r"`teacher_logits` must have one row per sample of `X` \(4\); got 5"),
        (dict(epochs=-1), ValueError, r"`epochs` must be an integer in \[0, inf\]; got -1"),
        (dict(batch_size=0), ValueError, r"`batch_size` must be an integer in \[1, inf\]; got 0"),
    ]
    for change, error, match in cases:
        kwargs = dict(teacher_logits=z, labels=Y, temperature=2.0, alpha=0.5, epochs=1)
        kwargs.update(change)
        with pytest.raises(error, match=match):
            distill(student, X, **kwargs)
        assert all(torch.equal(v, before[k]) for k, v in student.state_dict().items())
    with pytest.raises(TypeError, match="`student` must be a torch.nn.Module; got str"):
        distill("mlp", X, z, Y)


def test_a_teacher_that_returns_logits_where_probabilities_are_expected():
    logits = lambda x: np.random.default_rng(0).normal(size=(len(x), 10)) * 3  # noqa: E731
    with pytest.raises(ValueError, match=r"`teacher` must be probabilities .*got a minimum of .*are these logits\?"):
        teacher_logits(ProbabilityTeacher(logits), X)
    positive_scores = lambda x: np.full((len(x), 10), 2.0)  # noqa: E731
    with pytest.raises(ValueError, match=r"`teacher` must be probabilities with rows summing to 1; got row 0 summing to 20: are these logits\?"):
        teacher_logits(ProbabilityTeacher(positive_scores), X)
    with pytest.raises(ValueError, match=r"`teacher` must return probabilities of shape \(N, K\) with N = 4; got \(4,\)"):
        teacher_logits(ProbabilityTeacher(lambda x: np.full(len(x), 1.0)), X)
    with pytest.raises(TypeError, match="`predict_proba` must be an estimator with predict_proba or a function; got int"):
        ProbabilityTeacher(3)


def test_check_probabilities():
    with pytest.raises(ValueError, match=r"`soft_targets` must be probabilities with rows summing to 1; got row 1 summing to 0.5"):
        check_probabilities("soft_targets", torch.tensor([[0.5, 0.5], [0.25, 0.25]]))
    with pytest.raises(ValueError, match="`p` must be finite"):
        check_probabilities("p", torch.tensor([[float("nan"), 1.0]]))
    assert check_probabilities("p", torch.tensor([[0.2, 0.8]])) is not None


def test_teacher_logits_bad_input():
    with pytest.raises(TypeError, match="`teacher` must be a torch.nn.Module; got function"):
        teacher_logits(lambda x: x, X)
    with pytest.raises(TypeError, match="`X` must be a torch.Tensor; got ndarray"):
        teacher_logits(models.mlp((4,)), X.numpy())
    with pytest.raises(ValueError, match=r"`batch_size` must be an integer in \[1, inf\]; got 0"):
        teacher_logits(models.mlp((4,)), X, batch_size=0)
    with pytest.raises(ValueError, match=r"`teacher` must return one row of logits per sample \(4, K\); got \(4, 1, 8, 8\)"):
        teacher_logits(nn.Identity(), X)


def test_shift_class_bias_bad_input():
    model = models.mlp((4,))
    with pytest.raises(ValueError, match=r"`class_index` must be an integer in \[0, 9\]; got 10"):
        shift_class_bias(model, 10, 1.0)
    with pytest.raises(ValueError, match=r"`shift` must be in \(-inf, inf\); got nan"):
        shift_class_bias(model, 3, float("nan"))
    with pytest.raises(ValueError, match="`model` must end in an nn.Linear with a bias"):
        shift_class_bias(nn.Sequential(nn.ReLU()), 0, 1.0)


def test_hints_bad_input():
    teacher, student = models.mlp((16,)), models.mlp((4,))
    with pytest.raises(ValueError, match=r"`student_layer` must name a layer of `student` \['flatten', 'fc1', 'relu1', 'fc2'\]; got 'relu9'"):
        fit_hints(student, teacher, X, student_layer="relu9", teacher_layer="relu1")
    with pytest.raises(ValueError, match=r"`teacher_layer` must name a layer of `teacher`.*got 'conv1'"):
        fit_hints(student, teacher, X, student_layer="relu1", teacher_layer="conv1")
    with pytest.raises(TypeError, match="`student` must be an nn.Sequential with named layers; got Linear"):
        fit_hints(nn.Linear(64, 4), teacher, X, student_layer="relu1", teacher_layer="relu1")
    with pytest.raises(ValueError, match=r"`model_layer` must name a layer of `model`.*got 'fc9'"):
        layer_output(teacher, "fc9", X)
    with pytest.raises(ValueError, match=r"`regressor` must map `student_features` to the shape of `teacher_features` \(4, 16\); got \(4, 8\)"):
        hint_loss(torch.randn(4, 4), torch.randn(4, 16), nn.Linear(4, 8))
    with pytest.raises(TypeError, match="`regressor` must be a torch.nn.Module; got function"):
        hint_loss(torch.randn(4, 4), torch.randn(4, 16), lambda s: s)


def test_parameter_distillation_bad_input():
    teacher = models.mlp((16, 8))
    with pytest.raises(ValueError, match=r"`hidden\[0\]` must be an integer in \[1, 16\]; got 20"):
        keep_important_units(teacher, (20, 4))
    with pytest.raises(ValueError, match=r"`hidden` must give one width per hidden layer of `teacher` \(2\); got 1"):
        keep_important_units(teacher, (4,))
    with pytest.raises(TypeError, match="`hidden` must be a sequence of ints; got 4"):
        keep_important_units(teacher, 4)
    with pytest.raises(TypeError, match=r"`teacher` must hold only Linear, ReLU, Flatten and Dropout layers; got \['conv1', 'bn1'"):
        keep_important_units(models.cnn((4,)), (2,))
    with pytest.raises(TypeError, match="`teacher` must be an nn.Sequential MLP"):
        low_rank_mlp(nn.Linear(4, 4), 2)
    with pytest.raises(ValueError, match=r"`rank` must be an integer in \[1, inf\]; got 0"):
        low_rank_mlp(teacher, 0)
    with pytest.raises(ValueError, match=r"`init` must be one of \['teacher', 'random'\]; got 'svd'"):
        low_rank_mlp(teacher, 2, init="svd")
    with pytest.raises(ValueError, match=r"`rank` must be an integer in \[1, 4\]; got 5"):
        truncated_svd(torch.randn(4, 6), 5)
    with pytest.raises(ValueError, match=r"`weight` must have 2 dimensions; got shape \(4,\)"):
        truncated_svd(torch.randn(4), 1)
    with pytest.raises(ValueError, match=r"`outgoing` must read the 3 units of `incoming` \(shape \(out, 3\)\); got shape \(2, 4\)"):
        unit_importance(torch.randn(3, 5), torch.randn(2, 4))
