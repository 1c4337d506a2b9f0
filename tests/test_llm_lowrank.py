"""Truncated SVD held against torch.linalg.svd, NumPy's and SciPy's SVD; Eckart-Young's error and
optimality; the factorised layers' function and bytes; whole models, pruned ones included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torch.nn.utils import prune

from compresskit import llm, models
from llm_standin import tiny_lm

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPES = [(16, 48), (48, 16), (32, 32), (7, 5)]


def weight(out: int, n: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(out, n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def numpy_rank_r(w: np.ndarray, r: int) -> np.ndarray:
    U, s, Vt = np.linalg.svd(w, full_matrices=False)
    return U[:, :r] @ np.diag(s[:r]) @ Vt[:r]


@pytest.mark.parametrize("shape", SHAPES)
def test_singular_values_agree_with_torch_numpy_and_scipy(shape):
    w = weight(*shape)
    s = llm.singular_values(w)
    assert s.shape == (min(shape),) and s.dtype == torch.float64
    torch.testing.assert_close(s, torch.linalg.svd(w).S, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.numpy(), np.linalg.svd(w.numpy(), compute_uv=False), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.numpy(), scipy.linalg.svdvals(w.numpy()), rtol=1e-12, atol=1e-12)
    assert bool((s[:-1] >= s[1:]).all())  # largest first


def test_singular_values_of_a_float32_weight_are_float32_and_close_to_float64():
    w = weight(24, 40, dtype=torch.float32)
    s = llm.singular_values(w)
    assert s.dtype == torch.float32
    np.testing.assert_allclose(s.numpy(), scipy.linalg.svdvals(w.double().numpy()), rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("r", [1, 3])
def test_factors_give_numpys_rank_r_approximation_and_eckart_youngs_error(shape, r):
    w = weight(*shape, seed=r)
    B, A = llm.low_rank_factors(w, r)
    assert B.shape == (shape[0], r) and A.shape == (r, shape[1])
    np.testing.assert_allclose((B @ A).numpy(), numpy_rank_r(w.numpy(), r), rtol=1e-10, atol=1e-10)
    s = scipy.linalg.svdvals(w.numpy())
    error = float(torch.linalg.matrix_norm(w - B @ A))  # Frobenius
    assert error == pytest.approx(math.sqrt(float(np.sum(s[r:] ** 2))), rel=1e-10)
    assert llm.truncation_error(llm.singular_values(w), r) == pytest.approx(error, rel=1e-10)


def test_no_other_rank_r_matrix_is_closer():
    """Eckart-Young's optimality: random rank-2 matrices, and small moves of the truncated SVD's factors, are farther."""
    w, r = weight(12, 20, seed=3), 2
    B, A = llm.low_rank_factors(w, r)
    best = float(torch.linalg.matrix_norm(w - B @ A))
    g = torch.Generator().manual_seed(4)
    for _ in range(50):
        other = torch.randn(12, r, generator=g, dtype=torch.float64) @ torch.randn(r, 20, generator=g, dtype=torch.float64)
        assert float(torch.linalg.matrix_norm(w - other)) > best
        nearby = (B + 1e-3 * torch.randn(B.shape, generator=g, dtype=torch.float64)) @ (A + 1e-3 * torch.randn(A.shape, generator=g, dtype=torch.float64))
        assert float(torch.linalg.matrix_norm(w - nearby)) > best


def test_full_rank_reconstructs_and_rank_zero_error_is_the_norm():
    w = weight(10, 6)
    B, A = llm.low_rank_factors(w, 6)
    torch.testing.assert_close(B @ A, w, rtol=1e-10, atol=1e-10)
    s = llm.singular_values(w)
    assert llm.truncation_error(s, 6) == 0.0
    assert llm.truncation_error(s, 0) == pytest.approx(float(torch.linalg.matrix_norm(w)), rel=1e-12)


def test_rank_for_energy_matches_a_loop():
    s = torch.tensor([4.0, 2.0, 1.0, 1.0, 0.5])
    total = float((s**2).sum())
    for energy in [0.1, 0.5, 0.75, 0.8, 0.9, 0.99, 1.0]:
        r = 1
        while sum(float(v) ** 2 for v in s[:r]) / total < energy - 1e-12:
            r += 1
        assert llm.rank_for_energy(s, energy) == r, energy
    assert llm.rank_for_energy(s, 16 / total) == 1  # exactly the first value's share


@pytest.mark.parametrize("bias", [True, False])
def test_low_rank_linear_holds_the_factors_and_counts_its_bytes(bias):
    fc = nn.Linear(24, 40, bias=bias)
    r = 5
    seq = llm.low_rank_linear(fc, r)
    first, second = seq
    assert first.weight.shape == (r, 24) and first.bias is None and second.weight.shape == (40, r)
    x = torch.randn(3, 7, 24)
    w_r = numpy_rank_r(fc.weight.detach().double().numpy(), r)
    expected = x.double().numpy() @ w_r.T + (fc.bias.detach().double().numpy() if bias else 0)
    np.testing.assert_allclose(seq(x).detach().double().numpy(), expected, rtol=1e-4, atol=1e-5)
    tensors = sum(p.numel() * p.element_size() for p in seq.parameters())
    assert llm.low_rank_bytes(40, 24, r, bias) == tensors == 4 * (r * (24 + 40) + (40 if bias else 0))
    assert llm.dense_bytes(40, 24, bias) == sum(p.numel() * p.element_size() for p in fc.parameters())


def test_low_rank_linear_at_full_rank_is_the_same_function():
    fc = nn.Linear(16, 24)
    x = torch.randn(5, 16)
    torch.testing.assert_close(llm.low_rank_linear(fc, 16)(x), fc(x), rtol=1e-5, atol=1e-5)


def test_low_rank_model_copies_and_leaves_the_tied_head():
    model = tiny_lm()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    low = llm.low_rank_model(model, 4)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "head"]
    for name in linears:
        assert isinstance(low.get_submodule(name), llm.LowRankLinear), name
        assert isinstance(model.get_submodule(name), nn.Linear), name
    assert isinstance(low.head, nn.Linear) and low.head.weight is low.tok.weight
    dense = sum(llm.dense_bytes(m.out_features, m.in_features) for n, m in model.named_modules() if n in linears)
    lowb = sum(llm.low_rank_bytes(m.out_features, m.in_features, 4) for n, m in model.named_modules() if n in linears)
    counted = sum(p.numel() * p.element_size() for p in model.parameters()) - dense + lowb
    assert sum(p.numel() * p.element_size() for p in low.parameters()) == counted


def test_low_rank_model_at_full_rank_is_the_same_function_and_names_pick_layers():
    model = tiny_lm()  # d = 32: every Linear has rank at most 32
    idx = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(llm.low_rank_model(model, 32)(idx), model(idx), rtol=1e-4, atol=1e-4)
    low = llm.low_rank_model(model, 2, names=["blocks.0.fc1"])
    assert isinstance(low.blocks[0].fc1, llm.LowRankLinear) and isinstance(low.blocks[0].fc2, nn.Linear)


def test_the_course_model_runs_factorised_and_at_full_rank_is_the_same_function():
    """Its attention reads q.out_features to count heads: the factorised layer answers it."""
    model = models.tiny_lm(models.TinyLMConfig(n_layer=2, n_head=2, d_model=32, block_size=16))
    idx = torch.randint(0, 256, (2, 16))
    low = llm.low_rank_model(model, 32)
    assert isinstance(low.blocks[0].attn.q, llm.LowRankLinear) and low.blocks[0].attn.n_head == 2
    assert (low.blocks[0].mlp.fc1.in_features, low.blocks[0].mlp.fc1.out_features, low.blocks[0].mlp.fc1.rank) == (32, 128, 32)
    with torch.no_grad():
        torch.testing.assert_close(low(idx), model(idx), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(llm.low_rank_model(model, 4)(idx), model(idx), atol=1e-3)


def test_spectra_of_the_course_model_shape():
    model = models.tiny_lm(models.TinyLMConfig(n_layer=1, n_head=2, d_model=32, block_size=16))
    found = llm.spectra(model)
    assert set(found) == {"blocks.0.attn.q", "blocks.0.attn.k", "blocks.0.attn.v", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2"}
    for name, s in found.items():
        expected = scipy.linalg.svdvals(model.get_submodule(name).weight.detach().double().numpy())
        np.testing.assert_allclose(s.numpy(), expected, rtol=0, atol=1e-5 * expected[0])  # float32 SVD: error ~ eps * sigma_max


def pruned_and_twin() -> tuple[nn.Module, nn.Module]:
    model, dense = tiny_lm().train(), tiny_lm()
    prune.l1_unstructured(model.blocks[0].fc1, "weight", 0.5)
    with torch.no_grad():
        dense.blocks[0].fc1.weight.copy_(model.blocks[0].fc1.weight)
    return model, dense


def test_a_pruned_model_is_factorised_as_its_forward_pass_sees_it():
    model, dense = pruned_and_twin()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    low_p, low_d = llm.low_rank_model(model, 6), llm.low_rank_model(dense, 6)
    for k, v in low_d.state_dict().items():
        torch.testing.assert_close(low_p.state_dict()[k], v, rtol=0, atol=0)
    assert prune.is_pruned(model) and all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert model.training and low_p.training
    s_p, s_d = llm.spectra(model), llm.spectra(dense)
    assert all(torch.equal(s_p[k], s_d[k]) for k in s_d)
    with torch.no_grad():  # an optimizer step leaves the cached masked weight stale: the forward's weight is used
        model.blocks[0].fc1.weight_orig.mul_(2.0)
        dense.blocks[0].fc1.weight.mul_(2.0)
    assert torch.equal(llm.effective_weight(model.blocks[0].fc1), dense.blocks[0].fc1.weight)
    assert torch.equal(llm.spectra(model)["blocks.0.fc1"], llm.spectra(dense)["blocks.0.fc1"])
    seq = llm.low_rank_linear(model.blocks[0].fc1, 32)  # full rank: the masked weight, zeros included
    torch.testing.assert_close(seq[1].weight @ seq[0].weight, dense.blocks[0].fc1.weight, rtol=1e-4, atol=1e-5)
