"""Quantization-aware training (QAT): train with the rounding in the forward pass.

Post-training quantization (PTQ) rounds a trained model's weights and activations once; at
4 bits and below the rounding error is large and nothing corrects it. QAT [1] puts *fake
quantization* (quantize, then dequantize, staying in float) into the forward pass while
training, so the weights learn to work on the grid::

    x_hat = scale * (clamp(round(x / scale) + zero_point, quant_min, quant_max) - zero_point)   # Eq. (1)-(3) in [1]

``round`` has zero gradient almost everywhere, so training could not move anything. The
straight-through estimator (STE) [2] treats it as the identity in the backward pass, except
where the value was clipped (clamped to the grid's ends), where the gradient is zero::

    d x_hat / d x = 1  if quant_min <= round(x / scale) + zero_point <= quant_max,  else 0    # STE [2], as in [1]

Here:

* weights: symmetric, one scale per output channel (``per_channel=True``) or per tensor,
  on the narrow grid ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` (zero point 0), the range taken from
  the current weights at every forward pass. The narrow grid is symmetric, so 2 bits gives
  the ternary weights {-s, 0, s}; 1 bit would leave only 0, so weights take 2 to 8 bits.
* activations (the input of every Linear / Conv2d layer), on an unsigned affine grid
  ``[0, 2^b - 1]``, 1 to 8 bits, with either

  - ``ranges="observed"``: min and max tracked by an exponential moving average during
    training, ``m <- m + c (m_batch - m)`` with c = 0.01 (section 3.1 of [1]; PyTorch's
    ``MovingAverageMinMaxObserver``), frozen in eval mode; or
  - ``ranges="learned"``: LSQ [3], a step size ``s`` learned by gradient descent with zero
    point 0 (a signed grid ``[-2^(b-1), 2^(b-1) - 1]`` when the first batch holds negative
    values), initialised to ``2 mean|x| / sqrt(Q_P)`` and its gradient scaled by
    ``g = 1 / sqrt(N Q_P)`` (N features per sample)::

        x_hat = clamp(round(x / s), -Q_N, Q_P) * s                                       # Eqs. (1)-(2) in [3]
        d x_hat / d s = -x/s + round(x/s) inside, -Q_N or Q_P outside                     # Eq. (3) in [3]

At most 8 bits: ONNX's QuantizeLinear and the int8 kernels that run the exported model hold
8 bits (see :mod:`compresskit.training.export`), and above 8 bits fake quantization is
indistinguishable from float on these models.

:func:`ptq` gives the post-training model in this same form (weights rounded once, activation
ranges by min-max on a calibration batch), so PTQ and QAT are compared like for like.
The maths of the grid is :mod:`compresskit.quantization`'s (``calculate_qparams``,
``fake_quantize``, ``tensor_range``), equal to PyTorch's; this module adds the gradients.

References
----------
[1] B. Jacob, S. Kligys, B. Chen, M. Zhu, M. Tang, A. Howard, H. Adam, D. Kalenichenko,
    "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
    Inference", CVPR 2018, arXiv:1712.05877.
[2] Y. Bengio, N. Léonard, A. Courville, "Estimating or Propagating Gradients Through
    Stochastic Neurons for Conditional Computation", 2013, arXiv:1308.3432.
[3] S. K. Esser, J. L. McKinstry, D. Bablani, R. Appuswamy, D. S. Modha, "Learned Step Size
    Quantization", ICLR 2020, arXiv:1902.08153.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from compresskit._validation import check_choice, check_int, check_module, check_real, check_tensor, check_type
from compresskit.models import copy_model
from compresskit.quantization import calculate_qparams, fake_quantize, tensor_range

__all__ = [
    "ActivationFakeQuantize",
    "QATConv2d",
    "QATLinear",
    "WeightFakeQuantize",
    "fake_quantize_ste",
    "lsq_fake_quantize",
    "prepare_qat",
    "ptq",
    "qat_to_float",
    "weight_qrange",
]

WEIGHT_BITS = (2, 8)
ACT_BITS = (1, 8)
RANGES = ("observed", "learned")
AVERAGING_CONSTANT = 0.01  # PyTorch's MovingAverageMinMaxObserver default
EPS = torch.finfo(torch.float32).eps


# --- the pure functions: fake quantization with its gradient ----------------------------------

class _StraightThrough(torch.autograd.Function):
    """Forward: the fake-quantized value, already computed. Backward: the clipped STE [2]."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, x_hat: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inside)
        return x_hat.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None  # STE [2]: the identity where not clipped, 0 where clipped


