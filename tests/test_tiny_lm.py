"""compresskit.models.TinyLM: shapes, causality, tied head, parameter count, attention against torch."""

import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from compresskit import models, text

REPO = Path(__file__).resolve().parents[1]
SMALL = models.TinyLMConfig(n_layer=2, n_head=4, d_model=32, block_size=16)


def small(seed: int = 0) -> models.TinyLM:
    return models.TinyLM(SMALL, seed=seed).eval()


def test_logits_shape_and_names():
    model = small()
    assert model(torch.randint(0, 256, (3, 10))).shape == (3, 10, 256)
    names = {n for n, _ in model.named_modules()}
    assert {"tok_emb", "pos_emb", "blocks.0.ln1", "blocks.0.attn.q", "blocks.0.attn.k", "blocks.0.attn.v",
            "blocks.0.attn.proj", "blocks.0.ln2", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2", "ln_f", "head"} <= names
    assert (model.blocks[1].mlp.fc1.in_features, model.blocks[1].mlp.fc1.out_features) == (32, 128)


def test_changing_a_future_byte_leaves_earlier_logits_alone():
    model = small()
    x = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, 7] = (y[:, 7] + 1) % 256
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=1e-6)
    assert (a[:, 7:] - b[:, 7:]).abs().amax() > 1e-3  # from position 7 on, the change is seen


def test_head_is_the_token_embedding():
    model = small()
    assert model.head.weight is model.tok_emb.weight
    state = model.state_dict()
    assert state["head.weight"].data_ptr() == state["tok_emb.weight"].data_ptr()


@pytest.mark.parametrize("config", [models.TinyLMConfig(), SMALL, models.TINY_LM_CONFIGS["draft"],
                                    models.TinyLMConfig(n_layer=3, n_head=3, d_model=48, block_size=7, mlp_ratio=2)])
def test_parameter_count_formula(config):
    V, T, d, L, h = config.vocab_size, config.block_size, config.d_model, config.n_layer, config.mlp_ratio * config.d_model
    per_block = 4 * (d * d + d) + (d * h + h) + (h * d + d) + 4 * d  # q,k,v,proj; fc1, fc2; two LayerNorms
    by_hand = V * d + T * d + L * per_block + 2 * d  # embeddings (head tied), blocks, ln_f
    model = models.TinyLM(config)
    assert sum(p.numel() for p in model.parameters()) == by_hand == config.num_parameters()


def test_default_sizes():
    assert models.TinyLMConfig().num_parameters() == 858_880
    assert models.TINY_LM_CONFIGS["draft"].num_parameters() == 132_864


