"""quantize_model and its helpers on a small transformer, each held against the per-layer functions."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from compresskit import llm, models
from llm_standin import tiny_lm, token_batches

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors run fastest on one thread


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def logit_error(model, reference, batches):
    """Mean squared difference of the logits (a random model's loss says little; its function does)."""
    with torch.no_grad():
        return sum(float((model(b) - reference(b)).pow(2).mean()) for b in batches)


def test_calibration_inputs_are_what_each_linear_sees_and_the_model_is_given_back():
    model = tiny_lm().train()
    handles_before = [dict(m._forward_pre_hooks) for m in model.modules()]
    batches = token_batches(2)
    X = llm.calibration_inputs(model, batches)
    assert list(X) == ["blocks.0.qkv", "blocks.0.proj", "blocks.0.fc1", "blocks.0.fc2",
                       "blocks.1.qkv", "blocks.1.proj", "blocks.1.fc1", "blocks.1.fc2", "head"]
    with torch.no_grad():
        model.eval()
        emb = model.tok(batches[1]) + model.pos(torch.arange(32))
        expected = model.blocks[0].ln1(emb).reshape(-1, 32)
        model.train()
    torch.testing.assert_close(X["blocks.0.qkv"][128:], expected)
    assert X["blocks.0.fc2"].shape == (256, 128)
    assert all(m.training for m in model.modules())
    assert [dict(m._forward_pre_hooks) for m in model.modules()] == handles_before


def test_find_folds_pairs_each_layernorm_with_the_linears_it_feeds():
    folds = llm.find_folds(tiny_lm(), token_batches(1)[0])
    assert folds == [("blocks.0.ln1", ["blocks.0.qkv"]), ("blocks.0.ln2", ["blocks.0.fc1"]),
                     ("blocks.1.ln1", ["blocks.1.qkv"]), ("blocks.1.ln2", ["blocks.1.fc1"])]  # ln_f feeds the tied head


def test_rtn_model_equals_rtn_of_each_layer_and_leaves_the_caller_alone():
    model = tiny_lm()
    before = state(model)
    q = llm.quantize_model(model, "rtn", 4, 16)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and name != "head":
            expected = llm.quantize_rtn(m.weight, 4, 16).dequantize()
            assert torch.equal(dict(q.named_modules())[name].weight, expected)
    assert torch.equal(q.tok.weight, model.tok.weight) and q.head.weight is q.tok.weight  # tied, float by default
    assert set(q.quantized_weights) == {f"blocks.{i}.{n}.weight" for i in range(2) for n in ("qkv", "proj", "fc1", "fc2")}


def test_embedding_bits_quantize_the_tied_embedding_once():
    q = llm.quantize_model(tiny_lm(), "rtn", 4, 16, embedding_bits=8)
    assert q.quantized_weights["tok.weight"] is q.quantized_weights["head.weight"]
    assert torch.equal(q.tok.weight, llm.quantize_rtn(tiny_lm().tok.weight, 8).dequantize())
    assert q.head.weight is q.tok.weight


@pytest.mark.parametrize("bits", [4, 3])
def test_gptq_model_is_closer_to_the_float_model_than_rtn(bits):
    model, batches, held_out = tiny_lm(), token_batches(4), token_batches(2, seed=9)
    rtn = llm.quantize_model(model, "rtn", bits, 16)
    gptq = llm.quantize_model(model, "gptq", bits, 16, batches)
    for data in (batches, held_out):
        assert logit_error(gptq, model, data) < logit_error(rtn, model, data)


def test_gptq_models_first_layer_is_gptq_on_its_float_inputs():
    model, batches = tiny_lm(), token_batches(3)
    q = llm.quantize_model(model, "gptq", 4, 16, batches)
    X = llm.calibration_inputs(model, batches, ["blocks.0.qkv"])["blocks.0.qkv"]
    expected = llm.gptq(model.blocks[0].qkv.weight, llm.gptq_hessian(X), 4, 16).dequantize()
    assert torch.equal(q.blocks[0].qkv.weight, expected)


def test_awq_model_folds_into_layernorms_and_its_first_layer_is_not_worse_than_rtn():
    model, batches = tiny_lm(), token_batches(3)
    q = llm.quantize_model(model, "awq", 4, 16, batches, n_grid=5)
    assert not torch.equal(q.blocks[0].ln1.weight, model.blocks[0].ln1.weight)  # folded
    assert torch.equal(q.blocks[0].proj.weight, llm.quantize_rtn(model.blocks[0].proj.weight, 4, 16).dequantize())
    # blocks.0.qkv reads the embeddings through ln1 only, so its inputs differ from the float model's by the fold alone
    X = llm.calibration_inputs(model, batches, ["blocks.0.qkv"])["blocks.0.qkv"]
    Xq = llm.calibration_inputs(q, batches, ["blocks.0.qkv"])["blocks.0.qkv"]
    with torch.no_grad():
        W = model.blocks[0].qkv.weight
        awq = float((Xq @ q.blocks[0].qkv.weight.T - X @ W.T).pow(2).mean())
        rtn = float((X @ (llm.quantize_rtn(W, 4, 16).dequantize() - W).T).pow(2).mean())
    assert awq <= rtn * (1 + 1e-5)


def test_the_file_round_trips_the_quantized_model(tmp_path):
    model, batches = tiny_lm(), token_batches(2)
    q = llm.quantize_model(model, "gptq", 4, 16, batches, embedding_bits=8)
    written = llm.save_quantized(tmp_path / "m.ckq", llm.quantized_state_dict(q))
    back = llm.load_quantized_model(tmp_path / "m.ckq", model)
    for k, v in q.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    assert back.head.weight is back.tok.weight
    floats = sum(v.numel() * 4 for k, v in model.state_dict().items() if k not in q.quantized_weights)
    counted = floats + sum(llm.quantized_bytes(*w.codes.shape, w.bits, w.group_size)
                           for k, w in q.quantized_weights.items() if k != "head.weight")
    assert 0 < written - counted < 4096  # the header


def test_a_pruned_model_is_quantized_with_its_zeros_and_left_pruned():
    model = tiny_lm()
    prune.l1_unstructured(model.blocks[0].fc1, "weight", 0.5)
    before = state(model)
    q = llm.quantize_model(model, "rtn", 4, 16)
    assert prune.is_pruned(model) and not prune.is_pruned(q)
    assert int((q.blocks[0].fc1.weight == 0).sum()) >= 128 * 32 // 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    llm.quantize_model(model, "awq", 4, 16, token_batches(1), n_grid=3)
    llm.quantize_model(model, "gptq", 4, 16, token_batches(1))
    assert llm.find_folds(model, token_batches(1)[0])[1] == ("blocks.0.ln2", ["blocks.0.fc1"])


def test_inputs_of_named_layers_stop_early_and_equal_the_full_run():
    model, batches = tiny_lm(), token_batches(3)
    full = llm.calibration_inputs(model, batches)
    some = llm.calibration_inputs(model, batches, ["blocks.1.fc1", "blocks.0.proj"])
    assert list(some) == ["blocks.0.proj", "blocks.1.fc1"]
    for name, X in some.items():
        assert torch.equal(X, full[name])


course_lm = pytest.mark.skipif(not hasattr(models, "TinyLMConfig"), reason="the course's transformer is not in compresskit.models yet")


@course_lm
def test_the_course_transformer_folds_q_k_v_together_and_gptq_gives_them_one_hessian():
    model = models.tiny_lm(models.TinyLMConfig(n_layer=2, n_head=2, d_model=32, block_size=32))
    batches = [torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(i)) for i in range(2)]
    folds = llm.find_folds(model, batches[0])
    assert folds[0] == ("blocks.0.ln1", ["blocks.0.attn.q", "blocks.0.attn.k", "blocks.0.attn.v"])
    assert [p for p, _ in folds] == ["blocks.0.ln1", "blocks.0.ln2", "blocks.1.ln1", "blocks.1.ln2"]
    q = llm.quantize_model(model, "gptq", 4, 16, batches, embedding_bits=8)
    X = llm.calibration_inputs(model, batches, ["blocks.0.attn.k"])["blocks.0.attn.k"]
    expected = llm.gptq(model.blocks[0].attn.k.weight, llm.gptq_hessian(X), 4, 16).dequantize()
    assert torch.equal(q.blocks[0].attn.k.weight, expected)
    assert q.quantized_weights["tok_emb.weight"] is q.quantized_weights["head.weight"]
    assert len(q.quantized_weights) == 2 * 6 + 3  # six Linears per block, the tied table under two names, pos_emb