def fake_quantize_ste(
    x: torch.Tensor,
    scale: torch.Tensor | float,
    zero_point: torch.Tensor | int,
    quant_min: int,
    quant_max: int,
    axis: int | None = None,
) -> torch.Tensor:
    """Fake quantization with the straight-through estimator: the value of
    :func:`compresskit.quantization.fake_quantize`, and a gradient of 1 where ``x`` fell on the
    grid and 0 where it was clipped. Equal, value and gradient, to
    ``torch.fake_quantize_per_tensor_affine`` (``axis=None``) and
    ``torch.fake_quantize_per_channel_affine``. ``scale`` and ``zero_point`` get no gradient."""
    check_tensor("x", x, floating=True, finite=True, nonempty=False)
    x_hat = fake_quantize(x.detach(), scale, zero_point, quant_min, quant_max, axis)  # Eq. (1)-(3) in [1]; checks every argument
    shape = [1] * x.dim()
    if axis is not None:
        shape[axis % x.dim()] = -1
    inv_scale = (1.0 / torch.as_tensor(scale, dtype=torch.float32, device=x.device)).reshape(shape)
    q = torch.round(x.detach() * inv_scale) + torch.as_tensor(zero_point, device=x.device).reshape(shape)  # before the clamp
    return _StraightThrough.apply(x, x_hat.to(x.dtype), (q >= quant_min) & (q <= quant_max))


def _scale_gradient(step: torch.Tensor, g: float) -> torch.Tensor:
    """``step`` in the forward pass, its gradient multiplied by ``g`` (LSQ's gradient scale, [3])."""
    return (step - step * g).detach() + step * g


def _round_ste(v: torch.Tensor) -> torch.Tensor:
    """``round(v)`` forward, identity backward: the STE [2]."""
    return v + (torch.round(v) - v).detach()


def lsq_fake_quantize(x: torch.Tensor, step: torch.Tensor, quant_min: int, quant_max: int, grad_scale: float = 1.0) -> torch.Tensor:
    """LSQ [3]: ``round(clamp(x / s, quant_min, quant_max)) * s`` with a learnable step ``s``
    (a tensor of one element, zero point 0) whose gradient is Eq. (3) of [3] times ``grad_scale``.
    Equal, value and gradients, to ``torch._fake_quantize_learnable_per_tensor_affine`` with
    zero point 0 and ``grad_factor=grad_scale``. As in PyTorch, a value counts as clipped when
    ``round(x / s)`` is off the grid; Eq. (3) of [3] tests ``x / s`` itself, which differs only
    within half a step of the grid's ends (there the paper's gradient in ``s`` is ``Q_P``, PyTorch's
    and ours ``round(x/s) - x/s``)."""
    check_tensor("x", x, floating=True, finite=True, nonempty=False)
    check_tensor("step", step, floating=True, finite=True)
    if step.numel() != 1 or float(step.detach()) <= 0:
        raise ValueError(f"`step` must be one positive number; got {step.detach().flatten()[:8].tolist()}")
    quant_min = check_int("quant_min", quant_min, None, 0)
    quant_max = check_int("quant_max", quant_max, 1)
    grad_scale = check_real("grad_scale", grad_scale, 0.0, low_open=True)
    s = _scale_gradient(step.reshape(()), grad_scale)
    v = torch.clamp(_round_ste(x * (1.0 / s)), quant_min, quant_max)  # Eq. (1) in [3], rounded before the clamp
    return v * s  # Eq. (2) in [3]; its gradient in s is Eq. (3)


def weight_qrange(bits: int) -> tuple[int, int]:
    """The narrow symmetric grid of ``bits``-bit weights: ``(-(2^(b-1) - 1), 2^(b-1) - 1)``."""
    bits = _check_bits("weight_bits", bits, WEIGHT_BITS, "a symmetric grid of 1 bit holds only 0")
    return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1


def _check_bits(name: str, bits: Any, bounds: tuple[int, int], why: str) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"`{name}` must be an integer; got {type(bits).__name__} {bits!r}")
    if not bounds[0] <= bits <= bounds[1]:
        raise ValueError(f"`{name}` must be an integer in [{bounds[0]}, {bounds[1]}] ({why}); got {bits}")
    return int(bits)


