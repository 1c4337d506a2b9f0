"""compresskit.llm.speculative refuses bad input with the argument, the rule and the value received,
before anything runs: a failed call leaves both models as they were (a model pruned with
torch.nn.utils.prune included: weights, masks, hooks and every module's mode). A completeness
test: every name in ``speculative.__all__`` has a row or a stated reason. Pruned models (a random
one, and the course's trained model) go through speculative_generate and give their own greedy
output, token for token."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from bad_input_harness import Bad, a, assert_refused, lazy, missing_rows, name_rows, snapshot
from compresskit import llm, models, text
from compresskit.llm import speculative as spec
from llm_standin import tiny_lm as standin_lm

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = models.TinyLMConfig(n_layer=2, n_head=2, d_model=16, block_size=16, vocab_size=32)
DRAFT_CONFIG = models.TinyLMConfig(n_layer=1, n_head=1, d_model=8, block_size=16, vocab_size=32)
RESULTS_ONLY = {"SpeculativeStats": "returned by speculative_generate, never taken as input"}


def pruned_lm(config: models.TinyLMConfig = CONFIG, seed: int = 0) -> models.TinyLM:
    """A TinyLM pruned with torch.nn.utils.prune, in training mode but for one block (mixed modes)."""
    model = models.tiny_lm(config, seed=seed).train()
    prune.l1_unstructured(model.blocks[0].attn.q, "weight", 0.5)
    prune.l1_unstructured(model.blocks[-1].mlp.fc1, "weight", 0.5)
    model.blocks[-1].eval()
    return model


def nan_lm() -> models.TinyLM:
    model = pruned_lm()
    with torch.no_grad():
        model.blocks[1].attn.proj.weight[0, 0] = math.nan
    return model


def pair(*args, target=None, draft=None, **kwargs):
    """Arguments with a fresh pruned target and draft first (both watched)."""
    return lazy(lambda: (((target or pruned_lm)(), (draft or (lambda: pruned_lm(DRAFT_CONFIG, 1)))(), *args), kwargs))


LOGITS = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
Q = torch.softmax(LOGITS[:3], -1)
P = torch.softmax(LOGITS.flip(0), -1)
X = torch.tensor([1, 0, 4])
G = torch.Generator().manual_seed(0)

CASES = [
    Bad(llm.greedy_accept, a([1, 0, 4], LOGITS), TypeError, ["`draft_tokens`", "torch.Tensor", "list"]),
    Bad(llm.greedy_accept, a(X.float(), LOGITS), TypeError, ["`draft_tokens`", "integer tensor", "torch.float32"]),
    Bad(llm.greedy_accept, a(X[None], LOGITS), ValueError, ["`draft_tokens`", "1 dimensions", "(1, 3)"]),
    Bad(llm.greedy_accept, a(torch.tensor([1, 5, 0]), LOGITS), ValueError, ["`draft_tokens`", "[0, 4]", "got 5"]),
    Bad(llm.greedy_accept, a(X, LOGITS[:3]), ValueError, ["`target_logits`", "4 rows", "(3, 5)"]),
    Bad(llm.greedy_accept, a(X, LOGITS[0]), ValueError, ["`target_logits`", "2 dimensions", "(5,)"]),
    Bad(llm.greedy_accept, a(X, LOGITS.index_fill(1, torch.tensor([2]), math.nan)), ValueError, ["`target_logits`", "finite", "4 NaN"]),
    Bad(llm.speculative_accept, a(X, Q, P, None), TypeError, ["`generator`", "Generator", "NoneType"]),
    Bad(llm.speculative_accept, a(X, Q, P, 0), TypeError, ["`generator`", "Generator", "int"]),
    Bad(llm.speculative_accept, a(X, Q[:2], P, G), ValueError, ["`draft_probs`", "3 rows", "(2, 5)"]),
    Bad(llm.speculative_accept, a(X, Q, P[:3], G), ValueError, ["`target_probs`", "4 rows", "(3, 5)"]),
    Bad(llm.speculative_accept, a(X, Q, P[:, :4], G), ValueError, ["`target_probs` and `draft_probs`", "same vocabulary", "4 and 5"]),
    Bad(llm.speculative_accept, a(X, LOGITS[:3], P, G), ValueError, ["`draft_probs`", "probabilities", "minimum"]),
    Bad(llm.speculative_accept, a(X, Q, P * 2, G), ValueError, ["`target_probs`", "sum to 1", "softmax", "got a row summing to 2"]),
    Bad(llm.speculative_accept, a(X, Q.long(), P, G), TypeError, ["`draft_probs`", "floating-point", "torch.int64"]),
    Bad(llm.speculative_accept, a(torch.tensor([1, 0, 9]), Q, P, G), ValueError, ["`draft_tokens`", "[0, 4]", "got 9"]),
    Bad(llm.speculative_accept, a(X, torch.eye(5)[[1, 1, 4]], P, G), ValueError, ["`draft_tokens[1]`=0", "probability 0", "`draft_probs[1]`"]),
    Bad(llm.speculative_accept, a(X, Q * math.nan, P, G), ValueError, ["`draft_probs`", "finite"]),
    Bad(llm.residual_distribution, a(P[0], Q), ValueError, ["`p` and `q`", "same shape", "(5,) and (3, 5)"]),
    Bad(llm.residual_distribution, a(LOGITS[0], Q[0]), ValueError, ["`p`", "probabilities"]),
    Bad(llm.residual_distribution, a(P[0], Q[0] / 2), ValueError, ["`q`", "sum to 1", "0.5"]),
    Bad(llm.residual_distribution, a([0.5, 0.5], Q[0]), TypeError, ["`p`", "torch.Tensor", "list"]),
    Bad(llm.expected_tokens_per_round, a(1.5, 4), ValueError, ["`alpha`", "[0, 1]", "1.5"]),
    Bad(llm.expected_tokens_per_round, a(0.5, -1), ValueError, ["`k`", "[0, inf]", "got -1"]),
    Bad(llm.expected_tokens_per_round, a("0.5", 4), TypeError, ["`alpha`", "real number", "'0.5'"]),
    Bad(llm.speculative_generate, pair("abc", 3, target=standin_lm), TypeError, ["`target`", "compresskit.models.TinyLM", "got TinyLM"], watch=1),
    Bad(llm.speculative_generate, pair("abc", 3, draft=lambda: nn.Linear(2, 2)), TypeError, ["`draft`", "TinyLM", "Linear"], watch=0),
    Bad(llm.speculative_generate, pair("abc", 3, draft=lambda: "draft"), TypeError, ["`draft`", "torch.nn.Module", "'draft'"], watch=0),
    Bad(llm.speculative_generate, pair(torch.tensor([1, 2]), 3, draft=lambda: models.tiny_lm(models.TinyLMConfig(1, 1, 8, 16, 64))),
        ValueError, ["`draft`", "target's vocabulary", "vocab_size=32", "got vocab_size=64"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.tensor([1, 2]), 3, target=nan_lm), ValueError, ["`target`", "finite", "blocks.1.attn.proj.weight"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.arange(10), 7), ValueError, ["`n`", "block_size=16", "10 + 7 = 17"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.arange(10), 4, draft=lambda: pruned_lm(models.TinyLMConfig(1, 1, 8, 12, 32), 1)),
        ValueError, ["`n`", "block_size=12", "smaller model", "10 + 4 = 14"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.tensor([1]), -1), ValueError, ["`n`", "[0, inf]", "got -1"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.tensor([1]), 3.0), TypeError, ["`n`", "integer", "3.0"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.tensor([1]), 3, k=0), ValueError, ["`k`", "[1, 16]", "got 0"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.tensor([1]), 3, k=2.0), TypeError, ["`k`", "integer", "2.0"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.tensor([1]), 3, temperature=-0.5), ValueError, ["`temperature`", "[0, inf)", "-0.5"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.tensor([1]), 3, temperature=math.nan), ValueError, ["`temperature`", "nan"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.tensor([1]), 3, seed=-1), ValueError, ["`seed`", "got -1"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.tensor([1.0, 2.0]), 3), TypeError, ["`prompt`", "integer tensor", "torch.float32"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.tensor([1, 32]), 3), ValueError, ["`prompt`", "[0, 31]", "got 32"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair(torch.ones(1, 2, dtype=torch.long), 3), ValueError, ["`prompt`", "1-D", "(1, 2)"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair("", 3), ValueError, ["`prompt`", "empty"], watch=(0, 1)),
    Bad(llm.speculative_generate, pair([1, 2], 3), TypeError, ["`prompt`", "1-D tensor of token ids", "list"], watch=(0, 1)),
]
name_rows(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_the_rule_and_the_value(case):
    assert_refused(case)


def test_every_public_name_has_a_bad_input_row():
    assert not missing_rows(CASES, spec.__all__, RESULTS_ONLY)
    assert set(RESULTS_ONLY) <= set(spec.__all__)


def test_a_pruned_model_goes_through_speculative_generate():
    target, draft = pruned_lm(), pruned_lm(DRAFT_CONFIG, 1)
    before = snapshot(target), snapshot(draft)
    prompt = torch.tensor([3, 1, 4])
    reference = text.generate(models.dense_copy(target), prompt, 12)  # the masks made permanent: the same function
    for k in (1, 3):
        ids, _ = llm.speculative_generate(target, draft, prompt, 12, k=k)
        assert torch.equal(ids, reference), k
    llm.speculative_generate(target, draft, prompt, 12, temperature=1.0)
    for state, model in zip(before, (target, draft)):  # weights, masks, hooks and every module's mode kept
        after = snapshot(model)
        assert all(torch.equal(after[0][k], v) for k, v in state[0].items()) and after[1:] == state[1:]


def test_the_trained_target_pruned_still_gives_its_own_greedy_output():
    target, draft = models.load_tiny_lm("main"), models.load_tiny_lm("draft")
    for block in target.blocks:
        prune.l1_unstructured(block.mlp.fc1, "weight", 0.3)
    prompt = text.load_text_split().test[500:524]
    reference = text.generate(target, prompt, 40)
    assert not torch.equal(reference, text.generate(models.load_tiny_lm("main"), prompt, 40))  # pruning changed its text
    ids, stats = llm.speculative_generate(target, draft, prompt, 40, k=4)
    assert torch.equal(ids, reference)
    assert prune.is_pruned(target)
