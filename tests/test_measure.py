"""compresskit.measure: counts checked by hand and against PyTorch's own counters."""

import pickle

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn
from torch.nn.utils import prune
from torch.utils.flop_counter import FlopCounterMode

from compresskit import measure, models


def test_count_parameters_matches_numel():
    model = models.mlp(hidden=(32, 16))
    assert measure.count_parameters(model) == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    assert measure.count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_pruned_module_is_counted_by_its_effective_weight():
    model = models.mlp(hidden=(32,))
    total = measure.count_parameters(model)
    prune.l1_unstructured(model.fc1, "weight", amount=0.5)  # 1024 of 2048 weights set to zero
    assert measure.count_parameters(model) == total  # weight_orig is not counted twice
    assert measure.count_nonzero(model) == total - 1024
    assert measure.sparsity(model) == pytest.approx(1024 / total)


def test_count_nonzero_counts_exact_zeros():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 1.0, -2.0], [0.0, 0.0, 1e-30]]))
        layer.bias.zero_()
    assert measure.count_nonzero(layer) == 3


def test_sparsity_needs_parameters():
    with pytest.raises(ValueError, match="at least one parameter"):
        measure.sparsity(nn.ReLU())


def test_serialized_bytes_is_four_bytes_per_fp32_parameter_plus_a_header():
    model = models.mlp(hidden=(256, 256))
    n = measure.count_parameters(model)
    size = measure.serialized_bytes(model)
    assert 4 * n < size < 4 * n + 4096


def test_serialized_bytes_of_dtypes_scales_with_element_size():
    w = torch.randn(512, 512)
    fp32 = measure.serialized_bytes(w)
    fp16 = measure.serialized_bytes(w.half())
    int8 = measure.serialized_bytes(torch.randint(-128, 128, (512, 512), dtype=torch.int8))
    assert fp32 / int8 == pytest.approx(4, rel=0.01)
    assert fp32 / fp16 == pytest.approx(2, rel=0.01)


def test_serialized_bytes_of_other_objects():
    assert measure.serialized_bytes(b"12345") == 5
    obj = {"a": [1, 2, 3]}
    assert measure.serialized_bytes(obj) == len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def test_tensor_bytes():
    assert measure.tensor_bytes(1000, torch.float32) == 4000
    assert measure.tensor_bytes(1000, torch.int8) == 1000
    assert measure.tensor_bytes(10, torch.bfloat16) == 20
    with pytest.raises(TypeError, match="`dtype` must be a torch.dtype; got str 'int8'"):
        measure.tensor_bytes(10, "int8")
    with pytest.raises(ValueError, match=r"`numel` must be an integer in \[0, inf\]; got -1"):
        measure.tensor_bytes(-1, torch.int8)


def test_count_macs_by_hand():
    # MLP 64-32-10: 64*32 + 32*10 MACs per sample, whatever the batch size.
    model = models.mlp(hidden=(32,))
    assert measure.count_macs(model, torch.zeros(7, 1, 8, 8)) == 64 * 32 + 32 * 10
    # Conv 1->4, 3x3, padding 1 on 8x8: 64 outputs per channel, 9 MACs each.
    conv = nn.Conv2d(1, 4, 3, padding=1)
    assert measure.count_macs(conv, torch.zeros(2, 1, 8, 8)) == 4 * 64 * 9


@settings(max_examples=25, deadline=None)
@given(
    c_in=st.sampled_from([2, 4, 6]),
    c_out=st.sampled_from([2, 4, 8]),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
    hidden=st.integers(1, 20),
)
def test_count_macs_agrees_with_torch_flop_counter(c_in, c_out, k, stride, groups, hidden):
    model = nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride=stride, groups=groups), nn.ReLU(), nn.Flatten(),
        nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, 3),
    )
    x = torch.randn(3, c_in, 9, 9)
    model(x)  # materialise the lazy layer
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    assert 2 * measure.count_macs(model, x) * x.shape[0] == counter.get_total_flops()


def test_count_macs_cnn_matches_flop_counter():
    model = models.cnn().eval()
    x = torch.randn(4, 1, 8, 8)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    assert 2 * measure.count_macs(model, x) * 4 == counter.get_total_flops()


