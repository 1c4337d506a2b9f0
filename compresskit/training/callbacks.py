"""Compression while training: callbacks composed into one run of :func:`compresskit.train.fit`.

A *callback* is any object with one or more of three methods, and
:func:`fit_compressed` plugs them into ``fit``'s hooks (there is no second training loop):

* ``loss(model, x, y, loss) -> loss``: change the batch's loss (distillation). It may also
  accept a keyword ``logits``: the model's output on ``x``, computed once per step, so that
  it needs no second forward pass (which would also update an activation observer twice).
* ``on_step(model, step)``: after every optimizer step (a pruning schedule updates its masks).
* ``on_epoch_end(model, epoch)``: after every epoch.

Callbacks run in the order given. Two are here, each reusing its technique package:

* :class:`PruneWhileTraining`: gradual magnitude pruning on the cubic schedule of [1],
  through :class:`compresskit.pruning.GradualPruner`::

      s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (n dt))^3                       # Eq. (1) in [1]

* :class:`Distill`: Hinton's loss [2] with a teacher model, through
  :func:`compresskit.distillation.distillation_loss`::

      L = alpha T^2 KL(q^T || p^T) + (1 - alpha) CE(y, p^1)                   # Eq. (2) in [2]

Quantization-aware training needs no callback: :func:`compresskit.training.prepare_qat`
returns a model whose forward pass fake-quantizes, and any callback combines with it.

References
----------
[1] M. Zhu, S. Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
    compression", 2017, arXiv:1710.01878.
[2] G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network", 2015,
    arXiv:1503.02531.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Iterable, Protocol, Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from compresskit._validation import _show, check_fraction, check_int, check_module, check_real
from compresskit.distillation import distillation_loss
from compresskit.pruning import GradualPruner, cubic_sparsity, prunable_parameters
from compresskit.train import fit

__all__ = ["Callback", "Distill", "PruneWhileTraining", "fit_compressed"]

HOOKS = ("loss", "on_step", "on_epoch_end")
RESERVED = ("loss_fn", "on_step", "on_epoch_end")


class Callback(Protocol):
    """What :func:`fit_compressed` calls; a callback defines any one or more of these (so this is
    documentation and a type hint, not an ``isinstance`` check)."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> torch.Tensor: ...

    def on_step(self, model: nn.Module, step: int) -> None: ...

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None: ...


# --- the callbacks ----------------------------------------------------------------------------

class PruneWhileTraining:
    """Gradual magnitude pruning during training, Zhu & Gupta [1]: from 0 to ``amount`` sparsity
    between optimizer steps ``start_step`` and ``end_step``, the mask recomputed every
    ``every`` steps (and at ``end_step``) on the cubic schedule, fast at first, slowly at the end.

    Prunes every Linear / Conv2d weight globally (the smallest magnitudes over all layers)
    with ``torch.nn.utils.prune`` masks, so ``prune.remove`` and the state-dict keys work as
    usual. ``amount`` is a float fraction in [0, 1] (an int would be a count of weights).
    After training, ``history_`` holds ``(step, sparsity)`` of every mask update.
    """

    def __init__(self, amount: float, start_step: int, end_step: int, every: int = 10) -> None:
        cubic_sparsity(0, amount, start_step, end_step)  # validates amount, start_step < end_step
        self.amount = check_fraction("amount", amount)
        self.start_step = check_int("start_step", start_step, 0)
        self.end_step = check_int("end_step", end_step, self.start_step + 1)
        self.every = check_int("every", every, 1)
        self._pruner: GradualPruner | None = None
        self._model: nn.Module | None = None

    @property
    def history_(self) -> list[tuple[int, float]]:
        return [] if self._pruner is None else self._pruner.history_

    def check_steps(self, total_steps: int) -> None:
        """Refuse a schedule that training would stop before finishing (``fit_compressed`` calls it)."""
        if self.end_step > total_steps:
            raise ValueError(f"`end_step` must be <= the number of training steps ({total_steps}), or the final sparsity "
                             f"{self.amount} is never reached; got end_step={self.end_step}")

    def on_step(self, model: nn.Module, step: int) -> None:
        if self._pruner is None or self._model is not model:  # the parameters of this model, found once
            self._pruner = GradualPruner(prunable_parameters(model), self.amount, self.start_step, self.end_step, self.every)
            self._model = model
        self._pruner(model, step)  # Eq. (1) in [1], inside GradualPruner

    def __repr__(self) -> str:
        return f"PruneWhileTraining(amount={self.amount}, start_step={self.start_step}, end_step={self.end_step}, every={self.every})"


