"""Export a quantization-aware-trained model to ONNX, and run it in ONNX Runtime.

The file is in ONNX's QDQ form [1], the one ONNX Runtime's own quantizer writes:

* weights are stored as int8 integers ``q`` (an int8 initializer, a quarter of the float32
  bytes) with a per-output-channel ``scale`` and zero point 0, followed by a
  ``DequantizeLinear`` node: ``w_hat = scale * (q - 0)``, the very weights the QAT model used;
* the input of every Linear / Conv2d layer passes through ``QuantizeLinear`` then
  ``DequantizeLinear`` with the range the QAT model observed or learned. ONNX's
  QuantizeLinear saturates to the whole 8-bit type (uint8 [0, 255] or int8 [-128, 127]), so a
  grid of fewer bits is first clipped to its ends by a ``Clip`` node::

      Clip(x, (quant_min - z) s, (quant_max - z) s)  ->  QuantizeLinear  ->  DequantizeLinear   # Eq. (1)-(3) in [2]

  which gives the same values as fake quantization on the b-bit grid (a clipped value lands
  exactly on the grid's end).
* biases stay float32. ONNX Runtime's quantizer stores them as int32 with scale
  ``s_x s_w``; that adds a rounding our QAT model does not have, and biases are a few hundred
  numbers. Keeping them float keeps the file computing what the QAT model computes.

Why QDQ nodes rather than float weights that are already rounded: the file is then really
smaller (int8 weights), it says which tensors are quantized and how, and ONNX Runtime can fuse
each DequantizeLinear -> MatMul -> QuantizeLinear group into an integer kernel where the CPU has
one (whether it does is up to ONNX Runtime and the hardware; this module claims no speed).

The nodes are written with ``torch.onnx.ops.symbolic`` (public since torch 2.8), not through
``torch.ops.quantized_decomposed``, whose module ``torch.ao.quantization.fx._decomposed`` torch
has deprecated for removal; run eagerly (outside an export) the layer computes the same
QuantizeLinear / DequantizeLinear with plain ops.

Running it (:func:`onnx_predict`). By default ONNX Runtime evaluates the graph as written
(``optimize=False``: no graph rewrites), which computes what the QAT model computes: logits
agree to 1e-4 and predictions exactly on the digits test set (tests/test_qat.py; ONNX Runtime
divides by the scale where PyTorch multiplies by its inverse, which could only flip a value
lying within float32 rounding of a half-step). With ``optimize=True`` ONNX Runtime rewrites the
graph for speed: it quantizes float biases to int32 (one more rounding) and fuses
DequantizeLinear -> Gemm -> QuantizeLinear into an integer ``QGemm``. On x86 CPUs without VNNI
that kernel multiplies uint8 activations by int8 weights with AVX2's ``vpmaddubsw``, which adds
pairs of products into int16 and saturates when 255 * 127 * 2 > 32767: with weights on all 8
bits, results can differ (ONNX Runtime's own quantizer has ``reduce_range`` for this; weights of
7 bits or fewer cannot overflow). Whether that happens depends on the CPU, so it is shown and
judged in the chapter, never asserted.

References
----------
[1] ONNX Runtime, "Quantize ONNX models: QDQ format",
    https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html
[2] B. Jacob et al., "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", CVPR 2018, arXiv:1712.05877.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compresskit._validation import _show, check_array, check_module, check_tensor, check_type
from compresskit.models import copy_model
from compresskit.quantization import quantize
from compresskit.quantization.ort import export_onnx as _export_bytes
from compresskit.quantization.ort import ort_logits
from compresskit.training.qat import _QATMixin

__all__ = ["export_onnx", "onnx_predict"]


_HAS_SYMBOLIC = hasattr(getattr(torch.onnx, "ops", None), "symbolic")
if not _HAS_SYMBOLIC:  # torch 2.6 / 2.7: registered before any export, so that the exporter finds their translations
    import torch.ao.quantization.fx._decomposed  # noqa: F401


def _legacy_ops() -> object:
    """torch.ops.quantized_decomposed, for torch before 2.8 only (deprecated in later releases)."""
    return torch.ops.quantized_decomposed


def _quantize_linear(x: torch.Tensor, scale: float, zero_point: int, dtype: torch.dtype) -> torch.Tensor:
    """ONNX's QuantizeLinear, ``saturate(round(x / scale) + zero_point)`` (halves to even), per tensor.

    While torch.onnx.export traces the model it is written as the ONNX node itself
    (``torch.onnx.ops.symbolic``, a public API); run eagerly it computes the same with plain ops.
    """
    info = torch.iinfo(dtype)
    zp = torch.tensor(zero_point, dtype=dtype)
    if torch.onnx.is_in_onnx_export() and not _HAS_SYMBOLIC:  # torch 2.6 / 2.7, before torch.onnx.ops
        return _legacy_ops().quantize_per_tensor(x, scale, zero_point, info.min, info.max, dtype)
    if torch.onnx.is_in_onnx_export():
        return torch.onnx.ops.symbolic("QuantizeLinear", (x, torch.tensor(scale, dtype=torch.float32), zp), dtype=dtype, shape=x.shape, version=13)
    return torch.clamp(torch.round(x / scale) + zero_point, info.min, info.max).to(dtype)


def _dequantize_linear(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int | None = None) -> torch.Tensor:
    """ONNX's DequantizeLinear, ``(q - zero_point) * scale``, per tensor or along ``axis``, to float32."""
    if torch.onnx.is_in_onnx_export() and not _HAS_SYMBOLIC:  # torch 2.6 / 2.7, before torch.onnx.ops
        ops, info = _legacy_ops(), torch.iinfo(q.dtype)
        if axis is None:
            return ops.dequantize_per_tensor(q, float(scale), int(zero_point), info.min, info.max, q.dtype)
        return ops.dequantize_per_channel(q, scale, zero_point.to(torch.int64), axis, info.min, info.max, q.dtype)
    if torch.onnx.is_in_onnx_export():
        attrs = {} if axis is None else {"axis": axis}
        return torch.onnx.ops.symbolic("DequantizeLinear", (q, scale, zero_point), attrs, dtype=torch.float32, shape=q.shape, version=13)
    shape = [-1 if d == axis else 1 for d in range(q.dim())] if axis is not None else []
    return (q.to(torch.float32) - zero_point.to(torch.float32).reshape(shape)) * scale.reshape(shape)


