"""LoRA held against its formula computed in NumPy (forward, merged weight), its zero start, the
parameters that train (counted from the tensors and their gradients), Adam's state (summed from a
real AdamW step), QLoRA's int4 base against chapter 9's quantize_rtn and quantize_model, and a
pruned model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from compresskit import llm, models, text
from llm_standin import tiny_lm

pytestmark = pytest.mark.usefixtures("one_thread")

TARGETS = ("qkv", "fc2")  # the stand-in's names; 32 x 96 and 128 x 32 per block


def linear(n_in=24, n_out=40, bias=True, seed=0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(n_in, n_out, bias=bias)


def randomize_B(layer: llm.LoRALinear, seed: int = 1) -> None:
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=torch.Generator().manual_seed(seed)) * 0.1)


def test_lora_delta_is_alpha_over_r_times_B_A():
    g = torch.Generator().manual_seed(0)
    A, B = torch.randn(4, 24, generator=g, dtype=torch.float64), torch.randn(40, 4, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(llm.lora_delta(A, B, 8.0).numpy(), 2.0 * (B.numpy() @ A.numpy()), rtol=1e-12)


def test_the_start_is_exactly_the_base_and_A_is_kaiming_uniform():
    base = linear(n_in=256, n_out=64)
    layer = llm.LoRALinear(base, 8, 16.0, seed=3)
    assert torch.equal(layer.lora_B, torch.zeros(64, 8)) and layer.scaling == 2.0
    x = torch.randn(5, 256)
    assert torch.equal(layer(x), base(x) + 0.0)
    # torch's own bound for nn.init.kaiming_uniform_(a=sqrt(5)), as nn.Linear, loralib and peft use
    bound = nn.init.calculate_gain("leaky_relu", math.sqrt(5)) * math.sqrt(3.0 / 256)
    A = layer.lora_A.detach()
    assert float(A.abs().max()) <= bound and float(A.abs().max()) > 0.95 * bound
    assert abs(float(A.mean())) < 0.1 * bound and float(A.std()) == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert torch.equal(A, llm.LoRALinear(linear(n_in=256, n_out=64), 8, 16.0, seed=3).lora_A.detach())
    assert not torch.equal(A, llm.LoRALinear(linear(n_in=256, n_out=64), 8, 16.0, seed=4).lora_A.detach())


@pytest.mark.parametrize("bias", [True, False])
def test_forward_and_merge_equal_the_formula_in_numpy(bias):
    base = linear(bias=bias)
    layer = llm.LoRALinear(base, 4, 6.0)
    randomize_B(layer)
    W0, A, B = (t.detach().double().numpy() for t in (base.weight, layer.lora_A, layer.lora_B))
    b = base.bias.detach().double().numpy() if bias else 0.0
    x = torch.randn(3, 5, 24)
    expected = x.double().numpy() @ W0.T + b + (6.0 / 4) * (x.double().numpy() @ A.T @ B.T)
    np.testing.assert_allclose(layer(x).detach().double().numpy(), expected, rtol=1e-5, atol=1e-6)
    merged = layer.merge()
    assert type(merged) is nn.Linear and (merged.bias is None) == (not bias)
    np.testing.assert_allclose(merged.weight.detach().double().numpy(), W0 + (6.0 / 4) * B @ A, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(merged(x), layer(x), rtol=1e-5, atol=1e-5)


def test_only_A_and_B_get_gradients():
    base = linear()
    layer = llm.LoRALinear(base, 4, 4.0)
    randomize_B(layer)
    layer(torch.randn(6, 24)).square().sum().backward()
    assert base.weight.grad is None and base.bias.grad is None and not base.weight.requires_grad
    assert layer.lora_A.grad is not None and layer.lora_B.grad is not None
    assert float(layer.lora_A.grad.abs().sum()) > 0


def test_add_lora_trains_exactly_the_counted_parameters_and_leaves_the_caller_model():
    model = tiny_lm()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lm = llm.add_lora(model, 4, 8.0, TARGETS)
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    trainable = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert trainable == {f"blocks.{i}.{t}.lora_{m}" for i in range(2) for t in TARGETS for m in "AB"}
    by_hand = 2 * (4 * (32 + 96) + 4 * (128 + 32))  # two blocks, r (in + out) per adapted layer
    assert llm.trainable_parameters(lm) == llm.lora_parameter_count(model, 4, TARGETS) == by_hand
    assert sum(p.numel() for p in lm.parameters() if p.requires_grad) == by_hand
    idx = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        assert torch.equal(lm(idx), model(idx))  # B = 0: the start is the model
    frozen = sum(p.numel() * p.element_size() for p in model.parameters())  # the tied head counted once
    assert llm.frozen_bytes(lm) == frozen


def test_adam_state_bytes_equal_a_real_adamw_steps_tensors():
    lm = llm.add_lora(tiny_lm(), 4, 8.0, TARGETS)
    params = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    F.cross_entropy(lm(torch.randint(0, 64, (2, 16))).reshape(-1, 64), torch.randint(0, 64, (32,))).backward()
    opt.step()
    moments = sum(v.numel() * v.element_size() for s in opt.state.values() for k, v in s.items() if k != "step")
    steps = sum(s["step"].numel() * s["step"].element_size() for s in opt.state.values())
    n = llm.trainable_parameters(lm)
    assert moments == llm.adam_state_bytes(n) == 8 * n
    assert moments + steps == llm.adam_state_bytes(n, len(params)) == llm.optimizer_state_bytes(opt)


def test_the_issue_targets_hold_for_the_course_model_by_the_formulas():
    """At most 2% of the parameters trainable, Adam's state at most 5% of full fine-tuning's (issue 22)."""
    model = models.tiny_lm()  # the architecture of load_tiny_lm("main")
    total = sum(p.numel() for p in model.parameters())
    for rank, targets in [(8, ("q", "v")), (3, ("fc1", "fc2")), (2, ("q", "v", "fc1", "fc2"))]:
        n = llm.lora_parameter_count(model, rank, targets)
        assert n == llm.trainable_parameters(llm.add_lora(model, rank, 2.0 * rank, targets))
        assert n / total <= 0.02, (rank, targets, n / total)
        assert llm.adam_state_bytes(n) / llm.adam_state_bytes(total) <= 0.05


def test_finetune_trains_only_the_adapters_and_its_first_loss_is_the_batch_cross_entropy():
    model = tiny_lm()
    ids = torch.arange(600) % 7 + 10  # a periodic text the model can learn
    lm = llm.add_lora(model, 4, 8.0, TARGETS).eval()
    lm.blocks[1].ln2.train()  # a mixed mode comes back as it was
    start = {k: v.clone() for k, v in lm.state_dict().items()}
    x, y = next(text.batches(ids, 4, 16, seed=5))
    with torch.no_grad():
        first = float(F.cross_entropy(lm(x).reshape(-1, 64), y.reshape(-1)))
    losses = llm.finetune(lm, ids, 30, batch_size=4, context=16, lr=1e-2, seed=5)
    assert len(losses) == 30 and losses[0] == pytest.approx(first, rel=1e-6)
    assert sum(losses[-5:]) / 5 < 0.8 * losses[0]
    changed = {k for k, v in lm.state_dict().items() if not torch.equal(v, start[k])}
    assert changed == {f"blocks.{i}.{t}.lora_{m}" for i in range(2) for t in TARGETS for m in "AB"}
    assert [n for n, m in lm.named_modules() if m.training] == ["blocks.1.ln2"]
    again = llm.add_lora(model, 4, 8.0, TARGETS)
    assert llm.finetune(again, ids, 30, batch_size=4, context=16, lr=1e-2, seed=5) == losses  # seeded


def test_finetune_of_a_whole_model_with_a_given_optimizer():
    model = tiny_lm()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    llm.finetune(model, torch.arange(300) % 5, 3, batch_size=2, context=8, optimizer=opt)
    assert all(not torch.equal(v, start[k]) for k, v in model.state_dict().items() if not k.startswith("pos"))
    total = sum(p.numel() for p in model.parameters())
    assert llm.optimizer_state_bytes(opt) == llm.adam_state_bytes(total, len(list(model.parameters())))


@pytest.mark.parametrize("bits,group_size", [(4, 16), (4, 32), (3, 32), (8, 16)])
def test_quantized_linear_is_chapter_9s_rtn_with_its_real_bytes(bits, group_size):
    fc = linear(n_in=64, n_out=24)
    q = llm.QuantizedLinear(fc, bits, group_size)
    reference = llm.quantize_rtn(fc.weight.detach(), bits, group_size).dequantize()
    assert torch.equal(q.dequantize(), reference)
    x = torch.randn(3, 64)
    torch.testing.assert_close(q(x), x @ reference.T + fc.bias.detach(), rtol=0, atol=0)
    assert not list(q.parameters())
    buffers = sum(b.numel() * b.element_size() for b in q.buffers())
    stored_bits = 4 if bits <= 4 else 8  # 3-bit codes sit in 4-bit nibbles, as chapter 9's file holds them
    assert buffers == llm.quantized_bytes(24, 64, stored_bits, group_size) + 24 * 4  # + the float32 bias
    assert q.codes.dtype == torch.uint8 and q.codes.shape == (24, 64 * stored_bits // 8)


def test_add_qlora_starts_at_chapter_9s_rtn_model_and_counts_its_bytes():
    model = tiny_lm()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ql = llm.add_qlora(model, 4, 8.0, bits=4, group_size=16, targets=TARGETS)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    rtn = llm.quantize_model(model, "rtn", 4, 16)  # chapter 9's path: every untied Linear, RTN int4 g16
    idx = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(ql(idx), rtn(idx), rtol=1e-5, atol=1e-5)
    assert llm.trainable_parameters(ql) == llm.lora_parameter_count(model, 4, TARGETS)
    linears = [m for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "head"]
    quantized = sum(llm.quantized_bytes(m.out_features, m.in_features, 4, 16) + 4 * m.out_features for m in linears)
    rest = sum(p.numel() * 4 for n, p in model.named_parameters() if not any(n.startswith(f"blocks.{i}.{k}") for i in range(2) for k in ("qkv", "proj", "fc1", "fc2")))
    assert llm.frozen_bytes(ql) == quantized + rest
    assert isinstance(ql.blocks[0].proj, llm.QuantizedLinear) and isinstance(ql.blocks[0].qkv.base, llm.QuantizedLinear)
    assert ql.head.weight is ql.tok.weight and ql.head.weight.dtype == torch.float32


def test_qlora_trains_the_float_adapters_over_the_int4_base_and_merges():
    ql = llm.add_qlora(tiny_lm(), 4, 8.0, group_size=16, targets=TARGETS)
    codes = ql.blocks[0].qkv.base.codes.clone()
    llm.finetune(ql, torch.arange(400) % 7, 5, batch_size=2, context=16, lr=1e-2)
    assert torch.equal(ql.blocks[0].qkv.base.codes, codes)
    layer = ql.blocks[0].qkv
    W = layer.base.dequantize().double().numpy() + 2.0 * layer.lora_B.detach().double().numpy() @ layer.lora_A.detach().double().numpy()
    np.testing.assert_allclose(layer.merge().weight.detach().double().numpy(), W, rtol=1e-6, atol=1e-7)
    merged = llm.merge_lora(ql)
    idx = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(merged(idx), ql(idx), rtol=1e-4, atol=1e-4)


def test_merge_lora_gives_a_plain_model_with_the_same_function():
    model = tiny_lm()
    lm = llm.add_lora(model, 4, 8.0, TARGETS)
    llm.finetune(lm, torch.arange(400) % 7, 5, batch_size=2, context=16, lr=1e-2)
    merged = llm.merge_lora(lm)
    assert not any(isinstance(m, llm.LoRALinear) for m in merged.modules())
    assert sorted(merged.state_dict()) == sorted(model.state_dict()) and all(p.requires_grad for p in merged.parameters())
    idx = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(merged(idx), lm(idx), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(merged(idx), model(idx), atol=1e-3)  # it did learn something


def pruned_and_twin() -> tuple[nn.Module, nn.Module]:
    model, dense = tiny_lm().train(), tiny_lm()
    prune.l1_unstructured(model.blocks[0].fc2, "weight", 0.5)
    with torch.no_grad():
        dense.blocks[0].fc2.weight.copy_(model.blocks[0].fc2.weight)
    return model, dense


def test_a_pruned_model_goes_through_every_function_that_takes_a_model():
    model, dense = pruned_and_twin()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    idx = torch.randint(0, 64, (2, 16))
    for make in (lambda m: llm.add_lora(m, 4, 8.0, TARGETS), lambda m: llm.add_qlora(m, 4, 8.0, group_size=16, targets=TARGETS)):
        lp, ld = make(model), make(dense)
        with torch.no_grad():
            assert torch.equal(lp(idx), ld(idx))
        assert llm.trainable_parameters(lp) == llm.trainable_parameters(ld) and llm.frozen_bytes(lp) == llm.frozen_bytes(ld)
        llm.finetune(lp, torch.arange(300) % 7, 3, batch_size=2, context=8)
        llm.finetune(ld, torch.arange(300) % 7, 3, batch_size=2, context=8)
        merged_p, merged_d = llm.merge_lora(lp), llm.merge_lora(ld)
        for k, v in merged_d.state_dict().items():
            torch.testing.assert_close(merged_p.state_dict()[k], v, rtol=1e-6, atol=1e-7)
    assert llm.lora_parameter_count(model, 4, TARGETS) == llm.lora_parameter_count(dense, 4, TARGETS)
    assert prune.is_pruned(model) and model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    # trained in place, a pruned model keeps its zeros (its mask still applies) and its hooks
    mask = model.blocks[0].fc2.weight_mask.clone()
    llm.finetune(model, torch.arange(300) % 7, 3, batch_size=2, context=8)
    assert prune.is_pruned(model) and bool((model.blocks[0].fc2.weight[mask == 0] == 0).all())
    assert llm.trainable_parameters(model) == sum(p.numel() for p in model.parameters())


def test_lora_and_quantized_layers_over_a_pruned_linear_equal_them_over_its_dense_twin():
    pruned, dense = linear(seed=2), linear(seed=2)
    prune.l1_unstructured(pruned, "weight", 0.5)
    with torch.no_grad():
        pruned.weight_orig.mul_(1.5)  # the cached masked weight is now stale: the forward's weight must be used
        dense.weight.copy_(pruned.weight_orig * pruned.weight_mask)
    lp, ld = llm.LoRALinear(pruned, 4, 8.0, seed=1), llm.LoRALinear(dense, 4, 8.0, seed=1)
    randomize_B(lp), randomize_B(ld)
    x = torch.randn(3, 24)
    torch.testing.assert_close(lp(x), ld(x), rtol=0, atol=0)
    torch.testing.assert_close(lp.merge().weight, ld.merge().weight, rtol=0, atol=0)
    assert not pruned.weight_orig.requires_grad and prune.is_pruned(pruned)
    torch.testing.assert_close(llm.QuantizedLinear(pruned, 4, 8)(x), llm.QuantizedLinear(dense, 4, 8)(x), rtol=0, atol=0)
