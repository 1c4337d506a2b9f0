"""Every public name of compresskit.sparsity refuses bad input (wrong types, ranges, NaN, empty
and mis-shaped tensors) with an error that names the argument, the rule and the value received;
a call that fails changes no model (parameters, buffers, pruning hooks, ``model.training``).

One row per (function, bad call), as in tests/test_bad_input.py: the error type and the words
its message must contain. Rows marked pruned run on a model pruned with torch.nn.utils.prune
(its good calls are in tests/test_sparsity_pruned.py). A completeness test checks that every
name of ``compresskit.sparsity.__all__`` has a row or a stated reason for having none.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from bad_input_harness import Bad, a, assert_refused, lazy, snapshot
from compresskit import models
from compresskit import sparsity as S

NAN = float("nan")


def mlp() -> nn.Sequential:
    return models.mlp((8,), seed=0)


def pruned_mlp() -> nn.Sequential:
    """fc1 pruned with torch's L1 method, and a forward pass with gradients on: its weight is then
    a non-leaf tensor, which copy.deepcopy refuses."""
    model = mlp()
    torch_prune.l1_unstructured(model.fc1, "weight", 0.5)
    model(X).sum().backward()
    model.zero_grad()
    return model.train()


def pruned_cnn() -> nn.Sequential:
    model = models.cnn((4, 4), seed=0)
    torch_prune.l1_unstructured(model.conv1, "weight", 0.5)
    return model.train()


def nan_mlp() -> nn.Sequential:
    model = mlp()
    with torch.no_grad():
        model.fc1.weight[0, 0] = NAN
    return model


X = torch.rand(4, 1, 8, 8)
Y = torch.tensor([0, 1, 2, 3])
W = torch.randn(4, 8)
D = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
CSR = S.to_csr(D)
COO = S.to_coo(D)
BITMASK = S.to_bitmask(D)
REL = S.to_relative(D)
PACKED = S.pack_nm(W)
CHAIN = S.Chain("fc1", "fc2")


def m(build, *rest, **kwargs):
    """Arguments whose first element is a fresh model from ``build``."""
    return lambda: ((build(), *rest), kwargs)


def ones_but(shape, value):
    mask = torch.ones(shape)
    mask.view(-1)[1] = value
    return mask


CASES = [
    # --- unstructured --------------------------------------------------------------------------
    Bad(S.check_sparsity, a(1.0), ValueError, ["`amount`", "[0, 1)", "1.0"]),
    Bad(S.check_sparsity, a("0.5", "density"), TypeError, ["`density`", "real number", "'0.5'"]),
    Bad(S.sparse_weights, a("model"), TypeError, ["`model`", "torch.nn.Module", "'model'"]),
    Bad(S.global_masks, a({"a": torch.tensor([1.0, NAN])}, 0.5), ValueError, ["`scores['a']`", "finite", "1 NaN"]),
    Bad(S.global_masks, a({"a": torch.ones(3)}, NAN), ValueError, ["`amount`", "[0, 1)", "nan"]),
    Bad(S.global_masks, a({}, 0.5), TypeError, ["`scores`", "non-empty dict", "{}"]),
    Bad(S.global_masks, a({"a": torch.ones(0)}, 0.5), ValueError, ["`scores['a']`", "not be empty", "(0,)"]),
    Bad(S.global_masks, a({"a": torch.ones(3, dtype=torch.long)}, 0.5), TypeError, ["`scores['a']`", "floating-point", "int64"]),
    Bad(S.magnitude_scores, a(np.ones(3)), TypeError, ["`weight`", "torch.Tensor", "ndarray"]),
    Bad(S.random_scores, a(W, seed=-1), ValueError, ["`seed`", "[0, inf]", "-1"]),
    Bad(S.random_scores, a(torch.ones(0), seed=0), ValueError, ["`weight`", "not be empty", "(0,)"]),
    Bad(S.taylor_scores, a(W, torch.ones(4, 7)), ValueError, ["`grad`", "shape of `weight`", "(4, 7)"]),
    Bad(S.taylor_scores, a(W, W * NAN), ValueError, ["`grad`", "finite", "NaN"]),
    Bad(S.weight_gradients, m(mlp, X, Y.float()), TypeError, ["`y`", "int64 class labels", "float32"], watch=0),
    Bad(S.weight_gradients, m(mlp, X, torch.tensor([0, 1, 2, 30])), ValueError, ["`y`", "[0, 9]", "30"], watch=0),
    Bad(S.weight_gradients, m(pruned_mlp, X, torch.tensor([0, 1, 2, -3])), ValueError, ["`y`", "[0, 9]", "-3"], watch=0),
    Bad(S.weight_gradients, m(mlp, torch.rand(4, 1, 9, 9), Y), ValueError, ["`X`", "fit the model", "(4, 1, 9, 9)"], watch=0),
    Bad(S.weight_gradients, m(mlp, X[:0], Y[:0]), ValueError, ["`X`", "not be empty", "(0, 1, 8, 8)"], watch=0),
    Bad(S.weight_gradients, a(nn.ReLU(), X, Y), ValueError, ["`model`", "Linear or Conv2d", "ReLU"]),
    Bad(S.importance_scores, m(pruned_mlp, "l1"), ValueError, ["`method`", "'magnitude'", "'l1'"], watch=0),
    Bad(S.importance_scores, m(mlp, "random", seed="a"), TypeError, ["`seed`", "integer", "'a'"], watch=0),
    Bad(S.importance_scores, m(nan_mlp, "magnitude"), ValueError, ["`model.fc1.weight`", "finite", "1 NaN"], watch=0),
    Bad(S.importance_scores, a(nn.ReLU(), "magnitude"), ValueError, ["`model`", "Linear or Conv2d", "none"]),
    Bad(S.apply_masks, m(mlp, {"fc1.weight": ones_but((8, 64), 0.5)}), ValueError, ["`masks['fc1.weight']`", "only 0 and 1", "0.5"], watch=0),
    Bad(S.apply_masks, m(pruned_mlp, {"fc1.weight": ones_but((8, 64), NAN)}), ValueError, ["`masks['fc1.weight']`", "only 0 and 1", "nan"], watch=0),
    Bad(S.apply_masks, m(mlp, {"fc1.weight": np.ones((8, 64))}), TypeError, ["`masks['fc1.weight']`", "torch.Tensor", "ndarray"], watch=0),
    Bad(S.apply_masks, m(mlp, {"fc1.weight": torch.ones(3, 3)}), ValueError, ["`masks['fc1.weight']`", "shape (8, 64)", "(3, 3)"], watch=0),
    Bad(S.apply_masks, m(mlp, [torch.ones(8, 64)]), TypeError, ["`masks`", "non-empty dict", "list"], watch=0),
    Bad(S.sparsify, m(pruned_mlp, 1.0), ValueError, ["`amount`", "[0, 1)", "1.0"], watch=0),
    Bad(S.sparsify, m(mlp, 0.5, "taylor", X=X, y=torch.tensor([0, 1, 2, 99])), ValueError, ["`y`", "[0, 9]", "99"], watch=0),
    Bad(S.sparsify, m(mlp, 0.5, "taylor", X=X), ValueError, ["`X` and `y`", "must be given", "None"], watch=0),
    Bad(S.soft_threshold, a(W, NAN), ValueError, ["`threshold`", "[0, inf)", "nan"]),
    Bad(S.soft_threshold, a(torch.ones(3, dtype=torch.long), 0.1), TypeError, ["`weight`", "floating-point", "int64"]),
    Bad(S.ProximalL1, m(pruned_mlp, 1.0, 0.0), ValueError, ["`lr`", "(0, inf)", "0.0"], watch=0),
    Bad(S.ProximalL1, a(nn.ReLU(), 1.0, 0.1), ValueError, ["`model`", "Linear or Conv2d", "ReLU"]),
    Bad(S.MaskKeeper, m(pruned_mlp, {"fc1.weight": ones_but((8, 64), 0.5)}), ValueError, ["`masks['fc1.weight']`", "only 0 and 1", "0.5"], watch=0),
    Bad(S.MaskKeeper, m(mlp, {"fc9.weight": torch.ones(8, 64)}), ValueError, ["`masks`", "name weights", "'fc9.weight'"], watch=0),
    Bad(S.MaskKeeper, m(mlp, None), TypeError, ["`masks`", "non-empty dict", "None"], watch=0),
    Bad(S.weight_sparsity, a(nn.ReLU()), ValueError, ["`model`", "Linear or Conv2d", "none"]),
    Bad(S.total_sparsity, a([1, 2]), TypeError, ["`model`", "torch.nn.Module", "[1, 2]"]),
    # --- gradients -----------------------------------------------------------------------------
    Bad(S.topk_gradient, a(W, 0.0), ValueError, ["`density`", "(0, 1]", "0.0"]),
    Bad(S.topk_gradient, a(W * NAN, 0.5), ValueError, ["`grad`", "finite", "NaN"]),
    Bad(S.topk_gradient, a(torch.ones(0), 0.5), ValueError, ["`grad`", "not be empty", "(0,)"]),
    Bad(S.message_bytes, a(10.0, 0.5), TypeError, ["`numel`", "integer", "10.0"]),
    Bad(S.message_bytes, a(10, 0.5, index_bytes=0), ValueError, ["`index_bytes`", "[1, inf]", "0"]),
    Bad(S.TopKSparsifier, m(pruned_mlp, 1.5), ValueError, ["`density`", "(0, 1]", "1.5"], watch=0),
    Bad(S.TopKSparsifier, m(mlp, 0.5, error_feedback="yes"), TypeError, ["`error_feedback`", "bool", "'yes'"], watch=0),
    Bad(S.TopKSparsifier, a(nn.ReLU(), 0.5), ValueError, ["`model`", "requires grad", "none"]),
    # --- N:M -----------------------------------------------------------------------------------
    Bad(S.nm_mask, a(W, 5, 4), ValueError, ["`n`", "at most `m` = 4", "n = 5"]),
    Bad(S.nm_mask, a(torch.randn(4, 6), 2, 4), ValueError, ["`m`", "divide the row length 6", "m = 4"]),
    Bad(S.nm_mask, a(torch.randn(8), 2, 4), ValueError, ["`weight`", "2 or 3 or 4 dimensions", "(8,)"]),
    Bad(S.nm_mask, a(W * NAN, 2, 4), ValueError, ["`weight`", "finite", "NaN"]),
    Bad(S.nm_mask, a(W, 2.0, 4), TypeError, ["`n`", "integer", "2.0"]),
    Bad(S.is_nm_sparse, a(W * NAN, 2, 4), ValueError, ["`weight`", "finite", "NaN"]),
    Bad(S.is_nm_sparse, a(torch.ones(4, 8, dtype=torch.long)), TypeError, ["`weight`", "floating-point", "int64"]),
    Bad(S.index_bits, a(1), ValueError, ["`m`", "[2, 256]", "1"]),
    Bad(S.pack_nm, a(torch.ones(0, 8)), ValueError, ["`weight`", "not be empty", "(0, 8)"]),
    Bad(S.pack_nm, a(torch.randn(2, 6), 1, 1), ValueError, ["`m`", "[2, 256]", "1"]),
    Bad(S.unpack_nm, a("packed"), TypeError, ["`packed`", "NMPacked", "str"]),
    Bad(S.unpack_nm, a(dataclasses.replace(PACKED, values=PACKED.values * NAN)), ValueError, ["`packed.values`", "finite", "NaN"]),
    Bad(S.unpack_nm, a(dataclasses.replace(PACKED, indices=PACKED.indices[:1])), ValueError, ["`packed.indices`", "4 uint8 bytes", "got 1"]),
    Bad(S.unpack_nm, a(dataclasses.replace(PACKED, shape=(-4, -8))), ValueError, ["`packed.shape`", "positive ints", "(-4, -8)"]),
    Bad(S.unpack_nm, a(dataclasses.replace(PACKED, shape="ab")), ValueError, ["`packed.shape`", "positive ints", "'ab'"]),
    Bad(S.nm_bytes, a(6), ValueError, ["`m`", "divide `numel` = 6", "m = 4"]),
    Bad(S.nm_bytes, a(8, 2, 4, 4.0), TypeError, ["`value_bytes`", "integer", "4.0"]),
    Bad(S.packed_bytes, a(W), TypeError, ["`packed`", "NMPacked", "Tensor"]),
    # --- formats -------------------------------------------------------------------------------
    Bad(S.to_csr, a(torch.ones(3)), ValueError, ["`dense`", "2 dimensions", "(3,)"]),
    Bad(S.to_csr, a(D, "int32"), ValueError, ["`index_dtype`", "one of", "'int32'"]),
    Bad(S.to_coo, a(torch.ones(2, 40000), torch.int16), ValueError, ["`index_dtype`", "cannot hold index", "39999"]),
    Bad(S.to_coo, a(D / 0), ValueError, ["`dense`", "finite", "NaN or inf"]),
    Bad(S.to_bitmask, a(D.numpy()), TypeError, ["`dense`", "torch.Tensor", "ndarray"]),
    Bad(S.to_relative, a(D, 3), ValueError, ["`index_bits`", "[1, 2, 4, 8]", "3"]),
    Bad(S.to_relative, a(torch.ones(0, 3)), ValueError, ["`dense`", "not be empty", "(0, 3)"]),
    Bad(S.count_fillers, a(D * NAN), ValueError, ["`dense`", "finite", "NaN"]),
    Bad(S.from_csr, a(COO), TypeError, ["`csr`", "a CSR", "COO"]),
    Bad(S.from_csr, a(S.CSR((2, 3), CSR.crow_indices.float(), CSR.col_indices, CSR.values)), TypeError, ["`crow_indices`", "integers", "float32"]),
    Bad(S.from_csr, a(S.CSR((3, 3), torch.tensor([0, 1, 2]), CSR.col_indices, CSR.values)), ValueError, ["`crow_indices`", "length 4", "got 3"]),
    Bad(S.from_csr, a(S.CSR((2, 3), CSR.crow_indices, CSR.col_indices, CSR.values * NAN)), ValueError, ["`values`", "finite", "NaN"]),
    Bad(S.from_csr, a(S.CSR((2.0, 3), CSR.crow_indices, CSR.col_indices, CSR.values)), TypeError, ["`shape[0]`", "integer", "2.0"]),
    Bad(S.from_coo, a(S.COO((2, 3), torch.tensor([0, 0]), torch.tensor([1, 1]), torch.ones(2))), ValueError, ["`row`, `col`", "without repeats", "(0, 1) follows (0, 1)"]),
    Bad(S.from_coo, a(S.COO((2, 3), COO.row[:1], COO.col, COO.values)), ValueError, ["`row`", "length 2", "got 1"]),
    Bad(S.from_bitmask, a(S.Bitmask((2, 3), BITMASK.bits.long(), BITMASK.values)), TypeError, ["`bits`", "uint8", "int64"]),
    Bad(S.from_bitmask, a(S.Bitmask((2, 3), BITMASK.bits, BITMASK.values[:1])), ValueError, ["`values`", "length 2", "got 1"]),
    Bad(S.from_relative, a(S.Relative((2, 3), REL.gaps.long(), REL.values, 4)), ValueError, ["`gaps`", "uint8 bytes", "int64"]),
    Bad(S.from_relative, a(S.Relative((1, 2), REL.gaps, REL.values, 4)), ValueError, ["`gaps`", "inside the 2 entries", "lands at 3"]),
    Bad(S.encode, a(D, "csc"), ValueError, ["`fmt`", "one of", "'csc'"]),
    Bad(S.encode, a(D, "csr", index_bits=4), TypeError, ["`kwargs`", "['index_dtype']", "['index_bits']"]),
    Bad(S.decode, a(D), TypeError, ["`encoded`", "COO, CSR, Bitmask or Relative", "Tensor"]),
    Bad(S.nbytes, a("csr"), TypeError, ["`encoded`", "COO, CSR, Bitmask or Relative", "str"]),
    Bad(S.format_bytes, a("csr", (2, 2), 5), ValueError, ["`nnz`", "[0, 4]", "5"]),
    Bad(S.format_bytes, a("csr", (2, 2, 2), 1), ValueError, ["`shape`", "(rows, columns)", "(2, 2, 2)"]),
    Bad(S.crossover_density, a("relative", (2, 2)), ValueError, ["`fmt`", "['coo', 'csr', 'bitmask']", "'relative'"]),
    Bad(S.pack_bits, a(torch.tensor([1.5, 2.7]), 4), TypeError, ["`codes`", "integers", "float32"]),
    Bad(S.pack_bits, a(torch.tensor([16]), 4), ValueError, ["`codes`", "[0, 15]", "16"]),
    Bad(S.unpack_bits, a(torch.tensor([1]), 4, 2), TypeError, ["`packed`", "uint8", "int64"]),
    Bad(S.unpack_bits, a(torch.tensor([1], dtype=torch.uint8), 4, -1), ValueError, ["`count`", "[0, inf]", "-1"]),
    # --- repair --------------------------------------------------------------------------------
    Bad(S.find_chains, a(nn.ReLU()), TypeError, ["`model`", "nn.Sequential", "ReLU"]),
    Bad(S.dead_units, a("model"), TypeError, ["`model`", "nn.Sequential", "str"]),
    Bad(S.constant_outputs, m(pruned_mlp, "fc1", [0]), TypeError, ["`chain`", "a Chain", "str"], watch=0),
    Bad(S.constant_outputs, m(mlp, CHAIN, torch.tensor([0.7])), TypeError, ["`units`", "integer unit indices", "float32"], watch=0),
    Bad(S.constant_outputs, m(mlp, CHAIN, ["a"]), TypeError, ["`units`", "list of ints", "['a']"], watch=0),
    Bad(S.constant_outputs, m(mlp, CHAIN, [9]), ValueError, ["`units`", "[0, 7]", "[9]"], watch=0),
    Bad(S.remove_units, m(pruned_mlp, CHAIN, torch.tensor([True, False])), TypeError, ["`remove`", "not a mask", "torch.bool"], watch=0),
    Bad(S.remove_units, m(mlp, CHAIN, torch.tensor([0.7])), TypeError, ["`remove`", "integer unit indices", "float32"], watch=0),
    Bad(S.remove_units, m(mlp, CHAIN, [1, 1]), ValueError, ["`remove`", "distinct", "[1, 1]"], watch=0),
    Bad(S.remove_units, m(mlp, CHAIN, [0], fold=torch.tensor([NAN])), ValueError, ["`fold`", "finite", "NaN"], watch=0),
    Bad(S.remove_units, m(mlp, S.Chain("fc1", "fc2", None, 2), [0]), ValueError, ["`chain`", "the model's chains", "group=2"], watch=0),
    Bad(S.repair, m(pruned_mlp, max_rounds=0), ValueError, ["`max_rounds`", "[1, inf]", "0"], watch=0),
    Bad(S.repair, m(nan_mlp), ValueError, ["`model.fc1.weight`", "finite", "1 NaN"], watch=0),
    Bad(S.recalibrate_batchnorm, m(pruned_cnn, torch.rand(4, 3, 8, 8)), ValueError, ["`X`", "fit the model", "(4, 3, 8, 8)"], watch=0),
    Bad(S.recalibrate_batchnorm, m(pruned_cnn, X, 1), ValueError, ["`batch_size`", "[2, inf]", "1"], watch=0),
    Bad(S.recalibrate_batchnorm, m(mlp, X), ValueError, ["`model`", "BatchNorm layer", "none"], watch=0),
    # --- structured ----------------------------------------------------------------------------
    Bad(S.record_activations, a("model", "relu1", X), TypeError, ["`model`", "torch.nn.Module", "'model'"]),
    Bad(S.record_activations, m(pruned_mlp, "relu1", torch.rand(4, 3, 3)), ValueError, ["`X`", "fit the model", "(4, 3, 3)"], watch=0),
    Bad(S.record_activations, m(mlp, "relu9", X), ValueError, ["`layer`", "submodule", "'relu9'"], watch=0),
    Bad(S.record_activations, m(mlp, "relu1", X * NAN), ValueError, ["`X`", "finite", "NaN"], watch=0),
    Bad(S.apoz, a(torch.ones(3)), ValueError, ["`activations`", "2 or 3 or 4 dimensions", "(3,)"]),
    Bad(S.apoz, a(torch.ones(2, 2) * NAN), ValueError, ["`activations`", "finite", "NaN"]),
    Bad(S.filter_norms, a(torch.ones(2, 2, 2)), ValueError, ["`weight`", "2 or 4 dimensions", "(2, 2, 2)"]),
    Bad(S.bn_scales, m(pruned_mlp), ValueError, ["`model`", "BatchNorm after a Linear / Conv2d", "none"], watch=0),
    Bad(S.slimming_loss, a("model", 1e-4), TypeError, ["`model`", "torch.nn.Module", "'model'"]),
    Bad(S.slimming_loss, m(pruned_cnn, -1.0), ValueError, ["`strength`", "[0, inf)", "-1.0"], watch=0),
    Bad(S.taylor_unit_scores, m(pruned_mlp, X, torch.tensor([0, 1, 2, 99])), ValueError, ["`y`", "[0, 9]", "99"], watch=0),
    Bad(S.taylor_unit_scores, a(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), X, Y), ValueError, ["`model`", "producer -> consumer", "Linear"]),
    Bad(S.unit_scores, m(pruned_mlp, "l2"), ValueError, ["`method`", "'l1'", "'l2'"], watch=0),
    Bad(S.unit_scores, m(mlp, "apoz"), ValueError, ["`X`", "must be given", "None"], watch=0),
    Bad(S.units_to_remove, a({"fc1": torch.tensor([1.0, NAN])}, 0.5), ValueError, ["`scores['fc1']`", "finite", "1 NaN"]),
    Bad(S.units_to_remove, a({"fc1": torch.ones(2)}, 0.5, scope="all"), ValueError, ["`scope`", "['layer', 'global']", "'all'"]),
    Bad(S.units_to_remove, a({}, 0.5), TypeError, ["`scores`", "non-empty dict", "{}"]),
    Bad(S.remove_lowest, m(pruned_mlp, {"fc1": [1.0] * 8}, 0.5), TypeError, ["`scores['fc1']`", "torch.Tensor", "list"], watch=0),
    Bad(S.remove_lowest, m(mlp, [torch.ones(8)], 0.5), TypeError, ["`scores`", "non-empty dict", "list"], watch=0),
    Bad(S.remove_lowest, m(mlp, {"fc1": torch.ones(3)}, 0.5), ValueError, ["`scores['fc1']`", "one score per unit (8)", "(3,)"], watch=0),
    Bad(S.remove_lowest, m(mlp, {"fc1": torch.ones(8)}, 1.5), ValueError, ["`amount`", "[0, 1)", "1.5"], watch=0),
]

for case in CASES:
    case.id = f"{getattr(case.fn, '__qualname__', case.fn)}-{'-'.join(case.words[:1] + case.words[2:])}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_the_argument_the_rule_and_the_value(case):
    assert_refused(case)  # tests/bad_input_harness.py: the error, its words, the watched models unchanged


def test_the_snapshot_sees_a_change_of_mode_and_of_a_pruning_mask():
    """The compare above could not fail if the snapshot missed what a bad call might change."""
    model = pruned_mlp()
    before = snapshot(model)
    model.eval()
    assert snapshot(model)[3] != before[3]
    model.train()
    with torch.no_grad():
        model.fc1.weight_mask[0, 0] = 1 - model.fc1.weight_mask[0, 0]
    assert not torch.equal(snapshot(model)[0]["fc1.weight_mask"], before[0]["fc1.weight_mask"])


def test_callbacks_refuse_a_model_of_another_shape_at_call_time_and_change_nothing():
    keeper = S.MaskKeeper(models.mlp((16,), seed=0), {"fc1.weight": torch.ones(16, 64)})
    prox = S.ProximalL1(models.mlp((16,), seed=0), 1.0, 0.1)
    other = pruned_mlp()
    before = snapshot(other)
    with pytest.raises(ValueError, match=r"`model` must have the weight 'fc1.weight' of shape \(16, 64\).*; got \(8, 64\)"):
        keeper(other, 1)
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module; got str 'model'"):
        prox("model", 1)
    with pytest.raises(ValueError, match="`model` must have a Linear or Conv2d layer; got ReLU"):
        prox(nn.ReLU(), 1)
    after = snapshot(other)
    assert all(torch.equal(after[0][k], v) for k, v in before[0].items()) and after[1:] == before[1:]


# Public names with no row, and why.
NO_ROW = {
    "COO": "a frozen dataclass that to_coo builds; from_coo checks it (rows above)",
    "CSR": "a frozen dataclass that to_csr builds; from_csr checks it (rows above)",
    "Bitmask": "a frozen dataclass that to_bitmask builds; from_bitmask checks it (rows above)",
    "Relative": "a frozen dataclass that to_relative builds; from_relative checks it (rows above)",
    "NMPacked": "a frozen dataclass that pack_nm builds; unpack_nm checks it (rows above)",
    "Chain": "a frozen dataclass of names that find_chains builds; constant_outputs / remove_units check it (rows above)",
}


def test_every_public_name_has_a_bad_input_row_or_a_reason():
    covered = {getattr(c.fn, "__qualname__", "").split(".")[0] for c in CASES}
    public = set(S.__all__)
    missing = sorted(public - covered - set(NO_ROW))
    assert not missing, f"public names without a bad-input row: {missing}"
    assert not set(NO_ROW) - public, "NO_ROW lists a name that is not public"
    assert not covered & set(NO_ROW), "a name has both a row and a reason for having none"