# --- the modules: quantizers and the layers that hold them -------------------------------------

class WeightFakeQuantize(nn.Module):
    """Symmetric fake quantization of a weight on the narrow grid, its range taken at every call."""

    def __init__(self, bits: int = 8, per_channel: bool = True) -> None:
        super().__init__()
        bits = _check_bits("bits", bits, WEIGHT_BITS, "a symmetric grid of 1 bit holds only 0")
        check_type("per_channel", per_channel, bool)
        self.quant_min, self.quant_max = weight_qrange(bits)
        self.bits = bits
        self.per_channel = per_channel

    def qparams(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, zero_point)`` of ``weight``: one per output channel (axis 0), or one."""
        min_val, max_val = tensor_range(weight.detach(), axis=0 if self.per_channel else None)
        return calculate_qparams(min_val, max_val, self.quant_min, self.quant_max, "symmetric")

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        check_tensor("weight", weight, floating=True, finite=True)
        scale, zero_point = self.qparams(weight)
        return fake_quantize_ste(weight, scale, zero_point, self.quant_min, self.quant_max, 0 if self.per_channel else None)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, per_channel={self.per_channel}, grid=[{self.quant_min}, {self.quant_max}]"


class ActivationFakeQuantize(nn.Module):
    """Fake quantization of activations, ranges ``"observed"`` (moving-average min-max, frozen in
    eval mode) or ``"learned"`` (LSQ [3]). The first training batch sets the range; a model never
    trained nor calibrated has none, and refuses to run in eval mode (see :func:`ptq`)."""

    def __init__(self, bits: int = 8, ranges: str = "observed", averaging_constant: float = AVERAGING_CONSTANT) -> None:
        super().__init__()
        self.bits = _check_bits("bits", bits, ACT_BITS, "ONNX's QuantizeLinear holds at most 8 bits")
        self.ranges = check_choice("ranges", ranges, RANGES)
        self.averaging_constant = check_real("averaging_constant", averaging_constant, 0.0, 1.0, low_open=True)
        self.register_buffer("min_val", torch.tensor(0.0))
        self.register_buffer("max_val", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("signed", torch.tensor(False))
        self.step = nn.Parameter(torch.tensor(1.0)) if ranges == "learned" else None

    @property
    def qrange(self) -> tuple[int, int]:
        """``(quant_min, quant_max)``: unsigned ``[0, 2^b - 1]``, or signed for LSQ on signed data."""
        if bool(self.signed):
            return -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        return 0, 2**self.bits - 1

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current ``(scale, zero_point)``."""
        if self.ranges == "learned":
            return self.step.detach().clamp_min(EPS).reshape(()), torch.tensor(0)
        return calculate_qparams(self.min_val, self.max_val, *self.qrange, "affine")

    @torch.no_grad()
    def _observe(self, x: torch.Tensor) -> None:
        lo, hi = x.min(), x.max()
        if not bool(self.initialized):
            self.min_val.copy_(lo), self.max_val.copy_(hi)  # the first batch sets the range
            if self.step is not None:
                self.signed.fill_(bool(lo < 0))
                self.step.copy_(2 * x.abs().mean() / math.sqrt(self.qrange[1]))  # LSQ's initial step, [3]
                self.step.clamp_(min=EPS)
            self.initialized.fill_(True)
        else:
            self.min_val += self.averaging_constant * (lo - self.min_val)  # moving average, section 3.1 of [1]
            self.max_val += self.averaging_constant * (hi - self.max_val)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, floating=True, finite=True)  # NaN would poison the range: refused before it is seen
        if self.training and (self.ranges == "observed" or not bool(self.initialized)):
            self._observe(x)
        if not bool(self.initialized):
            raise RuntimeError("activation ranges are unknown: train the model (fit_compressed) or calibrate it (ptq) "
                               "before evaluating it; got a model in eval mode that has seen no batch")
        quant_min, quant_max = self.qrange
        if self.ranges == "learned":
            g = 1.0 / math.sqrt(x[0].numel() * quant_max)  # LSQ's gradient scale, section 2.2 of [3]
            return lsq_fake_quantize(x, self.step.clamp_min(EPS), quant_min, quant_max, g)
        scale, zero_point = self.qparams()
        return fake_quantize_ste(x, scale, zero_point, quant_min, quant_max)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, ranges={self.ranges!r}"


