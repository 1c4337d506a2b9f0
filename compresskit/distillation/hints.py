"""Hint (feature) distillation: FitNets (Romero et al. 2015).

[1] A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, "FitNets: Hints for
    Thin Deep Nets", ICLR 2015, arXiv:1412.6550.

Before the usual distillation, a thin student is taught what one of the teacher's hidden
layers computes. The teacher's *hint* layer h and the student's *guided* layer g usually differ
in width, so a learned regressor r maps the student's features to the teacher's, and the
student's layers up to g, together with r, minimise::

    L_HT(W_guided, W_r) = 1/2 || u_h(x; W_hint) - r(v_g(x; W_guided); W_r) ||²       Eq. (3) in [1]

averaged over the batch. Then the whole student is trained with Hinton's loss (stage 2 of
[1], :func:`compresskit.distillation.distill`). [1] uses convolutional regressors for
convolutional layers; for the MLPs here r is a Linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from compresskit._validation import check_int, check_module, check_real, check_seed, check_tensor
from compresskit.data import make_loader
from compresskit.distillation._modes import keeping_modes
from compresskit.train import History, fit


def _layer_index(model: nn.Module, name: str, argument: str) -> int:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"`{argument}` must be an nn.Sequential with named layers; got {type(model).__name__}")
    names = [n for n, _ in model.named_children()]
    if name not in names:
        raise ValueError(f"`{argument}_layer` must name a layer of `{argument}` {names}; got {name!r}")
    return names.index(name)


def layer_output(model: nn.Sequential, layer: str, X: torch.Tensor) -> torch.Tensor:
    """What the named layer of ``model`` outputs on X, flattened to (N, features), computed in
    eval mode; ``model`` comes back in the mode it came in, even on failure."""
    return _layer_output(model, layer, X, "model")


@torch.no_grad()
def _layer_output(model: nn.Sequential, layer: str, X: torch.Tensor, argument: str) -> torch.Tensor:
    index = _layer_index(model, layer, argument)
    check_tensor("X", X, floating=True, finite=True)
    with keeping_modes(model):
        try:
            out = model.eval()[: index + 1](X)
        except RuntimeError as exc:
            raise ValueError(f"`X` must fit the input of `{argument}`; got shape {tuple(X.shape)}, on which it fails: {exc}") from exc
    return out.reshape(len(X), -1)


def hint_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, regressor: nn.Module) -> torch.Tensor:
    """Eq. (3): 1/2 ||teacher_features - regressor(student_features)||², mean over the batch."""
    check_tensor("student_features", student_features, ndim=2, floating=True, finite=True)
    check_tensor("teacher_features", teacher_features, ndim=2, floating=True, finite=True)
    check_module("regressor", regressor)
    guess = regressor(student_features)
    if guess.shape != teacher_features.shape:
        raise ValueError(f"`regressor` must map `student_features` to the shape of `teacher_features` "
                         f"{tuple(teacher_features.shape)}; got {tuple(guess.shape)}")
    return 0.5 * (teacher_features - guess).pow(2).sum(dim=1).mean()  # Eq. (3)


def fit_hints(
    student: nn.Sequential,
    teacher: nn.Sequential,
    X: torch.Tensor,
    *,
    student_layer: str,
    teacher_layer: str,
    epochs: int = 10,
    lr: float = 1e-2,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[nn.Linear, History]:
    """Stage 1 of [1]: train ``student`` up to ``student_layer`` (in place) and a new Linear
    regressor so the regressor's output matches ``teacher_layer``'s on X (Eq. (3)).

    Returns the regressor (initialised from ``seed``, in training mode) and fit's History. Every
    layer of ``student`` and ``teacher`` comes back in the mode it came in. Layers after the guided
    one are not touched; train the whole student with :func:`~compresskit.distillation.distill` next.
    """
    s_index = _layer_index(student, student_layer, "student")
    _layer_index(teacher, teacher_layer, "teacher")
    check_int("epochs", epochs, 0)
    check_real("lr", lr, 0.0, low_open=True)
    seed = check_seed("seed", seed)
    batch_size = check_int("batch_size", batch_size, 1)
    targets = _layer_output(teacher, teacher_layer, X, "teacher")  # the hint u_h(x), fixed: the teacher does not train
    if len(targets) != len(X):
        raise ValueError(f"`teacher` must give one hint per sample of `X` ({len(X)}) at `teacher_layer`; got {len(targets)}")
    trunk = student[: s_index + 1]                    # shares its layers with the student
    width = _layer_output(student, student_layer, X[:1], "student").shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        regressor = nn.Linear(width, targets.shape[1], dtype=targets.dtype)  # float64 features, a float64 regressor
    guided = nn.Sequential(trunk, nn.Flatten(), regressor)
    loader = make_loader(X, targets, batch_size, shuffle=True, seed=seed)

    def loss_fn(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * (t - model(x)).pow(2).sum(dim=1).mean()  # Eq. (3)

    with keeping_modes(student, teacher):  # fit leaves the guided layers training: give the caller's modes back
        history = fit(guided, loader, epochs=epochs, lr=lr, loss_fn=loss_fn, seed=seed, progress=False, device="cpu")
    return regressor, history
