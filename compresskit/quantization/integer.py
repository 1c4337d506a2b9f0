"""Integer-only inference of an MLP: int8 weights, uint8 activations, int32 accumulation.

Jacob et al. [1] show that a quantized layer needs no floating point at inference time.
With ``r = S (q - Z)`` for the input ``x``, the weight ``w`` and the output ``y`` of a Linear
layer, ``y = x w^T + b`` becomes

    q_y = Z_y + M * (sum_k (q_x,k - Z_x) q_w,jk + q_b,j)                   # Eq. (4) in [1]
    M   = S_x S_w,j / S_y                                                   # Eq. (5) in [1]
    q_b,j = round(b_j / (S_x S_w,j)),  Z_w = 0                              # section 2.4 of [1]

The sum is exact in int32. ``M`` (one per output channel here, because weights are
quantized per channel and symmetrically, Z_w = 0) is a real number in (0, 1) in practice;
it is written ``M = M_0 2^-n`` with ``M_0`` in [0.5, 1) stored as a 31-bit integer, so that
multiplying by ``M`` is an integer multiplication and a rounding right shift::

    M = 2^-n M_0                                                            # Eq. (6) in [1]
    M_0_int = round(M_0 * 2^31),   q = (acc * M_0_int + 2^(30+n)) >> (31 + n)

ReLU is folded into the clamp: its output is ``q_y >= Z_y``. The last layer's output is
dequantized to give logits. :meth:`IntegerMLP.simulate` runs the same model in float with
fake quantization ("simulated quantization"); the two agree on almost every prediction.

References
----------
[1] B. Jacob et al., "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", CVPR 2018, arXiv:1712.05877.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from compresskit._validation import check_int, check_module, check_real, check_tensor, check_type
from compresskit.quantization.calibration import calibrate
from compresskit.quantization.linear import calculate_qparams, fake_quantize, quantize, quantize_tensor

ACT_MIN, ACT_MAX = 0, 255  # uint8 activations
W_MIN, W_MAX = -128, 127  # int8 weights


def quantize_multiplier(real_multiplier: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(multiplier, shift)`` int64 with ``real ~= multiplier * 2^-(31 + shift)``, multiplier in [2^30, 2^31)."""
    real = torch.as_tensor(real_multiplier, dtype=torch.float64)
    if not bool(torch.isfinite(real).all()) or bool((real <= 0).any()):
        raise ValueError(f"`real_multiplier` must be finite and > 0; got {real.flatten()[:8].tolist()}")
    mantissa, exponent = torch.frexp(real)  # real = mantissa * 2^exponent, mantissa in [0.5, 1)
    multiplier = torch.round(mantissa * 2**31).long()
    carry = multiplier == 2**31  # mantissa rounded up to 1.0
    multiplier = torch.where(carry, multiplier // 2, multiplier)
    shift = -(exponent.long() + carry.long())
    if bool((31 + shift < 1).any()) or bool((31 + shift > 62).any()):
        raise ValueError(f"`real_multiplier` must be in [2^-31, 2^30); got {real.flatten()[:8].tolist()}")
    return multiplier, shift


def requantize(acc: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor, zero_point: int, quant_min: int, quant_max: int) -> torch.Tensor:
    """int32 accumulators -> output integers: ``clamp(Z + round(acc * M), quant_min, quant_max)``.

    Integer arithmetic only: a 64-bit product and a rounding right shift (round half up).
    ``multiplier`` and ``shift`` are :func:`quantize_multiplier`'s (per tensor or one per
    output channel, the last dimension of ``acc``); ``acc`` must fit in int32, so that the
    product fits in int64.
    """
    acc = _check_integer_tensor("acc", acc, -(2**31), 2**31 - 1)
    multiplier = _check_integer_tensor("multiplier", multiplier, 0, 2**31 - 1)
    shift = _check_integer_tensor("shift", shift, -30, 31)  # total shift 31 + shift in [1, 62]
    for name, value in (("multiplier", multiplier), ("shift", shift)):
        if value.dim() > 1 or (value.dim() == 1 and value.numel() not in (1, acc.shape[-1] if acc.dim() else 1)):
            raise ValueError(f"`{name}` must be one number or one per output channel ({acc.shape[-1] if acc.dim() else 1}); got shape {tuple(value.shape)}")
    quant_min = check_int("quant_min", quant_min)
    quant_max = check_int("quant_max", quant_max, quant_min + 1)
    zero_point = check_int("zero_point", zero_point, quant_min, quant_max)
    total_shift = 31 + shift
    product = acc.to(torch.int64) * multiplier
    half = torch.bitwise_left_shift(torch.ones_like(total_shift), total_shift - 1)  # 2^(s-1): rounds half up
    rounded = torch.bitwise_right_shift(product + half, total_shift)  # acc * M_0 * 2^-(31+n), Eq. (6) in [1]
    return torch.clamp(rounded + zero_point, quant_min, quant_max)


def _check_integer_tensor(name: str, value: object, low: int, high: int) -> torch.Tensor:
    """An integer tensor (or int) with every value in [low, high]."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = torch.tensor(int(value))
    value = check_tensor(name, value, nonempty=False)
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"`{name}` must be an integer tensor; got dtype {value.dtype}")
    if value.numel() and (int(value.min()) < low or int(value.max()) > high):
        raise ValueError(f"`{name}` must hold integers in [{low}, {high}]; got values in [{int(value.min())}, {int(value.max())}]")
    return value


class IntegerLinear(nn.Module):
    """One Linear layer (optionally followed by ReLU) in integers.

    Buffers (``.to()`` moves them, ``state_dict()`` saves them): ``weight`` (out, in) int8,
    symmetric per output channel; ``weight_scale`` (out,) float32; ``bias`` (out,) int32 at
    scale ``S_x S_w``; ``multiplier`` and ``shift`` (out,) int64, Eq. (6). The activation
    grids' ``input_scale``, ``input_zero_point``, ``output_scale`` and ``output_zero_point``
    are Python numbers, written into the state dict as 0-d tensors, as torch's quantized
    ``Linear`` does with its ``scale`` and ``zero_point``.
    """

    QPARAMS = ("input_scale", "input_zero_point", "output_scale", "output_zero_point")

    def __init__(
        self,
        weight: torch.Tensor,
        weight_scale: torch.Tensor,
        bias: torch.Tensor,
        input_scale: float,
        input_zero_point: int,
        output_scale: float,
        output_zero_point: int,
        multiplier: torch.Tensor,
        shift: torch.Tensor,
        relu: bool,
    ) -> None:
        super().__init__()
        out_features = check_tensor("weight", weight, ndim=2).shape[0]
        for name, value, dtype in (("weight", weight, torch.int8), ("weight_scale", weight_scale, torch.float32), ("bias", bias, torch.int32),
                                   ("multiplier", multiplier, torch.int64), ("shift", shift, torch.int64)):
            check_tensor(name, value)
            if value.dtype != dtype:
                raise TypeError(f"`{name}` must have dtype {dtype}; got {value.dtype}")
            if name != "weight" and tuple(value.shape) != (out_features,):
                raise ValueError(f"`{name}` must have shape ({out_features},), one per output channel; got {tuple(value.shape)}")
            self.register_buffer(name, value)
        self.input_scale = check_real("input_scale", input_scale, 0.0, low_open=True)
        self.input_zero_point = check_int("input_zero_point", input_zero_point, ACT_MIN, ACT_MAX)
        self.output_scale = check_real("output_scale", output_scale, 0.0, low_open=True)
        self.output_zero_point = check_int("output_zero_point", output_zero_point, ACT_MIN, ACT_MAX)
        check_type("relu", relu, bool)
        self.relu = relu

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name in self.QPARAMS:
            value = getattr(self, name)
            destination[prefix + name] = torch.tensor(value, dtype=torch.float64 if isinstance(value, float) else torch.int64)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs) -> None:
        for name in self.QPARAMS:
            if prefix + name in state_dict:
                value = state_dict.pop(prefix + name)
                setattr(self, name, float(value) if name.endswith("scale") else int(value))
            elif strict:
                missing_keys.append(prefix + name)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        out_features, in_features = self.weight.shape
        return f"in_features={in_features}, out_features={out_features}, relu={self.relu}"

    @classmethod
    def from_float(cls, linear: nn.Linear, input_qparams: tuple[float, int], output_qparams: tuple[float, int], relu: bool) -> "IntegerLinear":
        check_type("linear", linear, nn.Linear)
        weight = check_tensor("linear.weight", linear.weight.detach(), finite=True)
        w = quantize_tensor(weight, bits=8, scheme="symmetric", axis=0)
        s_x, z_x = input_qparams
        s_y, z_y = output_qparams
        acc_scale = s_x * w.scale.double()
        bias = torch.zeros(linear.out_features) if linear.bias is None else check_tensor("linear.bias", linear.bias.detach(), finite=True)
        q_bias = torch.round(bias.double() / acc_scale).to(torch.int32)  # section 2.4 of [1]
        multiplier, shift = quantize_multiplier(acc_scale / s_y)  # Eq. (5) in [1]
        return cls(w.q, w.scale, q_bias, s_x, z_x, s_y, z_y, multiplier, shift, relu)

    def forward(self, q_x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, in) -> uint8 (B, out), integer arithmetic only."""
        acc = (q_x.to(torch.int32) - self.input_zero_point) @ self.weight.to(torch.int32).T + self.bias  # (B, out) int32, Eq. (4) in [1]
        low = self.output_zero_point if self.relu else ACT_MIN  # ReLU: real 0 is q = Z_y
        return requantize(acc, self.multiplier, self.shift, self.output_zero_point, low, ACT_MAX).to(torch.uint8)

    def simulate(self, x: torch.Tensor) -> torch.Tensor:
        """The same layer in float with fake quantization: dequantized weights, float bias."""
        w = self.weight.float() * self.weight_scale[:, None]
        b = self.bias.double() * (self.input_scale * self.weight_scale.double())
        y = x @ w.T + b.float()
        if self.relu:
            y = torch.relu(y)
        return fake_quantize(y, self.output_scale, self.output_zero_point, ACT_MIN, ACT_MAX)


def _check_width(name: str, x: torch.Tensor, features: int) -> None:
    """Flattened inputs (B, features) as wide as the first layer takes."""
    if x.shape[1] != features:
        raise ValueError(f"`{name}` must have {features} features per sample (the first Linear's in_features) once "
                         f"flattened; got {x.shape[1]} (inputs of shape {tuple(x.shape)})")


def _linear_layers(model: nn.Module) -> list[tuple[nn.Linear, bool]]:
    """(Linear, followed by ReLU?) for an ``nn.Sequential`` of Flatten, Linear and ReLU."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"`model` must be an nn.Sequential of Flatten, Linear and ReLU; got {type(model).__name__}")
    modules = list(model)
    layers = []
    for i, module in enumerate(modules):
        if isinstance(module, nn.Linear):
            layers.append((module, i + 1 < len(modules) and isinstance(modules[i + 1], nn.ReLU)))
        elif not isinstance(module, (nn.Flatten, nn.ReLU)):
            raise TypeError(f"`model` may hold only Flatten, Linear and ReLU; got {type(module).__name__}")
    if not layers:
        raise ValueError("`model` must contain at least one nn.Linear; got none")
    return layers


@torch.no_grad()
def activation_ranges(model: nn.Module, calibration_data: torch.Tensor, method: str = "minmax") -> list[tuple[float, float]]:
    """Calibrated ranges of the input and of each Linear(+ReLU) output, in order."""
    layers = _linear_layers(check_module("model", model))
    for name, param in model.named_parameters():
        check_tensor(f"model.{name}", param, finite=True)
    x = check_tensor("calibration_data", calibration_data, floating=True, finite=True).flatten(1)
    _check_width("calibration_data", x, layers[0][0].in_features)
    ranges = [calibrate(x, method)]
    for linear, relu in layers:
        x = linear(x)
        x = torch.relu(x) if relu else x
        ranges.append(calibrate(x, method))
    return ranges


class IntegerMLP(nn.Module):
    """An MLP run in integers: float images in, float logits out, integers in between.

    ``layers`` is an ``nn.ModuleList`` of :class:`IntegerLinear`, so ``.to()``,
    ``state_dict()``, :func:`compresskit.measure.serialized_bytes` and
    :func:`compresskit.train.predict` see every integer tensor.
    """

    def __init__(self, layers: list[IntegerLinear]) -> None:
        super().__init__()
        if not isinstance(layers, (list, tuple, nn.ModuleList)) or len(layers) == 0:
            raise TypeError(f"`layers` must be a non-empty list of IntegerLinear; got {type(layers).__name__} {layers!r:.80}")
        for i, layer in enumerate(layers):
            check_type(f"layers[{i}]", layer, IntegerLinear)
        self.layers = nn.ModuleList(layers)

    @classmethod
    def from_float(cls, model: nn.Module, calibration_data: torch.Tensor, method: str = "minmax") -> "IntegerMLP":
        """Quantize ``model`` (Flatten / Linear / ReLU) with activation ranges from ``calibration_data``."""
        qparams = []
        for lo, hi in activation_ranges(model, calibration_data, method):
            scale, zero_point = calculate_qparams(lo, hi, ACT_MIN, ACT_MAX, "affine")
            qparams.append((float(scale), int(zero_point)))
        layers = [IntegerLinear.from_float(linear, qparams[i], qparams[i + 1], relu) for i, (linear, relu) in enumerate(_linear_layers(model))]
        return cls(layers)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Float images (B, ...) -> uint8 (B, features): the only float step before the integer layers."""
        x = check_tensor("x", x, floating=True, finite=True).flatten(1)
        first = self.layers[0]
        _check_width("x", x, first.weight.shape[1])
        return quantize(x, first.input_scale, first.input_zero_point, ACT_MIN, ACT_MAX)

    def forward_int(self, q_x: torch.Tensor) -> torch.Tensor:
        """uint8 inputs -> uint8 outputs of the last layer, integer arithmetic only."""
        for layer in self.layers:
            q_x = layer(q_x)
        return q_x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.forward_int(self.quantize_input(x))
        last = self.layers[-1]
        return (q.float() - last.output_zero_point) * last.output_scale

    def simulate(self, x: torch.Tensor) -> torch.Tensor:
        """The fake-quantized float model with the same parameters (no integer arithmetic)."""
        x = check_tensor("x", x, floating=True, finite=True).flatten(1)
        first = self.layers[0]
        _check_width("x", x, first.weight.shape[1])
        x = fake_quantize(x, first.input_scale, first.input_zero_point, ACT_MIN, ACT_MAX)
        for layer in self.layers:
            x = layer.simulate(x)
        return x