def with_outlier_channels(model, factor=30.0, channels=(3, 11, 20)):
    """The same function with a few LayerNorm output channels raised ``factor`` times (the Linears after lowered)."""
    model = copy.deepcopy(model)
    idx = torch.tensor(channels)
    with torch.no_grad():
        for block in model.blocks:
            for ln, fc in ((block.ln1, block.qkv), (block.ln2, block.fc1)):
                ln.weight[idx] *= factor
                ln.bias[idx] *= factor
                fc.weight[:, idx] /= factor
    return model


def test_smoothquant_model_folds_the_papers_scales_and_helps_on_outlier_channels():
    base, batches = tiny_lm(), token_batches(2)
    model = with_outlier_channels(base)
    x = token_batches(1, seed=5)[0]
    with torch.no_grad():
        torch.testing.assert_close(model(x), base(x), rtol=1e-4, atol=1e-4)
    before = state(model)
    smooth = llm.smoothquant_model(model, batches, 0.5)
    plain = llm.smoothquant_model(model, batches, None)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert isinstance(smooth.blocks[0].fc1, llm.W8A8Linear) and type(smooth.head) is nn.Linear
    assert smooth.head.weight is smooth.tok.weight
    X = llm.calibration_inputs(model, batches, ["blocks.0.qkv"])["blocks.0.qkv"]
    s = X.abs().amax(0).sqrt() / model.blocks[0].qkv.weight.abs().amax(0).sqrt()  # Eq. (4), alpha = 0.5
    torch.testing.assert_close(smooth.blocks[0].ln1.weight, model.blocks[0].ln1.weight / s)
    assert torch.equal(plain.blocks[0].ln1.weight, model.blocks[0].ln1.weight)
    assert logit_error(smooth, model, [x]) < logit_error(plain, model, [x]) / 2


class LayerNormUsedTwice(nn.Module):
    """ln's output goes to fc and is also added to fc's output: folding into ln would change the function."""

    def __init__(self) -> None:
        super().__init__()
        self.ln, self.fc, self.ln2, self.out = nn.LayerNorm(16), nn.Linear(16, 16), nn.LayerNorm(16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln(x)
        return self.out(self.ln2(self.fc(h) + h))


def test_find_folds_leaves_out_a_layer_whose_output_goes_elsewhere_too():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LayerNormUsedTwice()
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    assert llm.find_folds(model, x) == [("ln2", ["out"])]
    q = llm.quantize_model(model, "awq", 4, 8, [x], n_grid=3)
    assert torch.equal(q.ln.weight, model.ln.weight) and not torch.equal(q.ln2.weight, model.ln2.weight)
