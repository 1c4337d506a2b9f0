"""compresskit.llm.wanda held against slow, obvious loops written here, torch.nn.utils.prune and
compresskit's own N:M and magnitude masks (which compute the same thing on |W|)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

from compresskit import llm, models
from compresskit.llm import wanda
from compresskit.pruning.masks import magnitude_mask
from compresskit.sparsity import nm_mask


def small_lm(seed: int = 0) -> models.TinyLM:
    return models.tiny_lm(models.TinyLMConfig(n_layer=2, n_head=2, d_model=16, block_size=16, vocab_size=32), seed=seed)


def ids(seed: int = 1, n: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 32, (2, 16), generator=g) for _ in range(n)]


def slow_row_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Each row: sort its entries by score, drop the int(in * sparsity) lowest."""
    mask = torch.ones_like(scores)
    k = int(scores.shape[1] * sparsity)
    for i, row in enumerate(scores.tolist()):
        for j in sorted(range(len(row)), key=lambda j: row[j])[:k]:
            mask[i, j] = 0
    return mask


def slow_nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    mask = torch.zeros_like(scores)
    for i, row in enumerate(scores.tolist()):
        for start in range(0, len(row), m):
            for j in sorted(range(start, start + m), key=lambda j: -row[j])[:n]:
                mask[i, j] = 1
    return mask


def test_input_norms_and_scores_match_numpy_and_a_loop():
    g = torch.Generator().manual_seed(0)
    X, W = torch.randn(50, 12, generator=g), torch.randn(7, 12, generator=g)
    norms = wanda.input_norms(X)
    assert np.allclose(norms.numpy(), np.linalg.norm(X.numpy(), axis=0), rtol=1e-6)
    S = wanda.wanda_scores(W, norms)
    for i in range(7):
        for j in range(12):
            assert S[i, j].item() == pytest.approx(abs(W[i, j].item()) * norms[j].item(), rel=1e-6)


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.5, 0.7])
def test_wanda_mask_is_the_per_row_loop(sparsity):
    g = torch.Generator().manual_seed(1)
    W, norms = torch.randn(9, 16, generator=g), torch.rand(16, generator=g) * 5
    mask = wanda.wanda_mask(W, norms, sparsity)
    assert torch.equal(mask, slow_row_mask(W.abs() * norms, sparsity))
    assert (mask.sum(dim=1) == 16 - int(16 * sparsity)).all()  # every row loses the same share


def test_wanda_mask_differs_from_magnitude_where_the_norms_differ():
    """One large input norm keeps the small weights of that column, which per-row magnitude would drop."""
    W = torch.tensor([[0.1, 1.0, 2.0, 3.0]])
    norms = torch.tensor([100.0, 1.0, 1.0, 1.0])
    assert wanda.wanda_mask(W, norms, 0.5).tolist() == [[1.0, 0.0, 0.0, 1.0]]  # scores 10, 1, 2, 3
    assert wanda.wanda_mask(W, torch.ones(4), 0.5).tolist() == [[0.0, 0.0, 1.0, 1.0]]


@pytest.mark.parametrize("n_m", [(2, 4), (1, 4), (3, 8)])
def test_nm_mask_is_the_group_loop_and_compresskit_nm_on_magnitudes(n_m):
    g = torch.Generator().manual_seed(2)
    W, norms = torch.randn(6, 16, generator=g), torch.rand(16, generator=g) + 0.1
    mask = wanda.wanda_mask(W, norms, n_m=n_m)
    assert torch.equal(mask, slow_nm_mask(W.abs() * norms, *n_m))
    assert torch.equal(wanda.sparsity_mask(W.abs(), n_m=n_m), nm_mask(W, *n_m))  # magnitude N:M


def test_layer_comparison_is_torch_l1_unstructured():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(8, 12, generator=g)
    mask = wanda.sparsity_mask(W.abs(), 0.5, comparison="layer")
    torch_mask = prune.L1Unstructured(amount=0.5).compute_mask(W, torch.ones_like(W))
    assert torch.equal(mask, torch_mask) and torch.equal(mask, magnitude_mask(W, 0.5))
    assert not torch.equal(mask, wanda.sparsity_mask(W.abs(), 0.5, comparison="row"))  # rows lose unequal shares


def reference_prune(model: models.TinyLM, method: str, calibration, sparsity=None, n_m=None, comparison="row"):
    """Block by block with plain forward hooks and weights zeroed in place (no prune hooks)."""
    new = models.copy_model(model)
    for block in new.blocks:
        layers = {n: m for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)}
        seen = {n: [] for n in layers}
        hooks = [m.register_forward_hook(lambda m, a, o, n=n: seen[n].append(a[0].reshape(-1, m.in_features))) for n, m in layers.items()]
        with torch.no_grad():
            for x in calibration:
                new(x)
        for h in hooks:
            h.remove()
        masks = {}
        for n, m in layers.items():
            X = torch.cat(seen[n][: len(calibration)])  # each layer's input once per batch
            W = m.weight.detach()
            scores = W.abs() * X.pow(2).sum(0).sqrt() if method == "wanda" else W.abs()
            if n_m is not None:
                masks[n] = slow_nm_mask(scores, *n_m)
            elif comparison == "row":
                masks[n] = slow_row_mask(scores, sparsity)
            else:
                masks[n] = (scores > scores.flatten().sort().values[int(scores.numel() * sparsity) - 1]).float()
        with torch.no_grad():
            for n, m in layers.items():
                m.weight.mul_(masks[n])
    return new


