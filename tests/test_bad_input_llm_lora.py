"""compresskit.llm.lora refuses bad input with the argument, the rule and the value received, and a
failed call leaves the model (or layer) it was given as it was (a model pruned with
torch.nn.utils.prune included: its weights, masks, hooks, modes, and which parameters require
grad). A completeness test: every name in ``lora.__all__`` has a row."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from bad_input_harness import Bad, a, assert_refused, lazy, missing_rows, name_rows
from compresskit import models
from compresskit.llm import lora
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


def course_lm() -> nn.Module:
    """compresskit.models.TinyLM (it has a config.block_size), pruned."""
    model = models.tiny_lm(models.TinyLMConfig(n_layer=1, n_head=2, d_model=16, block_size=16, vocab_size=32))
    prune.l1_unstructured(model.blocks[0].attn.q, "weight", 0.5)
    return model


def frozen_lm() -> nn.Module:
    model = pruned_lm()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def pruned_fc(nan: bool = False) -> nn.Linear:
    fc = nn.Linear(16, 8)
    prune.l1_unstructured(fc, "weight", 0.5)
    if nan:
        with torch.no_grad():
            fc.weight_orig[0, 0] = math.nan
    return fc


def lm(*args, nan: bool = False, build=None, **kwargs):
    """Arguments with a fresh pruned model first (watched)."""
    return lazy(lambda: (((build or (lambda: pruned_lm(nan)))(), *args), kwargs))


def fc(*args, nan: bool = False, **kwargs):
    return lazy(lambda: ((pruned_fc(nan), *args), kwargs))


G = torch.Generator().manual_seed(0)
A, B = torch.randn(4, 16, generator=G), torch.randn(8, 4, generator=G)
IDS = torch.arange(200) % 50  # the stand-in's vocabulary is 64
T = ("qkv", "fc2")

CASES = [
    Bad(lora.lora_delta, a(A[0], B, 1.0), ValueError, ["`A`", "2 dimensions", "(16,)"]),
    Bad(lora.lora_delta, a(A, B[:, :3], 1.0), ValueError, ["`B`", "r=4", "(8, 3)"]),
    Bad(lora.lora_delta, a(A, B, 0.0), ValueError, ["`alpha`", "(0, inf)", "0.0"]),
    Bad(lora.lora_delta, a(A, B, "1"), TypeError, ["`alpha`", "real number", "'1'"]),
    Bad(lora.lora_delta, a(A.index_fill(1, torch.tensor([0]), math.nan), B, 1.0), ValueError, ["`A`", "finite", "4 NaN"]),
    Bad(lora.lora_delta, a(A, B.long(), 1.0), TypeError, ["`B`", "floating-point", "torch.int64"]),
    Bad(lora.adam_state_bytes, a(-1), ValueError, ["`n_params`", "[0, inf]", "got -1"]),
    Bad(lora.adam_state_bytes, a(1.5), TypeError, ["`n_params`", "integer", "1.5"]),
    Bad(lora.adam_state_bytes, a(10, -1), ValueError, ["`n_tensors`", "got -1"]),
    Bad(lora.adam_state_bytes, a(10, 1, 0), ValueError, ["`bytes_per_value`", "got 0"]),
    Bad(lora.QuantizedLinear, a(nn.Conv1d(4, 4, 1)), TypeError, ["`linear`", "Linear", "Conv1d"], watch=0),
    Bad(lora.QuantizedLinear, fc(1), ValueError, ["`bits`", "[2, 8]", "got 1"], watch=0),
    Bad(lora.QuantizedLinear, fc(9), ValueError, ["`bits`", "[2, 8]", "got 9"], watch=0),
    Bad(lora.QuantizedLinear, fc(4, 6), ValueError, ["`group_size`", "divide in_features=16", "got 6"], watch=0),
    Bad(lora.QuantizedLinear, fc(4, 0), ValueError, ["`group_size`", "[1, 16]", "got 0"], watch=0),
    Bad(lora.QuantizedLinear, fc(4, 8, nan=True), ValueError, ["`linear`", "finite", "1 NaN"], watch=0),
    Bad(lora.LoRALinear, a(nn.Conv1d(4, 4, 1), 2, 2.0), TypeError, ["`base`", "Linear or QuantizedLinear", "Conv1d"], watch=0),
    Bad(lora.LoRALinear, fc(0, 2.0), ValueError, ["`rank`", "[1, 8]", "got 0"], watch=0),
    Bad(lora.LoRALinear, fc(9, 2.0), ValueError, ["`rank`", "[1, 8]", "got 9"], watch=0),
    Bad(lora.LoRALinear, fc(2, -1.0), ValueError, ["`alpha`", "(0, inf)", "-1.0"], watch=0),
    Bad(lora.LoRALinear, fc(2, math.nan), ValueError, ["`alpha`", "(0, inf)", "nan"], watch=0),
    Bad(lora.LoRALinear, fc(2, 2.0, seed=-1), ValueError, ["`seed`", "got -1"], watch=0),
    Bad(lora.LoRALinear, fc(2, 2.0, seed=1.5), TypeError, ["`seed`", "integer", "1.5"], watch=0),
    Bad(lora.add_lora, a("model", 4, 8.0), TypeError, ["`model`", "torch.nn.Module", "str"]),
    Bad(lora.add_lora, lm(0, 8.0, T), ValueError, ["`rank`", "[1, inf]", "got 0"], watch=0),
    Bad(lora.add_lora, lm(33, 8.0, T), ValueError, ["`rank`", "[1, 32]", "`blocks.0.qkv`", "got 33"], watch=0),
    Bad(lora.add_lora, lm(4, 0, T), ValueError, ["`alpha`", "(0, inf)", "0.0"], watch=0),
    Bad(lora.add_lora, lm(4, 8.0, "qkv"), TypeError, ["`targets`", "sequence of layer names", "'qkv'"], watch=0),
    Bad(lora.add_lora, lm(4, 8.0, []), ValueError, ["`targets`", "at least one layer", "empty"], watch=0),
    Bad(lora.add_lora, lm(4, 8.0, ["qkv", 2]), TypeError, ["`targets[1]`", "str", "int"], watch=0),
    Bad(lora.add_lora, lm(4, 8.0, ["q", "v"]), ValueError, ["`targets`", "nn.Linear layers", "['q', 'v']", "match none"], watch=0),
    Bad(lora.add_lora, lm(4, 8.0, T, seed=-2), ValueError, ["`seed`", "got -2"], watch=0),
    Bad(lora.add_lora, lm(4, 8.0, T, nan=True), ValueError, ["`model`", "finite", "`blocks.1.proj.weight`"], watch=0),
    Bad(lora.add_qlora, lm(4, 8.0, 9, 16, T), ValueError, ["`bits`", "[2, 8]", "got 9"], watch=0),
    Bad(lora.add_qlora, lm(4, 8.0, 4, 48, T), ValueError, ["`group_size`", "divide in_features=32", "got 48"], watch=0),
    Bad(lora.add_qlora, lm(4, 8.0, 4, 0, T), ValueError, ["`group_size`", "[1, inf]", "got 0"], watch=0),
    Bad(lora.add_qlora, lm(4, 8.0, 4, 16.0, T), TypeError, ["`group_size`", "integer", "16.0"], watch=0),
    Bad(lora.add_qlora, lm(0, 8.0, 4, 16, T), ValueError, ["`rank`", "got 0"], watch=0),
    Bad(lora.add_qlora, lm(4, 8.0, 4, 16, ("nope",)), ValueError, ["`targets`", "match none"], watch=0),
    Bad(lora.add_qlora, lm(4, 8.0, 4, 16, T, nan=True), ValueError, ["`model`", "finite"], watch=0),
    Bad(lora.lora_parameter_count, a(None, 4), TypeError, ["`model`", "torch.nn.Module", "NoneType"]),
    Bad(lora.lora_parameter_count, lm(0, T), ValueError, ["`rank`", "got 0"], watch=0),
    Bad(lora.lora_parameter_count, lm(4, ("nope",)), ValueError, ["`targets`", "match none"], watch=0),
    Bad(lora.merge_lora, lm(), ValueError, ["`model`", "LoRALinear", "none"], watch=0),
    Bad(lora.merge_lora, a(3), TypeError, ["`model`", "torch.nn.Module", "int"]),
    Bad(lora.trainable_parameters, a([nn.Linear(2, 2)]), TypeError, ["`model`", "torch.nn.Module", "list"]),
    Bad(lora.frozen_bytes, a(torch.zeros(3)), TypeError, ["`model`", "torch.nn.Module", "Tensor"]),
    Bad(lora.optimizer_state_bytes, a({"state": {}}), TypeError, ["`optimizer`", "Optimizer", "dict"]),
    Bad(lora.finetune, a("model", IDS, 2), TypeError, ["`model`", "torch.nn.Module", "str"]),
    Bad(lora.finetune, lm(IDS.float(), 2), TypeError, ["`ids`", "integer tensor", "torch.float32"], watch=0),
    Bad(lora.finetune, lm(IDS.reshape(2, -1), 2), ValueError, ["`ids`", "1 dimension", "(2, 100)"], watch=0),
    Bad(lora.finetune, lm(IDS[:64], 2), ValueError, ["`ids`", "at least 65 ids", "got 64"], watch=0),
    Bad(lora.finetune, lm(IDS + 250, 2), ValueError, ["`ids`", "[0, 255]", "got 299"], watch=0),
    Bad(lora.finetune, lm(IDS + 20, 2, context=8), ValueError, ["`ids`", "`model` can take", "[20, 69]"], watch=0),
    Bad(lora.finetune, lm(IDS, 0), ValueError, ["`steps`", "[1, inf]", "got 0"], watch=0),
    Bad(lora.finetune, lm(IDS, 2, batch_size=0), ValueError, ["`batch_size`", "got 0"], watch=0),
    Bad(lora.finetune, lm(IDS, 2, context=0), ValueError, ["`context`", "[1, inf]", "got 0"], watch=0),
    Bad(lora.finetune, lm(IDS % 32, 2, context=17, build=course_lm), ValueError, ["`context`", "[1, 16]", "got 17"], watch=0),
    Bad(lora.finetune, lm(IDS, 2, lr=0.0), ValueError, ["`lr`", "(0, inf)", "0.0"], watch=0),
    Bad(lora.finetune, lm(IDS, 2, seed=-1), ValueError, ["`seed`", "got -1"], watch=0),
    Bad(lora.finetune, lm(IDS, 2, optimizer="adam"), TypeError, ["`optimizer`", "Optimizer", "'adam'"], watch=0),
    Bad(lora.finetune, lm(IDS, 2, build=frozen_lm), ValueError, ["`model`", "require grad", "none"], watch=0),
]
name_rows(CASES)


def requires_grad(model: nn.Module) -> list[tuple[str, bool]]:
    return [(n, p.requires_grad) for n, p in model.named_parameters()]


def call(case: Bad, args: tuple, kwargs: dict):
    """Also checks what the harness's snapshot does not hold: which parameters require grad."""
    flags = {i: requires_grad(args[i]) for i in case.watched()}
    try:
        return case.fn(*args, **kwargs)
    finally:
        for i, before in flags.items():
            assert requires_grad(args[i]) == before, "a failed call changed which parameters require grad"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_the_rule_and_the_value(case):
    assert_refused(case, call)


