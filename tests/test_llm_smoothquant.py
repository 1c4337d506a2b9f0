"""SmoothQuant's smoothing and LLM.int8()'s decomposition, held against torch's fake quantization and float matmuls."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compresskit import llm

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors run fastest on one thread


def ln_linear_with_outliers(d=64, out=32, factor=40.0, seed=0):
    """LayerNorm -> Linear whose LayerNorm output has three channels raised `factor` times (the Linear's columns lowered)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        ln, fc = nn.LayerNorm(d), nn.Linear(d, out)
        ln.weight.uniform_(0.5, 1.5)
        idx = torch.tensor([5, 20, 51])
        ln.weight[idx] *= factor
        fc.weight[:, idx] /= factor
    return ln, fc


def tokens(d=64, n=128, seed=1):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_the_outlier_statistics_are_max_over_median():
    ln, fc = ln_linear_with_outliers()
    X = ln(tokens()).detach()
    found = llm.activation_outliers(X)
    torch.testing.assert_close(found.channel_max, X.abs().max(0).values)
    assert found.ratio == pytest.approx(float(found.channel_max.max() / found.channel_max.median()))
    assert found.ratio > 20
    assert llm.activation_outliers(tokens()).ratio < 2


def test_smooth_scales_follow_the_paper():
    W1, W2 = torch.randn(8, 16), torch.randn(4, 16)
    act = torch.rand(16) * 10 + 0.1
    w_max = torch.maximum(W1.abs().max(0).values, W2.abs().max(0).values)
    torch.testing.assert_close(llm.smooth_scales(act, [W1, W2], 0.5), act.sqrt() / w_max.sqrt())
    torch.testing.assert_close(llm.smooth_scales(act, W1, 1.0), act)


def test_smoothing_keeps_the_float_function_and_lowers_the_w8a8_error():
    ln, fc = ln_linear_with_outliers()
    x = tokens()
    with torch.no_grad():
        reference = fc(ln(x))
        before = float((llm.w8a8_linear(ln(x), fc.weight, fc.bias) - reference).pow(2).mean())
        s = llm.smooth_scales(llm.activation_outliers(ln(x)).channel_max, fc.weight, 0.5)
        llm.fold_scales(ln, [fc], s)
        torch.testing.assert_close(fc(ln(x)), reference, rtol=1e-4, atol=1e-4)
        after = float((llm.w8a8_linear(ln(x), fc.weight, fc.bias) - reference).pow(2).mean())
    assert after < before / 4


@pytest.mark.parametrize("activations", ["per_token", "per_tensor"])
def test_w8a8_equals_torch_fake_quantization(activations):
    x, W, b = tokens(), torch.randn(32, 64) * 0.1, torch.randn(32)
    s_W = W.abs().amax(1) / 127
    W_q = torch.fake_quantize_per_channel_affine(W, s_W, torch.zeros(32, dtype=torch.int32), 0, -127, 127)
    if activations == "per_token":
        s_x = x.abs().amax(1) / 127
        x_q = torch.fake_quantize_per_channel_affine(x, s_x, torch.zeros(len(x), dtype=torch.int32), 0, -127, 127)
    else:
        x_q = torch.fake_quantize_per_tensor_affine(x, float(x.abs().max() / 127), 0, -127, 127)
    torch.testing.assert_close(llm.w8a8_linear(x, W, b, activations), x_q @ W_q.T + b, rtol=1e-5, atol=1e-5)


def test_int8_decomposition_is_exact_on_outlier_columns_and_close_on_the_rest():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-3, 4, (16, 32), generator=g).float() / 4  # small values that float16 and float32 hold exactly
    W = torch.randint(-3, 4, (8, 32), generator=g).float() / 8
    x[:, [2, 9]] = torch.randint(10, 40, (16, 2), generator=g).float()  # two outlier columns
    x[0, 2] = 7.0
    y, outlier = llm.int8_decomposition(x, W, 6.0)
    assert outlier.nonzero().flatten().tolist() == [2, 9]
    only_outliers = W.clone()
    only_outliers[:, ~outlier] = 0
    y_o, _ = llm.int8_decomposition(x, only_outliers, 6.0)
    assert torch.equal(y_o, x @ only_outliers.T)  # the float16 part is exact
    rest = W - only_outliers
    y_r, _ = llm.int8_decomposition(x, rest, 6.0)
    x_r = x[:, ~outlier]
    s_x, s_w = x_r.abs().amax(1) / 127, rest[:, ~outlier].abs().amax(1) / 127
    zeros = lambda n: torch.zeros(n, dtype=torch.int32)
    expected = torch.fake_quantize_per_channel_affine(x_r, s_x, zeros(16), 0, -127, 127) @ \
        torch.fake_quantize_per_channel_affine(rest[:, ~outlier], s_w, zeros(8), 0, -127, 127).T
    torch.testing.assert_close(y_r, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y, x @ W.T, rtol=0.02, atol=0.02)  # int8 approximates the rest
    # without the decomposition, per-token int8 over the outliers is far worse
    plain = float((llm.w8a8_linear(x, W) - x @ W.T).abs().max())
    assert float((y - x @ W.T).abs().max()) < plain / 4
