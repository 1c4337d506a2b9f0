"""A real int4 (and int8) kernel on the CPU: ONNX Runtime's ``MatMulNBits`` contrib operator.

``MatMulNBits`` (domain ``com.microsoft``) computes ``Y = A · dequant(B)ᵀ (+ bias)`` with B quantized
block-wise along K, the layout of group-wise quantization (:mod:`compresskit.llm.groupwise`)::

    attributes  K = in_features, N = out_features, bits (4 or 8), block_size = group_size
    B           uint8 (N, K / block_size, block_size · bits / 8): codes, packed low nibble first
    scales      float (N · K / block_size)
    zero_points uint8 (N · ceil(K / block_size · bits / 8)): per row, packed the same way
    dequant     (code - zero_point) · scale

The codes are unsigned; symmetric (signed) codes are shifted by 2**(bits-1), with that as their
zero point, which dequantizes to the same numbers. With the default ``accuracy_level`` (0) ONNX
Runtime dequantizes to float32 and multiplies in float32, so its output equals the dequantized
float computation up to the order of the sums. ``block_size`` must be a power of two, at least 16.

Whether fewer bytes make it faster depends on the machine: see benchmarks/bench_llm.py.

References
----------
[1] ONNX Runtime contrib operators, com.microsoft.MatMulNBits (onnxruntime/docs/ContribOperators.md).
[2] Frantar et al. 2022, arXiv:2210.17323; Lin et al. 2023, arXiv:2306.00978 (the group-wise
    int4 weights this kernel runs).
"""

from __future__ import annotations

import numpy as np
import torch

from compresskit._validation import check_choice, check_int, check_tensor, check_type
from compresskit.llm.groupwise import QuantizedWeight, pack_int4
from compresskit.measure import LatencyRatio, latency_ratio

__all__ = ["MatMulNBitsLinear", "kernel_latency", "matmul_nbits_model"]


def _unsigned(q: QuantizedWeight) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes and zero points as unsigned integers (symmetric codes shifted by 2**(bits-1))."""
    shift = 2 ** (q.bits - 1) if q.symmetric else 0
    return (q.codes.to(torch.int16) + shift), (q.zero_point.to(torch.int16) + shift)


def _pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    return pack_int4(codes) if bits == 4 else codes.to(torch.uint8)


def matmul_nbits_model(q: QuantizedWeight, bias: torch.Tensor | None = None, accuracy_level: int = 0):  # -> onnx.ModelProto
    """A one-node ONNX graph ``Y = MatMulNBits(A, B, scales, zero_points[, bias])`` for a (N, K) quantized weight.

    ``accuracy_level`` 0 computes in float32 from the dequantized weights; 4 lets ONNX Runtime
    quantize the activations to int8 per block and multiply in integers (faster on many CPUs, no
    longer equal to the float computation).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    check_type("q", q, QuantizedWeight)
    check_choice("accuracy_level", accuracy_level, [0, 1, 2, 3, 4])
    N, K = q.codes.shape
    if q.bits not in (4, 8):
        raise ValueError(f"`q.bits` must be 4 or 8 for MatMulNBits; got {q.bits}")
    if q.group_size < 16 or q.group_size & (q.group_size - 1):
        raise ValueError(f"`q.group_size` must be a power of two >= 16 for MatMulNBits; got {q.group_size}")
    codes, zero_point = _unsigned(q)
    blocks = K // q.group_size
    B = _pack(codes, q.bits).reshape(N, blocks, q.group_size * q.bits // 8)
    inits = [
        numpy_helper.from_array(B.numpy(), "B"),
        numpy_helper.from_array(q.scale.float().reshape(-1).numpy(), "scales"),
        numpy_helper.from_array(_pack(zero_point, q.bits).reshape(-1).numpy(), "zero_points"),
    ]
    inputs = ["A", "B", "scales", "zero_points"]
    if bias is not None:
        check_tensor("bias", bias, ndim=1, floating=True, finite=True)
        if bias.shape[0] != N:
            raise ValueError(f"`bias` must have out_features={N} entries; got shape {tuple(bias.shape)}")
        inits.append(numpy_helper.from_array(bias.detach().float().numpy(), "bias"))
        inputs += ["", "bias"]  # input 4 (g_idx) left out
    node = helper.make_node("MatMulNBits", inputs, ["Y"], domain="com.microsoft", K=K, N=N, bits=q.bits, block_size=q.group_size,
                            accuracy_level=accuracy_level)
    graph = helper.make_graph(
        [node], "matmul_nbits",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", K])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", N])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])


