"""Every public name of compresskit.llm refuses bad input (wrong types, bits 0 / 9, a group_size that
does not divide in_features, alpha outside [0, 1], NaN weights, an empty calibration set, batches
the model cannot take) with an error that names the argument, the rule and the value received; a
failed call leaves the model it was given as it was (weights, pruning hooks, every layer's mode),
and a model pruned with torch.nn.utils.prune goes through every function that takes a model.

One row per (function, bad call), as in tests/test_bad_input.py; a completeness test checks that
every name in ``compresskit.llm.__all__`` has a row (the two result records excepted, named below).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from bad_input_harness import Bad, a, assert_refused, lazy, snapshot
from compresskit import llm
from llm_standin import tiny_lm, token_batches

pytestmark = pytest.mark.usefixtures("one_thread")

RESULTS_ONLY = {"AWQSearch", "Outliers"}  # returned by awq_search / activation_outliers, never taken as input


def pruned_lm(training=True) -> nn.Module:
    model = tiny_lm().train(training)
    prune.l1_unstructured(model.blocks[0].fc1, "weight", 0.5)
    return model


def nan_lm() -> nn.Module:
    model = tiny_lm()
    with torch.no_grad():
        model.blocks[1].proj.weight[0, 0] = math.nan
    return model


def quantized_lm() -> nn.Module:
    return llm.quantize_model(tiny_lm(), "rtn", 4, 16)


def ln_fc() -> nn.Sequential:
    net = nn.Sequential(nn.LayerNorm(16), nn.Linear(16, 8))
    prune.l1_unstructured(net[1], "weight", 0.5)
    return net


def fold_scales(net: nn.Sequential, s: Any, linears: Any = None) -> None:
    """fold_scales with the LayerNorm and Linear of one module, so the test can watch them both."""
    llm.fold_scales(net[0], [net[1]] if linears is None else linears, s)


W = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
X = torch.randn(32, 64, generator=torch.Generator().manual_seed(1))
NAN_W = W.clone().index_fill(1, torch.tensor([3]), math.nan)
Q4 = llm.quantize_rtn(W, 4, 32)
Q3 = llm.quantize_rtn(W, 3, 32)
H = llm.gptq_hessian(X)
CAL = token_batches(1)

CASES = [
    # --- groupwise ------------------------------------------------------------------------------------
    Bad(llm.quant_range, a(0), ValueError, ["`bits`", "[2, 8]", "got 0"]),
    Bad(llm.quant_range, a(9), ValueError, ["`bits`", "[2, 8]", "got 9"]),
    Bad(llm.quant_range, a(4, "yes"), TypeError, ["`symmetric`", "bool", "'yes'"]),
    Bad(llm.choose_qparams, a(W, 4, 48), ValueError, ["`group_size` must divide in_features=64; got 48"]),
    Bad(llm.choose_qparams, a(NAN_W, 4), ValueError, ["`weight`", "finite", "8 NaN"]),
    Bad(llm.choose_qparams, a(W[0], 4), ValueError, ["`weight`", "2 dimensions", "(64,)"]),
    Bad(llm.choose_qparams, a(W.numpy(), 4), TypeError, ["`weight`", "torch.Tensor", "ndarray"]),
    Bad(llm.choose_qparams, a(W, 4.0), TypeError, ["`bits`", "integer", "4.0"]),
    Bad(llm.quantize, a(W, Q4.scale[:, :1], Q4.zero_point, 4), ValueError, ["`scale` and `zero_point`", "(8, 1)", "(8, 2)"]),
    Bad(llm.quantize, a(W, -Q4.scale, Q4.zero_point, 4), ValueError, ["`scale`", "positive"]),
    Bad(llm.quantize, a(W, Q4.scale, Q4.zero_point.float(), 4), TypeError, ["`zero_point`", "integer", "torch.float32"]),
    Bad(llm.quantize, a(W.long(), Q4.scale, Q4.zero_point, 4), TypeError, ["`weight`", "floating-point", "torch.int64"]),
    Bad(llm.dequantize, a(Q4.codes.float(), Q4.scale, Q4.zero_point), TypeError, ["`codes`", "integer", "torch.float32"]),
    Bad(llm.dequantize, a(Q4.codes, Q4.scale * math.nan, Q4.zero_point), ValueError, ["`scale`", "finite"]),
    Bad(llm.quantize_rtn, a(W, 0), ValueError, ["`bits`", "got 0"]),
    Bad(llm.quantize_rtn, a(W, 9, 32), ValueError, ["`bits`", "got 9"]),
    Bad(llm.quantize_rtn, a(W, 4, 0), ValueError, ["`group_size`", "[1, inf]", "got 0"]),
    Bad(llm.quantize_rtn, a(W, 4, 32.0), TypeError, ["`group_size`", "integer", "32.0"]),
    Bad(llm.quantize_rtn, a(NAN_W, 4, 32), ValueError, ["`weight`", "finite"]),
    Bad(llm.QuantizedWeight, a(Q4.codes + 16, Q4.scale, Q4.zero_point, 4, 32), ValueError, ["`codes`", "[0, 15]", "got values in"]),
    Bad(llm.QuantizedWeight, a(Q4.codes, Q4.scale, Q4.zero_point, 4, 16), ValueError, ["`group_size`", "32", "got 16"]),
    Bad(llm.QuantizedWeight, a(Q4.codes, Q4.scale, Q4.zero_point, 9, 32), ValueError, ["`bits`", "got 9"]),
    Bad(llm.QuantizedWeight, a(Q4.codes.float(), Q4.scale, Q4.zero_point, 4, 32), TypeError, ["`codes`", "integer", "float32"]),
    Bad(llm.pack_int4, a(torch.tensor([0, 16])), ValueError, ["`codes`", "[0, 15]", "[0, 16]"]),
    Bad(llm.pack_int4, a(torch.tensor([-9, 0]), signed=True), ValueError, ["`codes`", "[-8, 7]", "[-9, 0]"]),
    Bad(llm.pack_int4, a(torch.tensor([1.0, 2.0])), TypeError, ["`codes`", "integer", "torch.float32"]),
    Bad(llm.pack_int4, a([1, 2]), TypeError, ["`codes`", "torch.Tensor", "list"]),
    Bad(llm.pack_int4, a(torch.tensor([1, 2]), 1), TypeError, ["`signed`", "bool", "1"]),
    Bad(llm.unpack_int4, a(torch.tensor([1, 2], dtype=torch.int8), 4), TypeError, ["`packed`", "uint8", "torch.int8"]),
    Bad(llm.unpack_int4, a(torch.tensor([1, 2], dtype=torch.uint8), 5), ValueError, ["`n`", "[0, 4]", "got 5"]),
    Bad(llm.unpack_int4, a(torch.tensor([1, 2], dtype=torch.uint8), 2), ValueError, ["`n`", "3 or 4", "got 2"]),
    Bad(llm.quantized_bytes, a(8, 64, 1), ValueError, ["`bits`", "got 1"]),
    Bad(llm.quantized_bytes, a(8, 64, 4, 128), ValueError, ["`group_size`", "[1, 64]", "got 128"]),
    Bad(llm.quantized_bytes, a(0, 64, 4), ValueError, ["`out_features`", "got 0"]),
    Bad(llm.save_quantized, a(3, {"w": Q4}), TypeError, ["`path`", "int"]),
    Bad(llm.save_quantized, a("x.ckq", [Q4]), TypeError, ["`tensors`", "Mapping", "list"]),
    Bad(llm.save_quantized, a("x.ckq", {"w": NAN_W}), ValueError, ["`tensors['w']`", "finite"]),
    Bad(llm.save_quantized, a("x.ckq", {"w": W.numpy()}), TypeError, ["`tensors['w']`", "ndarray"]),
    Bad(llm.save_quantized, a("x.ckq", {"w": Q4}, torch.bfloat16), ValueError, ["`float_dtype`", "torch.bfloat16"]),
    Bad(llm.load_quantized, a("/nonexistent/m.ckq"), ValueError, ["`path`", "existing file", "'/nonexistent/m.ckq'"]),
    Bad(llm.load_quantized, a(None), TypeError, ["`path`", "NoneType"]),
    # --- gptq -----------------------------------------------------------------------------------------
    Bad(llm.gptq_hessian, a(X[0]), ValueError, ["`inputs`", "(..., in_features)", "(64,)"]),
    Bad(llm.gptq_hessian, a(X.long()), TypeError, ["`inputs`", "floating-point", "torch.int64"]),
    Bad(llm.gptq_hessian, a(X.index_fill(0, torch.tensor([2]), math.nan)), ValueError, ["`inputs`", "finite", "64 NaN"]),
    Bad(llm.gptq_hessian, a(torch.empty(0, 64)), ValueError, ["`inputs`", "empty", "(0, 64)"]),
    Bad(llm.gptq, a(W, H[:32, :32], 4), ValueError, ["`H`", "(64, 64)", "(32, 32)"]),
    Bad(llm.gptq, a(W, H + torch.triu(torch.ones(64, 64, dtype=H.dtype), 1), 4), ValueError, ["`H`", "symmetric"]),
    Bad(llm.gptq, a(W, H, 4, 48), ValueError, ["`group_size` must divide in_features=64; got 48"]),
    Bad(llm.gptq, a(W, H, 0), ValueError, ["`bits`", "got 0"]),
    Bad(llm.gptq, a(W, H, 9), ValueError, ["`bits`", "got 9"]),
    Bad(llm.gptq, a(NAN_W, H, 4), ValueError, ["`weight`", "finite"]),
    Bad(llm.gptq, a(W, H, 4, block_size=0), ValueError, ["`block_size`", "got 0"]),
    Bad(llm.gptq, a(W, H, 4, percdamp=2.0), ValueError, ["`percdamp`", "[0, 1]", "2.0"]),
    Bad(llm.gptq, a(W, llm.gptq_hessian(X[:4]), 4, percdamp=0.0), ValueError, ["`H`", "positive definite", "percdamp=0.0"]),
    Bad(llm.gptq, a(W, H, 4, act_order="yes"), TypeError, ["`act_order`", "bool", "'yes'"]),
    # --- awq ------------------------------------------------------------------------------------------
    Bad(llm.awq_scales, a(X, 1.5), ValueError, ["`alpha`", "[0, 1]", "1.5"]),
    Bad(llm.awq_scales, a(X, -0.1), ValueError, ["`alpha`", "[0, 1]", "-0.1"]),
    Bad(llm.awq_scales, a(X, "half"), TypeError, ["`alpha`", "real number", "'half'"]),
    Bad(llm.awq_scales, a(X * math.nan, 0.5), ValueError, ["`inputs`", "finite"]),
    Bad(llm.awq_search, a([], X, 4), ValueError, ["`weights`", "empty"]),
    Bad(llm.awq_search, a(W, X[:, :32], 4), ValueError, ["`inputs`", "in_features=64", "(32, 32)"]),
    Bad(llm.awq_search, a(W, X, 4, 48), ValueError, ["`group_size` must divide in_features=64; got 48"]),
    Bad(llm.awq_search, a(W, X, 9), ValueError, ["`bits`", "got 9"]),
    Bad(llm.awq_search, a(W, X, 4, n_grid=1), ValueError, ["`n_grid`", "got 1"]),
    Bad(llm.awq_search, a([W, NAN_W], X, 4), ValueError, ["`weights[1]`", "finite"]),
    Bad(llm.awq_search, a(W, torch.empty(0, 64), 4), ValueError, ["`inputs`", "empty"]),
    # --- folding (the module watched: nothing changes on a failed call) --------------------------------
    Bad(fold_scales, lazy(lambda: ((ln_fc(), -torch.ones(16)), {})), ValueError, ["`s`", "positive", "-1.0"], watch=(0,)),
    Bad(fold_scales, lazy(lambda: ((ln_fc(), torch.ones(8)), {})), ValueError, ["`s`", "(16)", "got 8"], watch=(0,)),
    Bad(fold_scales, lazy(lambda: ((ln_fc(), torch.ones(16) * math.nan), {})), ValueError, ["`s`", "finite"], watch=(0,)),
    Bad(fold_scales, lazy(lambda: ((ln_fc(), torch.ones(16), []), {})), TypeError, ["`linears`", "non-empty"], watch=(0,)),
    Bad(fold_scales, lazy(lambda: ((ln_fc(), torch.ones(16), [nn.Conv1d(16, 4, 1)]), {})), TypeError, ["`linears[0]`", "Linear", "Conv1d"], watch=(0,)),
    Bad(llm.fold_scales, a(nn.ReLU(), [nn.Linear(16, 4)], torch.ones(16)), TypeError, ["`prev`", "LayerNorm or nn.Linear", "ReLU"]),
    Bad(llm.fold_scales, a(nn.LayerNorm(16, elementwise_affine=False), [nn.Linear(16, 4)], torch.ones(16)), ValueError, ["`prev`", "elementwise_affine"]),
    # --- smoothquant ----------------------------------------------------------------------------------
    Bad(llm.activation_outliers, a(X.long()), TypeError, ["`inputs`", "floating-point", "torch.int64"]),
    Bad(llm.activation_outliers, a(X * math.nan), ValueError, ["`inputs`", "finite"]),
    Bad(llm.activation_outliers, a(X.tolist()), TypeError, ["`inputs`", "torch.Tensor", "list"]),
    Bad(llm.smooth_scales, a(X.abs().amax(0), W, 2.0), ValueError, ["`alpha`", "[0, 1]", "2.0"]),
    Bad(llm.smooth_scales, a(X.abs().amax(0), W[:, :32]), ValueError, ["`weights[0]`", "in_features=64", "(8, 32)"]),
    Bad(llm.smooth_scales, a(X.abs(), W), ValueError, ["`act_max`", "1 dimensions", "(32, 64)"]),
    Bad(llm.smooth_scales, a(X.abs().amax(0), []), ValueError, ["`weights`", "empty"]),
    Bad(llm.w8a8_linear, a(X, W, None, "per_row"), ValueError, ["`activations`", "'per_token'", "'per_row'"]),
    Bad(llm.w8a8_linear, a(X[:, :32], W), ValueError, ["`x`", "in_features=64", "(32, 32)"]),
    Bad(llm.w8a8_linear, a(X, NAN_W), ValueError, ["`weight`", "finite"]),
    Bad(llm.int8_decomposition, a(X, W, 0.0), ValueError, ["`threshold`", "(0, inf)", "0.0"]),
    Bad(llm.int8_decomposition, a(X[None], W), ValueError, ["`x`", "2 dimensions", "(1, 32, 64)"]),
    Bad(llm.int8_decomposition, a(X, W[:, :32]), ValueError, ["`x`", "in_features=32", "(32, 64)"]),
    # --- kernel ---------------------------------------------------------------------------------------
    Bad(llm.matmul_nbits_model, a(W), TypeError, ["`q`", "QuantizedWeight", "Tensor"]),
    Bad(llm.matmul_nbits_model, a(Q3), ValueError, ["`q.bits`", "4 or 8", "got 3"]),
    Bad(llm.matmul_nbits_model, a(llm.quantize_rtn(torch.randn(4, 96), 4, 48)), ValueError, ["`q.group_size`", "power of two", "got 48"]),
    Bad(llm.matmul_nbits_model, a(Q4, torch.zeros(5)), ValueError, ["`bias`", "out_features=8", "(5,)"]),
    Bad(llm.MatMulNBitsLinear, a(Q4, None, 0), ValueError, ["`threads`", "got 0"]),
    Bad(llm.MatMulNBitsLinear, a(Q4, accuracy_level=5), ValueError, ["`accuracy_level`", "[0, 1, 2, 3, 4]", "5"]),
    Bad(llm.MatMulNBitsLinear, a(Q3), ValueError, ["`q.bits`", "got 3"]),
    Bad(lambda q, x: llm.MatMulNBitsLinear(q)(x), a(Q4, X[:, :32]), ValueError, ["`x`", "K=64", "(32, 32)"]),
    Bad(llm.kernel_latency, a(Q4, batch=0), ValueError, ["`batch`", "got 0"]),
    Bad(llm.kernel_latency, a(W), TypeError, ["`q`", "QuantizedWeight"]),
    # --- model-level (the model watched; pruned models among them) -----------------------------------
    Bad(llm.calibration_inputs, lazy(lambda: ((pruned_lm(), []), {})), ValueError, ["`calibration`", "at least one batch"], watch=(0,)),
    Bad(llm.calibration_inputs, lazy(lambda: ((pruned_lm(), CAL[0]), {})), TypeError, ["`calibration`", "sequence of input batches", "Tensor"], watch=(0,)),
    Bad(llm.calibration_inputs, lazy(lambda: ((pruned_lm(), [CAL[0].float()]), {})), ValueError, ["`calibration[0]`", "batch `model` can take", "torch.float32"], watch=(0,)),
    Bad(llm.calibration_inputs, lazy(lambda: ((pruned_lm(), CAL, ["ln_f"]), {})), ValueError, ["`names`", "Linear layers", "'ln_f'"], watch=(0,)),
    Bad(llm.calibration_inputs, a("model", CAL), TypeError, ["`model`", "torch.nn.Module", "'model'"]),
    Bad(llm.calibration_inputs, a(nn.Sequential(nn.ReLU()), [torch.ones(2)]), ValueError, ["`model`", "nn.Linear", "Sequential"]),
    Bad(llm.find_folds, lazy(lambda: ((pruned_lm(), [1, 2]), {})), TypeError, ["`example`", "Tensor", "list"], watch=(0,)),
    Bad(llm.find_folds, lazy(lambda: ((pruned_lm(), torch.full((1, 40), 99)), {})), ValueError, ["`example[0]`", "batch `model` can take"], watch=(0,)),
    Bad(llm.find_folds, a(None, CAL[0]), TypeError, ["`model`", "NoneType"]),
    Bad(llm.quantize_model, lazy(lambda: ((pruned_lm(), "hqq", 4), {})), ValueError, ["`method`", "'rtn'", "'hqq'"], watch=(0,)),
    Bad(llm.quantize_model, lazy(lambda: ((pruned_lm(), "rtn", 0), {})), ValueError, ["`bits`", "got 0"], watch=(0,)),
    Bad(llm.quantize_model, lazy(lambda: ((pruned_lm(), "rtn", 9), {})), ValueError, ["`bits`", "got 9"], watch=(0,)),
    Bad(llm.quantize_model, lazy(lambda: ((pruned_lm(), "rtn", 4, 48), {})), ValueError, ["`group_size` must divide in_features=32", "got 48"], watch=(0,)),
    Bad(llm.quantize_model, lazy(lambda: ((pruned_lm(), "gptq", 4, 16), {})), ValueError, ["`calibration`", "'gptq'", "None"], watch=(0,)),
    Bad(llm.quantize_model, lazy(lambda: ((pruned_lm(), "awq", 4, 16, []), {})), ValueError, ["`calibration`", "at least one batch"], watch=(0,)),
    Bad(llm.quantize_model, lazy(lambda: ((pruned_lm(), "gptq", 4, 16, [CAL[0].float()]), {})), ValueError, ["`calibration[0]`", "torch.float32"], watch=(0,)),
    Bad(llm.quantize_model, lazy(lambda: ((pruned_lm(), "rtn", 4, 16), {"embedding_bits": 1})), ValueError, ["`embedding_bits`", "got 1"], watch=(0,)),
    Bad(llm.quantize_model, lazy(lambda: ((pruned_lm(), "gptq", 4, 16, CAL), {"percdamp": -1.0})), ValueError, ["`percdamp`", "-1.0"], watch=(0,)),
    Bad(llm.quantize_model, lazy(lambda: ((pruned_lm(), "rtn", 4, 16), {"symmetric": 1})), TypeError, ["`symmetric`", "bool", "1"], watch=(0,)),
    Bad(llm.quantize_model, lazy(lambda: ((nan_lm(), "rtn", 4, 16), {})), ValueError, ["`model`", "finite", "`blocks.1.proj.weight`"], watch=(0,)),
    Bad(llm.quantize_model, a(nn.Sequential(nn.ReLU()), "rtn", 4), ValueError, ["`model`", "nn.Linear", "Sequential"]),
    Bad(llm.smoothquant_model, lazy(lambda: ((pruned_lm(), CAL, 1.5), {})), ValueError, ["`alpha`", "[0, 1]", "1.5"], watch=(0,)),
    Bad(llm.smoothquant_model, lazy(lambda: ((pruned_lm(), []), {})), ValueError, ["`calibration`", "at least one batch"], watch=(0,)),
    Bad(llm.smoothquant_model, lazy(lambda: ((pruned_lm(), CAL), {"activations": "per_row"})), ValueError, ["`activations`", "'per_row'"], watch=(0,)),
    Bad(llm.smoothquant_model, lazy(lambda: ((nan_lm(), CAL), {})), ValueError, ["`model`", "finite", "`blocks.1.proj.weight`"], watch=(0,)),
    Bad(llm.W8A8Linear, a(4, 2, True, "per_row"), ValueError, ["`activations`", "'per_row'"]),
    Bad(llm.W8A8Linear.from_float, a(nn.Conv1d(2, 2, 1)), TypeError, ["`linear`", "nn.Linear", "Conv1d"]),
    Bad(llm.quantized_state_dict, lazy(lambda: ((pruned_lm(),), {})), ValueError, ["`model`", "quantize_model", "`quantized_weights`"], watch=(0,)),
    Bad(llm.quantized_state_dict, a([1]), TypeError, ["`model`", "torch.nn.Module", "list"]),
    Bad(llm.load_quantized_model, lazy(lambda: (("/nonexistent/m.ckq", pruned_lm()), {})), ValueError, ["`path`", "existing file"], watch=(1,)),
    Bad(llm.load_quantized_model, a("m.ckq", "model"), TypeError, ["`model`", "torch.nn.Module"]),
]

for case in CASES:
    name = getattr(case.fn, "__qualname__", "fn").replace("<lambda>", "MatMulNBitsLinear.__call__")
    case.id = f"{name}-{'-'.join(case.words)}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_the_rule_and_the_value(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # save_quantized's rows must not leave files behind
    assert_refused(case)
    assert not list(tmp_path.iterdir()), "a failed call wrote a file"


CHAPTER_10_MODULES = (llm.heads, llm.kv_cache, llm.lora, llm.lowrank, llm.speculative, llm.wanda)


def test_every_chapter_10_module_has_its_own_sweep():
    from pathlib import Path

    for module in CHAPTER_10_MODULES:
        name = module.__name__.rsplit(".", 1)[1]
        assert (Path(__file__).parent / f"test_bad_input_llm_{name}.py").exists(), f"no bad-input sweep for llm.{name}"


def test_every_public_name_has_a_bad_input_row():
    covered = {getattr(c.fn, "__qualname__", "").split(".")[0] for c in CASES} | {"MatMulNBitsLinear"}
    chapter_10 = {name for module in CHAPTER_10_MODULES for name in module.__all__}  # their own sweeps
    missing = sorted(set(llm.__all__) - chapter_10 - covered - RESULTS_ONLY)
    assert not missing, f"public names without a bad-input row: {missing}"
    assert RESULTS_ONLY <= set(llm.__all__)


@pytest.mark.parametrize("method", ["rtn", "gptq", "awq"])
def test_a_pruned_model_goes_through_every_function_that_takes_a_model(method, tmp_path):
    model, dense = pruned_lm(training=True), tiny_lm()
    with torch.no_grad():  # the dense twin: the pruned model's weights with its zeros
        dense.blocks[0].fc1.weight.copy_(model.blocks[0].fc1.weight)
    before = snapshot(model)
    smooth_p, smooth_d = llm.smoothquant_model(model, CAL), llm.smoothquant_model(dense, CAL)
    X_p, X_d = llm.calibration_inputs(model, CAL), llm.calibration_inputs(dense, CAL)
    assert X_p.keys() == X_d.keys() and all(torch.equal(X_p[k], X_d[k]) for k in X_p)
    assert llm.find_folds(model, CAL[0]) == llm.find_folds(dense, CAL[0])
    q_p = llm.quantize_model(model, method, 4, 16, CAL, n_grid=4)
    q_d = llm.quantize_model(dense, method, 4, 16, CAL, n_grid=4)
    for k, v in q_d.state_dict().items():
        assert torch.equal(q_p.state_dict()[k], v), k
    llm.save_quantized(tmp_path / "m.ckq", llm.quantized_state_dict(q_p))
    back = llm.load_quantized_model(tmp_path / "m.ckq", model)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in q_d.state_dict().items())
    with torch.no_grad():
        assert torch.equal(smooth_p(CAL[0]), smooth_d(CAL[0]))
    after = snapshot(model)
    assert all(torch.equal(after[0][k], v) for k, v in before[0].items()) and after[1:] == before[1:]
