"""Training and evaluation: one short loop, deterministic for a given seed.

``fit`` budgets by epochs (never by seconds), so the same seed gives the same model on any
machine. Randomness (dropout, anything drawn in ``loss_fn``) comes from ``seed`` inside a
forked RNG: the caller's global random state is left as it was. Batch order comes from the
loader's own generator (see :func:`compresskit.data.make_loader`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

from compresskit._validation import _show, check_int, check_module, check_real, check_seed, check_tensor, check_type, module_device

__all__ = ["History", "cross_entropy_loss", "default_device", "evaluate", "fit", "predict", "soft_cross_entropy"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[nn.Module, int], None]


@dataclass
class History:
    """What ``fit`` measured, one entry per epoch (``step`` counts optimizer steps).

    There is no training accuracy: measuring it would take another pass over the shuffled
    training loader, which would draw from its generator and change the next epoch's batches.
    Evaluate on a loader without shuffling when you want it.
    """

    epoch: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)


def default_device() -> torch.device:
    """A GPU when one is present, else the CPU. The course never needs a GPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The default ``loss_fn``: cross-entropy of the model's logits against labels."""
    return nn.functional.cross_entropy(model(x), y)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets: mean over the batch of -sum_k q_k log softmax(z)_k.

    ``logits`` z and ``targets`` q are (N, K); each row of q is a probability distribution (a
    teacher's, in distillation). With one-hot q it equals ``F.cross_entropy(z, labels)``.
    """
    check_tensor("logits", logits, ndim=2, floating=True)
    check_tensor("targets", targets, ndim=2, floating=True, finite=True)
    if targets.shape != logits.shape:
        raise ValueError(f"`targets` must have the shape of `logits` {tuple(logits.shape)}; got {tuple(targets.shape)}")
    with torch.no_grad():
        sums = targets.sum(dim=1)
        if bool((targets < 0).any()) or not bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-2)):
            worst = int((sums - 1).abs().argmax())
            raise ValueError("`targets` must hold a probability distribution per row (entries >= 0, summing to 1; "
                             f"softmax the teacher's logits first); got row {worst} = {targets[worst][:8].tolist()} "
                             f"with sum {float(sums[worst]):.4g} and minimum {float(targets.min()):.4g}")
    return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def fit(
    model: nn.Module,
    train_loader: DataLoader | Iterable,
    *,
    epochs: int = 20,
    lr: float | None = None,
    weight_decay: float | None = None,
    val_loader: DataLoader | Iterable | None = None,
    loss_fn: LossFn = cross_entropy_loss,
    on_step: Callback | None = None,
    on_epoch_end: Callback | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    seed: int = 0,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> History:
    """Train ``model`` in place and return its :class:`History`; the model is left in training mode.

    By default the optimizer is Adam with ``lr`` (default 1e-3) and ``weight_decay`` (default 0).
    Pass your own ``optimizer`` instead, already built over the model's parameters; then ``lr``
    and ``weight_decay`` must be left out (set them on your optimizer): passing both is refused,
    rather than silently ignoring one of them.

    ``on_step(model, step)`` runs after every optimizer step (pruning schedules use it to
    update masks); ``on_epoch_end(model, epoch)`` after every epoch. ``loss_fn(model, x, y)``
    replaces cross-entropy (distillation uses it). Every argument is checked before the first
    step, an empty or one-shot ``val_loader`` included.

    Training runs where the model is (``device=None``) or on ``device``; fit never moves a model
    to a GPU behind the caller's back, so code that then feeds it CPU tensors keeps working. To
    train on a GPU when one is present: ``fit(model, ..., device=default_device())``.
    """
    check_module("model", model)
    epochs = check_int("epochs", epochs, 0)
    if optimizer is not None:
        check_type("optimizer", optimizer, torch.optim.Optimizer, "a torch.optim.Optimizer")
        if lr is not None or weight_decay is not None:
            raise ValueError(
                "`lr` and `weight_decay` configure the Adam optimizer that fit builds; with your own `optimizer` "
                f"set them on it instead; got optimizer={type(optimizer).__name__}, lr={lr!r}, weight_decay={weight_decay!r}"
            )
    lr = check_real("lr", 1e-3 if lr is None else lr, 0.0, low_open=True)
    weight_decay = check_real("weight_decay", 0.0 if weight_decay is None else weight_decay, 0.0)
    _check_loader("train_loader", train_loader, passes=epochs)
    if val_loader is not None:
        _check_loader("val_loader", val_loader, passes=epochs)
    for name, fn in (("loss_fn", loss_fn), ("on_step", on_step), ("on_epoch_end", on_epoch_end)):
        if fn is not None and not callable(fn):
            raise TypeError(f"`{name}` must be callable; got {type(fn).__name__} {fn!r}")
    seed = check_seed("seed", seed)
    device = _check_device(device) if device is not None else module_device("model", model)
    _check_finite_parameters(model)
    model.to(device)
    if val_loader is not None and not isinstance(val_loader, Iterator):  # a one-shot iterator is read once, after training
        _evaluate(model, val_loader, device, "val_loader")  # labels and input shapes checked before the first step (eval mode: nothing changes)
    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    history = History()
    step = 0
    bar = _progress(epochs, enabled=progress)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for epoch in range(1, epochs + 1):
                model.train()
                total_loss, seen = 0.0, 0
                for x, y in train_loader:
                    x, y = x.to(device), y.to(device)
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(model, x, y)
                    if not torch.isfinite(loss):
                        raise _non_finite_loss(loss, x, y, epoch, step + 1)
                    loss.backward()
                    optimizer.step()
                    step += 1
                    if on_step is not None:
                        on_step(model, step)
                    total_loss += loss.item() * len(y)
                    seen += len(y)
                if seen == 0:
                    raise ValueError(f"`train_loader` must yield at least one batch in every epoch; got none in epoch {epoch}")
                history.epoch.append(epoch)
                history.step.append(step)
                history.train_loss.append(total_loss / seen)
                if val_loader is not None:
                    history.val_acc.append(_evaluate(model, val_loader, device, "val_loader"))
                if on_epoch_end is not None:
                    on_epoch_end(model, epoch)
                bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", val_acc=f"{history.val_acc[-1]:.3f}" if history.val_acc else "-")
                bar.update(1)
    finally:
        bar.close()
    return history


def predict(model: nn.Module, data: DataLoader | Iterable | torch.Tensor, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Predicted class of every sample, as an int64 tensor on the CPU.

    ``data`` is a tensor of inputs, or batches: ``(x, y)`` or ``(x,)`` tuples or input tensors.
    Runs in eval mode and gives the model back in the mode it came in, even on failure.
    """
    check_module("model", model)
    device = _check_device(device) if device is not None else module_device("model", model)
    if isinstance(data, torch.Tensor):
        batches: Iterable = [data] if len(data) else []
    else:
        _check_loader("data", data, passes=1)
        batches = data
    preds = []
    with _eval_mode(model), torch.inference_mode():
        for i, batch in enumerate(batches):
            x = _batch_inputs(batch, i)
            preds.append(_forward(model, x.to(device), "data", i).argmax(dim=1).cpu())
    if not preds:
        raise ValueError("`data` must hold at least one sample; got none")
    return torch.cat(preds)


def evaluate(model: nn.Module, data: DataLoader | Iterable, *, device: torch.device | str | None = None) -> float:
    """Accuracy (a fraction in [0, 1]) of ``model`` over every (x, y) batch of ``data``.

    Runs in eval mode and gives the model back in the mode it came in, even on failure.
    """
    check_module("model", model)
    device = _check_device(device) if device is not None else module_device("model", model)
    if isinstance(data, torch.Tensor):
        raise TypeError("`data` must be (x, y) batches (a DataLoader or a list of pairs), not a tensor of inputs; "
                        f"got {_show(data)}; use predict() for inputs without labels")
    _check_loader("data", data, passes=1)
    return _evaluate(model, data, device, "data")


def _evaluate(model: nn.Module, data: DataLoader | Iterable, device: torch.device, name: str) -> float:
    correct = total = 0
    with _eval_mode(model), torch.inference_mode():  # One pass: a shuffled loader yields a new order on each pass.
        for i, (x, y) in enumerate(data):
            x = _batch_inputs((x,), i, name)
            logits = _forward(model, x.to(device), name, i)
            _check_labels(name, y, i, len(x), logits.shape[1])
            correct += int((logits.argmax(dim=1).cpu() == y.cpu()).sum())
            total += len(y)
    if total == 0:
        raise ValueError(f"`{name}` must hold at least one sample; got none")
    return correct / total


# --- checks and helpers ---------------------------------------------------------------------

@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration; the model's training flag is restored even if the body raises."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _forward(model: nn.Module, x: torch.Tensor, name: str, index: int) -> torch.Tensor:
    """``model(x)`` in eval mode, where an input the model cannot take (wrong width, wrong
    number of channels) is a ValueError naming the argument, not torch's matrix error."""
    try:
        return model(x)
    except RuntimeError as exc:
        if not any(words in str(exc) for words in ("cannot be multiplied", "size mismatch", "Expected", "expected input", "must match")):
            raise
        raise ValueError(f"`{name}` does not fit `model`: batch {index} has inputs of shape {tuple(x.shape)} "
                         f"({str(exc).splitlines()[0]})") from exc


def _check_labels(name: str, y: object, index: int, n: int, n_classes: int) -> None:
    """Integer class labels in [0, n_classes), one per input."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"`{name}` must yield (x, y) batches with y a tensor of class labels; batch {index} has {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool or y.shape != (n,):
        raise ValueError(f"`{name}` must yield integer class labels, one per input; batch {index} has {y.dtype} of shape {tuple(y.shape)} for {n} inputs")
    if n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"`{name}` must yield class labels in [0, {n_classes - 1}] (the model has {n_classes} outputs); "
                         f"batch {index} holds labels from {int(y.min())} to {int(y.max())}")


def _batch_inputs(batch: object, index: int, name: str = "data") -> torch.Tensor:
    """The input tensor of a batch (the batch itself, or its first element), finite."""
    x = batch if isinstance(batch, torch.Tensor) else batch[0] if isinstance(batch, (tuple, list)) and len(batch) else None
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must yield input tensors or (x, y) batches; batch {index} is {type(batch).__name__}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"`{name}` must hold finite inputs; batch {index} has {bad} NaN or inf value(s) in shape {tuple(x.shape)}")
    return x


def _check_loader(name: str, loader: object, *, passes: int) -> None:
    """Batches we can iterate ``passes`` times; empty only if it has no length to tell."""
    if isinstance(loader, (torch.Tensor, str, bytes)) or not isinstance(loader, Iterable):
        raise TypeError(f"`{name}` must be a DataLoader or an iterable of batches; got {type(loader).__name__} {_show(loader)}")
    if passes > 1 and isinstance(loader, Iterator):
        raise TypeError(
            f"`{name}` is read once per epoch, so it must be re-iterable (a DataLoader or a list of batches); "
            f"got {type(loader).__name__}, which would be empty after the first epoch"
        )
    try:
        length = len(loader)  # type: ignore[arg-type]
    except TypeError:  # a generator or an iterable dataset: no length to check
        return
    if length == 0:
        raise ValueError(f"`{name}` must hold at least one batch; got an empty {type(loader).__name__}")


def _check_device(device: object) -> torch.device:
    check_type("device", device, (str, torch.device), "a torch.device or a str such as 'cpu'")
    try:
        return torch.device(device)  # type: ignore[arg-type]
    except RuntimeError as exc:
        raise ValueError(f"`device` must name a device such as 'cpu' or 'cuda'; got {device!r}") from exc


def _check_finite_parameters(model: nn.Module) -> None:
    for name, param in model.named_parameters():
        if param.is_floating_point() and not bool(torch.isfinite(param).all()):
            bad = int((~torch.isfinite(param)).sum())
            raise ValueError(f"`model` must have finite parameters before training; `{name}` has {bad} NaN or inf value(s)")


def _non_finite_loss(loss: torch.Tensor, x: torch.Tensor, y: torch.Tensor, epoch: int, step: int) -> Exception:
    """Why the loss is NaN or inf: the batch (bad input), or training diverged (too large a step)."""
    where = f"epoch {epoch}, step {step}"
    for part, tensor in (("inputs", x), ("targets", y)):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            return ValueError(f"`train_loader` must yield finite {part}; the batch at {where} has {bad} NaN or inf value(s), so the loss is {loss.item()}")
    return FloatingPointError(f"the training loss became {loss.item()} at {where} on a finite batch: training diverged; lower `lr`")


def _progress(total: int, enabled: bool):
    """tqdm's notebook bar in Jupyter, its text bar in a terminal; a do-nothing bar when disabled.

    ``fit`` closes it in a ``finally``: a failed run leaves no bar open."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="epoch", disable=not enabled, leave=False)
