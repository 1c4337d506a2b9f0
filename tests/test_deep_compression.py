"""Deep Compression (compresskit.training): k-means weight sharing against scikit-learn, centroid
fine-tuning by hand (Eq. 3), the compressed file (exact round trips, every corruption refused),
and the pipeline's stages."""

from __future__ import annotations

import copy
import functools
import struct
import zlib

import numpy as np
import pytest
import threadpoolctl
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from torch import nn

from compresskit import data, measure, models, pruning
from compresskit.train import fit
from compresskit.training import dcfile
from compresskit.training.dcfile import CompressedFileError, load_compressed, round_to_half, save_compressed
from compresskit.training.deep_compression import (
    CentroidFineTune,
    Stage,
    deep_compression,
    kmeans_1d,
    share_weights,
    zero_dead_units,
)

X_TEST, Y_TEST = data.load_digits_split().tensors("test")


@functools.lru_cache(maxsize=None)
def _trained(seed: int) -> nn.Sequential:
    model = models.mlp((32, 32), seed=seed)
    fit(model, data.digits_loaders(seed=seed)[0], epochs=3, seed=seed, progress=False)
    return model


def small_trained(seed: int = 0) -> nn.Sequential:
    """A fresh copy of a small MLP trained 3 epochs (trained once per seed)."""
    return copy.deepcopy(_trained(seed))


def pruned_model(amount: float = 0.8) -> nn.Sequential:
    model = small_trained()
    pruning.set_sparsity(pruning.prunable_parameters(model), amount)
    return pruning.remove_masks(model)


@pytest.fixture(scope="module")
def shared() -> nn.Sequential:
    """A pruned, weight-shared (3 bits, biases 4 bits), fp16-rounded MLP: what the file stores."""
    model = share_weights(pruned_model(), 3, bias_bits=4)
    return round_to_half(model)