def test_attention_equals_torch_scaled_dot_product_and_multihead():
    torch.manual_seed(0)
    attn = models.CausalSelfAttention(32, 4).eval()
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        ours = attn(x)
        q, k, v = (attn.split_heads(layer(x)) for layer in (attn.q, attn.k, attn.v))
        sdpa = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        sdpa = attn.proj(sdpa.transpose(1, 2).reshape(2, 9, 32))
        mha = nn.MultiheadAttention(32, 4, batch_first=True)
        mha.in_proj_weight.copy_(torch.cat([attn.q.weight, attn.k.weight, attn.v.weight]))
        mha.in_proj_bias.copy_(torch.cat([attn.q.bias, attn.k.bias, attn.v.bias]))
        mha.out_proj.weight.copy_(attn.proj.weight)
        mha.out_proj.bias.copy_(attn.proj.bias)
        future = torch.ones(9, 9, dtype=torch.bool).triu(1)
        ref, _ = mha(x, x, x, attn_mask=future, need_weights=False)
    torch.testing.assert_close(ours, sdpa, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_removing_a_head_by_slicing_equals_zeroing_its_output():
    """A head is rows h*hd:(h+1)*hd of q, k, v and those columns of proj; n_head follows q's width."""
    torch.manual_seed(1)
    attn = models.CausalSelfAttention(32, 4).eval()
    x = torch.randn(1, 6, 32)
    keep = torch.tensor([i for i in range(32) if not 8 <= i < 16])  # drop head 1 (hd = 8)
    zeroed = models.copy_model(attn)
    with torch.no_grad():
        zeroed.proj.weight[:, 8:16] = 0
        for name in ("q", "k", "v"):
            old = getattr(attn, name)
            new = nn.Linear(32, 24)
            new.weight.copy_(old.weight[keep])
            new.bias.copy_(old.bias[keep])
            setattr(attn, name, new)
        proj = nn.Linear(24, 32)
        proj.weight.copy_(attn.proj.weight[:, keep])
        proj.bias.copy_(attn.proj.bias)
        attn.proj = proj
        assert attn.n_head == 3
        torch.testing.assert_close(attn(x), zeroed(x), rtol=1e-5, atol=1e-6)


def test_a_pruned_model_runs_and_copies():
    model = small()
    prune.l1_unstructured(model.blocks[0].attn.q, "weight", amount=0.5)
    prune.random_unstructured(model.blocks[1].mlp.fc2, "weight", amount=0.3)
    x = torch.randint(0, 256, (2, 8))
    out = model(x)
    assert out.shape == (2, 8, 256) and torch.isfinite(out).all()
    assert float((model.blocks[0].attn.q.weight == 0).float().mean()) == 0.5
    twin = models.copy_model(model)
    torch.testing.assert_close(twin(x), out)


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    a, b, c = small(1), small(1), small(2)
    assert torch.equal(a.blocks[0].attn.q.weight, b.blocks[0].attn.q.weight)
    assert not torch.equal(a.blocks[0].attn.q.weight, c.blocks[0].attn.q.weight)
    assert torch.equal(torch.rand(1), before)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"d_model": 30, "n_head": 4}, ValueError, "`d_model` must be a multiple of `n_head`=4; got 30"),
    ({"n_layer": 0}, ValueError, "`n_layer` must be an integer in [1, inf]; got 0"),
    ({"block_size": 2.5}, TypeError, "`block_size` must be an integer"),
])
def test_bad_config(kwargs, error, words):
    with pytest.raises(error) as info:
        models.TinyLMConfig(**kwargs)
    assert words in str(info.value)


@pytest.mark.parametrize("idx, error, words", [
    (torch.zeros(2, 17, dtype=torch.int64), ValueError, "1 to block_size=16 positions; got 17"),
    (torch.zeros(2, 4), TypeError, "int64 tensor of shape (B, T); got dtype torch.float32"),
    (torch.zeros(4, dtype=torch.int64), TypeError, "shape (4,)"),
])
def test_bad_forward_input(idx, error, words):
    with pytest.raises(error) as info:
        small()(idx)
    assert words in str(info.value)


def test_bad_model_arguments():
    with pytest.raises(TypeError, match="`config` must be TinyLMConfig"):
        models.TinyLM({"n_layer": 2})
    with pytest.raises(ValueError, match=r"`name` must be one of \['main', 'draft'\]; got 'big'"):
        models.load_tiny_lm("big")


# --- the trained weights (datasets/build_lm.py) ---------------------------------------------

WEIGHTS = [models.TINY_LM_FILES[n] for n in models.TINY_LM_CONFIGS]
needs_weights = pytest.mark.skipif(not all((REPO / "datasets" / f).is_file() for f in WEIGHTS),
                                   reason="the trained weights are not built yet (make datasets)")


@needs_weights
@pytest.mark.parametrize("name", ["main", "draft"])
def test_trained_model_loads_and_reaches_its_recorded_perplexity(name):
    import json

    model = models.load_tiny_lm(name)
    assert not model.training and model.head.weight is model.tok_emb.weight
    recorded = json.loads((REPO / "datasets" / "tiny_lm.json").read_text())[name]
    ppl = text.perplexity(model, text.load_text_split().test, model.config.block_size)
    assert ppl == pytest.approx(recorded["test_perplexity"], rel=1e-3)
    assert ppl < 20  # far below the 256 of a uniform guess


@needs_weights
def test_corrupt_or_missing_weights_name_the_file(tmp_path):
    name = models.TINY_LM_FILES["draft"]
    shutil.copy(REPO / "datasets" / "SHA256SUMS", tmp_path)
    with pytest.raises(FileNotFoundError, match=f"{name} is missing"):
        models.load_tiny_lm("draft", tmp_path)
    blob = bytearray((REPO / "datasets" / name).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=f"{name} is corrupt: SHA-256 must be"):
        models.load_tiny_lm("draft", tmp_path)
