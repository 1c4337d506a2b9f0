"""GPTQ against round-to-nearest and against a slow, direct Optimal Brain Surgeon written here."""

from __future__ import annotations

import pytest
import torch

from compresskit import llm

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors run fastest on one thread


def correlated_inputs(n_in, n=512, seed=0, dtype=torch.float32):
    """Inputs whose channels are correlated (a random mixing of fewer sources) and of unequal scale."""
    g = torch.Generator().manual_seed(seed)
    sources = torch.randn(n, n_in // 2, generator=g, dtype=torch.float64)
    mix = torch.randn(n_in // 2, n_in, generator=g, dtype=torch.float64)
    X = sources @ mix + 0.1 * torch.randn(n, n_in, generator=g, dtype=torch.float64)
    return (X * torch.rand(n_in, generator=g, dtype=torch.float64).mul(3).add(0.2)).to(dtype)


def layer(n_out, n_in, seed=0, dtype=torch.float32):
    return torch.randn(n_out, n_in, generator=torch.Generator().manual_seed(100 + seed), dtype=dtype) / n_in**0.5


def slow_obs(W, H, bits, group_size, percdamp=0.01):
    """Optimal Brain Surgeon, column by column: invert the Hessian of the remaining columns from scratch each step."""
    W, n = W.clone().double(), W.shape[1]
    H = H.double() + percdamp * H.diagonal().mean() * torch.eye(n, dtype=torch.float64)
    Q = torch.zeros_like(W)
    for q in range(n):
        if q % group_size == 0:
            w = W[:, q : q + group_size]
            lo, hi = w.amin(1).clamp(max=0), w.amax(1).clamp(min=0)
            scale = ((hi - lo) / (2**bits - 1)).clamp(min=torch.finfo(torch.float32).eps).half().double()
            zero = (-torch.round(lo / scale)).clamp(0, 2**bits - 1)
        Q[:, q] = ((torch.round(W[:, q] * (1 / scale)) + zero).clamp(0, 2**bits - 1) - zero) * scale
        Hinv = torch.linalg.inv(H[q:, q:])  # the inverse Hessian of the columns not yet quantized
        err = W[:, q] - Q[:, q]
        W[:, q + 1 :] -= err[:, None] * Hinv[0, 1:][None, :] / Hinv[0, 0]
    return Q


@pytest.mark.parametrize("group_size", [8, 16, None])
@pytest.mark.parametrize("block_size", [1, 5, 128])
def test_gptq_equals_a_slow_optimal_brain_surgeon(group_size, block_size):
    W, X = layer(6, 32, dtype=torch.float64), correlated_inputs(32, dtype=torch.float64)
    H = llm.gptq_hessian(X)
    expected = slow_obs(W, H, 3, group_size or 32)
    ours = llm.gptq(W, H, 3, group_size, block_size=block_size).dequantize()
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(ours, llm.quantize_rtn(W, 3, group_size).dequantize())  # the updates did something


@pytest.mark.parametrize("group_size", [32, None])
def test_with_an_identity_hessian_gptq_is_round_to_nearest(group_size):
    W = layer(16, 64)
    for bits in (8, 4, 3):
        q = llm.gptq(W, torch.eye(64), bits, group_size, block_size=16)
        r = llm.quantize_rtn(W, bits, group_size)
        assert torch.equal(q.codes, r.codes) and torch.equal(q.scale, r.scale) and torch.equal(q.zero_point, r.zero_point)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("bits,group_size,act_order", [(4, 32, False), (3, None, False), (4, None, True), (3, 32, True)])
def test_gptq_reconstructs_the_layer_better_than_rtn(seed, bits, group_size, act_order):
    W, X = layer(32, 128, seed), correlated_inputs(128, seed=seed)
    H = llm.gptq_hessian(X)
    error = lambda Q: float((X @ (W - Q).T).pow(2).sum())  # ||WX - ŴX||²
    e_gptq = error(llm.gptq(W, H, bits, group_size, act_order=act_order).dequantize())
    e_rtn = error(llm.quantize_rtn(W, bits, group_size).dequantize())
    assert e_gptq < e_rtn


def test_act_order_undoes_its_permutation_and_keeps_rtns_groups():
    W, X = layer(8, 64), correlated_inputs(64, seed=3)
    H = llm.gptq_hessian(X)
    q = llm.gptq(W, H, 4, 16, act_order=True)
    r = llm.quantize_rtn(W, 4, 16)
    assert torch.equal(q.scale, r.scale)  # static groups: from the weight before any update
    # every code lies at its own column: with a diagonal H no update happens, so act-order is RTN exactly
    diag = torch.diag(torch.rand(64, generator=torch.Generator().manual_seed(0)) + 0.5)
    assert torch.equal(llm.gptq(W, diag, 4, 16, act_order=True).codes, r.codes)


def test_the_hessian_is_twice_the_mean_outer_product():
    X = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))
    rows = X.reshape(-1, 4).double()
    expected = sum(2 * torch.outer(x, x) for x in rows) / 15
    torch.testing.assert_close(llm.gptq_hessian(X), expected)


def test_a_dead_input_gets_zero_weight_and_the_rest_is_quantized():
    W, X = layer(8, 16), correlated_inputs(16)
    X[:, 5] = 0
    q = llm.gptq(W, llm.gptq_hessian(X), 4).dequantize()
    assert torch.equal(q[:, 5], torch.zeros(8))  # zero is a code: the zero point is an integer
    assert torch.isfinite(q).all() and bool((q[:, :5] != 0).any())
