"""compresskit.quantization on bad and unusual input (issue 10): torch's rules for zero_point,
bit packing that refuses what it cannot store, integer layers that are real modules, and
whole-model functions that work on pruned models and leave the caller's model alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from compresskit import measure, models, train
from compresskit import quantization as Q


# --- zero_point: torch's rules ----------------------------------------------------------------


@pytest.mark.parametrize("zero_point", [2.5, 300, -1])
def test_a_zero_point_torch_refuses_is_refused(zero_point):
    x = torch.randn(5)
    with pytest.raises((TypeError, RuntimeError)):
        torch.fake_quantize_per_tensor_affine(x, 0.1, zero_point, 0, 255)
    error, words = (TypeError, "got float 2.5") if isinstance(zero_point, float) else (ValueError, rf"\[0, 255\].*got \[{zero_point}\]")
    for fn in (Q.quantize, Q.fake_quantize):
        with pytest.raises(error, match=rf"`zero_point` must .*{words}"):
            fn(x, 0.1, zero_point, 0, 255)


def test_per_channel_zero_points_off_the_grid_or_fractional():
    w = torch.randn(3, 4)
    with pytest.raises(RuntimeError, match="zero_point"):
        torch.fake_quantize_per_channel_affine(w, torch.full((3,), 0.1), torch.tensor([0, 1, 300], dtype=torch.int32), 0, 0, 255)
    with pytest.raises(ValueError, match=r"`zero_point` must be in \[quant_min, quant_max\] = \[0, 255\].*got \[0, 1, 300\]"):
        Q.fake_quantize(w, torch.full((3,), 0.1), torch.tensor([0, 1, 300]), 0, 255, axis=0)
    with pytest.raises(ValueError, match=r"`zero_point` must hold whole numbers.*got \[2.5\]"):
        Q.fake_quantize(w, torch.full((3,), 0.1), torch.tensor([0.0, 1.0, 2.5]), 0, 255, axis=0)
    # whole numbers in a float tensor are fine, as in torch's per-channel function
    expected = torch.fake_quantize_per_channel_affine(w, torch.full((3,), 0.1), torch.tensor([0, 1, 2], dtype=torch.int32), 0, 0, 255)
    assert torch.equal(Q.fake_quantize(w, torch.full((3,), 0.1), torch.tensor([0.0, 1.0, 2.0]), 0, 255, axis=0), expected)


# --- bit packing ------------------------------------------------------------------------------


def test_pack_bits_refuses_values_off_the_grid_instead_of_wrapping_them():
    with pytest.raises(ValueError, match=r"`q` must lie on the 4-bit grid \[0, 15\].*got values in \[3, 20\]"):
        Q.pack_bits(torch.tensor([3, 20]), 0, 4)  # 20 would have come back as 4
    with pytest.raises(ValueError, match=r"\[-8, 7\].*got values in \[-9, 0\]"):
        Q.pack_bits(torch.tensor([-9, 0]), -8, 4)
    with pytest.raises(TypeError, match="`q` must be an integer tensor.*got dtype torch.float32"):
        Q.pack_bits(torch.tensor([1.7, 2.2]), 0, 4)  # would have been truncated to 1, 2


def test_unpack_bits_refuses_more_values_than_were_packed():
    packed = Q.pack_bits(torch.arange(5), 0, 3)  # 15 bits -> 2 bytes, room for 5 values
    assert Q.unpack_bits(packed, 0, 3, 5).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"`numel` must be an integer in \[0, 5\]; got 6"):
        Q.unpack_bits(packed, 0, 3, 6)
    with pytest.raises(TypeError, match="`packed` must be a uint8 tensor.*got dtype torch.int64"):
        Q.unpack_bits(torch.arange(3), 0, 3, 2)


@pytest.mark.parametrize("quant_min", [-128, -100, 0])
def test_eight_bit_grids_round_trip_wherever_they_start(quant_min):
    q = torch.arange(quant_min, quant_min + 256)
    packed = Q.pack_bits(q, quant_min, 8)
    assert packed.dtype == torch.uint8 and packed.numel() == 256
    assert torch.equal(Q.unpack_bits(packed, quant_min, 8, 256), q)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_packing_a_cuda_tensor_stays_on_its_device():
    q = torch.randint(-8, 8, (1000,), device="cuda")
    packed = Q.pack_bits(q, -8, 4)
    assert packed.device.type == "cuda" and packed.numel() == 500
    assert torch.equal(Q.unpack_bits(packed, -8, 4, 1000), q)


# --- requantize -------------------------------------------------------------------------------


def test_requantize_checks_its_integers():
    multiplier, shift = Q.quantize_multiplier(0.5)
    assert Q.requantize(torch.tensor([100, -7]), multiplier, shift, 3, -128, 127).tolist() == [53, 0]  # round half up: -3.5 -> -3
    with pytest.raises(TypeError, match="`acc` must be an integer tensor; got dtype torch.float32"):
        Q.requantize(torch.tensor([1.5]), multiplier, shift, 0, 0, 255)
    with pytest.raises(ValueError, match=r"`acc` must hold integers in \[-2147483648, 2147483647\]; got values in \[0, 4294967296\]"):
        Q.requantize(torch.tensor([0, 2**32]), multiplier, shift, 0, 0, 255)
    with pytest.raises(ValueError, match=r"`zero_point` must be an integer in \[0, 255\]; got 300"):
        Q.requantize(torch.tensor([1]), multiplier, shift, 300, 0, 255)
    with pytest.raises(ValueError, match=r"`multiplier` must hold integers in \[0, 2147483647\]"):
        Q.requantize(torch.tensor([1]), torch.tensor(2**40), shift, 0, 0, 255)
    with pytest.raises(ValueError, match=r"`shift` must be one number or one per output channel \(2\); got shape \(3,\)"):
        Q.requantize(torch.ones(4, 2, dtype=torch.int32), multiplier.repeat(2), shift.repeat(3), 0, 0, 255)


# --- IntegerMLP is a module with buffers -----------------------------------------------------------


@pytest.fixture(scope="module")
def integer_mlp():
    model = models.mlp((16,), seed=0)
    calibration = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return model, Q.IntegerMLP.from_float(model, calibration)


def test_integer_mlp_state_dict_holds_every_integer_tensor(integer_mlp):
    model, int_model = integer_mlp
    state = int_model.state_dict()
    assert state["layers.0.weight"].dtype == torch.int8 and state["layers.0.weight"].shape == (16, 64)
    assert state["layers.1.bias"].dtype == torch.int32
    assert float(state["layers.0.input_scale"]) == int_model.layers[0].input_scale
    assert int(state["layers.1.output_zero_point"]) == int_model.layers[1].output_zero_point
    assert measure.serialized_bytes(int_model) > 16 * 64 + 10 * 16  # before: an empty state dict
    big = models.mlp()  # 256-256: large enough that the file format's per-tensor overhead is small
    int8_bytes = measure.serialized_bytes(Q.IntegerMLP.from_float(big, torch.rand(64, 1, 8, 8)))
    assert int8_bytes < measure.serialized_bytes(big) / 3  # int8 weights: about a quarter of float32's


def test_integer_mlp_loads_its_state_dict_back(integer_mlp):
    _, int_model = integer_mlp
    x = torch.rand(8, 1, 8, 8)
    twin = Q.IntegerMLP.from_float(models.mlp((16,), seed=1), torch.rand(64, 1, 8, 8))
    assert not torch.equal(twin(x), int_model(x))
    twin.load_state_dict(int_model.state_dict())
    assert torch.equal(twin(x), int_model(x)) and twin.layers[0].input_scale == int_model.layers[0].input_scale


def test_integer_mlp_works_with_train_predict_evaluate_and_to(integer_mlp):
    _, int_model = integer_mlp
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8)
    preds = train.predict(int_model, x)
    assert torch.equal(preds, int_model(x).argmax(1))
    assert train.evaluate(int_model, [(x, y)]) == (preds == y).double().mean().item()
    on_meta = Q.IntegerMLP(list(int_model.layers)).to("meta")  # .to() moves every buffer
    assert {b.device.type for b in on_meta.buffers()} == {"meta"}
    assert len(list(int_model.buffers())) == 10


def test_integer_layers_check_what_they_are_built_from():
    with pytest.raises(TypeError, match=r"`layers\[0\]` must be IntegerLinear; got Linear"):
        Q.IntegerMLP([nn.Linear(2, 2)])
    with pytest.raises(TypeError, match="`layers` must be a non-empty list of IntegerLinear; got list"):
        Q.IntegerMLP([])
    w = torch.zeros(3, 4, dtype=torch.int8)
    good = dict(weight_scale=torch.ones(3), bias=torch.zeros(3, dtype=torch.int32), input_scale=0.1, input_zero_point=0,
                output_scale=0.1, output_zero_point=0, multiplier=torch.full((3,), 2**30), shift=torch.zeros(3, dtype=torch.int64), relu=True)
    Q.IntegerLinear(w, **good)
    with pytest.raises(TypeError, match="`weight` must have dtype torch.int8; got torch.float32"):
        Q.IntegerLinear(w.float(), **good)
    with pytest.raises(ValueError, match=r"`bias` must have shape \(3,\), one per output channel; got \(4,\)"):
        Q.IntegerLinear(w, **{**good, "bias": torch.zeros(4, dtype=torch.int32)})
    with pytest.raises(ValueError, match=r"`output_zero_point` must be an integer in \[0, 255\]; got 256"):
        Q.IntegerLinear(w, **{**good, "output_zero_point": 256})


# --- whole models: pruned ones included, the caller's model untouched -----------------------------


def _pruned_mlp():
    model = models.mlp((16,), seed=0)
    prune.l1_unstructured(model.fc1, "weight", amount=0.5)  # fc1.weight is a non-leaf tensor now
    return model


def test_quantize_weights_works_on_a_pruned_model_and_keeps_its_zeros():
    model = _pruned_mlp()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    quantized, stored = Q.quantize_weights(model, bits=8, scheme="symmetric")
    assert not prune.is_pruned(quantized)  # the masks were made permanent in the copy
    assert int((quantized.fc1.weight == 0).sum()) >= 512  # pruned weights quantize to exactly 0
    assert "fc1.weight.q" in stored
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items()) and prune.is_pruned(model)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    # The bound the quantization step allows: each weight moves by at most half its row's step
    # s/2 (biases stay float), so |h_q - h| <= s1/2 * sum|x| per hidden unit (ReLU is
    # 1-Lipschitz), and y_q - y = W2q (h_q - h) + (W2q - W2) h gives
    # |y_q - y| <= |W2q| @ that + s2/2 * sum|h|.
    with torch.no_grad():
        s1, s2 = stored["fc1.weight.scale"].float(), stored["fc2.weight.scale"].float()
        assert ((quantized.fc1.weight - model.fc1.weight).abs() <= s1[:, None] / 2 * (1 + 1e-5)).all()
        assert ((quantized.fc2.weight - model.fc2.weight).abs() <= s2[:, None] / 2 * (1 + 1e-5)).all()
        flat = x.flatten(1)
        h = torch.relu(model.fc1(flat))
        hidden_error = s1 / 2 * flat.abs().sum(1, keepdim=True)  # (B, 16)
        bound = hidden_error @ quantized.fc2.weight.abs().T + s2 / 2 * h.abs().sum(1, keepdim=True)  # (B, 10)
        error = (quantized(x) - model(x)).abs()
    assert (error <= bound * (1 + 1e-4) + 1e-6).all(), (error.max(), bound.min())


def test_fake_quantize_activations_and_half_precision_work_on_a_pruned_model():
    model = _pruned_mlp()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        h = torch.relu(model.fc1(x.flatten(1)))
        reference = model(x)
        fq = Q.fake_quantize_activations(model, {"relu1": (0.0, 4.0)})
        assert prune.is_pruned(fq)
        # relu1 on an 8-bit affine grid over [0, 4]: step 4/255, every hidden value inside the
        # range (no clipping), so each moves by at most half a step and logit k by at most
        # step/2 * sum_j |W2[k, j]|.
        assert float(h.max()) <= 4.0
        step = 4.0 / 255
        bound = step / 2 * model.fc2.weight.abs().sum(1)
        assert ((fq(x) - reference).abs() <= bound * (1 + 1e-4) + 1e-6).all()
        # bfloat16 keeps 8 significant bits (unit roundoff u = 2**-8): rounding the input, the
        # weights and each layer's output costs at most 3u relative per layer (float32
        # accumulation), so |dh| <= 3u (|W1||x| + |b1|) and |dy| <= |W2| |dh| + 3u (|W2||h| + |b2|);
        # a factor 1.1 covers the second-order terms.
        half = Q.HalfPrecision(model, "bfloat16")
        u = 2.0**-8
        flat = x.flatten(1)
        dh = 3 * u * (flat.abs() @ model.fc1.weight.abs().T + model.fc1.bias.abs())
        dy = dh @ model.fc2.weight.abs().T + 3 * u * (h.abs() @ model.fc2.weight.abs().T + model.fc2.bias.abs())
        assert ((half(x).float() - reference).abs() <= 1.1 * dy).all()


def test_quantize_weights_names_the_layer_with_a_nan_weight():
    model = models.mlp((16,))
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"`fc2.weight` must be finite; got 1 NaN"):
        Q.quantize_weights(model)


def test_collect_activations_gives_the_model_back_in_its_mode_even_on_failure():
    model = models.cnn().train()
    with pytest.raises(RuntimeError):
        Q.collect_activations(model, torch.rand(2, 1, 7, 7), ["relu1"])  # 7x7 does not fit the classifier
    assert model.training
    with pytest.raises(ValueError, match=r"`ranges\['relu1'\]` must have min_val <= max_val; got \(2.0, 1.0\)"):
        Q.fake_quantize_activations(model, {"relu1": (2.0, 1.0)})


def test_ort_predict_refuses_nan_input():
    pytest.importorskip("onnxruntime")
    from compresskit.quantization import ort

    model = models.mlp((8,))
    session = ort.ort_session(ort.export_onnx(model, torch.rand(2, 1, 8, 8)), threads=1)
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(ort.ort_predict(session, x), train.predict(model, x))
    x[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"`x` must be finite; got 1 NaN or inf"):
        ort.ort_predict(session, x)
