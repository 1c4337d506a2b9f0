"""compresskit.llm.kv_cache refuses bad input with the argument, the rule and the value received; a
failed call leaves the model it was given as it was (a model pruned with torch.nn.utils.prune
included: its weights, masks, hooks and modes) and the cache it was given as it was. A
completeness test: every name in ``kv_cache.__all__`` has a row. Pruned models go through every
function that takes a model."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from bad_input_harness import Bad, a, assert_refused, lazy, missing_rows, name_rows, snapshot
from compresskit import models, text
from compresskit.llm import kv_cache as kv
from llm_standin import tiny_lm as standin_lm

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = models.TinyLMConfig(n_layer=2, n_head=2, d_model=16, block_size=16, vocab_size=32)


def pruned_lm() -> models.TinyLM:
    model = models.tiny_lm(CONFIG).train()
    prune.l1_unstructured(model.blocks[0].attn.q, "weight", 0.5)
    prune.l1_unstructured(model.blocks[1].mlp.fc1, "weight", 0.5)
    model.blocks[1].eval()
    return model


def other_lm() -> models.TinyLM:
    return models.tiny_lm(models.TinyLMConfig(n_layer=2, n_head=4, d_model=16, block_size=16, vocab_size=32))


def lm(*args, **kwargs):
    """Arguments with a fresh pruned model first (watched)."""
    return lazy(lambda: ((pruned_lm(), *args), kwargs))


def filled(n: int, B: int = 1, bits: int | None = None):
    """A pruned model and a cache already holding n positions."""
    model = pruned_lm()
    cache = kv.new_cache(model) if bits is None else kv.new_quantized_cache(model, bits, 4)
    kv.forward_cached(model, IDS[:B, :n], cache)
    return model, cache


def cached(n: int, idx, B: int = 1, bits: int | None = None):
    return lazy(lambda: (filled(n, B, bits) + (idx,), {}))


def forward_cached(model, cache, idx):
    """forward_cached with the model and the cache first, so the harness can watch the model."""
    return kv.forward_cached(model, idx, cache)


def crop(model, cache, n):
    cache.crop(n)


def append(model, cache, keys, values):
    cache.append(keys, values)


def layer(model, cache, i):
    cache.layer(i)


IDS = torch.randint(0, 32, (2, 16), generator=torch.Generator().manual_seed(0))
KV = torch.zeros(1, 2, 3, 8)

CASES = [
    Bad(kv.KVCache, a([2, 0], 8, 16), ValueError, ["`n_heads[1]`", "[1, inf]", "got 0"]),
    Bad(kv.KVCache, a([], 8, 16), ValueError, ["`n_heads`", "at least one layer", "empty"]),
    Bad(kv.KVCache, a(2, 8, 16), TypeError, ["`n_heads`", "list of ints", "int"]),
    Bad(append, lazy(lambda: (filled(3) + ([KV, KV[0]], [KV, KV]), {})), ValueError, ["`keys[1]`", "(B, H, T_new, hd)", "(2, 3, 8)"]),
    Bad(append, lazy(lambda: (filled(3) + ([KV], [KV]), {})), ValueError, ["`keys`", "list of 2 tensors", "1 items"]),
    Bad(kv.KVCache, a([2], 8.0, 16), TypeError, ["`head_dim`", "integer", "8.0"]),
    Bad(kv.KVCache, a([2], 8, None), TypeError, ["`block_size`", "integer", "None"]),
    Bad(kv.QuantizedKVCache, a([2], 8, 16, 2), ValueError, ["`bits`", "[4, 8]", "got 2"]),
    Bad(kv.QuantizedKVCache, a([2], 8, 16, "8"), TypeError, ["`bits`", "integer", "'8'"]),
    Bad(kv.QuantizedKVCache, a([2], 8, 16, 8, 0), ValueError, ["`group_size`", "[1, 16]", "got 0"]),
    Bad(kv.QuantizedKVCache, a([2], 8, 16, 8, 17), ValueError, ["`group_size`", "[1, 16]", "got 17"]),
    Bad(crop, lazy(lambda: (filled(5) + (6,), {})), ValueError, ["`n`", "[0, 5]", "got 6"], watch=0),
    Bad(crop, lazy(lambda: (filled(5) + (-1,), {})), ValueError, ["`n`", "[0, 5]", "got -1"], watch=0),
    Bad(crop, lazy(lambda: (filled(9, bits=4) + (2.0,), {})), TypeError, ["`n`", "integer", "2.0"], watch=0),
    Bad(layer, lazy(lambda: ((pruned_lm(), kv.new_cache(pruned_lm()), 0), {})), ValueError, ["`cache`", "at least one position", "empty"]),
    Bad(layer, lazy(lambda: (filled(3) + (2,), {})), ValueError, ["`i`", "[0, 1]", "got 2"]),
    Bad(append, lazy(lambda: (filled(3) + (KV, [KV, KV]), {})), ValueError, ["`keys`", "list of 2 tensors", "Tensor"]),
    Bad(append, lazy(lambda: (filled(3) + ([KV, KV[:, :1]], [KV, KV]), {})), ValueError, ["`keys[1]`", "(1, 2, 3, 8)", "(1, 1, 3, 8)"]),
    Bad(append, lazy(lambda: (filled(3) + ([KV, KV], [KV, KV.long()]), {})), ValueError, ["`values[1]`", "float tensor", "torch.int64"]),
    Bad(append, lazy(lambda: (filled(14) + ([KV, KV], [KV, KV]), {})), ValueError, ["`cache` positions", "block_size=16", "14 cached + 3 new"]),
    Bad(kv.new_cache, a(standin_lm()), TypeError, ["`model`", "compresskit.models.TinyLM", "got TinyLM"]),
    Bad(kv.new_cache, a(nn.Linear(2, 2)), TypeError, ["`model`", "compresskit.models.TinyLM", "Linear"]),
    Bad(kv.new_cache, a("main"), TypeError, ["`model`", "torch.nn.Module", "'main'"]),
    Bad(kv.new_quantized_cache, lm(3), ValueError, ["`bits`", "[4, 8]", "got 3"], watch=0),
    Bad(kv.new_quantized_cache, lm(8, 32), ValueError, ["`group_size`", "[1, 16]", "got 32"], watch=0),
    Bad(forward_cached, cached(3, IDS[:1, :2].float()), TypeError, ["`idx`", "int64", "torch.float32"], watch=0),
    Bad(forward_cached, cached(3, IDS[0, :2]), TypeError, ["`idx`", "(B, T_new)", "(2,)"], watch=0),
    Bad(forward_cached, cached(3, IDS[:1, :0]), TypeError, ["`idx`", "non-empty", "(1, 0)"], watch=0),
    Bad(forward_cached, cached(3, torch.tensor([[1, 32]])), ValueError, ["`idx`", "[0, 31]", "[1, 32]"], watch=0),
    Bad(forward_cached, cached(3, IDS[:, :2]), ValueError, ["`idx`", "batch size B=1", "got B=2"], watch=0),
    Bad(forward_cached, cached(3, IDS[:, :2], B=1, bits=8), ValueError, ["`idx`", "batch size B=1", "got B=2"], watch=0),
    Bad(forward_cached, cached(12, IDS[:1, :5]), ValueError, ["`idx` positions", "block_size=16", "no sliding window", "12 cached + 5 new = 17"], watch=0),
    Bad(forward_cached, cached(12, IDS[:1, :5], bits=4), ValueError, ["`idx` positions", "block_size=16", "12 cached + 5 new = 17"], watch=0),
    Bad(forward_cached, lazy(lambda: ((pruned_lm(), {}, IDS[:1]), {})), TypeError, ["`cache`", "KVCache", "dict"], watch=0),
    Bad(forward_cached, lazy(lambda: ((pruned_lm(), kv.new_cache(other_lm()), IDS[:1]), {})), ValueError,
        ["`cache`", "made for `model`", "heads per layer [2, 2]", "head_dim 8", "got heads [4, 4], head_dim 4"], watch=0),
    Bad(forward_cached, lazy(lambda: ((standin_lm(), kv.KVCache([2, 2], 16, 32), IDS[:1]), {})), TypeError, ["`model`", "TinyLM"]),
    Bad(kv.generate_cached, lm("abcdefghij", 7), ValueError, ["`n`", "block_size=16", "10 + 7 = 17"], watch=0),
    Bad(kv.generate_cached, lm("ab", -1), ValueError, ["`n`", "[0, inf]", "got -1"], watch=0),
    Bad(kv.generate_cached, lm(torch.ones(3), 2), TypeError, ["`prompt`", "integer tensor", "torch.float32"], watch=0),
    Bad(kv.generate_cached, lm(torch.tensor([1, 300]), 2), ValueError, ["`prompt`", "[0, 255]", "300"], watch=0),
    Bad(kv.generate_cached, lm(["ab"], 2), TypeError, ["`prompt`", "Tensor", "list"], watch=0),
    Bad(kv.kv_bytes_per_token, a("main"), TypeError, ["`config_or_model`", "TinyLMConfig or TinyLM", "'main'"]),
    Bad(kv.kv_bytes_per_token, a(CONFIG, 0), ValueError, ["`bytes_per_element`", "[1, inf]", "got 0"]),
    Bad(kv.kivi_bytes_per_token, a(CONFIG, 2), ValueError, ["`bits`", "[4, 8]", "got 2"]),
    Bad(kv.kivi_bytes_per_token, a(CONFIG, 8, 0), ValueError, ["`group_size`", "[1, inf]", "got 0"]),
    Bad(kv.kivi_bytes_per_token, a(nn.Linear(2, 2), 8), TypeError, ["`config_or_model`", "TinyLMConfig or TinyLM", "Linear"]),
    Bad(kv.decode_times, lm([], True), ValueError, ["`lengths`", "at least one length", "empty"], watch=0),
    Bad(kv.decode_times, lm([4, 17], True), ValueError, ["`lengths[1]`", "[1, 16]", "got 17"], watch=0),
    Bad(kv.decode_times, lm([0], True), ValueError, ["`lengths[0]`", "[1, 16]", "got 0"], watch=0),
    Bad(kv.decode_times, lm(8, True), TypeError, ["`lengths`", "list of ints", "int"], watch=0),
    Bad(kv.decode_times, lm([8], "yes"), TypeError, ["`cached`", "bool", "'yes'"], watch=0),
    Bad(kv.decode_times, lm([8], True, 0), ValueError, ["`repeats`", "[1, inf]", "got 0"], watch=0),
    Bad(kv.growth_exponent, a([1, 2], [1.0]), ValueError, ["`lengths` and `times`", "same length", "2 lengths", "1 times"]),
    Bad(kv.growth_exponent, a([4, 4], [1.0, 2.0]), ValueError, ["`lengths` and `times`", "2 distinct", "(1 distinct)"]),
    Bad(kv.growth_exponent, a([1, 2], [1.0, 0.0]), ValueError, ["`lengths` and `times`", "positive", "min time 0.0"]),
    Bad(kv.growth_exponent, a("12", [1.0, 2.0]), TypeError, ["`lengths`", "list of numbers", "str"]),
    Bad(kv.kivi_quantize, a(torch.ones(2, 4), 3, 0), ValueError, ["`bits`", "[4, 8]", "got 3"]),
    Bad(kv.kivi_quantize, a(torch.ones(2, 4, dtype=torch.long), 8, 0), ValueError, ["`x`", "float tensor", "torch.int64"]),
    Bad(kv.kivi_quantize, a(torch.ones(0, 4), 8, 0), ValueError, ["`x`", "non-empty", "(0, 4)"]),
    Bad(kv.kivi_quantize, a(torch.ones(2, 4), 8, 2), ValueError, ["`dim`", "[-2, 1]", "got 2"]),
    Bad(kv.kivi_quantize, a([1.0, 2.0], 8, 0), TypeError, ["`x`", "Tensor", "list"]),
    Bad(kv.kivi_dequantize, a(torch.ones(2, 4), torch.ones(2, 1).half(), torch.ones(2, 1).half()), TypeError, ["`codes`", "integer tensor", "torch.float32"]),
    Bad(kv.kivi_dequantize, a(torch.ones(2, 4, dtype=torch.uint8), torch.ones(3, 1).half(), torch.ones(2, 1).half()), ValueError,
        ["`scale`", "broadcast", "(2, 4)", "(3, 1)"]),
    Bad(kv.kivi_dequantize, a(torch.ones(2, 4, dtype=torch.uint8), torch.ones(2, 1).half(), torch.ones(2, 1, dtype=torch.long)), TypeError,
        ["`zero_point`", "floating-point", "torch.int64"]),
    Bad(kv.kv_quantized_perplexity, lm(IDS[0, :1], 8, 4), ValueError, ["`ids`", "at least 2 ids", "got 1"], watch=0),
    Bad(kv.kv_quantized_perplexity, lm(IDS[0], 0, 4), ValueError, ["`context`", "[1, 16]", "got 0"], watch=0),
    Bad(kv.kv_quantized_perplexity, lm(IDS[0], 17, 4), ValueError, ["`context`", "[1, 16]", "got 17"], watch=0),
    Bad(kv.kv_quantized_perplexity, lm(IDS[0], 8, 2), ValueError, ["`bits`", "[4, 8]", "got 2"], watch=0),
    Bad(kv.kv_quantized_perplexity, lm(IDS[0], 8, 4, 0), ValueError, ["`group_size`", "[1, 16]", "got 0"], watch=0),
    Bad(kv.kv_quantized_perplexity, lm(IDS[0].float(), 8, 4), TypeError, ["`ids`", "integer tensor", "torch.float32"], watch=0),
    Bad(kv.kv_quantized_perplexity, a(standin_lm(), IDS[0], 8, 4), TypeError, ["`model`", "compresskit.models.TinyLM"]),
]
name_rows(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_the_rule_and_the_value(case):
    assert_refused(case)


CACHE_ROWS = [c for c in CASES if c.fn in (forward_cached, crop, append) and isinstance(c.make()[0][1], kv.KVCache)]


def cache_state(cache: kv.KVCache) -> list:
    return [len(cache), cache.nbytes(), *[t.clone() for t in cache._tensors()]]


@pytest.mark.parametrize("case", CACHE_ROWS, ids=[c.id for c in CACHE_ROWS])
def test_a_refused_call_leaves_the_cache_as_it_was(case):
    args, kwargs = case.make()
    cache = args[1]
    before = cache_state(cache)
    with pytest.raises(case.error):
        case.fn(*args, **kwargs)
    after = cache_state(cache)
    assert before[:2] == after[:2] and len(before) == len(after)
    assert all(torch.equal(x, y) for x, y in zip(before[2:], after[2:]))


def test_a_model_error_in_a_later_layer_leaves_the_cache_as_it_was():
    model, cache = filled(5)
    before = cache_state(cache)

    def fail(module, inputs):
        raise RuntimeError("a later layer fails")

    handle = model.blocks[1].mlp.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="later layer"):
        kv.forward_cached(model, IDS[:1, 5:7], cache)
    handle.remove()
    after = cache_state(cache)
    assert before[:2] == after[:2] and all(torch.equal(x, y) for x, y in zip(before[2:], after[2:]))


def test_every_public_name_has_a_bad_input_row():
    assert not missing_rows(CASES, kv.__all__)


def test_a_pruned_model_goes_through_every_function_that_takes_a_model():
    model = pruned_lm()
    dense = models.dense_copy(model)
    before = snapshot(model)
    for bits in (None, 8, 4):
        c_p = kv.new_cache(model) if bits is None else kv.new_quantized_cache(model, bits, 4)
        c_d = kv.new_cache(dense) if bits is None else kv.new_quantized_cache(dense, bits, 4)
        torch.testing.assert_close(kv.forward_cached(model, IDS, c_p), kv.forward_cached(dense, IDS, c_d))
        assert kv.kv_quantized_perplexity(model, IDS[0], 8, bits, 4) == pytest.approx(kv.kv_quantized_perplexity(dense, IDS[0], 8, bits, 4))
    assert torch.equal(kv.generate_cached(model, IDS[0, :3], 10), kv.generate_cached(dense, IDS[0, :3], 10))
    assert torch.equal(kv.generate_cached(model, IDS[0, :3], 10), text.generate(dense, IDS[0, :3], 10))  # text.generate sets every mode to the top one's
    assert kv.kv_bytes_per_token(model) == kv.kv_bytes_per_token(dense) == kv.kv_bytes_per_token(CONFIG)
    assert kv.kivi_bytes_per_token(model, 4, 4) == kv.kivi_bytes_per_token(CONFIG, 4, 4)
    assert len(kv.decode_times(model, [4, 8], cached=True, repeats=1)) == 2
    after = snapshot(model)
    assert all(torch.equal(after[0][k], v) for k, v in before[0].items()) and after[1:] == before[1:]
