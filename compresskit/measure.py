"""The four axes every chapter trades against each other: accuracy, size, compute, latency.

* Size: :func:`count_parameters`, :func:`count_nonzero`, :func:`sparsity`, and
  :func:`serialized_bytes`, the bytes a model really takes when written to disk.
* Compute: :func:`count_macs`, multiply-accumulates per inference of Linear and Conv layers.
* Latency: :func:`measure_latency` (warm-up, many repeats, median) and :func:`latency_ratio`,
  which times two models alternately in one run so that both see the same machine state.
  Both read :func:`clock`; with ``COMPRESSKIT_CLOCK=random`` in the environment it returns a
  random clock, so a test can prove that no chapter asserts anything about speed.
* Accuracy: :func:`accuracy`.

Pruned modules (``torch.nn.utils.prune``) are measured by their effective weights: a module
with ``weight_orig`` and ``weight_mask`` counts ``weight = weight_orig * weight_mask`` once.
"""

from __future__ import annotations

import io
import os
import pickle
import platform
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from compresskit._validation import check_int, check_module, check_tensor

__all__ = [
    "CLOCK_ENV",
    "Latency",
    "LatencyRatio",
    "accuracy",
    "clock",
    "clock_is_random",
    "count_macs",
    "count_nonzero",
    "count_parameters",
    "effective_parameters",
    "latency_ratio",
    "machine_info",
    "measure_latency",
    "serialized_bytes",
    "sparsity",
    "tensor_bytes",
]

# --- size -------------------------------------------------------------------------------

def effective_parameters(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of every parameter as the forward pass sees it, each tensor once.

    For a pruned parameter, ``name_orig`` is replaced by the masked ``name``, computed as
    ``name_orig * name_mask`` (the cached ``module.name`` is stale after an optimizer step
    until the next forward pass).
    """
    check_module("model", model)
    seen: set[int] = set()  # a tensor shared by two modules (a tied embedding and head) counts once, as in model.parameters()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            if name.endswith("_orig") and isinstance(getattr(module, f"{name[: -len('_orig')]}_mask", None), torch.Tensor):
                name = name[: -len("_orig")]
                param = param * getattr(module, f"{name}_mask")
            yield (f"{module_name}.{name}" if module_name else name), param


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (pruned entries included: a mask does not remove them)."""
    return sum(p.numel() for _, p in effective_parameters(model))


def count_nonzero(model: nn.Module) -> int:
    """Number of parameters that are not exactly zero in the forward pass."""
    return sum(int(torch.count_nonzero(p.detach())) for _, p in effective_parameters(model))


def sparsity(model: nn.Module) -> float:
    """Fraction of parameters that are exactly zero, in [0, 1]."""
    total = count_parameters(model)
    if total == 0:
        raise ValueError("`model` must have at least one parameter; got none")
    return 1.0 - count_nonzero(model) / total


def serialized_bytes(obj: Any) -> int:
    """Bytes ``obj`` takes when written to disk: we serialize it and count.

    * ``nn.Module``: ``torch.save(model.state_dict())``, what you would ship.
    * tensors and dicts of tensors: ``torch.save``.
    * ``bytes``: its length (an ONNX model or any file already serialized).
    * anything else (a scikit-learn estimator): ``pickle.dumps`` at the highest protocol.
    """
    if isinstance(obj, (bytes, bytearray)):
        return len(obj)
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, torch.Tensor) or (isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values())):
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getbuffer().nbytes
    return len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def tensor_bytes(numel: int, dtype: torch.dtype) -> int:
    """Raw bytes of ``numel`` elements of ``dtype``, without any file format around them."""
    numel = check_int("numel", numel, 0)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"`dtype` must be a torch.dtype; got {type(dtype).__name__} {dtype!r}")
    return numel * torch.empty((), dtype=dtype).element_size()


# --- compute ----------------------------------------------------------------------------