def test_every_public_name_has_a_bad_input_row():
    assert not missing_rows(CASES, lora.__all__)


def test_a_pruned_model_goes_through_every_function_that_takes_a_model():
    """(The agreement with a dense twin is in tests/test_llm_lora.py.) The caller's masks, hooks, modes
    and requires_grad flags stay; the copies hold no masks."""
    model = pruned_lm()
    flags, modes = requires_grad(model), [m.training for m in model.modules()]
    for new in (lora.add_lora(model, 4, 8.0, T), lora.add_qlora(model, 4, 8.0, 4, 16, T)):
        assert not prune.is_pruned(new) and lora.trainable_parameters(new) == lora.lora_parameter_count(model, 4, T)
        lora.finetune(new, IDS, 2, batch_size=2, context=8)
        assert not prune.is_pruned(lora.merge_lora(new))
    assert prune.is_pruned(model) and requires_grad(model) == flags and [m.training for m in model.modules()] == modes
    assert lora.frozen_bytes(model) == sum(b.numel() * 4 for b in model.buffers())  # nothing frozen: the mask buffer only
    pruned = model.blocks[0].fc1.weight_mask == 0
    assert bool((lora.QuantizedLinear(model.blocks[0].fc1, 4, 16).dequantize()[pruned] == 0).all())  # asymmetric RTN keeps zeros
