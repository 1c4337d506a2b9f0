"""compresskit.llm.wanda refuses bad input with the argument, the rule and the value received, and a
failed call leaves the model it was given as it was (a model pruned with torch.nn.utils.prune
included: its weights, masks, hooks and modes). A completeness test: every name in
``wanda.__all__`` has a row."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from bad_input_harness import Bad, a, assert_refused, lazy, missing_rows, name_rows
from compresskit import models
from compresskit.llm import wanda

pytestmark = pytest.mark.usefixtures("one_thread")


def pruned_lm() -> models.TinyLM:
    model = models.tiny_lm(models.TinyLMConfig(n_layer=2, n_head=2, d_model=16, block_size=16, vocab_size=32)).train()
    prune.l1_unstructured(model.blocks[0].mlp.fc1, "weight", 0.5)
    model.blocks[1].eval()
    return model


def nan_lm() -> models.TinyLM:
    model = pruned_lm()
    with torch.no_grad():
        model.blocks[1].attn.v.weight[0, 0] = math.nan
    return model


def lm(*args, **kwargs):
    """Arguments with a fresh pruned model first (watched)."""
    return lazy(lambda: ((pruned_lm(), *args), kwargs))


W = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
NORMS = torch.rand(8, generator=torch.Generator().manual_seed(1))
CAL = [torch.randint(0, 32, (2, 16), generator=torch.Generator().manual_seed(2))]

CASES = [
    Bad(wanda.input_norms, a(torch.ones(8)), ValueError, ["`inputs`", "2 dimensions", "(8,)"]),
    Bad(wanda.input_norms, a(torch.ones(4, 8, dtype=torch.long)), TypeError, ["`inputs`", "floating-point", "torch.int64"]),
    Bad(wanda.input_norms, a(torch.full((4, 8), math.nan)), ValueError, ["`inputs`", "finite", "32 NaN"]),
    Bad(wanda.wanda_scores, a(W, NORMS[:5]), ValueError, ["`input_norms`", "in_features=8", "(5,)"]),
    Bad(wanda.wanda_scores, a(W, -NORMS), ValueError, ["`input_norms`", "non-negative"]),
    Bad(wanda.wanda_scores, a(W.numpy(), NORMS), TypeError, ["`weight`", "torch.Tensor", "ndarray"]),
    Bad(wanda.wanda_scores, a(W[0], NORMS), ValueError, ["`weight`", "2 dimensions", "(8,)"]),
    Bad(wanda.wanda_mask, a(W, NORMS, 1.0), ValueError, ["`sparsity`", "[0, 1)", "1.0"]),
    Bad(wanda.wanda_mask, a(W, NORMS, "half"), TypeError, ["`sparsity`", "real number", "'half'"]),
    Bad(wanda.wanda_mask, a(W, NORMS, 0.5, (2, 4)), ValueError, ["`sparsity`", "None when `n_m`", "0.5"]),
    Bad(wanda.wanda_mask, a(W, NORMS, n_m=(2, 3)), ValueError, ["`n_m`", "dividing in_features=8", "(2, 3)"]),
    Bad(wanda.wanda_mask, a(W, NORMS, n_m=(5, 4)), ValueError, ["`n_m[0]`", "[1, 4]", "5"]),
    Bad(wanda.wanda_mask, a(W, NORMS, n_m="2:4"), TypeError, ["`n_m`", "pair (n, m)", "'2:4'"]),
    Bad(wanda.wanda_mask, a(W, NORMS, n_m=(2.0, 4)), TypeError, ["`n_m[0]`", "integer", "2.0"]),
    Bad(wanda.sparsity_mask, a(W.abs(), 0.5, comparison="column"), ValueError, ["`comparison`", "'row'", "'column'"]),
    Bad(wanda.sparsity_mask, a(W.abs(), -0.1), ValueError, ["`sparsity`", "[0, 1)", "-0.1"]),
    Bad(wanda.sparsity_mask, a(W.abs().long()), TypeError, ["`scores`", "floating-point", "torch.int64"]),
    Bad(wanda.prune_lm, lm("sparsegpt", calibration=CAL), ValueError, ["`method`", "'wanda'", "'sparsegpt'"], watch=0),
    Bad(wanda.prune_lm, lm("wanda", 1.0, calibration=CAL), ValueError, ["`sparsity`", "[0, 1)", "1.0"], watch=0),
    Bad(wanda.prune_lm, lm("wanda", 0.5, n_m=(2, 4), calibration=CAL), ValueError, ["`sparsity`", "None when `n_m`"], watch=0),
    Bad(wanda.prune_lm, lm("magnitude", n_m=(2, 3)), ValueError, ["`n_m`", "dividing in_features=16", "(2, 3)"], watch=0),
    Bad(wanda.prune_lm, lm("wanda"), ValueError, ["`calibration`", "'wanda'", "None"], watch=0),
    Bad(wanda.prune_lm, lm("wanda", calibration=[]), ValueError, ["`calibration`", "at least one batch"], watch=0),
    Bad(wanda.prune_lm, lm("wanda", calibration=CAL[0]), TypeError, ["`calibration`", "sequence of input batches", "Tensor"], watch=0),
    Bad(wanda.prune_lm, lm("wanda", calibration=[CAL[0].tolist()]), TypeError, ["`calibration[0]`", "Tensor", "list"], watch=0),
    Bad(wanda.prune_lm, lm("wanda", calibration=[CAL[0].float()]), ValueError, ["`calibration[0]`", "batch `model` can take", "torch.float32"], watch=0),
    Bad(wanda.prune_lm, lm("magnitude", comparison="column"), ValueError, ["`comparison`", "'column'"], watch=0),
    Bad(wanda.prune_lm, lazy(lambda: ((nan_lm(), "magnitude"), {})), ValueError, ["`model`", "finite", "`blocks.1.attn.v.weight`"], watch=0),
    Bad(wanda.prune_lm, lazy(lambda: ((nn.Linear(4, 4), "magnitude"), {})), ValueError, ["`model`", "blocks", "Linear"], watch=0),
    Bad(wanda.prune_lm, a("model", "magnitude"), TypeError, ["`model`", "torch.nn.Module", "str"]),
]
name_rows(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_the_rule_and_the_value(case):
    assert_refused(case)


def test_every_public_name_has_a_bad_input_row():
    assert not missing_rows(CASES, wanda.__all__)