def _float_model(weight: torch.Tensor, bias: torch.Tensor | None):
    """The float32 baseline in the same runtime: ``Y = A · Wᵀ (+ bias)`` as Gemm."""
    from onnx import TensorProto, helper, numpy_helper

    N, K = weight.shape
    inits = [numpy_helper.from_array(weight.detach().float().numpy(), "W")]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias.detach().float().numpy(), "bias"))
    node = helper.make_node("Gemm", ["A", "W"] + (["bias"] if bias is not None else []), ["Y"], transB=1)
    graph = helper.make_graph([node], "float", [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", K])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", N])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _session(model, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads must not hold the cores
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # an onnxruntime without the contrib operator says so here
        raise RuntimeError(f"ONNX Runtime {ort.__version__} could not build the graph ({exc}); "
                           "MatMulNBits needs an onnxruntime with its CPU contrib operators") from exc


class MatMulNBitsLinear:
    """A quantized Linear run by ONNX Runtime's MatMulNBits: ``layer(x)`` for x of shape (M, K), float32 out."""

    def __init__(self, q: QuantizedWeight, bias: torch.Tensor | None = None, threads: int = 1, accuracy_level: int = 0) -> None:
        self.q, self.threads = q, check_int("threads", threads, 1)
        self.session = _session(matmul_nbits_model(q, bias, accuracy_level), self.threads)

    def run(self, A: np.ndarray) -> np.ndarray:
        """numpy in, numpy out: what the latency helper times."""
        return self.session.run(None, {"A": A})[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, ndim=2, floating=True, finite=True)
        if x.shape[1] != self.q.codes.shape[1]:
            raise ValueError(f"`x` must have K={self.q.codes.shape[1]} columns; got shape {tuple(x.shape)}")
        return torch.from_numpy(self.run(x.detach().float().contiguous().numpy()))


def kernel_latency(
    q: QuantizedWeight, batch: int = 1, threads: int = 1, repeats: int = 100, seed: int = 0, accuracy_level: int = 0
) -> dict[str, LatencyRatio]:
    """Time MatMulNBits against float32 (ONNX Runtime's Gemm, and torch's F.linear) on one layer.

    Returns ``{"vs_ort_float32": ..., "vs_torch_float32": ...}``, each ``int4 median / float32 median``
    (above 1: the quantized layer is slower). Measured, never asserted: it depends on the machine.
    """
    check_type("q", q, QuantizedWeight)
    batch, repeats = check_int("batch", batch, 1), check_int("repeats", repeats, 1)
    W = q.dequantize().float()
    nbits = MatMulNBitsLinear(q, threads=threads, accuracy_level=accuracy_level)
    dense = _session(_float_model(W, None), threads)
    A = torch.randn(batch, W.shape[1], generator=torch.Generator().manual_seed(seed))
    a = A.numpy()
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        vs_torch = latency_ratio(nbits.run, lambda x: torch.nn.functional.linear(x, W), a, args_b=(A,), repeats=repeats)
    finally:
        torch.set_num_threads(old)
    vs_ort = latency_ratio(nbits.run, lambda x: dense.run(None, {"A": x}), a, repeats=repeats)
    return {"vs_ort_float32": vs_ort, "vs_torch_float32": vs_torch}
