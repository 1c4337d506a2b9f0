"""Training and evaluation: one short loop, deterministic for a given seed.

``fit`` budgets by epochs (never by seconds), so the same seed gives the same model on any
machine. Randomness (dropout, anything drawn in ``loss_fn``) comes from ``seed`` inside a
forked RNG: the caller's global random state is left as it was. Batch order comes from the
loader's own generator (see :func:`compresskit.data.make_loader`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader

from compresskit._validation import check_int, check_module, check_real, check_tensor

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
    check_tensor("targets", targets, ndim=2, floating=True)
    if targets.shape != logits.shape:
        raise ValueError(f"`targets` must have the shape of `logits` {tuple(logits.shape)}; got {tuple(targets.shape)}")
    return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def fit(
    model: nn.Module,
    train_loader: DataLoader | Iterable,
    *,
    epochs: int = 20,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    val_loader: DataLoader | Iterable | None = None,
    loss_fn: LossFn = cross_entropy_loss,
    on_step: Callback | None = None,
    on_epoch_end: Callback | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    seed: int = 0,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> History:
    """Train ``model`` in place with Adam and return its :class:`History`.

    ``on_step(model, step)`` runs after every optimizer step (pruning schedules use it to
    update masks); ``on_epoch_end(model, epoch)`` after every epoch. ``loss_fn(model, x, y)``
    replaces cross-entropy (distillation uses it).
    """
    check_module("model", model)
    epochs = check_int("epochs", epochs, 0)
    lr = check_real("lr", lr, 0.0, low_open=True)
    weight_decay = check_real("weight_decay", weight_decay, 0.0)
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    history = History()
    step = 0
    bar = _progress(epochs, enabled=progress)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in range(1, epochs + 1):
            model.train()
            total_loss, correct, seen = 0.0, 0, 0
            for x, y in train_loader:
                x, y = x.to(device), y.to(device)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model, x, y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the training loss became {loss.item()} at epoch {epoch}, step {step}; lower `lr`")
                loss.backward()
                optimizer.step()
                step += 1
                if on_step is not None:
                    on_step(model, step)
                total_loss += loss.item() * len(y)
                seen += len(y)
            if seen == 0:
                raise ValueError("`train_loader` must yield at least one batch; got none")
            history.epoch.append(epoch)
            history.step.append(step)
            history.train_loss.append(total_loss / seen)
            if val_loader is not None:
                history.val_acc.append(evaluate(model, val_loader, device=device))
            if on_epoch_end is not None:
                on_epoch_end(model, epoch)
            bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", val_acc=f"{history.val_acc[-1]:.3f}" if history.val_acc else "-")
            bar.update(1)
    bar.close()
    return history


@torch.inference_mode()
def predict(model: nn.Module, data: DataLoader | Iterable | torch.Tensor, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Predicted class of every sample, as an int64 tensor on the CPU. Leaves the model in eval mode."""
    check_module("model", model)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    if isinstance(data, torch.Tensor):
        batches = [(data,)] if len(data) else []
    else:
        batches = data
    preds = [model(batch[0].to(device)).argmax(dim=1).cpu() for batch in batches]
    if not preds:
        raise ValueError("`data` must hold at least one sample; got none")
    return torch.cat(preds)


def evaluate(model: nn.Module, data: DataLoader | Iterable, *, device: torch.device | str | None = None) -> float:
    """Accuracy (a fraction in [0, 1]) of ``model`` over every (x, y) batch of ``data``."""
    check_module("model", model)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = total = 0
    with torch.inference_mode():  # One pass: a shuffled loader yields a new order on each pass.
        for x, y in data:
            correct += int((model(x.to(device)).argmax(dim=1).cpu() == y.cpu()).sum())
            total += len(y)
    model.train(was_training)
    if total == 0:
        raise ValueError("`data` must hold at least one sample; got none")
    return correct / total


def _progress(total: int, enabled: bool):
    """tqdm's notebook bar in Jupyter, its text bar in a terminal; a do-nothing bar when disabled."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="epoch", disable=not enabled, leave=False)
