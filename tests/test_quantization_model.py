"""Whole models: post-training quantization, integer-only inference, ONNX Runtime int8."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from compresskit import data, measure, models, train
from compresskit.quantization import (
    IntegerMLP,
    activation_ranges,
    collect_activations,
    fake_quantize_activations,
    quantize_multiplier,
    quantize_weights,
    requantize,
    weight_bytes,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained():
    model = models.mlp()
    train_loader, _, _ = data.digits_loaders()
    train.fit(model, train_loader, epochs=5, progress=False)
    X, y = data.load_digits_split().tensors("test")
    return model.eval(), X, y


# --- requantization with an integer multiplier and shift ---------------------------------

@pytest.mark.parametrize("real", [0.5, 0.1234567, 3e-4, 1.0, 7.25])
def test_quantize_multiplier_represents_the_real_multiplier(real):
    multiplier, shift = quantize_multiplier(real)
    assert 2**30 <= multiplier.item() < 2**31
    assert multiplier.item() * 2.0 ** -(31 + shift.item()) == pytest.approx(real, rel=2**-30)


def test_quantize_multiplier_hand_case_and_errors():
    multiplier, shift = quantize_multiplier(0.5)
    assert (multiplier.item(), shift.item()) == (2**30, 0)
    with pytest.raises(ValueError, match="`real_multiplier` must be finite and > 0"):
        quantize_multiplier(0.0)
    with pytest.raises(ValueError, match="`real_multiplier` must be finite and > 0"):
        quantize_multiplier(float("nan"))


def test_requantize_matches_float_rounding():
    acc = torch.arange(-5000, 5000, 7, dtype=torch.int32)
    real = 0.0123
    multiplier, shift = quantize_multiplier(real)
    got = requantize(acc, multiplier, shift, zero_point=10, quant_min=0, quant_max=255)
    expected = torch.clamp(torch.floor(acc.double() * real + 0.5) + 10, 0, 255).long()
    assert (got != expected).sum() <= 1  # a tie may round differently by one; never more
    assert (got - expected).abs().max() <= 1
    assert torch.equal(requantize(torch.tensor([100]), *quantize_multiplier(0.5), 0, -128, 127), torch.tensor([50]))


# --- integer-only inference --------------------------------------------------------------

def _numpy_layer(layer, q_x: np.ndarray) -> np.ndarray:
    """One integer layer written out in numpy, from the stored integers and scales alone: the
    int32 accumulator of Jacob et al. (2018), Eq. (4), then the real multiplier
    s_x * s_w[c] / s_y applied in float64 and rounded half to even (no fixed-point multiplier)."""
    w = layer.weight.numpy().astype(np.int64)
    acc = (q_x.astype(np.int64) - layer.input_zero_point) @ w.T + layer.bias.numpy().astype(np.int64)
    real = layer.input_scale * layer.weight_scale.numpy().astype(np.float64) / layer.output_scale
    q = np.rint(acc * real) + layer.output_zero_point
    low = layer.output_zero_point if layer.relu else 0
    return np.clip(q, low, 255).astype(np.int64)


def test_integer_mlp_agrees_with_an_independent_numpy_integer_computation(trained):
    """Not against its own simulate(): each layer against numpy on the same uint8 input. The
    only difference allowed is the fixed-point multiplier's last bit (2**-31 relative) deciding
    a value within a hair of a rounding tie: at most one step, on at most 0.1% of outputs."""
    model, X, _ = trained
    int_model = IntegerMLP.from_float(model, data.calibration_batch(256))
    q_x = int_model.quantize_input(X)
    assert torch.equal(q_x.long(), torch.from_numpy(np.clip(np.rint(X.flatten(1).numpy().astype(np.float64) / int_model.layers[0].input_scale)
                                                           + int_model.layers[0].input_zero_point, 0, 255).astype(np.int64)))
    for layer in int_model.layers:
        ours = _numpy_layer(layer, q_x.numpy())
        theirs = layer(q_x).numpy().astype(np.int64)
        assert np.abs(ours - theirs).max() <= 1
        assert (ours != theirs).mean() <= 1e-3
        q_x = layer(q_x)


def test_integer_mlp_agrees_with_torch_fake_quantization_of_the_float_model(trained):
    """The float model with torch.fake_quantize_per_* at the same points (input, per-channel
    int8 weights, each layer's output): the same classes on >= 99% of the test set, logits
    within two output steps, and accuracy within a point of float32."""
    model, X, y = trained
    int_model = IntegerMLP.from_float(model, data.calibration_batch(256))
    x = X.flatten(1)
    first = int_model.layers[0]
    x = torch.fake_quantize_per_tensor_affine(x, first.input_scale, first.input_zero_point, 0, 255)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for linear, layer in zip(linears, int_model.layers):
        w = linear.weight.detach()
        scale = w.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).eps) / 127.5  # symmetric int8, as torch's observer
        w = torch.fake_quantize_per_channel_affine(w, scale, torch.zeros(len(scale), dtype=torch.int32), 0, -128, 127)
        x = x @ w.T + linear.bias.detach()
        x = torch.relu(x) if layer.relu else x
        x = torch.fake_quantize_per_tensor_affine(x, layer.output_scale, layer.output_zero_point, 0, 255)
    logits = int_model(X)
    assert (logits.argmax(1) == x.argmax(1)).double().mean() >= 0.99
    assert (logits - x).abs().max() <= 2 * int_model.layers[-1].output_scale + 1e-6
    assert measure.accuracy(int_model, X, y) >= measure.accuracy(model, X, y) - 0.01


def test_integer_mlp_uses_integer_tensors(trained):
    model, X, _ = trained
    int_model = IntegerMLP.from_float(model, data.calibration_batch(64))
    layer = int_model.layers[0]
    assert layer.weight.dtype == torch.int8 and layer.bias.dtype == torch.int32
    q = int_model.quantize_input(X[:5])
    assert q.dtype == torch.uint8
    out = int_model.forward_int(q)
    assert out.dtype == torch.uint8 and out.shape == (5, 10)
    # the float logits it returns are exact multiples of the output scale
    logits = int_model(X[:5])
    steps = logits / int_model.layers[-1].output_scale
    assert torch.allclose(steps, torch.round(steps), atol=1e-3)


def test_integer_mlp_rejects_other_models():
    with pytest.raises(TypeError, match="`model` must be an nn.Sequential"):
        IntegerMLP.from_float(nn.Linear(64, 10), torch.rand(4, 64))
    with pytest.raises(TypeError, match="may hold only Flatten, Linear and ReLU"):
        IntegerMLP.from_float(models.cnn(), torch.rand(4, 1, 8, 8))
    with pytest.raises(ValueError, match="`calibration_data` must be finite"):
        activation_ranges(models.mlp(), torch.full((4, 1, 8, 8), float("nan")))


# --- post-training weight quantization ---------------------------------------------------

def test_8bit_per_channel_ptq_keeps_accuracy_with_a_quarter_of_the_bytes(trained):
    model, X, y = trained
    quantized, stored = quantize_weights(model, bits=8, scheme="affine", per_channel=True)
    assert abs(measure.accuracy(quantized, X, y) - measure.accuracy(model, X, y)) <= 0.005
    assert 3.6 < weight_bytes(model) / weight_bytes(stored) <= 4.0
    assert stored["fc1.weight.q"].dtype == torch.uint8
    assert not torch.equal(quantized.fc1.weight, model.fc1.weight)  # the copy is quantized ...


def test_quantize_weights_leaves_the_original_model_untouched(trained):
    model, _, _ = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training = [m.training for m in model.modules()]
    for kwargs in (dict(bits=8, scheme="affine", per_channel=True), dict(bits=4, method="kmeans"), dict(bits=4, method="power_of_two")):
        quantize_weights(model, **kwargs)
        after = model.state_dict()
        assert after.keys() == before.keys()
        assert all(torch.equal(after[k], before[k]) for k in before), kwargs  # ... and the original is not
        assert [m.training for m in model.modules()] == training


def test_fewer_bits_take_fewer_bytes(trained):
    model, _, _ = trained
    sizes = [weight_bytes(quantize_weights(model, bits)[1]) for bits in (8, 4, 2)]
    assert sizes[0] > 1.8 * sizes[1] > 1.8 * 1.8 * sizes[2] * 0.95
    for method in ("kmeans", "power_of_two"):
        q, stored = quantize_weights(model, 4, method=method)
        assert weight_bytes(stored) < 0.6 * sizes[0]
        assert len(torch.unique(q.fc2.weight)) <= 16


def test_activation_helpers(trained):
    model, X, y = trained
    acts = collect_activations(model, X[:32], ["relu1", "fc3"])
    assert acts["relu1"].shape == (32, 256) and bool((acts["relu1"] >= 0).all())
    ranges = {"relu1": (0.0, float(acts["relu1"].max()))}
    fq = fake_quantize_activations(model, ranges, bits=8)
    assert measure.accuracy(fq, X, y) >= measure.accuracy(model, X, y) - 0.01
    coarse = fake_quantize_activations(model, ranges, bits=1, scheme="symmetric")
    assert len(torch.unique(collect_activations(coarse, X[:32], ["relu1"])["relu1"])) <= 2
    with pytest.raises(ValueError, match="`names` must name submodules"):
        collect_activations(model, X[:2], ["conv9"])
    with pytest.raises(ValueError, match="`ranges` must name submodules"):
        fake_quantize_activations(model, {"nope": (0.0, 1.0)})


# --- ONNX Runtime ------------------------------------------------------------------------

def test_importing_compresskit_does_not_import_onnx():
    code = "import sys, compresskit.quantization, compresskit.quantization.ort; print('onnx' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_onnx_runtime_fp32_and_int8_match_ours(trained):
    import onnxruntime  # noqa: F401  pinned in requirements.txt: missing is a failure, not a skip

    from compresskit.quantization import ort

    model, X, y = trained
    fp32 = ort.export_onnx(model, X[:1])
    session = ort.ort_session(fp32)
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(ort.ort_logits(session, X)), model(X), atol=1e-4)
    calibration = data.calibration_batch(256)
    int8 = ort.quantize_onnx(fp32, calibration)
    assert len(int8) < 0.35 * len(fp32)
    ours = IntegerMLP.from_float(model, calibration)(X).argmax(1)
    theirs = ort.ort_predict(ort.ort_session(int8), X)
    assert (ours == theirs).double().mean() >= 0.98
    with pytest.raises(TypeError, match="`onnx_model` must be the bytes"):
        ort.quantize_onnx("model.onnx", calibration)
    spinning = "session.intra_op.allow_spinning"
    assert session.get_session_options().get_session_config_entry(spinning) == "0"
    assert ort.ort_session(fp32, allow_spinning=True).get_session_options().get_session_config_entry(spinning) == "1"


def test_quantize_weights_bad_input(trained):
    model, _, _ = trained
    with pytest.raises(ValueError, match=r"`bits` must be an integer in \[1, 16\]; got 0"):
        quantize_weights(model, bits=0)
    with pytest.raises(ValueError, match=r"`bits` must be an integer in \[2, 16\]; got 1"):
        quantize_weights(model, bits=1, method="power_of_two")
    with pytest.raises(ValueError, match="`method` must be one of"):
        quantize_weights(model, method="hamming")
    with pytest.raises(ValueError, match="`scheme` must be one of"):
        quantize_weights(model, scheme="log")
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module"):
        quantize_weights(torch.randn(3, 3))