@pytest.mark.parametrize("method, kwargs", [("wanda", {"sparsity": 0.5}), ("wanda", {"n_m": (2, 4)}),
                                            ("magnitude", {"sparsity": 0.5}), ("magnitude", {"n_m": (2, 4)}),
                                            ("magnitude", {"sparsity": 0.5, "comparison": "row"})])
def test_prune_lm_is_the_sequential_reference(method, kwargs):
    model, cal = small_lm(), ids()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = wanda.prune_lm(model, method, calibration=cal, **kwargs)
    ref = reference_prune(model, method, cal, kwargs.get("sparsity"), kwargs.get("n_m"), kwargs.get("comparison", "row" if method == "wanda" else "layer"))
    names = [f"blocks.{b}.{n}" for b in range(2) for n in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp.fc1", "mlp.fc2")]
    modules, ref_modules = dict(pruned.named_modules()), dict(ref.named_modules())
    for name in names:
        assert prune.is_pruned(modules[name]) and hasattr(modules[name], "weight_mask")
        assert torch.equal(modules[name].weight_mask, (ref_modules[name].weight != 0).float()), name
        assert torch.equal(modules[name].weight, ref_modules[name].weight)
    assert not hasattr(pruned.tok_emb, "weight_mask") and pruned.head.weight is pruned.tok_emb.weight  # embeddings, tied head kept
    x = cal[0]
    with torch.no_grad():
        assert torch.allclose(pruned(x), ref(x), atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the caller's model untouched
    assert not any(prune.is_pruned(m) for m in model.modules())


def test_later_blocks_see_inputs_through_the_pruned_blocks_before():
    """Wanda's masks of block 1 differ when its inputs come from the unpruned block 0 (an ablation)."""
    model, cal = small_lm(), ids()
    pruned = wanda.prune_lm(model, "wanda", 0.5, calibration=cal)
    X = llm.calibration_inputs(model, cal, ["blocks.1.mlp.fc1"])["blocks.1.mlp.fc1"]  # through the dense block 0
    unpruned_view = wanda.wanda_mask(model.blocks[1].mlp.fc1.weight, wanda.input_norms(X), 0.5)
    assert not torch.equal(pruned.blocks[1].mlp.fc1.weight_mask, unpruned_view)


def test_wanda_is_invariant_to_a_fold_and_magnitude_is_not():
    """Columns scaled down by 30 and their inputs up by 30: the same function, the same Wanda masks."""
    model, cal = small_lm(), ids()
    folded = models.copy_model(model)
    s = torch.ones(16)
    s[[1, 5]] = 1 / 30
    for block in folded.blocks:
        llm.fold_scales(block.ln1, [block.attn.q, block.attn.k, block.attn.v], s)
    w1, w2 = wanda.prune_lm(model, "wanda", 0.5, calibration=cal), wanda.prune_lm(folded, "wanda", 0.5, calibration=cal)
    m1, m2 = wanda.prune_lm(model, "magnitude", 0.5), wanda.prune_lm(folded, "magnitude", 0.5)
    assert all(torch.equal(a.weight_mask, b.weight_mask) for a, b in zip(
        [w1.blocks[i].attn.q for i in range(2)], [w2.blocks[i].attn.q for i in range(2)]))
    assert not torch.equal(m1.blocks[0].attn.q.weight_mask, m2.blocks[0].attn.q.weight_mask)


def test_prune_remove_makes_the_masks_permanent():
    pruned = wanda.prune_lm(small_lm(), "wanda", n_m=(2, 4), calibration=ids())
    fc1 = pruned.blocks[0].mlp.fc1
    masked = fc1.weight.detach().clone()
    prune.remove(fc1, "weight")
    assert torch.equal(fc1.weight.detach(), masked)
    assert ((fc1.weight.reshape(-1, 4) != 0).sum(dim=1) <= 2).all()


def test_a_model_pruned_by_the_learner_keeps_its_masks():
    model, cal = small_lm(), ids()
    prune.random_unstructured(model.blocks[0].attn.q, "weight", amount=0.3)
    learner_mask = model.blocks[0].attn.q.weight_mask.clone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = wanda.prune_lm(model, "wanda", 0.5, calibration=cal)
    q = pruned.blocks[0].attn.q
    assert (q.weight[learner_mask == 0] == 0).all()  # the learner's zeros stay zeros
    assert ((q.weight == 0).sum(dim=1) >= 8).all()  # and each row is at least half zeros
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert torch.equal(model.blocks[0].attn.q.weight_mask, learner_mask)


def test_any_model_with_blocks_has_exactly_its_block_linears_pruned():
    """The test stand-in (fused qkv, blocks in an nn.Sequential): its block Linears are pruned, its head is not."""
    from llm_standin import tiny_lm, token_batches

    model = tiny_lm()
    pruned = wanda.prune_lm(model, "wanda", 0.5, calibration=token_batches(2))
    masked = sorted(n for n, m in pruned.named_modules() if prune.is_pruned(m) and isinstance(m, torch.nn.Linear))
    assert masked == sorted(f"blocks.{b}.{n}" for b in range(2) for n in ("qkv", "proj", "fc1", "fc2"))
    assert all(float((m.weight == 0).float().mean()) == 0.5 for n, m in pruned.named_modules() if n in masked)
