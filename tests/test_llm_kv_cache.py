"""compresskit.llm.kv_cache against independent references: the cached forward against
TinyLM.forward (one call and in chunks), cached generation against compresskit.text.generate token
for token (also on the trained model), bytes per token against the tensors held, KIVI's codes
against a slow loop written here, the streamed quantized cache against the batched perplexity."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.utils import prune

from compresskit import llm, text
from compresskit.llm import kv_cache as kv
from compresskit.models import TinyLMConfig, load_tiny_lm, tiny_lm

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = TinyLMConfig(n_layer=2, n_head=2, d_model=32, block_size=64)


def small(seed: int = 0):
    return tiny_lm(CONFIG, seed=seed).eval()


def ids(B: int = 2, T: int = 40, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(seed))


def test_names_are_exported_by_the_package():
    assert kv.__all__ and all(getattr(llm, name) is getattr(kv, name) for name in kv.__all__)


def test_forward_cached_equals_the_full_forward_in_one_call_and_in_chunks():
    model, x = small(), ids()
    with torch.no_grad():
        full = model(x)  # (B, T, vocab)
    one = kv.forward_cached(model, x, kv.new_cache(model))
    cache = kv.new_cache(model)
    chunks = torch.cat([kv.forward_cached(model, x[:, a:b], cache) for a, b in [(0, 7), (7, 8), (8, 25), (25, 40)]], 1)
    torch.testing.assert_close(one, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunks, full, rtol=1e-5, atol=1e-5)
    assert len(cache) == 40 and cache.keys[0].shape == (2, 2, 40, 16) and cache.values[1].shape == (2, 2, 40, 16)


def test_cache_holds_the_keys_and_values_of_the_models_own_layers():
    model, x = small(), ids(1, 12)
    cache = kv.new_cache(model)
    kv.forward_cached(model, x, cache)
    h = model.tok_emb(x) + model.pos_emb(torch.arange(12))
    attn = model.blocks[0].attn
    k = attn.k(model.blocks[0].ln1(h)).view(1, 12, 2, 16).transpose(1, 2)  # (B, H, T, hd)
    torch.testing.assert_close(cache.keys[0], k.detach())


def test_bytes_per_token_formula_equals_the_tensors_held():
    model, x = small(), ids(3, 20)
    cache = kv.new_cache(model)
    kv.forward_cached(model, x, cache)
    held = sum(t.numel() * t.element_size() for t in cache.keys + cache.values)
    assert cache.nbytes() == held == 3 * 20 * kv.kv_bytes_per_token(model)
    assert kv.kv_bytes_per_token(CONFIG) == 2 * 2 * 2 * 16 * 4 == kv.kv_bytes_per_token(model)
    assert kv.kv_bytes_per_token(TinyLMConfig(), 2) == 4 * 2 * 4 * 32 * 2  # the course's model in fp16: 2 KiB
    cache.crop(5)
    assert cache.nbytes() == 3 * 5 * kv.kv_bytes_per_token(model)  # crop frees what it drops


def test_crop_rolls_back_to_a_prefix():
    model, x = small(), ids(1, 30)
    cache = kv.new_cache(model)
    kv.forward_cached(model, x[:, :25], cache)
    cache.crop(18)
    assert len(cache) == 18
    rest = kv.forward_cached(model, x[:, 18:30], cache)
    with torch.no_grad():
        torch.testing.assert_close(rest, model(x)[:, 18:], rtol=1e-5, atol=1e-5)
    cache.crop(0)
    assert len(cache) == 0 and cache.nbytes() == 0


def test_append_by_hand_then_continue_with_forward_cached():
    model, x = small(), ids(2, 30)
    filled = kv.new_cache(model)
    kv.forward_cached(model, x[:, :20], filled)
    for cache in (kv.new_cache(model), kv.new_quantized_cache(model, 8, 64)):  # G = 64: all 20 stay float
        cache.append(filled.keys, filled.values)
        assert len(cache) == 20
        with torch.no_grad():
            torch.testing.assert_close(kv.forward_cached(model, x[:, 20:], cache), model(x)[:, 20:], rtol=1e-5, atol=1e-5)


def test_generate_cached_equals_generate_on_a_random_and_on_the_trained_model():
    model = small(3)
    torch.testing.assert_close(kv.generate_cached(model, "ab", 40), text.generate(model, "ab", 40), rtol=0, atol=0)
    main = load_tiny_lm("main")
    prompt = "The model "
    assert torch.equal(kv.generate_cached(main, prompt, 48), text.generate(main, prompt, 48))
    assert torch.equal(kv.generate_cached(main, prompt, 0), text.encode(prompt))


def test_generate_cached_and_decode_times_give_every_modules_mode_back():
    model = small().train()
    model.blocks[1].eval()
    modes = [m.training for m in model.modules()]
    kv.generate_cached(model, "x", 3)
    kv.decode_times(model, [2], cached=False, repeats=1)
    kv.kv_quantized_perplexity(model, ids(1, 9)[0], 8, 4, 4)
    assert [m.training for m in model.modules()] == modes


def remove_heads(model, layer: int, keep: list[int]):
    """Slice heads out of one layer by hand: rows of q, k, v and the same columns of proj."""
    attn, hd = model.blocks[layer].attn, model.blocks[layer].attn.head_dim
    rows = torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in keep])
    for name in ("q", "k", "v"):
        old = getattr(attn, name)
        new = torch.nn.Linear(old.in_features, len(rows))
        new.weight.data, new.bias.data = old.weight.data[rows].clone(), old.bias.data[rows].clone()
        setattr(attn, name, new)
    proj = torch.nn.Linear(len(rows), attn.proj.out_features)
    proj.weight.data, proj.bias.data = attn.proj.weight.data[:, rows].clone(), attn.proj.bias.data.clone()
    attn.proj = proj
    return model


def test_a_model_with_heads_removed():
    model, x = remove_heads(small(), 1, [1]), ids(2, 30)
    cache = kv.new_cache(model)
    out = torch.cat([kv.forward_cached(model, x[:, :10], cache), kv.forward_cached(model, x[:, 10:], cache)], 1)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-5)
    assert cache.n_heads == [2, 1] and cache.keys[1].shape == (2, 1, 30, 16)
    assert cache.nbytes() == 2 * 30 * kv.kv_bytes_per_token(model) == 2 * 30 * (2 + 1) * 2 * 16 * 4


def test_a_model_pruned_with_torch_prune():
    model, x = small(), ids(1, 30)
    prune.l1_unstructured(model.blocks[0].attn.k, "weight", 0.5)
    prune.l1_unstructured(model.blocks[1].mlp.fc1, "weight", 0.5)
    cache = kv.new_cache(model)
    out = torch.cat([kv.forward_cached(model, x[:, :20], cache), kv.forward_cached(model, x[:, 20:], cache)], 1)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-5)
        dense = model(x)
        prune.remove(model.blocks[0].attn.k, "weight")
        torch.testing.assert_close(model(x), dense)  # the mask was applied above: removing it changes nothing
    assert torch.equal(kv.generate_cached(model, "pr", 20), text.generate(model, "pr", 20))
    assert prune.is_pruned(model)
    assert kv.kv_quantized_perplexity(model, x[0], 10, None) == pytest.approx(text.perplexity(model, x[0], 10), rel=1e-6)  # float32 logits, a fused attention kernel


def test_a_model_quantized_by_chapter_9():
    model, x = llm.quantize_model(small(), "rtn", 4, 16), ids(1, 30)
    out = torch.cat([kv.forward_cached(model, x[:, :11], cache := kv.new_cache(model)), kv.forward_cached(model, x[:, 11:], cache)], 1)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-5)


def test_decode_times_and_growth_exponent_shapes():
    model = small()
    times = kv.decode_times(model, [4, 16, 32], cached=True, repeats=1)
    assert len(times) == 3 and all(t > 0 for t in times)
    assert len(kv.decode_times(model, [8], cached=False, repeats=1)) == 1
    assert kv.growth_exponent([1, 2, 4, 8], [3.0, 12.0, 48.0, 192.0]) == pytest.approx(2.0)
    assert kv.growth_exponent([10, 20, 40], [5.0, 5.0, 5.0]) == pytest.approx(0.0)


# --- KIVI -----------------------------------------------------------------------------------------

def slow_quantize(x: list[float], bits: int) -> list[float]:
    """Eqs. (4)-(5) on one list of numbers, fp16 scale and zero point, written out."""
    lo, hi = min(x), max(x)
    z = float(torch.tensor(lo).half())
    s = float(torch.tensor(max((hi - lo) / (2 ** bits - 1), 2.0 ** -14)).half())
    return [min(max(round((v - z) / s), 0), 2 ** bits - 1) * s + z for v in x]


@pytest.mark.parametrize("bits", [8, 4])
def test_kivi_keys_per_channel_and_values_per_token_equal_a_slow_loop(bits):
    model, x, G = small(), ids(1, 21), 8
    cache = kv.new_quantized_cache(model, bits, G)
    ref = kv.new_cache(model)
    for t in range(21):  # one token at a time, as in generation
        kv.forward_cached(model, x[:, t:t + 1], cache)
        kv.forward_cached(model, x[:, t:t + 1], ref)
    K, V = cache.layer(0)  # (1, H, 21, hd), dequantized groups then the float residual
    Kf, Vf = ref.layer(0)  # layer 0: its inputs do not depend on the cache (later layers' do)
    for h in range(2):
        for c in range(16):
            for g in range(2):  # keys: per channel c over the G tokens of group g
                want = slow_quantize(Kf[0, h, g * G:(g + 1) * G, c].tolist(), bits)
                torch.testing.assert_close(K[0, h, g * G:(g + 1) * G, c], torch.tensor(want), rtol=0, atol=1e-6)
        for t in range(16):  # values: per token over its channels
            torch.testing.assert_close(V[0, h, t], torch.tensor(slow_quantize(Vf[0, h, t].tolist(), bits)), rtol=0, atol=1e-6)
    torch.testing.assert_close(K[:, :, 16:], Kf[:, :, 16:], rtol=1e-5, atol=1e-6)  # residual: 21 % 8 = 5 tokens in float
    torch.testing.assert_close(V[:, :, 16:], Vf[:, :, 16:], rtol=1e-5, atol=1e-6)
    assert cache.keys[0].shape[2] == 5


def test_kivi_error_is_at_most_half_a_step():
    x = torch.randn(3, 4, 10, 16, generator=torch.Generator().manual_seed(0)) * 3
    for bits in (8, 4):
        codes, scale, zero = kv.kivi_quantize(x, bits, dim=2)
        assert codes.dtype == torch.uint8 and int(codes.max()) <= 2 ** bits - 1 and scale.shape == (3, 4, 1, 16)
        err = (kv.kivi_dequantize(codes, scale, zero) - x).abs()
        assert bool((err <= scale.float() / 2 + 1e-3 * x.abs().amax()).all())


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_cache_bytes_equal_the_formula_and_int4_is_packed(bits):
    model, x, G = small(), ids(2, 45), 16
    cache = kv.new_quantized_cache(model, bits, G)
    for a, b in [(0, 10), (10, 33), (33, 45)]:
        kv.forward_cached(model, x[:, a:b], cache)
        n, residual = b // G * G, b % G
        held = sum(t.numel() * t.element_size() for t in cache._tensors())
        assert cache.nbytes() == held == 2 * (n * kv.kivi_bytes_per_token(model, bits, G) + residual * kv.kv_bytes_per_token(model))
    codes = cache.quantized[0][0]
    assert codes.dtype == torch.uint8 and codes.shape == (2, 2, 32, 16 * bits // 8)
    # Eq. (6) by hand for the course's model, int4, G = 32: 4 layers x 4 heads x (2 x 16 + 4 + 4) bytes
    assert kv.kivi_bytes_per_token(TinyLMConfig(), 4, 32) == 16 * 40 == 640


@pytest.mark.parametrize("bits", [8, 4])
def test_batched_quantized_perplexity_equals_streaming_the_cache(bits):
    model, G = small(5), 8
    seq = ids(1, 61, seed=4)[0]
    context = 30  # windows [0, 30), [30, 60): two full windows
    nll, count = 0.0, 0
    for start in (0, 30):
        cache = kv.new_quantized_cache(model, bits, G)
        logits = torch.cat([kv.forward_cached(model, seq[None, t:t + 1], cache) for t in range(start, start + context)], 1)
        nll += float(torch.nn.functional.cross_entropy(logits[0].double(), seq[start + 1:start + context + 1], reduction="sum"))
        count += context
    streamed = math.exp(nll / count)
    assert kv.kv_quantized_perplexity(model, seq, context, bits, G) == pytest.approx(streamed, rel=1e-6)


def test_batched_perplexity_with_a_float_cache_equals_text_perplexity():
    model, seq = small(), ids(1, 100, seed=2)[0]
    for context in (64, 33):  # 33: a last, shorter window
        assert kv.kv_quantized_perplexity(model, seq, context, None) == pytest.approx(text.perplexity(model, seq, context), rel=1e-6)  # float32 logits, a fused attention kernel


def test_quantized_cache_crop_at_a_group_boundary_equals_a_fresh_stream():
    model, x, G = small(), ids(1, 40), 8
    fresh = kv.new_quantized_cache(model, 4, G)
    want = kv.forward_cached(model, x[:, :16], fresh)
    want = kv.forward_cached(model, x[:, 16:30], fresh)
    cache = kv.new_quantized_cache(model, 4, G)
    kv.forward_cached(model, x[:, :16], cache)
    kv.forward_cached(model, x[:, 16:38], cache)
    cache.crop(16)
    assert len(cache) == 16 and cache.keys[0] is None
    torch.testing.assert_close(kv.forward_cached(model, x[:, 16:30], cache), want, rtol=1e-5, atol=1e-5)
    cache.crop(13)  # into a quantized group: its kept positions come back as float residual
    assert len(cache) == 13 and cache.keys[0].shape[2] == 5 and cache.quantized[0][0].shape[2] == 8


def test_quantized_cache_stays_close_to_the_float_cache_on_the_trained_model():
    main, val = load_tiny_lm("main"), text.load_text_split().val[:2049]
    ppl = {b: kv.kv_quantized_perplexity(main, val, 256, b, 32) for b in (None, 8, 4)}
    assert ppl[None] == pytest.approx(text.perplexity(main, val, 256), rel=1e-6)  # float32 logits, a fused attention kernel
    assert abs(ppl[8] / ppl[None] - 1) < 0.01  # int8: within 1 %
    assert ppl[4] > ppl[8] * 0.999  # int4 is not better than int8 beyond noise