class Distill:
    """Knowledge distillation from ``teacher`` during training, Hinton et al. [2].

    The incoming ``loss`` (cross-entropy with the labels, plus what earlier callbacks added)
    becomes ``alpha * T^2 * KL(teacher^T || student^T) + (1 - alpha) * loss``: with the plain
    cross-entropy it is exactly Eq. (2) of :func:`compresskit.distillation.distillation_loss`.
    The teacher runs in eval mode without gradients and is never trained.
    """

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9) -> None:
        self.teacher = check_module("teacher", teacher)
        self.temperature = check_real("temperature", temperature, 0.0, low_open=True)
        self.alpha = check_real("alpha", alpha, 0.0, 1.0)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: torch.Tensor, *, logits: torch.Tensor | None = None) -> torch.Tensor:
        student = model(x) if logits is None else logits
        was_training = self.teacher.training
        try:
            with torch.no_grad():
                teacher = self.teacher.eval()(x)
        finally:
            self.teacher.train(was_training)
        if teacher.shape != student.shape:
            raise ValueError(f"`teacher` must output logits of the student's shape {tuple(student.shape)}; "
                             f"got {tuple(teacher.shape)} from {type(self.teacher).__name__}")
        soft = distillation_loss(student, teacher, None, temperature=self.temperature, alpha=1.0)  # T^2 KL(q^T || p^T)
        return self.alpha * soft + (1.0 - self.alpha) * loss  # Eq. (2) in [2]

    def __repr__(self) -> str:
        return f"Distill(teacher={type(self.teacher).__name__}, temperature={self.temperature}, alpha={self.alpha})"


# --- the loop: fit, with the callbacks in its hooks ------------------------------------------

def _hooks_of(callback: object) -> list[str]:
    return [h for h in HOOKS if callable(getattr(callback, h, None))]


def _check_callbacks(callbacks: Any) -> list[object]:
    """A list or tuple of objects, each with at least one of loss / on_step / on_epoch_end."""
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        hint = " (wrap a single callback in a list: callbacks=[cb])" if _hooks_of(callbacks) else ""
        raise TypeError(f"`callbacks` must be a list or tuple of callbacks{hint}; got {type(callbacks).__name__} {_show(callbacks)}")
    for i, cb in enumerate(callbacks):
        if not _hooks_of(cb):
            raise TypeError(f"`callbacks[{i}]` must have a loss, on_step or on_epoch_end method; got {type(cb).__name__} {_show(cb)}")
    return list(callbacks)


def _takes_logits(fn: Any) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "logits" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _length(loader: Iterable) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:  # a generator or a DataLoader over an IterableDataset
        return None


def _check_signatures(callbacks: list[object]) -> None:
    """Each hook must accept the arguments fit_compressed passes it: checked before the first step."""
    calls = {"loss": ("model", "x", "y", "loss"), "on_step": ("model", "step"), "on_epoch_end": ("model", "epoch")}
    for i, cb in enumerate(callbacks):
        for hook, args in calls.items():
            fn = getattr(cb, hook, None)
            if not callable(fn):
                continue
            try:
                signature = inspect.signature(fn)
            except (TypeError, ValueError):  # a builtin without a signature: it is called and may fail then
                continue
            try:
                signature.bind(*args, **({"logits": None} if hook == "loss" and _takes_logits(fn) else {}))
            except TypeError:
                raise TypeError(f"`callbacks[{i}].{hook}` must accept ({', '.join(args)}); got {type(cb).__name__}.{hook}{signature}") from None


def _module_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[nn.Module, bool], dict[nn.Module, tuple[set[str], list[str]]]]:
    """What a failed run must give back: tensors, training flags and the pruned tensors of every module."""
    tensors = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=False).items()}
    flags = {m: m.training for m in model.modules()}
    pruned = {m: ({h._tensor_name for h in m._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)}, list(m._parameters))
              for m in model.modules()}
    return tensors, flags, pruned


def _restore(model: nn.Module, saved: tuple[dict[str, torch.Tensor], dict[nn.Module, bool], dict[nn.Module, tuple[set[str], list[str]]]]) -> None:
    """Undo a failed run: pruning added during it removed, every tensor and training flag put back."""
    tensors, flags, pruned = saved
    for m in model.modules():
        names, order = pruned.get(m, (set(), list(m._parameters)))
        removed = False
        for h in list(m._forward_pre_hooks.values()):
            if isinstance(h, prune.BasePruningMethod) and h._tensor_name not in names:
                prune.remove(m, h._tensor_name)
                removed = True
        if removed:  # prune.remove registers the parameter last: put it back where it was
            params = dict(m._parameters)
            m._parameters.clear()
            m._parameters.update({k: params[k] for k in order if k in params} | params)
    with torch.no_grad():
        current = model.state_dict(keep_vars=True)
        for key, value in tensors.items():
            current[key].copy_(value)
        for m in model.modules():  # the masked tensors recomputed from the restored originals and masks
            for h in m._forward_pre_hooks.values():
                if isinstance(h, prune.BasePruningMethod):
                    setattr(m, h._tensor_name, h.apply_mask(m))
    for m, flag in flags.items():
        m.training = flag