class _QATMixin:
    """Weight and input fake quantizers of a Linear / Conv2d layer (``act_quant`` None: float inputs)."""

    weight_quant: WeightFakeQuantize
    act_quant: ActivationFakeQuantize | None

    def _quantizers(self, weight_bits: int, act_bits: int | None, per_channel: bool, ranges: str) -> None:
        weight_bits = _check_bits("weight_bits", weight_bits, WEIGHT_BITS, "a symmetric grid of 1 bit holds only 0")
        if act_bits is not None:
            act_bits = _check_bits("act_bits", act_bits, ACT_BITS, "ONNX's QuantizeLinear holds at most 8 bits")
        check_type("per_channel", per_channel, bool)
        check_choice("ranges", ranges, RANGES)
        self.weight_quant = WeightFakeQuantize(weight_bits, per_channel)
        self.act_quant = None if act_bits is None else ActivationFakeQuantize(act_bits, ranges)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.act_quant is None else self.act_quant(x)

    @classmethod
    def from_float(cls, layer: nn.Module, **quant: Any) -> nn.Module:
        """The QAT version of ``layer`` with its weights, bias and pruning mask (if any)."""
        qat = _empty_like(cls, layer, **quant)
        weight = layer.weight_orig if hasattr(layer, "weight_orig") else layer.weight
        with torch.no_grad():
            qat.weight.copy_(weight)
            if layer.bias is not None:
                qat.bias.copy_(layer.bias)
        if isinstance(getattr(layer, "weight_mask", None), torch.Tensor):  # keep a pruned layer's zeros
            prune.custom_from_mask(qat, "weight", layer.weight_mask.detach().clone())
        return qat


class QATLinear(_QATMixin, nn.Linear):
    """``nn.Linear`` with fake-quantized weights and inputs (a subclass, so pruning finds it)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, weight_bits: int = 8,
                 act_bits: int | None = 8, per_channel: bool = True, ranges: str = "observed") -> None:
        super().__init__(in_features, out_features, bias)
        self._quantizers(weight_bits, act_bits, per_channel, ranges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, floating=True)  # checked before the observer sees the batch
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"`x` must have {self.in_features} features in its last dimension; got shape {tuple(x.shape)}")
        return nn.functional.linear(self._inputs(x), self.weight_quant(self.weight), self.bias)


class QATConv2d(_QATMixin, nn.Conv2d):
    """``nn.Conv2d`` with fake-quantized weights and inputs. A BatchNorm after it is not folded in."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, *, weight_bits: int = 8,
                 act_bits: int | None = 8, per_channel: bool = True, ranges: str = "observed", **conv: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, **conv)
        self._quantizers(weight_bits, act_bits, per_channel, ranges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, floating=True)  # checked before the observer sees the batch
        if x.dim() not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(f"`x` must be (N, {self.in_channels}, H, W) or ({self.in_channels}, H, W); got shape {tuple(x.shape)}")
        return self._conv_forward(self._inputs(x), self.weight_quant(self.weight), self.bias)


QAT_LAYERS = {nn.Linear: QATLinear, nn.Conv2d: QATConv2d}


def _empty_like(cls: type, layer: nn.Module, **quant: Any) -> nn.Module:
    if cls is QATLinear:
        return QATLinear(layer.in_features, layer.out_features, layer.bias is not None, **quant)
    return QATConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                     dilation=layer.dilation, groups=layer.groups, bias=layer.bias is not None,
                     padding_mode=layer.padding_mode, **quant)


# --- whole models -----------------------------------------------------------------------------

def _check_float_model(model: Any) -> nn.Module:
    """A model with at least one plain Linear / Conv2d, finite parameters, not already prepared."""
    check_module("model", model)
    if any(isinstance(m, _QATMixin) for m in model.modules()):
        raise ValueError(f"`model` must be a float model; got {type(model).__name__} that already holds QAT layers "
                         "(prepare_qat was applied to it): prepare the float model once")
    if not any(type(m) in QAT_LAYERS for m in model.modules()):
        raise ValueError(f"`model` must hold at least one nn.Linear or nn.Conv2d to quantize; got {type(model).__name__} with none")
    for name, p in model.named_parameters():
        check_tensor(f"model.{name}", p, finite=True)
    return model


def _replace_layers(module: nn.Module, quant: dict[str, Any]) -> None:
    for name, child in module.named_children():
        if type(child) in QAT_LAYERS:
            setattr(module, name, QAT_LAYERS[type(child)].from_float(child, **quant))
        else:
            _replace_layers(child, quant)


