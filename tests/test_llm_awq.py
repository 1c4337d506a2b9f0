"""AWQ's scale search and the folding it shares with SmoothQuant, held against direct computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from compresskit import llm

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors run fastest on one thread


def ln_linear(d=64, out=48, seed=0):
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        ln, fc = nn.LayerNorm(d), nn.Linear(d, out)
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.normal_(0, 0.1)
    return ln, fc


def tokens(d=64, n=256, seed=1):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5


@pytest.mark.parametrize("prev_kind", ["layernorm", "linear"])
def test_folding_keeps_the_float_function(prev_kind):
    ln, fc = ln_linear()
    fc2 = nn.Linear(64, 16)
    prev = ln if prev_kind == "layernorm" else nn.Linear(32, 64)
    x = tokens(64 if prev_kind == "layernorm" else 32)
    with torch.no_grad():
        before = (fc(prev(x)), fc2(prev(x)))
        s = torch.rand(64, generator=torch.Generator().manual_seed(2)) * 10 + 0.01
        llm.fold_scales(prev, [fc, fc2], s)
        after = (fc(prev(x)), fc2(prev(x)))
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fc.weight, ln_linear()[1].weight * s)  # W diag(s)


def test_folding_into_a_pruned_layer_keeps_its_zeros():
    ln, fc = ln_linear()
    prune.l1_unstructured(fc, "weight", 0.5)
    x = tokens()
    with torch.no_grad():
        before = fc(ln(x))
        llm.fold_scales(ln, [fc], torch.rand(64, generator=torch.Generator().manual_seed(3)) + 0.5)
        torch.testing.assert_close(fc(ln(x)), before, rtol=1e-5, atol=1e-5)
    assert prune.is_pruned(fc) and int((fc.weight == 0).sum()) == 64 * 48 // 2


def rtn_error(W, X, bits, group_size):
    """The output error of round-to-nearest, computed directly."""
    return float((X @ (llm.quantize_rtn(W, bits, group_size).dequantize() - W).T).pow(2).mean())


@pytest.mark.parametrize("seed", range(3))
def test_alpha_zero_is_rtn_and_the_chosen_alpha_is_not_worse(seed):
    ln, fc = ln_linear(seed=seed)
    X = ln(tokens(seed=seed)).detach()
    found = llm.awq_search(fc.weight, X, 4, 32)
    assert found.errors[0] == pytest.approx(rtn_error(fc.weight.detach(), X, 4, 32), rel=1e-6)
    assert float(found.errors.min()) <= float(found.errors[0])
    assert found.alpha == float(found.alphas[int(found.errors.argmin())])
    assert len(found.alphas) == 20 and found.alphas[0] == 0 and found.alphas[-1] == 1


def test_the_scales_are_the_normalised_power_of_the_mean_magnitude():
    X = tokens()
    m = X.abs().mean(0)
    expected = m**0.35 / (m.max() ** 0.35 * m.min() ** 0.35) ** 0.5
    torch.testing.assert_close(llm.awq_scales(X, 0.35), expected)
    assert torch.equal(llm.awq_scales(X, 0.0), torch.ones(64))


def test_on_outlier_channels_awq_is_far_better_than_rtn():
    """A few channels raised 30x by a function-preserving rescaling (LayerNorm up, Linear's columns down)."""
    ln, fc = ln_linear()
    x = tokens()
    with torch.no_grad():
        reference = fc(ln(x))
        outliers = torch.tensor([3, 17, 40])
        ln.weight[outliers] *= 30
        ln.bias[outliers] *= 30
        fc.weight[:, outliers] /= 30
        torch.testing.assert_close(fc(ln(x)), reference, rtol=1e-4, atol=1e-4)  # the same function
        X = ln(x)
    W = fc.weight.detach()
    found = llm.awq_search(W, X, 4, 32)
    rtn = rtn_error(W, X, 4, 32)
    assert float(found.errors.min()) < rtn / 4
    assert found.alpha > 0
    # the quantized, folded layer is as good as the search said, checked end to end
    with torch.no_grad():
        llm.fold_scales(ln, [fc], found.scales)
        W_hat = llm.quantize_rtn(fc.weight, 4, 32).dequantize()
        error = float((ln(x) @ W_hat.T + fc.bias - reference).pow(2).mean())
    assert error == pytest.approx(float(found.errors.min()), rel=1e-3)


def test_a_search_over_layers_sharing_an_input_sums_their_errors():
    ln, fc = ln_linear()
    other = nn.Linear(64, 8)
    X = ln(tokens()).detach()
    both = llm.awq_search([fc.weight, other.weight], X, 3, 32, n_grid=5)
    one, two = llm.awq_search(fc.weight, X, 3, 32, n_grid=5), llm.awq_search(other.weight, X, 3, 32, n_grid=5)
    torch.testing.assert_close(both.errors, one.errors + two.errors)
