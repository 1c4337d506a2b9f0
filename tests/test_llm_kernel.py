"""ONNX Runtime's MatMulNBits gives the dequantized float computation (speed is left to benchmarks/bench_llm.py)."""

from __future__ import annotations

import pytest
import torch

from compresskit import llm

pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors run fastest on one thread


def weight(out=48, n=256, seed=0):
    return torch.randn(out, n, generator=torch.Generator().manual_seed(seed)) * 0.05


# float32 sums in another order: a few ulps of the largest partial sum
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("symmetric", [False, True])
def test_matmul_nbits_equals_the_dequantized_float_layer(bits, group_size, symmetric):
    W, b = weight(), torch.randn(48, generator=torch.Generator().manual_seed(1))
    q = llm.quantize_rtn(W, bits, group_size, symmetric)
    x = torch.randn(7, 256, generator=torch.Generator().manual_seed(2))
    expected = x @ q.dequantize().T + b
    torch.testing.assert_close(llm.MatMulNBitsLinear(q, b)(x), expected, **TOLERANCE)
    assert not torch.allclose(expected, x @ W.T + b, **TOLERANCE)  # quantization did change the layer


def test_accuracy_level_4_quantizes_the_activations_and_stays_close():
    q = llm.quantize_rtn(weight(), 4, 32)
    x = torch.randn(7, 256, generator=torch.Generator().manual_seed(2))
    expected = x @ q.dequantize().T
    y = llm.MatMulNBitsLinear(q, accuracy_level=4)(x)
    scale = float(expected.abs().max())
    assert float((y - expected).abs().max()) < 0.02 * scale  # int8 activations: about 1/127 of each block's range


def test_a_gptq_weight_runs_too():
    W = weight(16, 128)
    X = torch.randn(256, 128, generator=torch.Generator().manual_seed(3))
    q = llm.gptq(W, llm.gptq_hessian(X), 4, 32)
    x = X[:5]
    torch.testing.assert_close(llm.MatMulNBitsLinear(q)(x), x @ q.dequantize().T, **TOLERANCE)


def test_the_graph_holds_half_a_byte_per_weight():
    q = llm.quantize_rtn(weight(64, 512), 4, 128)
    graph = llm.matmul_nbits_model(q).graph
    sizes = {t.name: len(t.raw_data) for t in graph.initializer}
    assert sizes == {"B": 64 * 512 // 2, "scales": 64 * 4 * 4, "zero_points": 64 * 4 // 2}
    node = graph.node[0]
    assert node.op_type == "MatMulNBits" and node.domain == "com.microsoft"
    assert {a.name: a.i for a in node.attribute} == {"K": 512, "N": 64, "bits": 4, "block_size": 128, "accuracy_level": 0}


def test_the_latency_helper_returns_two_ratios():
    ratios = llm.kernel_latency(llm.quantize_rtn(weight(32, 128), 4, 32), batch=2, repeats=3)
    assert set(ratios) == {"vs_ort_float32", "vs_torch_float32"}
    assert all(r.ratio > 0 and r.a.repeats == 3 for r in ratios.values())
