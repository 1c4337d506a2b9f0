"""Every public name of compresskit.distillation refuses bad input (wrong types, out-of-range
values, NaN, empty and mis-shaped tensors) with an error that names the argument, the rule and
the value received, and a call that fails leaves every model it was given as it was: weights,
buffers, pruning hooks and the train / eval mode of every layer. Models pruned with
torch.nn.utils.prune go through every function that takes a model.

One row per (function, bad call), as in tests/test_bad_input.py; a completeness test checks that
every name in ``compresskit.distillation.__all__`` has a row.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from bad_input_harness import Bad, a, assert_refused, lazy, snapshot
from compresskit import distillation as D
from compresskit import models, pruning


def mlp(hidden=(8,), seed=0, training=True) -> nn.Sequential:
    return models.mlp(hidden, seed=seed).train(training)


def pruned(hidden=(8,), seed=0, training=True) -> nn.Sequential:
    model = mlp(hidden, seed, training)
    pruning.l1_unstructured(model.fc1, "weight", 0.5)
    return model


X = torch.rand(6, 1, 8, 8)
Y = torch.tensor([0, 1, 2, 3, 4, 5])
Z = torch.randn(6, 10)
NAN_Z = Z.clone().index_fill(1, torch.tensor([2]), math.nan)
INF_ROW = Z.clone().index_fill(0, torch.tensor([3]), -math.inf)
W = torch.randn(5, 4)
PROBS = torch.full((6, 10), 0.1)

CASES = [
    # --- soften -------------------------------------------------------------------------------
    Bad(D.soften, a([[1.0, 2.0]], 2.0), TypeError, ["`logits`", "list"]),
    Bad(D.soften, a(torch.tensor([[1, 2]]), 2.0), TypeError, ["`logits`", "torch.int64"]),
    Bad(D.soften, a(torch.zeros(0, 3), 2.0), ValueError, ["`logits`", "empty", "(0, 3)"]),
    Bad(D.soften, a(torch.zeros(2, 3, 4), 2.0), ValueError, ["`logits`", "(2, 3, 4)"]),
    Bad(D.soften, a(NAN_Z, 2.0), ValueError, ["`logits`", "finite or -inf", "6 NaN"]),
    Bad(D.soften, a(INF_ROW, 2.0), ValueError, ["`logits`", "finite logit in every row", "row 3"]),
    Bad(D.soften, a(Z, 0.0), ValueError, ["`temperature`", "(0, inf)", "0.0"]),
    Bad(D.soften, a(Z, math.nan), ValueError, ["`temperature`", "nan"]),
    Bad(D.soften, a(Z, "4"), TypeError, ["`temperature`", "'4'"]),
    # --- distillation_loss ----------------------------------------------------------------------
    Bad(D.distillation_loss, a(Z, Z[:5], Y), ValueError, ["`teacher_logits`", "(6, 10)", "(5, 10)"]),
    Bad(D.distillation_loss, a(Z.numpy(), Z, Y), TypeError, ["`student_logits`", "ndarray"]),
    Bad(D.distillation_loss, a(NAN_Z, Z, Y), ValueError, ["`student_logits`", "finite", "6 NaN"]),
    Bad(D.distillation_loss, a(Z, NAN_Z, Y), ValueError, ["`teacher_logits`", "finite or -inf", "6 NaN"]),
    Bad(D.distillation_loss, a(Z, INF_ROW, alpha=1.0), ValueError, ["`teacher_logits`", "row 3"]),
    Bad(D.distillation_loss, a(torch.zeros(0, 10), torch.zeros(0, 10), alpha=1.0), ValueError, ["`student_logits`", "empty"]),
    Bad(D.distillation_loss, a(Z, Z, Y.float()), TypeError, ["`labels`", "integer", "torch.float32"]),
    Bad(D.distillation_loss, a(Z, Z, Y + 5), ValueError, ["`labels`", "[0, 9]", "[5, 10]"]),
    Bad(D.distillation_loss, a(Z, Z, Y[:4]), ValueError, ["`labels`", "(6)", "got 4"]),
    Bad(D.distillation_loss, a(Z, Z), ValueError, ["`labels`", "`alpha` < 1", "alpha=0.9"]),
    Bad(D.distillation_loss, a(Z, Z, Y, alpha=1.5), ValueError, ["`alpha`", "[0, 1]", "1.5"]),
    Bad(D.distillation_loss, a(Z, Z, Y, temperature=-1.0), ValueError, ["`temperature`", "-1.0"]),
    # --- distill (student watched: weights, hooks and the mode of every layer) -----------------------
    Bad(D.distill, lazy(lambda: ((pruned(training=False), X, Z, Y), {"lr": -1.0})), ValueError, ["`lr`", "(0, inf)", "-1.0"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((pruned(), X, Z, Y), {"epochs": 2.5})), TypeError, ["`epochs`", "2.5"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((mlp(training=False), X, Z, Y), {"seed": -1})), ValueError, ["`seed`", "-1"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((pruned(), X, Z, Y), {"batch_size": 0})), ValueError, ["`batch_size`", "0"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((pruned(), X, Z, Y), {"alpha": -0.5})), ValueError, ["`alpha`", "-0.5"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((pruned(), X, NAN_Z, Y), {})), ValueError, ["`teacher_logits`", "6 NaN"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((pruned(), X, INF_ROW, Y), {})), ValueError, ["`teacher_logits`", "row 3"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((pruned(), X, Z[:, :5], Y), {})), ValueError, ["`teacher_logits`", "(6, 10)", "(6, 5)"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((pruned(), X, Z[:4], Y), {})), ValueError, ["`teacher_logits`", "(6)", "got 4"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((pruned(training=False), torch.rand(6, 3), Z, Y), {})), ValueError, ["`X`", "(6, 3)"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((pruned(), X * math.nan, Z, Y), {})), ValueError, ["`X`", "finite"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((pruned(), X[:0], Z[:0], Y[:0]), {})), ValueError, ["`X`", "empty"], watch=(0,)),
    Bad(D.distill, lazy(lambda: ((pruned(), X, Z, Y - 1), {})), ValueError, ["`labels`", "[-1, 4]"], watch=(0,)),
    Bad(D.distill, a("student", X, Z, Y), TypeError, ["`student`", "'student'"]),
    # --- shift_class_bias ----------------------------------------------------------------------
    Bad(D.shift_class_bias, lazy(lambda: ((pruned(), 10, 1.0), {})), ValueError, ["`class_index`", "[0, 9]", "10"], watch=(0,)),
    Bad(D.shift_class_bias, lazy(lambda: ((pruned(), 1, math.nan), {})), ValueError, ["`shift`", "nan"], watch=(0,)),
    Bad(D.shift_class_bias, lazy(lambda: ((pruned(), 1.0, 1.0), {})), TypeError, ["`class_index`", "1.0"], watch=(0,)),
    Bad(D.shift_class_bias, lazy(lambda: ((nn.Sequential(nn.Linear(2, 2, bias=False)), 0, 1.0), {})), ValueError, ["`model`", "bias"], watch=(0,)),
    Bad(D.shift_class_bias, a(None, 0, 1.0), TypeError, ["`model`", "None"]),
    # --- ProbabilityTeacher, check_probabilities, teacher_logits ------------------------------------
    Bad(D.ProbabilityTeacher, a(3), TypeError, ["`predict_proba`", "int"]),
    Bad(lambda f, x: D.ProbabilityTeacher(f)(x), a(lambda a: np.full((len(a), 3), 2.0), X), ValueError, ["`teacher`", "summing to", "logits"]),
    Bad(lambda f, x: D.ProbabilityTeacher(f)(x), a(lambda a: np.full((len(a) - 1, 3), 1 / 3), X), ValueError, ["`teacher`", "N = 6", "(5, 3)"]),
    Bad(lambda f, x: D.ProbabilityTeacher(f)(x), a(lambda a: np.full((len(a), 3), math.nan), X), ValueError, ["`teacher`", "finite"]),
    Bad(D.check_probabilities, a("p", -PROBS), ValueError, ["`p`", ">= 0", "-0.1"]),
    Bad(D.check_probabilities, a("p", PROBS * 2), ValueError, ["`p`", "summing to 1", "2"]),
    Bad(D.check_probabilities, a("p", PROBS[0]), ValueError, ["`p`", "2 dimensions", "(10,)"]),
    Bad(D.check_probabilities, a("p", torch.zeros(0, 3)), ValueError, ["`p`", "empty"]),
    Bad(D.check_probabilities, a("p", PROBS.index_fill(0, torch.tensor([1]), math.nan)), ValueError, ["`p`", "finite", "10 NaN"]),
    Bad(D.teacher_logits, lazy(lambda: ((pruned(training=True), X), {"batch_size": 0})), ValueError, ["`batch_size`", "0"], watch=(0,)),
    Bad(D.teacher_logits, lazy(lambda: ((pruned(training=True), X.long()), {})), TypeError, ["`X`", "torch.int64"], watch=(0,)),
    Bad(D.teacher_logits, lazy(lambda: ((pruned(training=True), X * math.nan), {})), ValueError, ["`X`", "finite"], watch=(0,)),
    Bad(D.teacher_logits, lazy(lambda: ((nn.Flatten(0), X), {})), ValueError, ["`teacher`", "(6, K)", "(384,)"], watch=(0,)),
    Bad(D.teacher_logits, a(lambda x: x, X), TypeError, ["`teacher`", "function"]),
    # --- hints -----------------------------------------------------------------------------------
    Bad(D.layer_output, lazy(lambda: ((pruned(training=False), "fc9", X), {})), ValueError, ["`model_layer`", "'fc9'"], watch=(0,)),
    Bad(D.layer_output, lazy(lambda: ((pruned(), "fc1", torch.rand(6, 3)), {})), ValueError, ["`X`", "(6, 3)"], watch=(0,)),
    Bad(D.layer_output, lazy(lambda: ((pruned(), "fc1", X * math.nan), {})), ValueError, ["`X`", "finite"], watch=(0,)),
    Bad(D.layer_output, lazy(lambda: ((pruned(), "fc1", X[:0]), {})), ValueError, ["`X`", "empty"], watch=(0,)),
    Bad(D.layer_output, a(nn.Linear(64, 3), "fc1", X), TypeError, ["`model`", "nn.Sequential", "Linear"]),
    Bad(D.hint_loss, a(torch.randn(6, 8), torch.randn(6, 16), nn.Linear(8, 12)), ValueError, ["`regressor`", "(6, 16)", "(6, 12)"]),
    Bad(D.hint_loss, a(torch.full((6, 8), math.nan), torch.randn(6, 16), nn.Linear(8, 16)), ValueError, ["`student_features`", "finite", "48 NaN"]),
    Bad(D.hint_loss, a(torch.randn(6, 8), torch.randn(6, 16).index_fill(1, torch.tensor([0]), math.inf), nn.Linear(8, 16)),
        ValueError, ["`teacher_features`", "finite", "6 NaN or inf"]),
    Bad(D.hint_loss, a(torch.randn(6, 8), torch.randn(16), nn.Linear(8, 16)), ValueError, ["`teacher_features`", "2 dimensions", "(16,)"]),
    Bad(D.hint_loss, a(torch.randn(6, 8), torch.randn(6, 16), "linear"), TypeError, ["`regressor`", "'linear'"]),
    Bad(D.fit_hints, lazy(lambda: ((pruned(training=False), pruned((16,), 1)), {"X": X, "student_layer": "relu9", "teacher_layer": "relu1"})),
        ValueError, ["`student_layer`", "'relu9'"], watch=(0, 1)),
    Bad(D.fit_hints, lazy(lambda: ((pruned(), pruned((16,), 1, False)), {"X": X, "student_layer": "relu1", "teacher_layer": "conv1"})),
        ValueError, ["`teacher_layer`", "'conv1'"], watch=(0, 1)),
    Bad(D.fit_hints, lazy(lambda: ((pruned(), pruned((16,), 1)), {"X": X, "student_layer": "relu1", "teacher_layer": "relu1", "lr": 0.0})),
        ValueError, ["`lr`", "0.0"], watch=(0, 1)),
    Bad(D.fit_hints, lazy(lambda: ((pruned(training=False), pruned((16,), 1)), {"X": X, "student_layer": "relu1", "teacher_layer": "relu1", "seed": -2})),
        ValueError, ["`seed`", "-2"], watch=(0, 1)),
    Bad(D.fit_hints, lazy(lambda: ((pruned(), pruned((16,), 1)), {"X": X, "student_layer": "relu1", "teacher_layer": "relu1", "epochs": -1})),
        ValueError, ["`epochs`", "-1"], watch=(0, 1)),
    Bad(D.fit_hints, lazy(lambda: ((pruned(), pruned((16,), 1)), {"X": torch.rand(6, 3), "student_layer": "relu1", "teacher_layer": "relu1"})),
        ValueError, ["`X`", "(6, 3)"], watch=(0, 1)),
    Bad(D.fit_hints, lazy(lambda: ((pruned(), pruned((16,), 1)), {"X": X * math.nan, "student_layer": "relu1", "teacher_layer": "relu1"})),
        ValueError, ["`X`", "finite"], watch=(0, 1)),
    # --- parameters ------------------------------------------------------------------------------
    Bad(D.unit_importance, a(torch.randn(8, 4), torch.randn(3, 5)), ValueError, ["`outgoing`", "8 units", "(3, 5)"]),
    Bad(D.unit_importance, a(torch.randn(8), torch.randn(3, 8)), ValueError, ["`incoming`", "2 dimensions", "(8,)"]),
    Bad(D.unit_importance, a(torch.full((8, 4), math.nan), torch.randn(3, 8)), ValueError, ["`incoming`", "finite", "32 NaN"]),
    Bad(D.unit_importance, a(torch.randint(0, 3, (8, 4)), torch.randn(3, 8)), TypeError, ["`incoming`", "torch.int64"]),
    Bad(D.keep_important_units, lazy(lambda: ((pruned(), [0]), {})), ValueError, ["`hidden[0]`", "[1, 8]", "0"], watch=(0,)),
    Bad(D.keep_important_units, lazy(lambda: ((pruned(), [9]), {})), ValueError, ["`hidden[0]`", "[1, 8]", "9"], watch=(0,)),
    Bad(D.keep_important_units, lazy(lambda: ((pruned(), [4, 4]), {})), ValueError, ["`hidden`", "(1)", "got 2"], watch=(0,)),
    Bad(D.keep_important_units, lazy(lambda: ((pruned(), (4.0,)), {})), TypeError, ["`hidden`", "ints", "(4.0,)"], watch=(0,)),
    Bad(D.keep_important_units, lazy(lambda: ((models.cnn(), [4]), {})), TypeError, ["`teacher`", "Linear, ReLU", "conv1"], watch=(0,)),
    Bad(D.truncated_svd, a(W, 0), ValueError, ["`rank`", "[1, 4]", "0"]),
    Bad(D.truncated_svd, a(W, 5), ValueError, ["`rank`", "[1, 4]", "5"]),
    Bad(D.truncated_svd, a(W, 2.0), TypeError, ["`rank`", "2.0"]),
    Bad(D.truncated_svd, a(W * math.nan, 2), ValueError, ["`weight`", "finite", "20 NaN"]),
    Bad(D.truncated_svd, a(torch.zeros(0, 4), 1), ValueError, ["`weight`", "empty"]),
    Bad(D.truncated_svd, a(W[0], 1), ValueError, ["`weight`", "2 dimensions", "(4,)"]),
    Bad(D.low_rank_mlp, lazy(lambda: ((pruned(), 0), {})), ValueError, ["`rank`", "0"], watch=(0,)),
    Bad(D.low_rank_mlp, lazy(lambda: ((pruned(), 2), {"init": "svd"})), ValueError, ["`init`", "'svd'"], watch=(0,)),
    Bad(D.low_rank_mlp, lazy(lambda: ((pruned(), 2), {"seed": "0"})), TypeError, ["`seed`", "'0'"], watch=(0,)),
    Bad(D.low_rank_mlp, lazy(lambda: ((pruned(), 2), {"seed": -1})), ValueError, ["`seed`", "-1"], watch=(0,)),
    Bad(D.low_rank_mlp, lazy(lambda: ((nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), 2), {})), ValueError, ["`teacher`", "hidden layer", "got 1"], watch=(0,)),
]

for case in CASES:
    name = getattr(case.fn, "__qualname__", "fn").replace("<lambda>", "ProbabilityTeacher.forward")
    case.id = f"{name}-{'-'.join(case.words)}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_the_rule_and_the_value(case):
    assert_refused(case)  # tests/bad_input_harness.py: the error, its words, the watched models unchanged


def test_every_public_name_has_a_bad_input_row():
    covered = {getattr(c.fn, "__qualname__", "").split(".")[0] for c in CASES}
    covered.add("ProbabilityTeacher")  # its forward is covered by the lambda rows above
    missing = sorted(set(D.__all__) - covered)
    assert not missing, f"public names without a bad-input row: {missing}"


# --- a model pruned with torch.nn.utils.prune goes through every function that takes a model --------

def _dense_twin(model: nn.Sequential) -> nn.Sequential:
    """The same function without pruning hooks (weights = weight_orig * weight_mask)."""
    twin = models.mlp((model.fc1.out_features,), seed=0)
    with torch.no_grad():
        for name in ("fc1", "fc2"):
            getattr(twin, name).weight.copy_(getattr(model, name).weight)
            getattr(twin, name).bias.copy_(getattr(model, name).bias)
    return twin


PRUNED_CALLS = {
    "distill": lambda m: D.distill(m, X, Z, Y, epochs=1),
    "fit_hints": lambda m: D.fit_hints(m, pruned((16,), 1), X, student_layer="relu1", teacher_layer="relu1", epochs=1),
    "layer_output": lambda m: D.layer_output(m, "relu1", X),
    "teacher_logits": lambda m: D.teacher_logits(m, X),
    "shift_class_bias": lambda m: D.shift_class_bias(m, 3, 2.0)(X),
    "keep_important_units": lambda m: D.keep_important_units(m, [5])(X),
    "low_rank_mlp": lambda m: D.low_rank_mlp(m, 3)(X),
}


@pytest.mark.parametrize("name", list(PRUNED_CALLS))
def test_a_pruned_model_goes_through_and_gives_what_its_dense_twin_gives(name):
    model = pruned()
    twin = _dense_twin(model)
    mask = model.fc1.weight_mask.clone()
    with torch.random.fork_rng():
        got = PRUNED_CALLS[name](model)
    with torch.random.fork_rng():
        want = PRUNED_CALLS[name](twin)
    if isinstance(got, torch.Tensor):
        torch.testing.assert_close(got, want)
    else:  # training: the pruned weights stay zero, the mask is the same
        assert torch.equal(model.fc1.weight_mask, mask) and bool((model.fc1.weight[mask == 0] == 0).all())


def test_every_function_that_takes_a_model_has_a_pruned_run():
    takes_a_model = {"distill", "fit_hints", "layer_output", "teacher_logits", "shift_class_bias",
                     "keep_important_units", "low_rank_mlp"}
    assert takes_a_model <= set(D.__all__) and takes_a_model == set(PRUNED_CALLS)
