"""Compressing a language model the way large ones are compressed: one module per method.

- :mod:`~compresskit.llm.groupwise`: round-to-nearest quantization per channel and per group,
  int4 packing, and a real file of codes, fp16 scales and zero points.
"""

from compresskit.llm.awq import AWQSearch, awq_scales, awq_search
from compresskit.llm.folding import fold_scales
from compresskit.llm.smoothquant import Outliers, activation_outliers, int8_decomposition, smooth_scales, w8a8_linear
from compresskit.llm.kernel import MatMulNBitsLinear, kernel_latency, matmul_nbits_model
from compresskit.llm.gptq import gptq, gptq_hessian
from compresskit.llm.groupwise import (
    QuantizedWeight,
    choose_qparams,
    dequantize,
    load_quantized,
    pack_int4,
    quant_range,
    quantize,
    quantize_rtn,
    quantized_bytes,
    save_quantized,
    unpack_int4,
)

__all__ = [
    "MatMulNBitsLinear",
    "kernel_latency",
    "matmul_nbits_model",
    "Outliers",
    "activation_outliers",
    "int8_decomposition",
    "smooth_scales",
    "w8a8_linear",
    "AWQSearch",
    "awq_scales",
    "awq_search",
    "fold_scales",
    "gptq",
    "gptq_hessian",
    "QuantizedWeight",
    "choose_qparams",
    "dequantize",
    "load_quantized",
    "pack_int4",
    "quant_range",
    "quantize",
    "quantize_rtn",
    "quantized_bytes",
    "save_quantized",
    "unpack_int4",
]