def prepare_qat(
    model: nn.Module,
    *,
    weight_bits: int = 8,
    act_bits: int | None = 8,
    per_channel: bool = True,
    ranges: str = "observed",
) -> nn.Module:
    """A NEW model, ``model`` with every ``nn.Linear`` / ``nn.Conv2d`` replaced by its QAT version
    (:class:`QATLinear`, :class:`QATConv2d`): weights fake-quantized to ``weight_bits`` (2 to 8,
    symmetric, per output channel or per tensor), the layers' inputs to ``act_bits`` (1 to 8,
    ``ranges`` "observed" or "learned"; ``None`` leaves activations in float). Train it with
    :func:`compresskit.training.fit_compressed` or :func:`compresskit.train.fit`.

    ``model`` itself is not changed. A pruned layer keeps its mask (its zeros stay zero).
    Other layers (Conv1d, BatchNorm, ...) stay in float.
    """
    _check_float_model(model)
    weight_bits = _check_bits("weight_bits", weight_bits, WEIGHT_BITS, "a symmetric grid of 1 bit holds only 0")
    if act_bits is not None:
        act_bits = _check_bits("act_bits", act_bits, ACT_BITS, "ONNX's QuantizeLinear holds at most 8 bits")
    check_type("per_channel", per_channel, bool)
    check_choice("ranges", ranges, RANGES)
    qat = copy_model(model)
    _replace_layers(qat, dict(weight_bits=weight_bits, act_bits=act_bits, per_channel=per_channel, ranges=ranges))
    return qat


def ptq(model: nn.Module, weight_bits: int, act_bits: int | None, calibration: torch.Tensor, *, per_channel: bool = True) -> nn.Module:
    """Post-training quantization in the same form as QAT: a NEW model, in eval mode, whose weights
    are rounded (symmetric, ``weight_bits``) and whose activation ranges are the min and max of
    ``calibration`` (a batch of inputs), frozen. Only the activation quantizers see the batch (a
    BatchNorm's statistics are left alone). ``model`` itself is not changed.
    """
    check_tensor("calibration", calibration, floating=True, finite=True)
    qat = prepare_qat(model, weight_bits=weight_bits, act_bits=act_bits, per_channel=per_channel, ranges="observed")
    qat.eval()
    observers = [m for m in qat.modules() if isinstance(m, ActivationFakeQuantize)]
    for m in observers:
        m.train()  # observe the first (only) batch: its min and max become the range
    try:
        with torch.no_grad():
            qat(calibration)
    except (ValueError, RuntimeError) as exc:  # the copy is thrown away; the caller's model never saw the batch
        raise ValueError(f"`calibration` must be a batch of the model's inputs; got shape {tuple(calibration.shape)}: "
                         f"{str(exc).splitlines()[0]}") from None
    return qat.eval()


def qat_to_float(qat_model: nn.Module) -> nn.Module:
    """A plain float copy of a QAT model: each QAT layer back to ``nn.Linear`` / ``nn.Conv2d`` holding
    its fake-quantized weights (the values on the grid). Activations are no longer quantized.
    A pruned layer's mask is made permanent (its zeros are in the weight)."""
    check_module("qat_model", qat_model)
    if not any(isinstance(m, _QATMixin) for m in qat_model.modules()):
        raise ValueError(f"`qat_model` must hold QAT layers (see prepare_qat); got {type(qat_model).__name__} with none")
    plain = copy_model(qat_model)
    _to_float(plain)
    return plain


def _to_float(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, _QATMixin):
            base = nn.Linear if isinstance(child, nn.Linear) else nn.Conv2d
            with torch.no_grad():
                w_hat = child.weight_quant(child.weight.detach())
            layer = _float_like(base, child)
            with torch.no_grad():
                layer.weight.copy_(w_hat)
                if child.bias is not None:
                    layer.bias.copy_(child.bias)
            setattr(module, name, layer)
        else:
            _to_float(child)


def _float_like(base: type, layer: nn.Module) -> nn.Module:
    if base is nn.Linear:
        return nn.Linear(layer.in_features, layer.out_features, layer.bias is not None)
    return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                     dilation=layer.dilation, groups=layer.groups, bias=layer.bias is not None, padding_mode=layer.padding_mode)
