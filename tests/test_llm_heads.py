"""compresskit.llm.heads held against finite differences of gated losses, heads gated to zero by a
hook written here, torch's FlopCounterMode and a brute-force sort."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn.utils import prune
from torch.utils.flop_counter import FlopCounterMode

from compresskit import measure, models
from compresskit.llm import heads


def small_lm(seed: int = 0, n_head: int = 4) -> models.TinyLM:
    return models.tiny_lm(models.TinyLMConfig(n_layer=2, n_head=n_head, d_model=16, block_size=16, vocab_size=32), seed=seed)


def ids(seed: int = 1, n: int = 2, B: int = 3, T: int = 12) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 32, (B, T), generator=g) for _ in range(n)]


def gated(model: models.TinyLM, gates: dict[tuple[int, int], float]):
    """Forward pre-hooks on proj scaling head h's channels of layer l by gates[l, h]; returns the handles."""
    handles = []
    for layer, block in enumerate(model.blocks):
        hd = block.attn.head_dim

        def hook(module, args, layer=layer, hd=hd):
            y = args[0].clone()
            for (l, h), g in gates.items():
                if l == layer:
                    y[..., h * hd:(h + 1) * hd] *= g
            return (y,)
        handles.append(block.attn.proj.register_forward_pre_hook(hook))
    return handles


def window_loss(model, x: torch.Tensor, gates: dict[tuple[int, int], float]) -> float:
    handles = gated(model, gates)
    try:
        with torch.no_grad():
            logits = model(x[None, :-1])[0]
        return float(torch.nn.functional.cross_entropy(logits, x[1:]))
    finally:
        for h in handles:
            h.remove()


def finite_difference_importance(model, batches, eps: float = 1e-5) -> torch.Tensor:
    """E_x |(L_x(xi_h = 1 + eps) - L_x(xi_h = 1 - eps)) / 2 eps|, one window x at a time."""
    L, H = len(model.blocks), model.blocks[0].attn.n_head
    total, count = torch.zeros(L, H, dtype=torch.float64), 0
    for x in (w for b in batches for w in b):
        for l, h in itertools.product(range(L), range(H)):
            plus, minus = window_loss(model, x, {(l, h): 1 + eps}), window_loss(model, x, {(l, h): 1 - eps})
            total[l, h] += abs(plus - minus) / (2 * eps)
        count += 1
    return total / count


def test_importance_is_the_finite_difference_of_each_windows_loss():
    model = small_lm().double()
    batches = ids()
    expected = finite_difference_importance(model, batches)
    raw = heads.head_importance(model, batches, normalize=False)
    assert torch.allclose(raw.double(), expected, rtol=1e-4, atol=1e-8)
    normalised = heads.head_importance(model, batches)
    assert torch.allclose(normalised.double(), expected / expected.norm(dim=1, keepdim=True), rtol=1e-4)
    assert torch.allclose(normalised.norm(dim=1), torch.ones(2))


def test_importance_takes_the_absolute_value_per_window_not_per_batch():
    """|mean of gradients| would differ from the mean of |gradients| (Eq. (2) is the latter)."""
    model, batches = small_lm().double(), ids(B=6)
    per_window = heads.head_importance(model, batches, normalize=False)
    one_at_a_time = heads.head_importance(model, [w[None] for b in batches for w in b], normalize=False)
    assert torch.allclose(per_window, one_at_a_time, rtol=1e-5)


def test_importance_leaves_the_model_as_it_was():
    model = small_lm()
    model.train()
    model.blocks[1].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    heads.head_importance(model, ids())
    assert all(p.grad is None for p in model.parameters())
    assert model.training and not model.blocks[1].training and model.blocks[0].training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("removed", [{0: [1]}, {0: [0, 3], 1: [2]}, {1: [0, 1, 2, 3]}])
def test_removed_heads_compute_what_gating_them_to_zero_computes(removed):
    model, x = small_lm(), ids()[0]
    smaller = heads.remove_heads(model, removed)
    handles = gated(model, {(l, h): 0.0 for l, hs in removed.items() for h in hs})
    with torch.no_grad():
        expected = model(x)
    for h in handles:
        h.remove()
    with torch.no_grad():
        got = smaller(x)
        assert not torch.allclose(got, model(x), atol=1e-4)  # removing them changes the model
    assert torch.allclose(got, expected, atol=1e-5)
    for layer, block in enumerate(smaller.blocks):
        assert block.attn.n_head == 4 - len(removed.get(layer, []))
    d, hd, n = 16, 4, sum(len(hs) for hs in removed.values())
    assert measure.count_parameters(smaller) == measure.count_parameters(model) - n * (3 * (d * hd + hd) + d * hd)
    assert len(model.blocks[0].attn.q.weight) == 16  # the caller's model keeps its heads


@pytest.mark.parametrize("removed, context", [({}, 12), ({0: [1], 1: [0, 2]}, 12), ({1: [0, 1, 2, 3]}, 5)])
def test_macs_per_token_is_torch_flop_counter_over_two(removed, context):
    model = heads.remove_heads(small_lm(), removed)
    x = torch.randint(0, 32, (2, context))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert heads.macs_per_token(model, context) * 2 * x.numel() == counter.get_total_flops()


def test_least_important_heads_is_a_brute_force_sort():
    g = torch.Generator().manual_seed(0)
    importance = torch.rand(3, 4, generator=g)
    for k in range(13):
        found = heads.least_important_heads(importance, k)
        pairs = sorted(((importance[l, h].item(), l, h) for l in range(3) for h in range(4)))[:k]
        assert sorted((l, h) for l, hs in found.items() for h in hs) == sorted((l, h) for _, l, h in pairs)


def test_a_pruned_model_is_scored_and_cut_as_its_dense_copy():
    model, batches = small_lm(), ids()
    prune.l1_unstructured(model.blocks[0].attn.q, "weight", amount=0.5)
    prune.random_unstructured(model.blocks[1].attn.proj, "weight", amount=0.3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dense = models.dense_copy(model)
    assert torch.allclose(heads.head_importance(model, batches), heads.head_importance(dense, batches))
    smaller, reference = heads.remove_heads(model, {1: [2]}), heads.remove_heads(dense, {1: [2]})
    assert not any(prune.is_pruned(m) for m in smaller.modules())
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in smaller.state_dict().items())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert prune.is_pruned(model.blocks[0].attn.q)
