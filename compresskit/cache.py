"""A cache of trained models: train once, load the weights on every later run.

Chapters train the same models again and again: after each kernel restart, and in several
chapters at once. Training here is deterministic (a seed fixes the initial weights, the batch
order and every random draw), so a run that trains a model a second time can load the weights
it got the first time instead, bit for bit the same.

That is only true if the cache knows *everything* that determines the result. The key of a
trained model holds:

* the model before training: its class and ``repr`` (the architecture) and a fingerprint of
  every tensor of its state dict (so the initial weights, hence the init seed);
* the data: a fingerprint of every tensor the loader yields, the batch size, the sampler, and
  the state of the loader's random generator (the batch order);
* every training setting: epochs, learning rate, weight decay, seed, loss, optimizer (for
  :func:`cached_fit`), or every argument of the training function (for :func:`cached_call`);
* the software and the arithmetic: the versions of torch, numpy and scikit-learn, torch's CPU
  kernels (``torch.backends.cpu.get_cpu_capability()``: AVX2 and AVX-512 round differently),
  the number of threads, and a hash of the source of the library code that trains: the core
  (``train``, ``data``, ``models``, ``_validation``, this module) and every compresskit package
  the key names (the training function's, the model's layers', a teacher's), so a stale cache
  never hides a change of the library. (Techniques import only the core, so that is all the
  code a training runs.)

A hit is checked before it is trusted: each file carries a SHA-256 of its contents and its own
key, and one that does not match (a truncated write, a flipped bit, a hash collision) is
trained again and replaced. Files are written to a temporary file and renamed, so two kernels
filling the same entry at once (a classroom hub) each write a whole file and the last rename
wins; both contents are the same. Weights are read with ``torch.load(..., weights_only=True)``.

Where: ``$COMPRESSKIT_CACHE``, else ``$XDG_CACHE_HOME/compresskit``, else
``~/.cache/compresskit``; always outside the repository. Set ``COMPRESSKIT_NO_CACHE=1`` to
train every time; :func:`clear` (or ``python -m compresskit.cache clear``) empties the cache.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import io
import json
import os
import pickle
import platform
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from compresskit import train as _train
from compresskit._validation import check_int, check_module, check_type
from compresskit.train import History

__all__ = ["CACHE_ENV", "DISABLE_ENV", "cache_dir", "cached_call", "cached_fit", "clear", "enabled", "fingerprint"]

CACHE_ENV = "COMPRESSKIT_CACHE"       # the folder
DISABLE_ENV = "COMPRESSKIT_NO_CACHE"  # "1" (or any value but "", "0"): train every time
FORMAT = 1                            # bump when the file layout changes
SUFFIX = ".ckpt"
PACKAGE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The cache folder (it need not exist yet)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "compresskit"


def enabled() -> bool:
    """False when ``$COMPRESSKIT_NO_CACHE`` is set to anything but "" or "0"."""
    return os.environ.get(DISABLE_ENV, "") in ("", "0")


def clear() -> int:
    """Delete every cached model (and any temporary file left by a killed write); return how many."""
    removed = 0
    folder = cache_dir()
    if folder.is_dir():
        for path in folder.iterdir():
            if path.suffix == SUFFIX or path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


# --- fingerprints ---------------------------------------------------------------------------

def fingerprint(value: Any, name: str = "value") -> Any:
    """A JSON-able description of ``value`` that changes whenever the value does.

    Tensors and arrays become the SHA-256 of their dtype, shape and bytes; modules their class,
    ``repr`` and state dict; fitted scikit-learn estimators the SHA-256 of their pickle (written,
    never read); functions their qualified name (their code is in the library hash). Numbers,
    strings, None and containers of these are kept as they are.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, (np.generic,)):
        return fingerprint(value.item(), name)
    if isinstance(value, torch.Tensor):
        return {"tensor": _tensor_digest(value)}
    if isinstance(value, np.ndarray):
        return {"array": _digest(str(value.dtype), value.shape, np.ascontiguousarray(value).tobytes())}
    if isinstance(value, nn.Module):
        return {"module": _module_description(value)}
    if isinstance(value, (tuple, list)):
        return [fingerprint(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): fingerprint(v, f"{name}[{k!r}]") for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if hasattr(value, "get_params") and hasattr(value, "fit"):  # a scikit-learn estimator, fitted or not
        return {"estimator": f"{type(value).__module__}.{type(value).__qualname__}", "pickle": _digest(pickle.dumps(value, protocol=4))}
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        if value.__name__ == "<lambda>" or "<locals>" in value.__qualname__:
            raise TypeError(f"`{name}` must be a module-level function, whose code the cache can name; got {value.__qualname__}")
        return {"function": f"{value.__module__}.{value.__qualname__}"}
    raise TypeError(f"`{name}` must be a tensor, array, module, estimator, function, number, string or a container of "
                    f"these, for the cache to fingerprint it; got {type(value).__name__}")


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def _tensor_digest(t: torch.Tensor) -> str:
    shape = tuple(t.shape)
    t = t.detach().cpu().contiguous().reshape(-1)  # 1-D: a 0-d tensor (BatchNorm's step count) cannot be viewed as bytes
    raw = t.view(torch.uint8) if t.numel() and t.dtype != torch.bool else t.to(torch.uint8)
    return _digest(str(t.dtype), shape, raw.numpy().tobytes())


def _module_description(model: nn.Module) -> dict[str, Any]:
    return {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "layers": sorted({f"{type(m).__module__}.{type(m).__qualname__}" for m in model.modules()}),  # whose code runs
        "repr": repr(model),
        "state": {k: _tensor_digest(v) for k, v in model.state_dict().items()},
        "trainable": [n for n, p in model.named_parameters() if p.requires_grad],
        "hooks": sorted(f"{type(h).__module__}.{type(h).__qualname__}" for m in model.modules() for h in m._forward_pre_hooks.values()),
    }


def _loader_description(name: str, loader: Any) -> dict[str, Any]:
    """Everything that decides the batches: a list of (x, y) tensors, or a DataLoader made by
    ``compresskit.data.make_loader`` (a TensorDataset, a BatchSampler and its own generator)."""
    if isinstance(loader, list) and all(isinstance(b, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in b) for b in loader):
        return {"batches": fingerprint(loader, name)}
    ok = (isinstance(loader, DataLoader) and isinstance(loader.dataset, TensorDataset) and loader.num_workers == 0
          and loader.batch_size is None and isinstance(loader.sampler, BatchSampler)
          and isinstance(loader.sampler.sampler, (RandomSampler, SequentialSampler)))
    if not ok:
        raise TypeError(f"`{name}` must be a DataLoader made by compresskit.data.make_loader or a list of (x, y) tensors, "
                        f"for the cache to know its batches; got {type(loader).__name__}; train it with compresskit.train.fit")
    inner = loader.sampler.sampler
    if isinstance(inner, RandomSampler) and (inner.generator is not loader.generator or inner.replacement or inner._num_samples is not None):
        raise TypeError(f"`{name}` must shuffle with its own generator, without replacement, as make_loader does")
    return {
        "tensors": [_tensor_digest(t) for t in loader.dataset.tensors],
        "batch_size": loader.sampler.batch_size,
        "drop_last": loader.sampler.drop_last,
        "shuffle": isinstance(inner, RandomSampler),
        "generator": None if loader.generator is None else _tensor_digest(loader.generator.get_state()),
    }


CORE = ("__init__", "_validation", "cache", "data", "models", "train")  # the code every training runs


def _code_names(key: Any) -> tuple[str, ...]:
    """The top-level compresskit modules a key names (its recipe, model classes, functions), with the core."""
    names = set(CORE)
    text = json.dumps(key)
    names.update(re.findall(r"\bcompresskit\.(\w+)", text))
    return tuple(sorted(names))


@functools.lru_cache(maxsize=None)
def _library_digest(names: tuple[str, ...]) -> str:
    """SHA-256 of the source of the compresskit modules and packages ``names`` (e.g. ("train", "distillation"))."""
    h = hashlib.sha256()
    for name in names:
        paths = sorted((PACKAGE / name).rglob("*.py")) if (PACKAGE / name).is_dir() else [PACKAGE / f"{name}.py"]
        for path in paths:
            if path.is_file():
                h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _environment(code: tuple[str, ...]) -> dict[str, Any]:
    import sklearn

    return {
        "format": FORMAT,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "code": code,
        "library": _library_digest(code),
    }


# --- the store ------------------------------------------------------------------------------

def _path_for(key: dict[str, Any]) -> tuple[Path, str]:
    text = json.dumps(key, sort_keys=True)
    return cache_dir() / (hashlib.sha256(text.encode()).hexdigest() + SUFFIX), text


def _read(path: Path, key_text: str) -> dict[str, Any] | None:
    """The entry at ``path`` if it is whole and was stored under ``key_text``; None otherwise."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    digest, _, body = blob.partition(b"\n")
    if hashlib.sha256(body).hexdigest().encode() != digest:
        if path.exists():
            warnings.warn(f"the cached model {path.name} is corrupt (checksum mismatch): training it again", stacklevel=3)
        return None
    try:
        entry = torch.load(io.BytesIO(body), weights_only=True)
    except Exception:  # a body that hashes right but does not load: written by another torch
        return None
    return entry if isinstance(entry, dict) and entry.get("key") == key_text else None


def _write(path: Path, entry: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, then a rename over ``path``."""
    buffer = io.BytesIO()
    torch.save(entry, buffer)
    body = buffer.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:  # a read-only or full disk: go on without the cache
        warnings.warn(f"could not write the model cache in {path.parent} ({exc}); the model was trained and not cached", stacklevel=3)


def _memoised(key: dict[str, Any], model_of: Callable[[], nn.Module], run: Callable[[], tuple[nn.Module, Any]]) -> tuple[nn.Module, Any, dict]:
    """(model, result, extra) from the cache, else from ``run()``, which is then stored.

    ``model_of()`` gives the module whose weights a hit fills; ``run()`` trains and returns the
    trained module and a JSON-able result."""
    key = {**key, "environment": _environment(_code_names(key))}
    path, key_text = _path_for(key)
    if enabled():
        entry = _read(path, key_text)
        if entry is not None:
            model = model_of()
            model.load_state_dict(entry["state_dict"])
            model.train(entry["training"])
            return model, json.loads(entry["result"]), entry.get("extra", {})
    model, result, extra = run()
    if enabled():
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        _write(path, {"key": key_text, "state_dict": state, "training": model.training,
                      "result": json.dumps(result), "extra": extra})
    return model, result, extra


# --- what chapters call ---------------------------------------------------------------------

def cached_fit(
    model: nn.Module,
    train_loader: DataLoader | list,
    *,
    epochs: int = 20,
    lr: float | None = None,
    weight_decay: float | None = None,
    val_loader: DataLoader | list | None = None,
    seed: int = 0,
    progress: bool = True,
) -> History:
    """:func:`compresskit.train.fit` with the default loss and optimizer (Adam), from the cache when it can.

    On the first call it trains ``model`` in place, exactly as ``fit`` does, and stores the
    weights; on a later call with the same model, data and settings it loads them into
    ``model`` instead: the same weights, bit for bit, the same :class:`History`, the model in
    training mode, and the loaders' generators left where the training would have left them.
    Custom losses, optimizers and callbacks are the lesson where a chapter uses them: call
    ``fit`` for those.
    """
    check_module("model", model)
    epochs = check_int("epochs", epochs, 0)
    check_type("progress", progress, bool)
    loaders = {"train_loader": train_loader} | ({} if val_loader is None else {"val_loader": val_loader})
    key = {
        "recipe": "compresskit.train.fit",
        "model": _module_description(model),
        "data": {name: _loader_description(name, loader) for name, loader in loaders.items()},
        "settings": fingerprint({"epochs": epochs, "lr": lr, "weight_decay": weight_decay, "seed": seed,
                                 "device": str(next(iter(model.parameters()), torch.empty(0)).device)}),
    }
    generators = {name: loader.generator for name, loader in loaders.items() if isinstance(loader, DataLoader)}

    def run() -> tuple[nn.Module, Any, dict]:
        history = _train.fit(model, train_loader, epochs=epochs, lr=lr, weight_decay=weight_decay,
                             val_loader=val_loader, seed=seed, progress=progress)
        return model, vars(history), {n: g.get_state() for n, g in generators.items() if g is not None}

    _, result, states = _memoised(key, lambda: model, run)
    for name, generator in generators.items():
        if generator is not None:
            generator.set_state(states[name])
    return History(**result)


def cached_call(fn: Callable[..., Any], *args: Any, build: Callable[[], nn.Module] | None = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, a compresskit function that trains a model, from the cache when it can.

    Two kinds of function:

    * one that trains its first argument in place and returns its History (or None), such as
      ``distillation.distill(student, X, teacher_logits, ...)``: leave ``build`` out; a hit loads
      the weights into that first argument and returns the same History;
    * one that returns a new trained model, such as ``ensembles.distill_ensemble``: ``build()``
      makes the untrained model that a hit fills (e.g. ``lambda: models.mlp((32,), seed=0)``).
      On a miss it is checked against what ``fn`` returned (class, ``repr``, state-dict shapes),
      so a wrong ``build`` is an error on the first run, not a wrong model on the second.

    The key holds ``fn``'s name and a fingerprint of every argument (see :func:`fingerprint`).
    """
    if not callable(fn) or not str(getattr(fn, "__module__", "")).startswith("compresskit"):
        raise TypeError(f"`fn` must be a compresskit function (its code is in the cache's key); got {fn!r}")
    if build is None:
        if not args or not isinstance(args[0], nn.Module):
            raise TypeError("`build` must be given unless `fn` trains its first argument, a model, in place; "
                            f"got a first argument of type {type(args[0]).__name__ if args else 'none'}")
    elif not callable(build):
        raise TypeError(f"`build` must be a callable that returns the untrained model; got {type(build).__name__}")
    key = {
        "recipe": f"{fn.__module__}.{fn.__qualname__}",
        "args": fingerprint(list(args), "args"),
        "kwargs": {k: fingerprint(v, k) for k, v in sorted(kwargs.items())},
    }

    def run() -> tuple[nn.Module, Any, dict]:
        result = fn(*args, **kwargs)
        if build is None:
            if result is not None and not isinstance(result, History):
                raise TypeError(f"`fn` must return a History or None when it trains its first argument; got {type(result).__name__}")
            return args[0], None if result is None else vars(result), {}
        check_module("the result of fn", result)
        like = check_module("the result of build()", build())
        shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
        if type(like) is not type(result) or repr(like) != repr(result) or shapes(like) != shapes(result):
            raise ValueError(f"`build` must make the model that `fn` returns; got {like!r} for {result!r}")
        return result, None, {}

    model, result, _ = _memoised(key, (lambda: args[0]) if build is None else build, run)
    if build is None:
        return None if result is None else History(**result)
    return model


if __name__ == "__main__":  # python -m compresskit.cache clear
    import sys

    if sys.argv[1:] != ["clear"]:
        sys.exit("usage: python -m compresskit.cache clear   (empties the model cache in $COMPRESSKIT_CACHE or ~/.cache/compresskit)")
    print(f"removed {clear()} cached model(s) from {cache_dir()}")
