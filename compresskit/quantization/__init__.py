"""Quantization: fewer bits per weight and activation (chapter 3).

One module per method family, each readable on its own:

* :mod:`.linear`: affine / symmetric, per-tensor / per-channel; ``calculate_qparams``,
  ``quantize``, ``dequantize``, ``fake_quantize`` (equal to PyTorch's), bit packing.
* :mod:`.calibration`: activation ranges by min-max, moving average, percentile, and
  TensorRT's entropy (KL divergence) calibration.
* :mod:`.nonlinear`: k-means weight sharing (Deep Compression) and power-of-two levels.
* :mod:`.floating`: fp16 / bf16 and fixed-point Qm.n.
* :mod:`.ptq`: post-training quantization of a whole model and the bytes it saves.
* :mod:`.integer`: integer-only inference of an MLP (Jacob et al. 2018).
* :mod:`.ort`: export to ONNX and a real int8 speed-up in ONNX Runtime (imports onnx lazily).

PyTorch's own ``torch.ao.quantization`` is deprecated (it warns that it will be removed);
the tests use its observers only to check that our parameters are the same.
"""

from compresskit.quantization.calibration import (
    calibrate,
    entropy_range,
    entropy_threshold,
    minmax_range,
    moving_average_range,
    percentile_range,
)
from compresskit.quantization.floating import (
    HalfPrecision,
    fixed_point_decode,
    fixed_point_encode,
    fixed_point_range,
    float_format,
    round_trip,
)
from compresskit.quantization.integer import IntegerLinear, IntegerMLP, activation_ranges, quantize_multiplier, requantize
from compresskit.quantization.linear import (
    QTensor,
    calculate_qparams,
    dequantize,
    fake_quantize,
    pack_bits,
    qrange,
    quantize,
    quantize_tensor,
    tensor_range,
    unpack_bits,
)
from compresskit.quantization.nonlinear import (
    kmeans_dequantize,
    kmeans_quantize,
    power_of_two_decode,
    power_of_two_encode,
    power_of_two_quantize,
)
from compresskit.quantization.ptq import collect_activations, fake_quantize_activations, quantize_weights, weight_bytes, weights

__all__ = [
    "HalfPrecision",
    "IntegerLinear",
    "IntegerMLP",
    "QTensor",
    "activation_ranges",
    "calculate_qparams",
    "calibrate",
    "collect_activations",
    "dequantize",
    "entropy_range",
    "entropy_threshold",
    "fake_quantize",
    "fake_quantize_activations",
    "fixed_point_decode",
    "fixed_point_encode",
    "fixed_point_range",
    "float_format",
    "kmeans_dequantize",
    "kmeans_quantize",
    "minmax_range",
    "moving_average_range",
    "pack_bits",
    "percentile_range",
    "power_of_two_decode",
    "power_of_two_encode",
    "power_of_two_quantize",
    "qrange",
    "quantize",
    "quantize_multiplier",
    "quantize_tensor",
    "quantize_weights",
    "requantize",
    "round_trip",
    "tensor_range",
    "unpack_bits",
    "weight_bytes",
    "weights",
]