def fit_compressed(
    model: nn.Module,
    loader: Iterable,
    *,
    epochs: int,
    lr: float,
    callbacks: Sequence[object] = (),
    seed: int = 0,
    steps_per_epoch: int | None = None,
    **fit_kwargs: Any,
) -> nn.Module:
    """Train ``model`` in place with :func:`compresskit.train.fit`, the ``callbacks`` in its hooks; returns ``model``.

    The loss of a batch is the cross-entropy of ``model(x)`` with ``y``, passed through every
    callback's ``loss`` in order; then every ``on_step`` after each optimizer step, every
    ``on_epoch_end`` after each epoch. Any combination works: pruning a QAT model while
    distilling it is ``fit_compressed(prepare_qat(m), loader, ..., callbacks=[PruneWhileTraining(...),
    Distill(teacher)])``. Other keyword arguments go to ``fit`` (``val_loader``, ``weight_decay``,
    ``device``, ``progress``, default False); its hooks are taken, so ``loss_fn``, ``on_step`` and
    ``on_epoch_end`` are refused: write a callback. Everything is checked before the first step,
    the callbacks' signatures included; a run that fails all the same (a teacher whose output does
    not fit, a loss that turns NaN) gives the model back as it was: parameters, buffers (BatchNorm
    statistics, activation observers), training flags, no pruning added.

    A schedule (:class:`PruneWhileTraining`) needs the number of steps: a loader without a length
    (a generator, a DataLoader over an IterableDataset) must come with ``steps_per_epoch``, the
    number of batches it yields per epoch. A loader that then yields another number is refused
    at the end of the first epoch (the model given back as it was).
    """
    check_module("model", model)
    callbacks = _check_callbacks(callbacks)
    taken = sorted(set(fit_kwargs) & set(RESERVED))
    if taken:
        raise TypeError(f"`{taken[0]}` is set by fit_compressed from the callbacks; pass a callback with a "
                        f"{'loss' if taken[0] == 'loss_fn' else taken[0]} method instead; got {taken[0]}={fit_kwargs[taken[0]]!r:.60}")
    epochs = check_int("epochs", epochs, 0)
    _check_signatures(callbacks)
    length = _length(loader)
    if steps_per_epoch is not None:
        steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, 1)
        if length is not None and length != steps_per_epoch:
            raise ValueError(f"`steps_per_epoch` must equal len(loader) ({length}) when the loader has a length; got {steps_per_epoch}")
    per_epoch = length if length is not None else steps_per_epoch
    scheduled = [cb for cb in callbacks if callable(getattr(cb, "check_steps", None))]
    if scheduled and per_epoch is None:
        raise ValueError(f"`steps_per_epoch` must be given when `loader` has no length ({type(loader).__name__}): "
                         f"{type(scheduled[0]).__name__} needs the number of training steps for its schedule; got None")
    for cb in scheduled:
        cb.check_steps(epochs * per_epoch)
    losses = [(cb.loss, _takes_logits(cb.loss)) for cb in callbacks if callable(getattr(cb, "loss", None))]
    steps = [cb.on_step for cb in callbacks if callable(getattr(cb, "on_step", None))]
    ends = [cb.on_epoch_end for cb in callbacks if callable(getattr(cb, "on_epoch_end", None))]

    def loss_fn(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = m(x)  # one forward pass per step, shared by every callback that takes `logits`
        loss = nn.functional.cross_entropy(logits, y)
        for fn, takes_logits in losses:
            loss = fn(m, x, y, loss, logits=logits) if takes_logits else fn(m, x, y, loss)
        return loss

    seen = [0]

    def on_step(m: nn.Module, step: int) -> None:
        seen[0] = step
        for fn in steps:
            fn(m, step)

    def on_epoch_end(m: nn.Module, epoch: int) -> None:
        if epoch == 1 and length is None and steps_per_epoch is not None and seen[0] != steps_per_epoch:
            raise ValueError(f"`steps_per_epoch` must be the number of batches `loader` yields per epoch; "
                             f"got {steps_per_epoch}, and the first epoch had {seen[0]}")
        for fn in ends:
            fn(m, epoch)

    fit_kwargs.setdefault("progress", False)
    optimizer = fit_kwargs.get("optimizer")
    saved = _module_state(model)
    saved_optimizer = copy.deepcopy(optimizer.state_dict()) if isinstance(optimizer, torch.optim.Optimizer) else None
    try:
        fit(model, loader, epochs=epochs, lr=lr, seed=seed, loss_fn=loss_fn, on_step=on_step, on_epoch_end=on_epoch_end, **fit_kwargs)
    except BaseException:
        _restore(model, saved)
        if saved_optimizer is not None:
            optimizer.load_state_dict(saved_optimizer)
        raise
    return model
