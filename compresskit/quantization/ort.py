"""A real int8 speed-up: export to ONNX and run in ONNX Runtime, in float32 and in int8.

Fake quantization (and our integer-only reference in :mod:`.integer`) shows what int8 does
to accuracy, but runs no faster: PyTorch on a CPU has no int8 matrix multiply for us to
call (``torch.ao.quantization`` had one, and is deprecated: it warns that it will be
removed). ONNX Runtime [1] has int8 kernels (VNNI / AVX2 ``u8s8`` GEMMs in MLAS), so:

1. :func:`export_onnx` writes the float model as ONNX with ``torch.onnx.export``.
2. :func:`quantize_onnx` runs ONNX Runtime's static quantizer, which calibrates activation
   ranges (min-max) on our calibration batch and writes a QDQ model: QuantizeLinear /
   DequantizeLinear pairs around each MatMul, with the same scheme as our integer MLP
   (int8 weights, symmetric per output channel; uint8 activations, affine per tensor).
   At load time ONNX Runtime fuses the pairs around each Gemm into an integer kernel (QGemm).
3. :func:`ort_session` / :func:`ort_predict` run either model.

The ``onnx`` / ``onnxruntime`` packages are imported inside the functions, so
``import compresskit`` works without them.

References
----------
[1] ONNX Runtime, "Quantize ONNX models", https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html
[2] B. Jacob et al., "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", CVPR 2018, arXiv:1712.05877.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compresskit._validation import check_array, check_int, check_module, check_tensor

INPUT, OUTPUT = "x", "logits"


@contextlib.contextmanager
def _quiet(logger_name: str | None = None):
    """Raise a logger's level (the root logger's by default) to ERROR for the duration, then restore it."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_onnx(model: nn.Module, example: torch.Tensor) -> bytes:
    """The serialized ONNX model of ``model`` (eval mode), with a dynamic batch dimension."""
    check_module("model", model)
    example = check_tensor("example", example, floating=True)
    was_training = model.training
    try:
        model.eval()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet("torch.onnx"):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                dynamo=True,
                verbose=False,
            )
    finally:
        model.train(was_training)
    return program.model_proto.SerializeToString()


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol: one batch, then None."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT: batch}


def quantize_onnx(onnx_model: bytes, calibration_data: torch.Tensor) -> bytes:
    """ONNX Runtime's static int8 quantization of ``onnx_model``, calibrated on ``calibration_data``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not isinstance(onnx_model, (bytes, bytearray)):
        raise TypeError(f"`onnx_model` must be the bytes of an ONNX model; got {type(onnx_model).__name__}")
    data = check_tensor("calibration_data", calibration_data, floating=True, finite=True).numpy().astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(bytes(onnx_model))
        with _quiet():  # the quantizer logs a pre-processing hint on the root logger
            quantize_static(
                str(src),
                str(dst),
                _Reader([data]),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=CalibrationMethod.MinMax,
            )
        return dst.read_bytes()


def ort_session(onnx_model: bytes, threads: int | None = None, *, allow_spinning: bool = False) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU; ``threads`` intra-op threads (default: torch's).

    ONNX Runtime's worker threads spin-wait after each run by default, to answer the next
    request sooner. While they spin they occupy the cores, so anything timed right after
    (PyTorch, in an alternating comparison) runs slower and the ratio flatters ONNX Runtime:
    on a 2-core machine, torch's 2-thread float32 time doubled. Spinning is off unless asked for.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = check_int("threads", threads if threads is not None else torch.get_num_threads(), 1)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    options.log_severity_level = 3
    return ort.InferenceSession(bytes(onnx_model), options, providers=["CPUExecutionProvider"])


def ort_logits(session: Any, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """The session's float32 output for input ``x`` (finite: NaN input is refused, not classified)."""
    if not hasattr(session, "run"):
        raise TypeError(f"`session` must be an onnxruntime.InferenceSession (see ort_session); got {type(session).__name__}")
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
    x = check_array("x", x)
    return session.run([OUTPUT], {INPUT: x.astype(np.float32, copy=False)})[0]


def ort_predict(session: Any, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Predicted classes (int64) from the session's logits; NaN or inf input is refused."""
    return torch.from_numpy(ort_logits(session, x).argmax(axis=1))
