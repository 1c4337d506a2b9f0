"""compresskit.cache: a hit is the fresh training bit for bit; any change of the key is a miss;
a corrupt file is trained again; two processes filling one entry at once leave a whole file;
COMPRESSKIT_NO_CACHE turns it off."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.tree import DecisionTreeClassifier

from compresskit import cache, data, models, train
from compresskit.ensembles import distill_ensemble

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_ENV, str(folder))
    monkeypatch.delenv(cache.DISABLE_ENV, raising=False)
    return folder


@pytest.fixture
def trainings(monkeypatch):
    """How many times compresskit.train.fit really ran."""
    calls = []
    real = train.fit

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "fit", counting)
    return calls


def _xy(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 64, generator=g), torch.randint(0, 10, (n,), generator=g)


RECIPE = dict(hidden=(16,), init=0, loader_seed=0, batch=32, epochs=2, lr=None, weight_decay=None, seed=0, n=96)


def _run(fit, **changes):
    r = {**RECIPE, **changes}
    X, y = _xy(r["n"])
    if "pixel" in r:
        X[0, 0] += r["pixel"]
    model = models.mlp(r["hidden"], seed=r["init"])
    loader = data.make_loader(X, y, r["batch"], shuffle=True, seed=r["loader_seed"])
    history = fit(model, loader, epochs=r["epochs"], lr=r["lr"], weight_decay=r["weight_decay"], seed=r["seed"], progress=False)
    return model, history, loader.generator.get_state()


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_hit_is_the_fresh_training_bit_for_bit(trainings, cache_folder):
    first = _run(cache.cached_fit)
    second = _run(cache.cached_fit)
    fresh = _run(train.fit)
    assert len(trainings) == 2  # the first cached_fit and the plain fit; the second was loaded
    assert len(list(cache_folder.glob("*.ckpt"))) == 1
    assert _same_weights(second[0], fresh[0]) and _same_weights(first[0], fresh[0])
    assert vars(second[1]) == vars(fresh[1])             # the same History
    assert torch.equal(second[2], fresh[2])              # the loader's generator where training leaves it
    assert second[0].training                            # fit leaves the model in training mode
    assert not _same_weights(second[0], models.mlp((16,), seed=0))  # it did learn something


@pytest.mark.parametrize("change", [
    {"seed": 1}, {"epochs": 3}, {"lr": 2e-3}, {"weight_decay": 1e-4}, {"batch": 16}, {"loader_seed": 1},
    {"pixel": 1e-3}, {"n": 95}, {"hidden": (17,)}, {"init": 1},
], ids=lambda c: next(iter(c)))
def test_any_change_of_recipe_is_a_miss(change, trainings):
    _run(cache.cached_fit)
    changed = _run(cache.cached_fit, **change)
    assert len(trainings) == 2
    assert _same_weights(changed[0], _run(train.fit, **change)[0])


@pytest.mark.parametrize("where, value", [
    ("torch_version", "9.9.9"), ("library", "a changed compresskit"), ("cpu", "DEFAULT"), ("threads", 2),
])
def test_any_change_of_software_or_arithmetic_is_a_miss(where, value, trainings, monkeypatch):
    _run(cache.cached_fit)
    if where == "torch_version":
        monkeypatch.setattr(torch, "__version__", value)
    elif where == "library":
        monkeypatch.setattr(cache, "_library_digest", lambda names: value)
    elif where == "cpu":
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: value)
    else:
        monkeypatch.setattr(torch, "get_num_threads", lambda: value)
    _run(cache.cached_fit)
    assert len(trainings) == 2


def test_the_library_hash_follows_the_source(tmp_path, monkeypatch):
    package = tmp_path / "compresskit"
    (package / "distillation").mkdir(parents=True)
    (package / "pruning").mkdir()
    files = {"train.py": "lr = 1e-3\n", "distillation/hinton.py": "T = 4\n", "pruning/masks.py": "amount = 0.5\n"}
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.setattr(cache, "PACKAGE", package)
    names = cache._code_names({"recipe": "compresskit.distillation.hinton.distill"})
    assert names == tuple(sorted({*cache.CORE, "distillation"}))
    digests = []
    for edit in (None, ("pruning/masks.py", "amount = 0.9\n"), ("distillation/hinton.py", "T = 2\n"), ("train.py", "lr = 2e-3\n")):
        if edit:
            (package / edit[0]).write_text(edit[1])
        cache._library_digest.cache_clear()
        digests.append(cache._library_digest(names))
    cache._library_digest.cache_clear()
    assert digests[0] == digests[1]  # a package this training does not use
    assert len(set(digests[1:])) == 3  # the training function's package, then the core


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "empty", "another key's file"])
def test_a_corrupt_file_is_trained_again(damage, trainings, cache_folder):
    _run(cache.cached_fit)
    (path,) = cache_folder.glob("*.ckpt")
    blob = bytearray(path.read_bytes())
    if damage == "flip a byte":
        blob[len(blob) // 2] ^= 0x01
    elif damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "empty":
        blob = b""
    else:  # a whole, valid file of another recipe under this entry's name
        _run(cache.cached_fit, seed=5)
        other = next(p for p in cache_folder.glob("*.ckpt") if p != path)
        blob = other.read_bytes()
    path.write_bytes(bytes(blob))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = _run(cache.cached_fit)
    expected_trainings = 3 if damage == "another key's file" else 2
    assert len(trainings) == expected_trainings
    assert _same_weights(again[0], _run(train.fit)[0])
    again = _run(cache.cached_fit)  # the entry was repaired: a hit now
    assert len(trainings) == expected_trainings + 1


def test_a_checksum_mismatch_is_reported(cache_folder):
    _run(cache.cached_fit)
    (path,) = cache_folder.glob("*.ckpt")
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.warns(UserWarning, match="corrupt"):
        _run(cache.cached_fit)


FILL = """
import sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from test_cache import _run
from compresskit import cache
model = _run(cache.cached_fit, epochs=30)[0]
torch.save(model.state_dict(), sys.argv[1])
"""


def test_two_processes_filling_one_entry_at_once(cache_folder, tmp_path):
    script = FILL.format(tests=str(Path(__file__).parent))
    env = {**os.environ, cache.CACHE_ENV: str(cache_folder)}
    outs = [tmp_path / f"out{i}.pt" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", script, str(out)], env=env) for out in outs]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    fresh = _run(train.fit, epochs=30)[0].state_dict()
    for out in outs:
        got = torch.load(out, weights_only=True)
        assert all(torch.equal(got[k], fresh[k]) for k in fresh)
    assert [p.name for p in cache_folder.iterdir()] == [next(cache_folder.glob("*.ckpt")).name]  # one entry, no temporary left
    hit = _run(cache.cached_fit, epochs=30)[0]
    assert _same_weights(hit, _run(train.fit, epochs=30)[0])


def test_the_switch_turns_it_off(trainings, cache_folder, monkeypatch):
    monkeypatch.setenv(cache.DISABLE_ENV, "1")
    assert not cache.enabled()
    _run(cache.cached_fit)
    _run(cache.cached_fit)
    assert len(trainings) == 2 and not cache_folder.exists()
    monkeypatch.setenv(cache.DISABLE_ENV, "0")
    assert cache.enabled()


def test_clear_empties_it(trainings, cache_folder):
    _run(cache.cached_fit)
    _run(cache.cached_fit, seed=1)
    assert cache.clear() == 2 and not list(cache_folder.iterdir())
    _run(cache.cached_fit)
    assert len(trainings) == 3
    assert cache.clear() == 1 and cache.clear() == 0


def test_the_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "here"))
    assert cache.cache_dir() == tmp_path / "here"
    monkeypatch.delenv(cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "compresskit"


def test_an_unwritable_folder_trains_and_warns(monkeypatch, tmp_path, trainings):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cache.CACHE_ENV, str(blocker / "cache"))
    with pytest.warns(UserWarning, match="could not write"):
        model = _run(cache.cached_fit)[0]
    assert _same_weights(model, _run(train.fit)[0])


def test_a_loader_the_cache_cannot_read_is_refused():
    X, y = _xy()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=32, shuffle=True)
    model = models.mlp((16,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TypeError, match="`train_loader`.*make_loader"):
        cache.cached_fit(model, loader, epochs=1, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_val_loader_is_in_the_key(trainings):
    X, y = _xy()

    def run(val_rows):
        model = models.mlp((16,))
        val = data.make_loader(X[:val_rows], y[:val_rows], 32)
        return cache.cached_fit(model, data.make_loader(X, y, 32, shuffle=True), epochs=2, val_loader=val, progress=False)

    first, second, other = run(32), run(32), run(64)
    assert len(trainings) == 2 and first.val_acc == second.val_acc and len(other.val_acc) == 2


def _teacher():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 64).astype(np.float32)
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, rng.randint(0, 10, 120)), X


def test_cached_call_hit_is_the_fresh_call(cache_folder):
    teacher, X = _teacher()
    kwargs = dict(hidden=(8,), n_copies=1, epochs=2, batch_size=32, seed=0)
    build = lambda: models.mlp((8,), seed=0)  # noqa: E731
    first = cache.cached_call(distill_ensemble, teacher, X, build=build, **kwargs)
    second = cache.cached_call(distill_ensemble, teacher, X, build=build, **kwargs)
    fresh = distill_ensemble(teacher, X, **kwargs)
    assert len(list(cache_folder.glob("*.ckpt"))) == 1
    assert _same_weights(first, fresh) and _same_weights(second, fresh) and not second.training
    refit = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, np.arange(120) % 10)  # another teacher: a miss
    other = cache.cached_call(distill_ensemble, refit, X, build=build, **kwargs)
    assert len(list(cache_folder.glob("*.ckpt"))) == 2 and _same_weights(other, distill_ensemble(refit, X, **kwargs))


def test_cached_call_checks_build_on_the_first_run():
    teacher, X = _teacher()
    with pytest.raises(ValueError, match="`build` must make the model"):
        cache.cached_call(distill_ensemble, teacher, X, hidden=(8,), epochs=1, build=lambda: models.mlp((9,)))


def test_cached_call_refuses_what_it_cannot_fingerprint():
    teacher, X = _teacher()
    with pytest.raises(TypeError, match="`fn` must be a compresskit function"):
        cache.cached_call(lambda: models.mlp((8,)), build=lambda: models.mlp((8,)))
    with pytest.raises(TypeError, match="`p_swap` must be a tensor"):
        cache.cached_call(distill_ensemble, teacher, X, p_swap=object(), build=lambda: models.mlp((32,)))


def test_cached_call_of_an_in_place_trainer(trainings, monkeypatch):
    from compresskit.distillation import distill, hinton

    monkeypatch.setattr(hinton, "fit", train.fit)  # distill calls the fit it imported: count those calls too

    X, y = _xy()
    z = torch.randn(len(X), 10, generator=torch.Generator().manual_seed(1))

    def run(call, temperature=4.0):
        student = models.mlp((8,), seed=0)
        history = call(distill, student, X, z, y, temperature=temperature, alpha=0.5, epochs=2, batch_size=32, seed=0)
        return student, history

    first = run(cache.cached_call)
    second = run(cache.cached_call)
    fresh = run(lambda fn, *a, **k: fn(*a, **k))
    assert len(trainings) == 2  # the first cached call and the plain one
    assert _same_weights(second[0], fresh[0]) and vars(second[1]) == vars(fresh[1]) == vars(first[1])
    assert second[0].training == fresh[0].training
    run(cache.cached_call, temperature=2.0)  # another setting: a miss
    assert len(trainings) == 3


def test_clear_from_the_command_line(cache_folder):
    _run(cache.cached_fit)
    env = {**os.environ, cache.CACHE_ENV: str(cache_folder)}
    done = subprocess.run([sys.executable, "-m", "compresskit.cache", "clear"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "removed 1 cached model(s)" in done.stdout
    assert not list(cache_folder.glob("*.ckpt"))
    wrong = subprocess.run([sys.executable, "-m", "compresskit.cache"], env=env, capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0 and "usage" in wrong.stderr


def test_a_cnn_with_batchnorm_statistics(trainings):
    X, y = _xy()
    images = X.reshape(-1, 1, 8, 8)

    def run(fit):
        model = models.cnn((4, 4), seed=0)
        fit(model, data.make_loader(images, y, 32, shuffle=True), epochs=2, progress=False)
        return model

    first, second, fresh = run(cache.cached_fit), run(cache.cached_fit), run(train.fit)
    assert len(trainings) == 2
    assert _same_weights(second, fresh) and int(second.bn1.num_batches_tracked) == 2 * 3  # the statistics come back too
    assert not torch.equal(second.bn1.running_mean, models.cnn((4, 4), seed=0).bn1.running_mean)


def test_fingerprint_tells_tensors_apart_by_value_dtype_and_shape():
    prints = [cache.fingerprint(t) for t in (torch.tensor(3), torch.tensor(4), torch.tensor([3]), torch.tensor(3.0),
                                             torch.zeros(2, 3), torch.zeros(3, 2), torch.zeros(0), torch.tensor([True]))]
    assert len({str(p) for p in prints}) == len(prints)
    assert cache.fingerprint(torch.arange(6).reshape(2, 3).t()) == cache.fingerprint(torch.arange(6).reshape(2, 3).t().contiguous())


def test_the_code_of_every_layer_is_in_the_key():
    from compresskit.training import QATLinear

    model = torch.nn.Sequential(torch.nn.Flatten(), QATLinear(64, 10))
    key = {"model": cache._module_description(model)}
    assert "training" in cache._code_names(key)  # QATLinear's package is hashed with the core
    assert set(cache.CORE) <= set(cache._code_names(key))


def test_a_model_pruned_with_torch_prune_is_cached_with_its_masks(trainings):
    from torch.nn.utils import prune

    def pruned():
        model = models.mlp((8,), seed=0)
        prune.l1_unstructured(model.fc1, "weight", 0.5)
        return model

    X, y = _xy()
    loader = lambda: data.make_loader(X, y, 16, shuffle=True, seed=0)  # noqa: E731
    first, second, fresh = pruned(), pruned(), pruned()
    cache.cached_fit(first, loader(), epochs=2, progress=False)
    cache.cached_fit(second, loader(), epochs=2, progress=False)  # a hit: loaded, not trained
    train.fit(fresh, loader(), epochs=2, progress=False)
    assert len(trainings) == 2  # the first cached call and the plain one
    assert prune.is_pruned(second) and float((second.fc1.weight == 0).float().mean()) == 0.5
    assert _same_weights(second, fresh)
