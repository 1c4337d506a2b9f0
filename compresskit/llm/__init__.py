"""Compressing a language model the way large ones are compressed: one module per method.

- :mod:`~compresskit.llm.groupwise`: round-to-nearest quantization per channel and per group,
  int4 packing (two codes per byte, low nibble first), and a real file of codes, fp16 scales and
  zero points with a checksum.
- :mod:`~compresskit.llm.gptq`: GPTQ (Frantar et al. 2022, arXiv:2210.17323).
- :mod:`~compresskit.llm.awq`: AWQ (Lin et al. 2023, arXiv:2306.00978), and
  :mod:`~compresskit.llm.folding`, the scale folding it shares with SmoothQuant.
- :mod:`~compresskit.llm.smoothquant`: SmoothQuant's W8A8 (Xiao et al. 2022, arXiv:2211.10438) and
  LLM.int8()'s outlier decomposition (Dettmers et al. 2022, arXiv:2208.07339).
- :mod:`~compresskit.llm.kernel`: int4 weights run by ONNX Runtime's MatMulNBits on the CPU.
- :mod:`~compresskit.llm.model`: calibration inputs and ``quantize_model`` for whole models.

Chapter 10, the model at inference and fine-tuning time:

- :mod:`~compresskit.llm.kv_cache`: generation with a key-value cache, and KIVI's int8 / int4 cache
  (Liu et al. 2024, arXiv:2402.02750).
- :mod:`~compresskit.llm.wanda`: Wanda, pruning by |W| x ||X|| (Sun et al. 2023, arXiv:2306.11695).
- :mod:`~compresskit.llm.heads`: attention-head importance and removal (Michel et al. 2019,
  arXiv:1905.10650).
- :mod:`~compresskit.llm.lowrank`: singular values and truncated SVD of the weight matrices.
- :mod:`~compresskit.llm.lora`: LoRA (Hu et al. 2021, arXiv:2106.09685) and QLoRA's int4 base
  (Dettmers et al. 2023, arXiv:2305.14314).
- :mod:`~compresskit.llm.speculative`: speculative decoding (Leviathan et al. 2023,
  arXiv:2211.17192; Chen et al. 2023, arXiv:2302.01318).

A technique package: it imports the core (models, measure, _validation) and no other technique.
"""

from compresskit.llm.awq import AWQSearch, awq_scales, awq_search
from compresskit.llm.folding import fold_scales
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
from compresskit.llm.kernel import MatMulNBitsLinear, kernel_latency, matmul_nbits_model
from compresskit.llm.model import calibration_inputs, find_folds, load_quantized_model, quantize_model, quantized_state_dict, smoothquant_model
from compresskit.llm.smoothquant import Outliers, W8A8Linear, activation_outliers, int8_decomposition, smooth_scales, w8a8_linear
from compresskit.llm import heads, kv_cache, lora, lowrank, speculative, wanda
from compresskit.llm.heads import *  # noqa: F401,F403 (each chapter-10 module lists its names in __all__)
from compresskit.llm.kv_cache import *  # noqa: F401,F403
from compresskit.llm.lora import *  # noqa: F401,F403
from compresskit.llm.lowrank import *  # noqa: F401,F403
from compresskit.llm.speculative import *  # noqa: F401,F403
from compresskit.llm.wanda import *  # noqa: F401,F403

__all__ = [
    "AWQSearch",
    "MatMulNBitsLinear",
    "Outliers",
    "QuantizedWeight",
    "W8A8Linear",
    "activation_outliers",
    "awq_scales",
    "awq_search",
    "calibration_inputs",
    "choose_qparams",
    "dequantize",
    "find_folds",
    "fold_scales",
    "gptq",
    "gptq_hessian",
    "int8_decomposition",
    "kernel_latency",
    "load_quantized",
    "load_quantized_model",
    "matmul_nbits_model",
    "pack_int4",
    "quant_range",
    "quantize",
    "quantize_model",
    "quantize_rtn",
    "quantized_bytes",
    "quantized_state_dict",
    "save_quantized",
    "smooth_scales",
    "smoothquant_model",
    "unpack_int4",
    "w8a8_linear",
] + [*heads.__all__, *kv_cache.__all__, *lora.__all__, *lowrank.__all__, *speculative.__all__, *wanda.__all__]