class _QDQLayer(nn.Module):
    """A QAT layer in export form: int8 weights + DequantizeLinear, Clip + Q/DQ on the input."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.conv = None if isinstance(layer, nn.Linear) else dict(stride=layer.stride, padding=layer.padding,
                                                                   dilation=layer.dilation, groups=layer.groups)
        if self.conv is not None and layer.padding_mode != "zeros":
            raise ValueError(f"`qat_model` must use zero padding to be exported; got padding_mode={layer.padding_mode!r}")
        w = (layer.weight_orig * layer.weight_mask if hasattr(layer, "weight_orig") else layer.weight).detach()
        wq = layer.weight_quant
        scale, zero_point = wq.qparams(w)
        channels = w.shape[0]
        self.register_buffer("weight_q", quantize(w, scale, zero_point, wq.quant_min, wq.quant_max, 0 if wq.per_channel else None).to(torch.int8))
        self.register_buffer("weight_scale", scale.expand(channels).clone())  # per tensor: the one scale, per channel
        self.register_buffer("weight_zero_point", torch.zeros(channels, dtype=torch.int8))
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())
        self.act = None if layer.act_quant is None else self._activation(layer.act_quant)

    @staticmethod
    def _activation(quant: nn.Module) -> tuple[float, int, float, float, int, int, torch.dtype] | None:
        if not bool(quant.initialized):
            raise ValueError("`qat_model` must have activation ranges to export: train it (fit_compressed) or calibrate it "
                             "(ptq) first; got a model that has seen no batch")
        scale, zero_point = quant.qparams()
        s, z = float(scale), int(zero_point)
        quant_min, quant_max = quant.qrange
        dtype = torch.uint8 if quant_min >= 0 else torch.int8
        full = (0, 255) if dtype == torch.uint8 else (-128, 127)
        return s, z, (quant_min - z) * s, (quant_max - z) * s, *full, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act is not None:
            s, z, low, high, full_min, full_max, dtype = self.act
            if (low, high) != ((full_min - z) * s, (full_max - z) * s):
                x = torch.clamp(x, low, high)  # a grid of fewer than 8 bits: Clip to its ends first
            x = _dequantize_linear(_quantize_linear(x, s, z, dtype), torch.tensor(s, dtype=torch.float32), torch.tensor(z, dtype=dtype))
        w = _dequantize_linear(self.weight_q, self.weight_scale, self.weight_zero_point, axis=0)
        if self.conv is None:
            return nn.functional.linear(x, w, self.bias)
        return nn.functional.conv2d(x, w, self.bias, **self.conv)


def _export_form(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, _QATMixin):
            setattr(module, name, _QDQLayer(child))
        else:
            _export_form(child)


def _check_path(name: str, path: object) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a str or a path; got {type(path).__name__} {_show(path)}")
    return Path(path)


def export_onnx(qat_model: nn.Module, path: str | os.PathLike, example: torch.Tensor) -> Path:
    """Write ``qat_model`` (a model from :func:`~compresskit.training.prepare_qat` or
    :func:`~compresskit.training.ptq`, trained or calibrated) to ``path`` as an ONNX model with
    int8 weights and QuantizeLinear / DequantizeLinear nodes; returns the path.

    ``example`` is one batch of inputs (its batch size is left dynamic). The input is named
    ``x`` and the output ``logits``. ``qat_model`` is not changed (it is exported from a copy).
    """
    check_module("qat_model", qat_model)
    if not any(isinstance(m, _QATMixin) for m in qat_model.modules()):
        raise ValueError(f"`qat_model` must hold QAT layers (see prepare_qat); got {type(qat_model).__name__} with none")
    check_tensor("example", example, floating=True, finite=True)
    path = _check_path("path", path)
    if not path.parent.is_dir():
        raise ValueError(f"`path` must be in an existing directory; got {str(path)!r}, whose directory does not exist")
    form = copy_model(qat_model)
    _export_form(form)
    form.eval()
    try:  # one forward pass first: a wrong example would otherwise fail deep inside torch.export
        with torch.no_grad():
            form(example)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"`example` must be a batch of the model's inputs; got shape {tuple(example.shape)}: "
                         f"{str(exc).splitlines()[0]}") from None
    path.write_bytes(_without_metadata(_export_bytes(form, example)))
    return path


def _without_metadata(model: bytes) -> bytes:
    """The exporter's notes (source lines, original names) dropped: they were two thirds of the file."""
    import onnx

    proto = onnx.load_from_string(model)
    for item in [*proto.graph.node, *proto.graph.value_info, *proto.graph.initializer, *proto.graph.input, *proto.graph.output]:
        del item.metadata_props[:]
        item.doc_string = ""
    del proto.metadata_props[:]
    return proto.SerializeToString()