def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass per sample, counting Linear and Conv layers.

    ``example`` is one batch; the total is divided by its batch size. A Linear layer costs
    ``in_features * out_features`` MACs per row; a Conv layer costs, per output element,
    ``in_channels / groups * prod(kernel_size)``; a transposed Conv layer (a "deconvolution")
    costs, per *input* element, ``out_channels / groups * prod(kernel_size)`` (with stride r
    that is r^d times less per output element than a convolution of the same kernel). Biases,
    activations and pooling are not counted (they are additions and comparisons, a small share
    of the work). A FLOP counter such as ``torch.utils.flop_counter`` reports 2 FLOPs per MAC
    (tests/test_measure.py).
    """
    check_module("model", model)
    check_tensor("example", example, floating=True)
    total = 0

    def linear_hook(module: nn.Linear, inputs, output) -> None:
        nonlocal total
        total += output.numel() * module.in_features  # Each output = in_features MACs.

    def conv_hook(module: nn.modules.conv._ConvNd, inputs, output) -> None:
        nonlocal total
        if module.transposed:  # each input element scatters out_channels / groups * prod(kernel) products
            total += inputs[0].numel() * (module.out_channels // module.groups) * int(np.prod(module.kernel_size))
            return
        per_output = module.in_channels // module.groups * int(np.prod(module.kernel_size))
        total += output.numel() * per_output

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
        elif isinstance(module, nn.modules.conv._ConvNd):
            handles.append(module.register_forward_hook(conv_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total // example.shape[0]


# --- latency ----------------------------------------------------------------------------

CLOCK_ENV = "COMPRESSKIT_CLOCK"


class _RandomClock:
    """A clock whose every tick is a random duration, log-uniform from 0.1 µs to 0.1 s.

    Timings read from it say nothing about the code timed, so every speed claim drawn from
    them is as likely false as true: a chapter that asserts one fails under it. The seed is
    fixed (``COMPRESSKIT_CLOCK=random:SEED``, default 0), so a failure reproduces.
    """

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._now = 0.0

    def __call__(self) -> float:
        self._now += 10.0 ** self._rng.uniform(-7.0, -1.0)
        return self._now


_random_clock: _RandomClock | None = None


def clock() -> float:
    """Seconds from a monotonic clock, for timing: :func:`time.perf_counter`.

    With ``COMPRESSKIT_CLOCK=random`` (or ``random:SEED``) in the environment, a random clock
    instead (``_RandomClock``): the course's tests run every chapter under it to prove that
    no chapter asserts a timing, only shows it and judges it.
    """
    global _random_clock
    setting = os.environ.get(CLOCK_ENV, "")
    if not setting:
        return time.perf_counter()
    kind, _, seed = setting.partition(":")
    if kind != "random" or (seed and not seed.isdigit()):
        raise ValueError(f"`{CLOCK_ENV}` must be unset, 'random' or 'random:SEED'; got {setting!r}")
    if _random_clock is None:
        _random_clock = _RandomClock(int(seed or 0))
    return _random_clock()


def clock_is_random() -> bool:
    """True when :func:`clock` is the random test clock, so timings mean nothing."""
    return os.environ.get(CLOCK_ENV, "").startswith("random")

@dataclass(frozen=True)
class Latency:
    """Seconds per call: the median, and the quartiles that show how noisy it was."""

    median: float
    q1: float
    q3: float
    repeats: int

    def __str__(self) -> str:
        return f"{self.median * 1e3:.3f} ms (IQR {self.q1 * 1e3:.3f}-{self.q3 * 1e3:.3f} ms, n={self.repeats})"


@dataclass(frozen=True)
class LatencyRatio:
    """``ratio = a.median / b.median``: above 1 means ``b`` is faster than ``a``."""

    ratio: float
    a: Latency
    b: Latency

    def __str__(self) -> str:
        return f"{self.ratio:.2f}x  (a: {self.a}; b: {self.b})"

    @property
    def q1_ratio(self) -> float:
        """``a.q1 / b.q1``: the ratio of the calls least disturbed by other load on the machine."""
        return self.a.q1 / self.b.q1


def _as_callable(fn: nn.Module | Callable[..., Any], name: str = "fn") -> Callable[..., Any]:
    """A module is timed in eval mode (and left in it): inference, not training, is measured."""
    if not callable(fn):
        raise TypeError(f"`{name}` must be an nn.Module or a callable to time; got {type(fn).__name__} {fn!r:.80}")
    if isinstance(fn, nn.Module):
        fn.eval()
    return fn


def _summarize(times: list[float]) -> Latency:
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else (times[0],) * 3
    return Latency(median=median, q1=q1, q3=q3, repeats=len(times))


def measure_latency(fn: nn.Module | Callable[..., Any], *args: Any, warmup: int = 10, repeats: int = 50) -> Latency:
    """Time ``fn(*args)``: ``warmup`` untimed calls, then ``repeats`` timed ones; report the median.

    The median, not the mean: a single interruption by the operating system makes one call
    slow and drags the mean, while the median barely moves.
    """
    call = _as_callable(fn, "fn")
    warmup = check_int("warmup", warmup, 0)
    repeats = check_int("repeats", repeats, 1)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            call(*args)
        for _ in range(repeats):
            start = clock()
            call(*args)
            times.append(clock() - start)
    return _summarize(times)


def latency_ratio(
    a: nn.Module | Callable[..., Any],
    b: nn.Module | Callable[..., Any],
    *args: Any,
    warmup: int = 10,
    repeats: int = 50,
    args_b: tuple[Any, ...] | None = None,
) -> LatencyRatio:
    """How many times slower ``a`` is than ``b`` (``a.median / b.median``), timed alternately.

    a, b, a, b, ...: both see the same machine state (clock speed, cache, other load), so the
    ratio is far steadier between runs than either time alone. ``args_b`` gives ``b`` its own
    inputs (an ONNX Runtime session wants numpy, say); by default both get ``args``.
    """
    call_a, call_b = _as_callable(a, "a"), _as_callable(b, "b")
    warmup = check_int("warmup", warmup, 0)
    repeats = check_int("repeats", repeats, 1)
    args_b = args if args_b is None else args_b
    times_a, times_b = [], []
    with torch.inference_mode():
        for _ in range(warmup):
            call_a(*args)
            call_b(*args_b)
        for _ in range(repeats):
            start = clock()
            call_a(*args)
            times_a.append(clock() - start)
            start = clock()
            call_b(*args_b)
            times_b.append(clock() - start)
    lat_a, lat_b = _summarize(times_a), _summarize(times_b)
    return LatencyRatio(ratio=lat_a.median / lat_b.median, a=lat_a, b=lat_b)


# --- accuracy ---------------------------------------------------------------------------

def accuracy(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of samples whose arg-max logit equals the label.

    A module runs in eval mode and is given back in the mode it came in, even on failure.
    """
    if not callable(model):
        raise TypeError(f"`model` must be an nn.Module or a callable returning logits; got {type(model).__name__} {model!r:.80}")
    check_tensor("X", X, floating=True, finite=True)
    check_tensor("y", y, ndim=1)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"`y` must hold integer class labels; got dtype {y.dtype}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"`X` and `y` must have the same length; got {X.shape[0]} and {y.shape[0]}")
    batch_size = check_int("batch_size", batch_size, 1)
    was_training = model.training if isinstance(model, nn.Module) else None
    correct = 0
    try:
        if isinstance(model, nn.Module):
            model.eval()
        with torch.inference_mode():
            for i in range(0, len(X), batch_size):
                try:
                    logits = model(X[i : i + batch_size])
                except RuntimeError as exc:
                    if "cannot be multiplied" not in str(exc) and "Expected" not in str(exc):
                        raise
                    raise ValueError(f"`X` does not fit `model`: inputs of shape {tuple(X.shape)} ({str(exc).splitlines()[0]})") from exc
                if i == 0 and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
                    raise ValueError(f"`y` must hold class labels in [0, {logits.shape[1] - 1}] (the model has {logits.shape[1]} "
                                     f"outputs); got labels from {int(y.min())} to {int(y.max())}")
                correct += int((logits.argmax(dim=1) == y[i : i + batch_size]).sum())
    finally:
        if was_training is not None:
            model.train(was_training)
    return correct / len(X)


# --- where a number was measured --------------------------------------------------------

def machine_info() -> dict[str, str]:
    """The machine a measurement ran on, for the header of every benchmark table."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "os": f"{platform.system()} {platform.release()}",
    }