def test_count_macs_restores_training_mode_and_rejects_bad_input():
    model = models.cnn()
    model.train()
    measure.count_macs(model, torch.zeros(2, 1, 8, 8))
    assert model.training
    with pytest.raises(TypeError, match="`example` must be a floating-point tensor"):
        measure.count_macs(model, torch.zeros(2, 1, 8, 8, dtype=torch.int64))


def test_measure_latency_reports_quartiles():
    calls = []
    lat = measure.measure_latency(lambda: calls.append(1), warmup=3, repeats=20)
    assert len(calls) == 23
    assert lat.repeats == 20
    assert 0 <= lat.q1 <= lat.median <= lat.q3


def test_latency_ratio_alternates_and_divides_medians():
    order = []
    result = measure.latency_ratio(lambda: order.append("a"), lambda: order.append("b"), warmup=2, repeats=5)
    assert order == ["a", "b"] * 7
    assert result.ratio == pytest.approx(result.a.median / result.b.median)
    assert result.q1_ratio == pytest.approx(result.a.q1 / result.b.q1)


def test_latency_ratio_passes_separate_args():
    seen = []
    measure.latency_ratio(lambda x: seen.append(x), lambda x: seen.append(x), 1, args_b=(2,), warmup=0, repeats=2)
    assert seen == [1, 2, 1, 2]


def test_latency_bad_input():
    with pytest.raises(ValueError, match=r"`repeats` must be an integer in \[1, inf\]; got 0"):
        measure.measure_latency(lambda: None, repeats=0)
    with pytest.raises(TypeError, match="`fn` must be an nn.Module or a callable to time; got int 42"):
        measure.measure_latency(42)
    with pytest.raises(TypeError, match="`b` must be an nn.Module or a callable to time; got str 'x'"):
        measure.latency_ratio(lambda: None, "x")


def test_accuracy():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    y = torch.tensor([0, 1, 1, 1])
    assert measure.accuracy(model, X, y, batch_size=3) == 0.75
    with pytest.raises(ValueError, match="same length; got 4 and 3"):
        measure.accuracy(model, X, y[:3])
    with pytest.raises(ValueError, match="`X` must be finite"):
        measure.accuracy(model, X * float("nan"), y)


def test_machine_info_names_the_machine():
    info = measure.machine_info()
    assert info["torch"] == torch.__version__
    assert int(info["cores"]) >= 1


@pytest.mark.parametrize("was_training", [True, False])
def test_accuracy_gives_the_model_back_in_its_mode_even_on_failure(was_training):
    model = models.cnn().train(was_training)
    X, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    measure.accuracy(model, X, y)
    assert model.training is was_training
    with pytest.raises(ValueError, match="`X` does not fit `model`: inputs of shape \\(4, 1, 7, 7\\)"):
        measure.accuracy(model, torch.randn(4, 1, 7, 7), y)  # the wrong image size fails inside the model
    assert model.training is was_training


def test_effective_parameters_are_current_after_an_optimizer_step():
    model = models.mlp(hidden=(8,))
    prune.l1_unstructured(model.fc1, "weight", amount=0.5)
    with torch.no_grad():
        model.fc1.weight_orig.add_(1.0)  # what an optimizer step does; the cached fc1.weight is now stale
    effective = dict(measure.effective_parameters(model))["fc1.weight"]
    assert torch.equal(effective, model.fc1.weight_orig * model.fc1.weight_mask)
    assert measure.count_nonzero(model) == measure.count_parameters(model) - 256


def test_a_model_without_parameters_or_a_bad_model():
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module; got str 'mlp'"):
        measure.count_parameters("mlp")
    with pytest.raises(TypeError, match="`model` must be an nn.Module or a callable returning logits; got int 3"):
        measure.accuracy(3, torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))


def test_a_tied_weight_counts_once_as_in_torch():
    # TinyLM's head shares the byte embedding's tensor: one tensor, counted once (model.parameters() dedups too)
    model = models.TinyLM(models.TINY_LM_CONFIGS["draft"])
    assert model.head.weight is model.tok_emb.weight
    assert measure.count_parameters(model) == sum(p.numel() for p in model.parameters()) == model.config.num_parameters()
    assert len(dict(measure.effective_parameters(model))) == len(list(model.parameters()))