def _session(model: bytes, optimize: bool) -> object:
    """An ONNX Runtime CPU session; graph rewrites only with ``optimize``; no spinning threads (see ort_session)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnx_predict(path: str | os.PathLike, X: torch.Tensor | np.ndarray, *, optimize: bool = False) -> np.ndarray:
    """The logits (float32, (N, classes)) that ONNX Runtime computes for inputs ``X`` with the
    model at ``path``; ``.argmax(axis=1)`` gives the predicted classes. NaN or inf input is refused.

    ``optimize=False`` runs the graph as written (what the QAT model computes); ``optimize=True``
    lets ONNX Runtime fuse it into integer kernels, whose results depend on the CPU (module docstring).
    """
    path = _check_path("path", path)
    check_type("optimize", optimize, bool)
    if not path.is_file():
        raise ValueError(f"`path` must be an ONNX file; got {str(path)!r}, which does not exist")
    if isinstance(X, torch.Tensor):
        check_tensor("X", X, floating=True, finite=True)
    else:
        check_array("X", X)
    try:
        session = _session(path.read_bytes(), optimize)
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf types
        raise ValueError(f"`path` must be an ONNX model; ONNX Runtime could not load {str(path)!r}: {exc}") from exc
    expected = session.get_inputs()[0].shape  # e.g. ['batch', 64]: named dimensions are free
    shape = tuple(X.shape)
    if len(shape) != len(expected) or any(isinstance(e, int) and e != s for e, s in zip(expected, shape)):
        want = "(" + ", ".join(str(e) if isinstance(e, int) else "N" for e in expected) + ")"
        raise ValueError(f"`X` must have the shape the model at `path` takes, {want}; got {shape}")
    return ort_logits(session, X)