# --- k-means weight sharing ------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 3, 5])
def test_kmeans_agrees_with_scikit_learn_from_the_same_linear_initialisation(bits):
    # A trained dense layer: after pruning, linear initialisation leaves the centroids inside the
    # pruned gap around 0 empty, and scikit-learn moves empty clusters where we keep them.
    values = small_trained().fc2.weight.detach().flatten()
    k = 2**bits
    start = torch.linspace(float(values.min()), float(values.max()), k)
    ours, indices = kmeans_1d(values, k, init="linear")
    theirs = KMeans(n_clusters=k, init=start.double().numpy()[:, None], n_init=1, max_iter=300, tol=0, algorithm="lloyd")
    with threadpoolctl.threadpool_limits(1):  # OpenMP threads crawl on a shared, busy CPU
        labels = theirs.fit_predict(values.double().numpy()[:, None])
    used = torch.bincount(indices, minlength=k) > 0
    assert bool(used.all()), "an empty cluster: scikit-learn relocates it, we keep it; pick data without one"
    order = np.argsort(theirs.cluster_centers_[:, 0])
    np.testing.assert_allclose(ours.numpy(), theirs.cluster_centers_[order, 0], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(indices.numpy(), np.argsort(order)[labels])


def test_share_weights_keeps_the_zeros_and_at_most_2_to_the_bits_values_and_leaves_the_caller_alone():
    model = pruned_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = share_weights(model, {"fc1": 2, "fc2": 3, "fc3": 4})
    for name, bits in {"fc1": 2, "fc2": 3, "fc3": 4}.items():
        w, w0 = getattr(out, name).weight, getattr(model, name).weight
        assert torch.equal(w == 0, w0 == 0)  # pruned stay zero; no weight becomes zero
        assert 1 < len(torch.unique(w[w != 0])) <= 2**bits
        assert torch.equal(getattr(out, name).bias, getattr(model, name).bias)  # biases untouched without bias_bits
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_share_weights_on_a_masked_model_makes_the_masks_permanent_in_the_copy():
    model = small_trained()
    pruning.l1_unstructured(model.fc1, "weight", 0.5)
    out = share_weights(model, 4)
    assert not hasattr(out.fc1, "weight_orig") and hasattr(model.fc1, "weight_orig")
    assert int((out.fc1.weight == 0).sum()) == int((model.fc1.weight == 0).sum())


def test_bias_bits_share_the_biases_too():
    """The shared biases are a k-means solution of the original ones, checked by its two defining
    properties (not by calling kmeans_1d): every bias takes the value nearest to it, and every
    shared value is the mean of the original biases that took it (Lloyd's fixed point, Eq. 2)."""
    model = pruned_model()
    out = share_weights(model, 3, bias_bits=2)
    for name in ("fc1", "fc2", "fc3"):
        b0, b = getattr(model, name).bias.detach().double(), getattr(out, name).bias.detach().double()
        assert torch.equal(b == 0, b0 == 0)
        values = torch.unique(b[b != 0])
        assert 1 < len(values) <= 4
        nearest = values[(b0[b0 != 0, None] - values[None, :]).abs().argmin(dim=1)]
        torch.testing.assert_close(b[b0 != 0], nearest, rtol=0, atol=1e-7)  # each bias on its nearest centroid
        for v in values:
            torch.testing.assert_close(b0[b == v].mean(), v, rtol=0, atol=1e-6)  # each centroid the mean of its biases
        assert not torch.equal(b, b0)  # something was shared


def test_random_initialisation_follows_the_seed_and_linear_ignores_it():
    w = torch.randn(500, generator=torch.Generator().manual_seed(0))
    a, b, c = (kmeans_1d(w, 8, init="random", seed=s)[0] for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(kmeans_1d(w, 8, seed=1)[0], kmeans_1d(w, 8, seed=2)[0])


@pytest.mark.parametrize(
    "bits, error, words",
    [(0, ValueError, "`bits` must be an integer in [1, 8]; got 0"), (9, ValueError, "got 9"), (1.5, TypeError, "`bits`"),
     (True, TypeError, "`bits`"), ({"fc1": 3}, ValueError, "missing ['fc2', 'fc3']"),
     ({"fc1": 3, "fc2": 3, "fc3": 3, "fc9": 3}, ValueError, "unknown ['fc9']"), ({"fc1": 3, "fc2": 0, "fc3": 3}, ValueError, "bits['fc2']")],
)
def test_share_weights_refuses_bad_bits(bits, error, words):
    with pytest.raises(error) as info:
        share_weights(pruned_model(), bits)
    assert words in str(info.value)


def test_a_layer_without_non_zero_weights_has_an_empty_codebook_and_is_refused():
    model = pruned_model()
    with torch.no_grad():
        model.fc2.weight.zero_()
    with pytest.raises(ValueError, match="`fc2` has no non-zero weights"):
        share_weights(model, 3)


# --- centroid fine-tuning (Eq. 3) ------------------------------------------------------------------


def test_one_step_moves_each_centroid_by_the_summed_gradient_of_its_weights():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, 0.0, -1.0], [0.5, -1.0, 0.0]]))
    model = nn.Sequential(layer)
    tune = CentroidFineTune(model, lr=0.1)
    layer.weight.grad = torch.tensor([[1.0, 7.0, 2.0], [3.0, 4.0, 9.0]])  # the 7 and 9 sit on pruned zeros
    with torch.no_grad():
        layer.weight.add_(123.0)  # whatever the optimizer did is overwritten
    tune(model, 1)
    # cluster -1.0: weights (0,2) and (1,1), gradients 2 + 4; cluster 0.5: (0,0) and (1,0), gradients 1 + 3
    assert torch.allclose(tune.codebooks_[0], torch.tensor([-1.0 - 0.1 * 6, 0.5 - 0.1 * 4]))
    assert torch.allclose(layer.weight, torch.tensor([[0.1, 0.0, -1.6], [0.1, -1.6, 0.0]]))


def test_fine_tuning_inside_fit_keeps_the_weights_tied_and_the_zeros_zero():
    model = share_weights(pruned_model(), 3, bias_bits=3)
    before = {n: m.weight.detach().clone() for n, m in model.named_children() if isinstance(m, nn.Linear)}
    tune = CentroidFineTune(model, lr=1e-3, biases=True)
    start = [c.clone() for c in tune.codebooks_]
    fit(model, data.digits_loaders()[0], epochs=1, on_step=tune, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(start, tune.codebooks_))  # the centroids moved
    for name, w0 in before.items():
        layer = getattr(model, name)
        w = layer.weight.detach()
        assert torch.equal(w == 0, w0 == 0)
        assert len(torch.unique(w[w != 0])) <= 8 and len(torch.unique(layer.bias[layer.bias != 0])) <= 8
        # same clusters: weights that shared a value before still share one
        _, idx0, _ = dcfile.codebook_of(w0)
        _, idx1, _ = dcfile.codebook_of(w)
        assert torch.equal(idx0, idx1)


