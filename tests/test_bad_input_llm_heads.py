"""compresskit.llm.heads refuses bad input with the argument, the rule and the value received, and a
failed call leaves the model it was given as it was (a model pruned with torch.nn.utils.prune
included: its weights, masks, hooks and modes). A completeness test: every name in
``heads.__all__`` has a row."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from bad_input_harness import Bad, a, assert_refused, lazy, missing_rows, name_rows
from compresskit import models
from compresskit.llm import heads

pytestmark = pytest.mark.usefixtures("one_thread")


def pruned_lm() -> models.TinyLM:
    model = models.tiny_lm(models.TinyLMConfig(n_layer=2, n_head=2, d_model=16, block_size=16, vocab_size=32)).train()
    prune.l1_unstructured(model.blocks[0].attn.q, "weight", 0.5)
    model.blocks[1].eval()
    return model


def lm(*args, **kwargs):
    """Arguments with a fresh pruned model first (watched)."""
    return lazy(lambda: ((pruned_lm(), *args), kwargs))


def uneven_lm():
    return (heads.remove_heads(pruned_lm(), {0: [1]}), IDS), {}


IDS = [torch.randint(0, 32, (2, 10), generator=torch.Generator().manual_seed(0))]
IMPORTANCE = torch.rand(2, 2, generator=torch.Generator().manual_seed(1))

CASES = [
    Bad(heads.head_importance, lm([]), ValueError, ["`batches`", "at least one batch"], watch=0),
    Bad(heads.head_importance, lm(IDS[0]), TypeError, ["`batches`", "sequence", "Tensor"], watch=0),
    Bad(heads.head_importance, lm([IDS[0].float()]), ValueError, ["`batches[0]`", "int64", "torch.float32"], watch=0),
    Bad(heads.head_importance, lm([IDS[0][:, :1]]), ValueError, ["`batches[0]`", "at least 2 positions", "(2, 1)"], watch=0),
    Bad(heads.head_importance, lm([IDS[0][0]]), ValueError, ["`batches[0]`", "2 dimensions", "(10,)"], watch=0),
    Bad(heads.head_importance, lm([IDS[0] + 40]), ValueError, ["`batches[0]`", "[0, 32)", f"..{int(IDS[0].max()) + 40}"], watch=0),
    Bad(heads.head_importance, lm([torch.zeros(1, 18, dtype=torch.long)]), ValueError, ["`batches[0]`", "block_size+1=17", "(1, 18)"], watch=0),
    Bad(heads.head_importance, lm(IDS, normalize=1), TypeError, ["`normalize`", "bool", "1"], watch=0),
    Bad(heads.head_importance, lazy(uneven_lm), ValueError, ["`model`", "same number of heads", "[1, 2]"], watch=0),
    Bad(heads.head_importance, lazy(lambda: ((nn.Linear(4, 4), IDS), {})), TypeError, ["`model`", "compresskit.models.TinyLM", "Linear"], watch=0),
    Bad(heads.least_important_heads, a(IMPORTANCE, 5), ValueError, ["`k`", "[0, 4]", "5"]),
    Bad(heads.least_important_heads, a(IMPORTANCE, 1.0), TypeError, ["`k`", "integer", "1.0"]),
    Bad(heads.least_important_heads, a(IMPORTANCE[0], 1), ValueError, ["`importance`", "2 dimensions", "(2,)"]),
    Bad(heads.least_important_heads, a(IMPORTANCE.index_fill(0, torch.tensor([0]), math.nan), 1), ValueError, ["`importance`", "finite", "2 NaN"]),
    Bad(heads.remove_heads, lm([(0, 1)]), TypeError, ["`heads`", "mapping", "list"], watch=0),
    Bad(heads.remove_heads, lm({2: [0]}), ValueError, ["`heads (a layer)`", "[0, 1]", "2"], watch=0),
    Bad(heads.remove_heads, lm({0: [2]}), ValueError, ["`heads[0]`", "[0, 1]", "2"], watch=0),
    Bad(heads.remove_heads, lm({0: [1, 1]}), ValueError, ["`heads[0]`", "repeat", "[1, 1]"], watch=0),
    Bad(heads.remove_heads, lm({0: 1}), TypeError, ["`heads[0]`", "sequence of head indices", "int"], watch=0),
    Bad(heads.remove_heads, lm({"0": [1]}), TypeError, ["`heads (a layer)`", "integer", "'0'"], watch=0),
    Bad(heads.macs_per_token, lm(0), ValueError, ["`context`", "[1, 16]", "0"], watch=0),
    Bad(heads.macs_per_token, lm(17), ValueError, ["`context`", "[1, 16]", "17"], watch=0),
    Bad(heads.macs_per_token, a("model", 8), TypeError, ["`model`", "torch.nn.Module", "str"]),
]
name_rows(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_the_rule_and_the_value(case):
    assert_refused(case)


def test_every_public_name_has_a_bad_input_row():
    assert not missing_rows(CASES, heads.__all__)
