"""compresskit.llm.lowrank refuses bad input with the argument, the rule and the value received, and a
failed call leaves the model (or layer) it was given as it was (a model pruned with
torch.nn.utils.prune included: its weights, masks, hooks and modes). A completeness test: every
name in ``lowrank.__all__`` has a row."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from bad_input_harness import Bad, a, assert_refused, lazy, missing_rows, name_rows
from compresskit.llm import lowrank
from llm_standin import tiny_lm

pytestmark = pytest.mark.usefixtures("one_thread")


def pruned_lm(nan: bool = False) -> nn.Module:
    model = tiny_lm().train()
    prune.l1_unstructured(model.blocks[0].fc1, "weight", 0.5)
    model.blocks[1].eval()
    if nan:
        with torch.no_grad():
            model.blocks[1].proj.weight[0, 0] = math.nan
    return model


def pruned_fc(nan: bool = False) -> nn.Linear:
    fc = nn.Linear(16, 8)
    prune.l1_unstructured(fc, "weight", 0.5)
    if nan:
        with torch.no_grad():
            fc.weight_orig[0, 0] = math.nan
    return fc


def lm(*args, nan: bool = False, **kwargs):
    """Arguments with a fresh pruned model first (watched)."""
    return lazy(lambda: ((pruned_lm(nan), *args), kwargs))


def fc(*args, nan: bool = False, **kwargs):
    return lazy(lambda: ((pruned_fc(nan), *args), kwargs))


W = torch.randn(8, 12, generator=torch.Generator().manual_seed(0))
S = torch.linalg.svdvals(W)

CASES = [
    Bad(lowrank.singular_values, a(W.numpy()), TypeError, ["`weight`", "torch.Tensor", "ndarray"]),
    Bad(lowrank.singular_values, a(W[0]), ValueError, ["`weight`", "2 dimensions", "(12,)"]),
    Bad(lowrank.singular_values, a(W.long()), TypeError, ["`weight`", "floating-point", "torch.int64"]),
    Bad(lowrank.singular_values, a(W.index_fill(1, torch.tensor([2]), math.nan)), ValueError, ["`weight`", "finite", "8 NaN"]),
    Bad(lowrank.low_rank_factors, a(W, 0), ValueError, ["`rank`", "[1, 8]", "got 0"]),
    Bad(lowrank.low_rank_factors, a(W, 9), ValueError, ["`rank`", "[1, 8]", "got 9"]),
    Bad(lowrank.low_rank_factors, a(W, 2.0), TypeError, ["`rank`", "integer", "2.0"]),
    Bad(lowrank.low_rank_factors, a(W, True), TypeError, ["`rank`", "integer", "bool"]),
    Bad(lowrank.truncation_error, a(S, 9), ValueError, ["`rank`", "[0, 8]", "got 9"]),
    Bad(lowrank.truncation_error, a(S, -1), ValueError, ["`rank`", "[0, 8]", "got -1"]),
    Bad(lowrank.truncation_error, a(W, 1), ValueError, ["`singular_values`", "1 dimensions", "(8, 12)"]),
    Bad(lowrank.truncation_error, a(-S, 1), ValueError, ["`singular_values`", "non-negative", "got minimum"]),
    Bad(lowrank.rank_for_energy, a(S, 0.0), ValueError, ["`energy`", "(0, 1]", "0.0"]),
    Bad(lowrank.rank_for_energy, a(S, 1.5), ValueError, ["`energy`", "(0, 1]", "1.5"]),
    Bad(lowrank.rank_for_energy, a(S, "0.9"), TypeError, ["`energy`", "real number", "'0.9'"]),
    Bad(lowrank.rank_for_energy, a(S.long(), 0.9), TypeError, ["`singular_values`", "floating-point", "torch.int64"]),
    Bad(lowrank.rank_for_energy, a(-S, 0.9), ValueError, ["`singular_values`", "non-negative"]),
    Bad(lowrank.low_rank_bytes, a(0, 12, 2), ValueError, ["`out_features`", "[1, inf]", "got 0"]),
    Bad(lowrank.low_rank_bytes, a(8, 12, 0), ValueError, ["`rank`", "[1, inf]", "got 0"]),
    Bad(lowrank.low_rank_bytes, a(8, 12, 2, "yes"), TypeError, ["`bias`", "bool", "'yes'"]),
    Bad(lowrank.low_rank_bytes, a(8, 12, 2, True, 0), ValueError, ["`bytes_per_value`", "got 0"]),
    Bad(lowrank.dense_bytes, a(8, 0), ValueError, ["`in_features`", "[1, inf]", "got 0"]),
    Bad(lowrank.dense_bytes, a(8, 12, 1), TypeError, ["`bias`", "bool", "int"]),
    Bad(lowrank.dense_bytes, a(8.0, 12), TypeError, ["`out_features`", "integer", "8.0"]),
    Bad(lowrank.low_rank_linear, a(nn.Conv1d(4, 4, 1), 2), TypeError, ["`linear`", "Linear", "Conv1d"], watch=0),
    Bad(lowrank.low_rank_linear, fc(0), ValueError, ["`rank`", "[1, 8]", "got 0"], watch=0),
    Bad(lowrank.low_rank_linear, fc(9), ValueError, ["`rank`", "[1, 8]", "got 9"], watch=0),
    Bad(lowrank.low_rank_linear, fc(2, nan=True), ValueError, ["`linear`", "finite", "1 NaN"], watch=0),
    Bad(lowrank.low_rank_model, lm(0), ValueError, ["`rank`", "[1, inf]", "got 0"], watch=0),
    Bad(lowrank.low_rank_model, lm(33), ValueError, ["`rank`", "[1, 32]", "`blocks.0.qkv`", "got 33"], watch=0),
    Bad(lowrank.low_rank_model, lm(4.0), TypeError, ["`rank`", "integer", "4.0"], watch=0),
    Bad(lowrank.low_rank_model, lm(4, "blocks.0.fc1"), TypeError, ["`names`", "sequence", "'blocks.0.fc1'"], watch=0),
    Bad(lowrank.low_rank_model, lm(4, ["blocks.0.nope"]), ValueError, ["`names`", "nn.Linear layers", "'blocks.0.nope'"], watch=0),
    Bad(lowrank.low_rank_model, lm(4, []), ValueError, ["`names`", "nn.Linear layers", "[]"], watch=0),
    Bad(lowrank.low_rank_model, lm(4, nan=True), ValueError, ["`model`", "finite", "`blocks.1.proj.weight`"], watch=0),
    Bad(lowrank.low_rank_model, lazy(lambda: ((nn.Sequential(nn.Embedding(4, 4)), 2), {})), ValueError, ["`model`", "nn.Linear", "none"], watch=0),
    Bad(lowrank.low_rank_model, a("model", 4), TypeError, ["`model`", "torch.nn.Module", "str"]),
    Bad(lowrank.LowRankLinear, a(nn.Linear(8, 2), nn.Conv1d(2, 4, 1)), TypeError, ["`second`", "Linear", "Conv1d"]),
    Bad(lowrank.LowRankLinear, a(nn.Identity(), nn.Linear(2, 4)), TypeError, ["`first`", "Linear", "Identity"]),
    Bad(lowrank.LowRankLinear, a(nn.Linear(8, 2), nn.Linear(3, 4)), ValueError, ["`second`", "first's 2 outputs", "in_features=3"]),
    Bad(lowrank.effective_weight, a(nn.Conv1d(4, 4, 1)), TypeError, ["`linear`", "Linear", "Conv1d"]),
    Bad(lowrank.spectra, a(nn.Linear(2, 2).weight), TypeError, ["`model`", "torch.nn.Module", "Parameter"]),
    Bad(lowrank.spectra, lm(["head2"]), ValueError, ["`names`", "nn.Linear layers", "'head2'"], watch=0),
    Bad(lowrank.spectra, lm(nan=True), ValueError, ["`model`", "finite", "`blocks.1.proj.weight`"], watch=0),
]
name_rows(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_the_rule_and_the_value(case):
    assert_refused(case)


def test_every_public_name_has_a_bad_input_row():
    assert not missing_rows(CASES, lowrank.__all__)


def test_a_pruned_model_goes_through_every_function_that_takes_a_model():
    """(The agreement with a dense twin is in tests/test_llm_lowrank.py.) Masks, hooks and modes stay."""
    model = pruned_lm()
    low = lowrank.low_rank_model(model, 4)
    spectra = lowrank.spectra(model)
    assert prune.is_pruned(model) and not prune.is_pruned(low)
    assert set(spectra) == {n for n, m in low.named_modules() if isinstance(m, lowrank.LowRankLinear) and n.count(".") == 2}
    assert [m.training for m in model.modules()] == [m.training for m in pruned_lm().modules()]
    assert lowrank.low_rank_linear(model.blocks[0].fc1, 4)[0].weight.shape == (4, 32)