def test_fine_tuning_refuses_an_unshared_model_and_a_different_model():
    with pytest.raises(ValueError, match="call share_weights first"):
        CentroidFineTune(small_trained())
    model = share_weights(pruned_model(), 3)
    with pytest.raises(ValueError, match="`lr`"):
        CentroidFineTune(model, lr=0.0)
    tune = CentroidFineTune(model)
    with pytest.raises(ValueError, match="the model this CentroidFineTune was built from"):
        tune(share_weights(pruned_model(), 3), 1)


def test_zeroing_dead_units_changes_no_logit():
    model = pruned_model(0.9)
    with torch.no_grad():
        model.fc3.weight[:, :5] = 0  # five units of the second hidden layer now feed nothing
    logits = model(X_TEST)
    zeroed = zero_dead_units(model)
    assert zeroed >= 5
    assert torch.equal(model(X_TEST), logits)
    assert bool((model.fc2.weight[:5] == 0).all()) and bool((model.fc2.bias[:5] == 0).all())


# --- the file ---------------------------------------------------------------------------------------


def test_the_file_reads_back_a_model_that_predicts_exactly_as_the_one_written(shared, tmp_path):
    for coding in ("huffman", "fixed"):
        path = tmp_path / f"{coding}.ckdc"
        size = save_compressed(shared, path, coding=coding)
        assert size == path.stat().st_size
        loaded = load_compressed(path)
        assert torch.equal(loaded(X_TEST), shared.eval()(X_TEST))
        assert all(torch.equal(v, shared.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_the_file_holds_biases_and_raw_weights_exactly_when_nothing_is_shared(tmp_path):
    for model in (small_trained(), pruned_model()):  # every weight non-zero; 20% non-zero, raw fp32
        save_compressed(model, tmp_path / "m.ckdc")
        assert torch.equal(load_compressed(tmp_path / "m.ckdc")(X_TEST), model.eval()(X_TEST))


def test_huffman_coding_makes_the_file_smaller_than_fixed_width_codes(shared, tmp_path):
    fixed = save_compressed(shared, tmp_path / "f.ckdc", coding="fixed")
    huffman = save_compressed(shared, tmp_path / "h.ckdc", coding="huffman")
    assert huffman < fixed


def test_the_file_starts_with_magic_version_and_its_size_and_ends_with_a_crc32(shared, tmp_path):
    save_compressed(shared, tmp_path / "m.ckdc")
    raw = (tmp_path / "m.ckdc").read_bytes()
    assert raw[:4] == b"CKDC" and raw[4] == 1
    assert struct.unpack("<I", raw[5:9])[0] == len(raw)
    assert struct.unpack("<I", raw[-4:])[0] == zlib.crc32(raw[:-4])


def HEAD(raw: bytes) -> int:
    """Offset of the header's first byte (the module count): after the header length's varint."""
    pos = 9
    while raw[pos] & 0x80:
        pos += 1
    return pos + 1


def rewrite(raw: bytes) -> bytes:
    """A file with its size and checksum made consistent again (to reach the checks behind them)."""
    body = raw[:5] + struct.pack("<I", len(raw)) + raw[9:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def read(tmp_path, raw: bytes) -> nn.Module:
    path = tmp_path / "bad.ckdc"
    path.write_bytes(raw)
    return load_compressed(path)


@pytest.fixture
def raw(shared, tmp_path) -> bytes:
    save_compressed(shared, tmp_path / "m.ckdc")
    return (tmp_path / "m.ckdc").read_bytes()


@pytest.mark.parametrize(
    "corrupt, words",
    [
        (lambda r: r[:2], "truncated file: 2 bytes"),
        (lambda r: r[:40], "truncated file: the file says it has"),
        (lambda r: r[:-1], "truncated file"),
        (lambda r: b"PK\x03\x04" + r[4:], "wrong magic bytes"),
        (lambda r: r[:4] + b"\x02" + r[5:], "wrong version: this reader reads version 1; the file says version 2"),
        (lambda r: r + b"\x00", "trailing bytes after the file"),
        (lambda r: r[:-8] + bytes([r[-8] ^ 1]) + r[-7:], "checksum mismatch"),
        (lambda r: rewrite(r[:-5] + r[-4:]), "the header disagrees with the payload"),  # one payload byte short
        (lambda r: rewrite(r[:-4] + b"\x00" + r[-4:]), "payload bytes are left over"),
        (lambda r: rewrite(r[:HEAD(r)] + bytes([r[HEAD(r)] + 1]) + r[HEAD(r) + 1 :]), "the header disagrees"),  # one module more
    ],
)
def test_every_kind_of_bad_file_is_refused_with_a_message_naming_it(tmp_path, raw, corrupt, words):
    with pytest.raises(CompressedFileError, match=words):
        read(tmp_path, corrupt(raw))


def test_changed_bytes_behind_a_valid_checksum_raise_only_compressed_file_error_for_named_reasons(tmp_path):
    # a tiny model, so that every byte can be changed; size and checksum are made valid again,
    # so the header and payload checks must catch what they can (a changed value is just a value)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.5, 0.0], [0.0, 0.5], [0.5, 0.5]]))
        model[1].bias.copy_(torch.tensor([0.25, 0.25, -0.25]))
    path = tmp_path / "tiny.ckdc"
    save_compressed(model, path)
    raw = path.read_bytes()
    assert torch.equal(load_compressed(path)(torch.ones(1, 2)), model(torch.ones(1, 2)))
    errors = set()
    for i in range(9, len(raw) - 4):  # every single-byte change behind a valid size and checksum
        for delta in (1, 128):
            bad = raw[:i] + bytes([(raw[i] + delta) % 256]) + raw[i + 1 :]
            try:
                read(tmp_path, rewrite(bad))
            except CompressedFileError as exc:
                errors.add(str(exc).split(":")[0])
    assert len(errors) >= 3  # refused for several distinct, named reasons


def test_a_header_that_disagrees_with_itself_is_refused(tmp_path, shared):
    save_compressed(shared, tmp_path / "m.ckdc")
    raw = (tmp_path / "m.ckdc").read_bytes()
    # fc1's entry: kind 2, name length 3, "fc1", out=32 and in=64 (one-byte varints), bias flag, then the weight's flags
    pos = raw.index(b"\x02\x03fc1") + 5 + 3
    flags = raw[pos]
    bad = raw[:pos] + bytes([flags | 0x80]) + raw[pos + 1 :]
    with pytest.raises(CompressedFileError, match="unknown flags"):
        read(tmp_path, rewrite(bad))


@pytest.fixture(scope="module")
def module_raw(tmp_path_factory, shared) -> tuple:
    folder = tmp_path_factory.mktemp("dc")
    save_compressed(shared, folder / "m.ckdc")
    return folder, (folder / "m.ckdc").read_bytes()


def test_any_flipped_byte_or_truncation_raises_compressed_file_error(module_raw):
    folder, raw = module_raw

    @given(st.integers(0, len(raw) - 1), st.integers(1, 255), st.integers(0, len(raw) - 1))
    @settings(max_examples=120, deadline=None)
    def check(position, xor, cut):
        flipped = raw[:position] + bytes([raw[position] ^ xor]) + raw[position + 1 :]
        for bad in (flipped, raw[:cut]):
            (folder / "bad.ckdc").write_bytes(bad)
            with pytest.raises(CompressedFileError):
                load_compressed(folder / "bad.ckdc")

    check()


def test_save_refuses_models_the_format_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="`conv1` is Conv2d"):
        save_compressed(models.cnn(), tmp_path / "c.ckdc")
    with pytest.raises(ValueError, match="`coding`"):
        save_compressed(small_trained(), tmp_path / "c.ckdc", coding="gzip")
    with pytest.raises(TypeError, match="`path`"):
        save_compressed(small_trained(), 3)
    half = small_trained().half()
    with pytest.raises(ValueError, match="must be finite float32"):
        save_compressed(half, tmp_path / "c.ckdc")


# --- the pipeline -----------------------------------------------------------------------------------


def test_the_pipeline_writes_one_real_file_per_stage_and_each_reads_back(tmp_path):
    model = small_trained()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = data.digits_loaders()[0]
    rows = deep_compression(model, loader, X_TEST, Y_TEST, amount=0.8, bits=4, bias_bits=4, epochs=2, finetune_epochs=1, directory=tmp_path)
    assert [r.stage for r in rows] == ["dense fp32", "pruned", "+ weight sharing", "+ Huffman coding"]
    assert all(isinstance(r, Stage) for r in rows)
    files = ["1_dense.pt", "2_pruned.ckdc", "3_shared.ckdc", "4_huffman.ckdc"]
    assert [r.bytes for r in rows] == [(tmp_path / f).stat().st_size for f in files]
    assert rows[0].bytes > rows[1].bytes > rows[2].bytes > rows[3].bytes
    assert rows[0].accuracy == measure.accuracy(model, X_TEST, Y_TEST)
    assert rows[3].accuracy == rows[2].accuracy == measure.accuracy(load_compressed(tmp_path / files[3]), X_TEST, Y_TEST)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "kwargs, error, words",
    [({"amount": 1.0}, ValueError, "`amount`"), ({"bits": 9}, ValueError, "`bits`"), ({"bias_bits": 0}, ValueError, "`bias_bits`"),
     ({"epochs": 0}, ValueError, "`epochs`"), ({"half": 1}, TypeError, "`half`")],
)
def test_the_pipeline_refuses_bad_settings_before_training(kwargs, error, words):
    with pytest.raises(error, match=words):
        deep_compression(models.mlp((8,)), data.digits_loaders()[0], X_TEST, Y_TEST, **kwargs)


class CountsBatches(list):
    """A list of batches that counts how often it is iterated (a training epoch would iterate it)."""

    passes = 0

    def __iter__(self):
        CountsBatches.passes += 1
        return super().__iter__()


@pytest.mark.parametrize("make, error, words", [
    (lambda m: (m, X_TEST, Y_TEST[:-1]), ValueError, ["`X_test` and `y_test`", str(len(Y_TEST) - 1)]),
    (lambda m: (m, X_TEST.flatten(1)[:, :10], Y_TEST), ValueError, ["`X_test`", "must fit the model", "10)"]),
    (lambda m: (m, X_TEST, Y_TEST.float()), TypeError, ["`y_test`", "float32"]),
    (lambda m: (m, X_TEST, Y_TEST + 10), ValueError, ["`y_test`", "[0, 9]"]),
    (lambda m: (nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 10)), X_TEST, Y_TEST), TypeError, ["`model`", "Tanh"]),
])
def test_the_pipeline_checks_its_test_data_and_the_file_format_before_training(make, error, words):
    model, X, y = make(models.mlp((8,)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = CountsBatches([(X_TEST[:32], Y_TEST[:32])])
    CountsBatches.passes = 0
    with pytest.raises(error) as info:
        deep_compression(model, batches, X, y, epochs=1, finetune_epochs=0)
    assert all(w in str(info.value) for w in words), str(info.value)
    assert CountsBatches.passes == 0  # refused before the first epoch
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_round_to_half_refuses_values_outside_fp16_before_changing_any_layer():
    model = models.mlp((8,), seed=0)
    with torch.no_grad():
        model.fc2.weight[0, 0] = 7e4  # fp16's largest is 65504: this would become inf
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="`model` layer `fc2` weight must be finite and within fp16's range.*70000.0"):
        round_to_half(model)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # fc1 not rounded either


def test_round_to_half_rounds_a_pruned_layer_where_it_lasts():
    model = models.mlp((8,), seed=0)
    pruning.l1_unstructured(model.fc1, "weight", 0.5)
    round_to_half(model)
    model(X_TEST[:2])  # the pruning hook recomputes weight from weight_orig: the rounding must survive it
    for w in (model.fc1.weight, model.fc1.weight_orig, model.fc2.weight):
        assert torch.equal(w, w.half().float())


def test_the_recommended_settings_reach_40x_within_one_point_on_seed_0():
    """The chapter's claim (the paper's LeNet-300-100 figure), at the settings of benchmarks/bench_training.py."""
    from benchmarks.bench_training import SETTINGS, dense_model

    model, loader = dense_model(0)
    rows = deep_compression(model, loader, X_TEST, Y_TEST, seed=0, **SETTINGS)
    assert rows[0].bytes / rows[-1].bytes >= 40
    assert rows[0].accuracy - rows[-1].accuracy <= 0.01
