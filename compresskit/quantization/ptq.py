"""Post-training quantization (PTQ) of a whole model: weights, activations, and the bytes saved.

* :func:`quantize_weights` replaces every Linear / Conv weight by its quantized value
  (linear, k-means or power-of-two; see :mod:`~compresskit.quantization.linear` and
  :mod:`~compresskit.quantization.nonlinear`) and returns what would be stored on disk.
  Biases stay in float32 (they are few; integer inference stores them as int32).
* :func:`collect_activations` and :func:`fake_quantize_activations` calibrate and simulate
  quantized activations at chosen layers.

The saved bytes are measured, not computed: the integers are packed ``bits`` per value
(:func:`~compresskit.quantization.linear.pack_bits`) and written with ``torch.save``
(:func:`compresskit.measure.serialized_bytes`), scale and zero point included.

References
----------
[1] R. Krishnamoorthi, "Quantizing deep convolutional networks for efficient inference:
    A whitepaper", 2018, arXiv:1806.08342.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from compresskit._validation import check_choice, check_module, check_real, check_tensor, check_type
from compresskit.measure import serialized_bytes
from compresskit.models import copy_model, dense_copy
from compresskit.quantization.linear import SCHEMES, calculate_qparams, check_bits, fake_quantize, pack_bits, qrange, quantize_tensor
from compresskit.quantization.nonlinear import kmeans_quantize, power_of_two_decode, power_of_two_encode

METHODS = ("linear", "kmeans", "power_of_two")
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The float weights that weight quantization replaces: ``{"fc1.weight": tensor, ...}``,
    the weight of every Linear / Conv layer as the forward pass uses it (``weight_orig *
    weight_mask`` for a pruned layer), detached. Biases are left out: they stay in float.
    :func:`weight_bytes` measures what these take on disk."""
    check_module("model", model)
    return {f"{name}.weight": _effective_weight(m) for name, m in model.named_modules() if isinstance(m, WEIGHTED)}


def _effective_weight(module: nn.Module) -> torch.Tensor:
    if isinstance(getattr(module, "weight_mask", None), torch.Tensor):
        return (module.weight_orig * module.weight_mask).detach()
    return module.weight.detach()


def _quantize_one(w: torch.Tensor, bits: int, scheme: str, per_channel: bool, method: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(dequantized weight, tensors to store) for one weight."""
    if method == "linear":
        qt = quantize_tensor(w, bits, scheme, axis=0 if per_channel else None)
        return qt.dequantize(), qt.state_dict()
    if method == "kmeans":
        codebook, indices = kmeans_quantize(w, bits)
        return codebook[indices.long()], {"codebook": codebook, "indices": pack_bits(indices, 0, bits)}
    codes, e_max = power_of_two_encode(w, bits)  # needs bits >= 2: a sign and a magnitude
    stored = {"codes": pack_bits(codes, -(2 ** (bits - 1)), bits), "e_max": torch.tensor(e_max, dtype=torch.int16)}
    return power_of_two_decode(codes, e_max), stored


def quantize_weights(
    model: nn.Module,
    bits: int = 8,
    scheme: str = "affine",
    per_channel: bool = True,
    method: str = "linear",
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """``(quantized_model, stored)``: a copy of ``model`` with quantized weights, and the flat
    dict of tensors that stores them (``"fc1.weight.q"``, ``"fc1.weight.scale"``, ...).

    ``scheme`` and ``per_channel`` (one scale per output channel, axis 0) apply to
    ``method="linear"``; ``"kmeans"`` keeps a codebook per layer; ``"power_of_two"`` one exponent.
    A pruned model works: its masks are made permanent in the copy first, so its zeros are
    quantized as zeros (linear quantization represents 0 exactly). ``model`` is not changed.
    """
    check_module("model", model)
    bits = check_bits(bits)
    check_choice("scheme", scheme, SCHEMES)
    check_type("per_channel", per_channel, bool)
    check_choice("method", method, METHODS)
    for name, w in weights(model).items():
        check_tensor(name, w, floating=True, finite=True)  # names the layer: "`fc1.weight` must be finite"
    quantized = dense_copy(model)
    stored: dict[str, torch.Tensor] = {}
    for name, module in quantized.named_modules():
        if isinstance(module, WEIGHTED):
            w_hat, tensors = _quantize_one(module.weight.detach(), bits, scheme, per_channel, method)
            with torch.no_grad():
                module.weight.copy_(w_hat)
            stored.update({f"{name}.weight.{k}": v for k, v in tensors.items()})
    return quantized, stored


def weight_bytes(model_or_stored: nn.Module | Mapping[str, torch.Tensor]) -> int:
    """Serialized bytes of a model's float weights, or of the ``stored`` dict of :func:`quantize_weights`."""
    if not isinstance(model_or_stored, (nn.Module, Mapping)):
        raise TypeError(f"`model_or_stored` must be an nn.Module or a dict of tensors; got {type(model_or_stored).__name__}")
    if isinstance(model_or_stored, nn.Module):
        return serialized_bytes({k: v.clone() for k, v in weights(model_or_stored).items()})
    return serialized_bytes(dict(model_or_stored))


@torch.no_grad()
def collect_activations(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """Outputs of the named submodules when ``model`` runs on ``x`` (in eval mode; the model
    is given back in the mode it came in, even on failure)."""
    check_module("model", model)
    check_tensor("x", x, floating=True, finite=True)
    modules = dict(model.named_modules())
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or len(names) == 0:
        raise TypeError(f"`names` must be a non-empty list of submodule names; got {type(names).__name__} {names!r:.80}")
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"`names` must name submodules of `model`; got unknown {missing}")
    seen: dict[str, torch.Tensor] = {}
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.detach())) for n in names]
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return seen


def fake_quantize_activations(model: nn.Module, ranges: Mapping[str, tuple[float, float]], bits: int = 8, scheme: str = "affine") -> nn.Module:
    """A copy of ``model`` whose named submodules' outputs are fake-quantized to the given
    ``(min_val, max_val)`` ranges: activation quantization simulated in float.

    ``scheme="affine"`` uses an unsigned grid ([0, 255] for 8 bits); ``"symmetric"`` a signed
    one centred on 0 ([-128, 127]), which wastes half its levels on ReLU outputs. A pruned
    model works (it is copied with :func:`compresskit.models.copy_model`); ``model`` is not changed.
    """
    check_module("model", model)
    bits = check_bits(bits)
    check_choice("scheme", scheme, SCHEMES)
    quant_min, quant_max = qrange(bits, signed=scheme == "symmetric")
    check_type("ranges", ranges, Mapping, "a dict {submodule name: (min_val, max_val)}")
    known = {name for name, _ in model.named_modules()}
    qparams = {}
    for name, bounds in ranges.items():
        if name not in known:
            raise ValueError(f"`ranges` must name submodules of `model`; got unknown {name!r}")
        if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
            raise TypeError(f"`ranges[{name!r}]` must be a (min_val, max_val) pair; got {bounds!r:.80}")
        lo, hi = (check_real(f"ranges[{name!r}]", b) for b in bounds)
        if lo > hi:
            raise ValueError(f"`ranges[{name!r}]` must have min_val <= max_val; got ({lo!r}, {hi!r})")
        qparams[name] = calculate_qparams(lo, hi, quant_min, quant_max, scheme)
    model = copy_model(model)
    modules = dict(model.named_modules())
    for name, (scale, zero_point) in qparams.items():
        modules[name].register_forward_hook(lambda m, i, o, s=scale, z=zero_point: fake_quantize(o, s, z, quant_min, quant_max))
    return model
