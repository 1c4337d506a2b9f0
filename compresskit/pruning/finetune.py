"""Pruning during training: the gradual (cubic) schedule, iterative prune / fine-tune rounds,
hybrid unit + weight pruning, and the per-layer sensitivity scan.

References
----------
[1] M. Zhu, S. Gupta, "To prune, or not to prune: exploring the efficacy of pruning for
    model compression", 2017, arXiv:1710.01878.
[2] S. Han, J. Pool, J. Tran, W. J. Dally, "Learning both Weights and Connections for
    Efficient Neural Networks", NeurIPS 2015, arXiv:1506.02626.
[3] H. Li, A. Kadav, I. Durdanovic, H. Samet, H. P. Graf, "Pruning Filters for Efficient
    ConvNets", ICLR 2017, arXiv:1608.08710 (sensitivity analysis of each layer).

Key equation
------------
Gradual pruning [1] raises the sparsity from ``s_i`` to ``s_f`` over ``n`` pruning steps of
``dt`` training steps each, starting at step ``t_0``, fast at first and slowly at the end::

    s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (n * dt)) ** 3      for t_0 <= t <= t_0 + n*dt

Every ``dt`` steps the mask is recomputed so that the smallest-magnitude ``s_t`` of the
weights are zero, while training goes on with the rest.
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from compresskit._validation import check_amount, check_choice, check_fraction, check_int, check_module
from compresskit.pruning.masks import Parameters, _check_parameters, _check_target, _remaining, copy_model, l1_unstructured, prunable_parameters, set_sparsity
from compresskit.pruning.units import _check_layers, prune_units


def cubic_sparsity(step: int, final_sparsity: float, begin_step: int, end_step: int, initial_sparsity: float = 0.0) -> float:
    """Target sparsity at ``step`` of the Zhu & Gupta schedule: ``initial_sparsity`` before
    ``begin_step``, ``final_sparsity`` from ``end_step`` on, cubic in between.

    Sparsities are float fractions in [0, 1]; an int is refused (in torch's ``amount`` it would
    be a count of weights, which a schedule of fractions cannot mean)."""
    step = check_int("step", step, 0)
    final_sparsity = check_fraction("final_sparsity", final_sparsity)
    initial_sparsity = check_fraction("initial_sparsity", initial_sparsity)
    if initial_sparsity > final_sparsity:
        raise ValueError(f"`initial_sparsity` must be <= `final_sparsity` ({final_sparsity!r}); got {initial_sparsity!r}")
    begin_step = check_int("begin_step", begin_step, 0)
    end_step = check_int("end_step", end_step, begin_step + 1)
    progress = min(max((step - begin_step) / (end_step - begin_step), 0.0), 1.0)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3  # Eq. (1) in [1]


class GradualPruner:
    """An ``on_step`` callback for :func:`compresskit.train.fit` that prunes on the cubic schedule.

    Every ``frequency`` steps from ``begin_step`` to ``end_step`` it sets the sparsity of
    ``parameters`` to :func:`cubic_sparsity` (``scope`` "global" or "layer"); between
    updates the mask holds and training adapts the remaining weights. Sparsities are float
    fractions (an int is refused: see :func:`cubic_sparsity`).

    >>> pruner = GradualPruner(prunable_parameters(model), 0.95, begin_step=0, end_step=200)
    >>> fit(model, loader, epochs=20, on_step=pruner)
    """

    def __init__(
        self,
        parameters: Parameters,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        frequency: int = 10,
        *,
        initial_sparsity: float = 0.0,
        scope: str = "global",
    ) -> None:
        self.parameters = _check_parameters(parameters)
        self.final_sparsity = final_sparsity
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = check_int("frequency", frequency, 1)
        self.initial_sparsity = initial_sparsity
        self.scope = check_choice("scope", scope, ["global", "layer"])
        cubic_sparsity(0, final_sparsity, begin_step, end_step, initial_sparsity)  # validates the schedule
        self.begin_step, self.end_step = int(begin_step), int(end_step)
        self.history_: list[tuple[int, float]] = []

    def __call__(self, model: nn.Module, step: int) -> None:
        due = (step - self.begin_step) % self.frequency == 0 or step == self.end_step
        if self.begin_step <= step <= self.end_step and due:
            target = cubic_sparsity(step, self.final_sparsity, self.begin_step, self.end_step, self.initial_sparsity)
            set_sparsity(self.parameters, target, scope=self.scope)
            self.history_.append((step, target))


def iterative_pruning(
    model: nn.Module,
    amounts: Sequence[float | int],
    fine_tune: Callable[[nn.Module], object],
    *,
    parameters: Parameters | None = None,
    scope: str = "global",
) -> nn.Module:
    """Han et al. [2]: for each total sparsity in ``amounts`` (non-decreasing), prune by
    magnitude, then call ``fine_tune(model)`` to let the remaining weights recover. In place.

    Each amount follows torch, as in :func:`set_sparsity`: a float is a fraction, an int a
    count of weights (in all ``parameters`` for ``scope="global"``, in each for "layer").
    Every amount is checked before the first round."""
    check_module("model", model)
    scope = check_choice("scope", scope, ["global", "layer"])
    if not callable(fine_tune):
        raise TypeError(f"`fine_tune` must be callable (it trains the model between rounds); got {type(fine_tune).__name__}")
    parameters = _check_parameters(prunable_parameters(model) if parameters is None else parameters)
    sizes = [_check_target(m, n).numel() for m, n in parameters]
    if isinstance(amounts, (str, bytes)) or not isinstance(amounts, Sequence) or len(amounts) == 0:
        raise ValueError(f"`amounts` must be a non-empty, non-decreasing list of sparsities; got {amounts!r}")
    for size in [sum(sizes)] if scope == "global" else sizes:
        counts = [check_amount(f"amounts[{i}]", a, size) for i, a in enumerate(amounts)]
        if any(b < a for a, b in zip(counts, counts[1:])):
            raise ValueError(f"`amounts` must be a non-empty, non-decreasing list of sparsities; got {list(amounts)}")
    for amount in amounts:
        set_sparsity(parameters, amount, scope=scope)
        fine_tune(model)
    return model


def hybrid_prune(model: nn.Sequential, unit_amount: float | int, weight_amount: float | int, *, n: float = 2, scope: str = "global") -> nn.Sequential:
    """Neuron pruning, then weight pruning: remove ``unit_amount`` of the units of every hidden
    layer physically, then magnitude-prune ``weight_amount`` of the smaller model's weights
    (both follow torch's ``amount``). ``model`` itself is not changed."""
    scope = check_choice("scope", scope, ["global", "layer"])
    small = prune_units(model, unit_amount, n=n)
    set_sparsity(prunable_parameters(small), weight_amount, scope=scope)
    return small


def sensitivity_scan(
    model: nn.Module, amounts: Sequence[float | int], score: Callable[[nn.Module], float], *, layers: Sequence[str] | None = None
) -> dict[str, list[float]]:
    """``score`` (e.g. accuracy) of ``model`` with one layer at a time magnitude-pruned by each
    of ``amounts``: ``{layer name: [score at each amount]}``. ``model`` is not changed.

    ``amounts`` follow torch's ``amount`` (float fraction or int count, per layer); ``layers``
    is a non-empty list of Linear / Conv2d names, or ``None`` for all of them.
    Layers whose score falls fast are sensitive and deserve a lower amount [3].
    """
    check_module("model", model)
    if not callable(score):
        raise TypeError(f"`score` must be callable (a model -> a number); got {type(score).__name__}")
    names = [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    _check_layers(layers, names, "Linear / Conv2d layers of the model")
    chosen = list(layers) if layers is not None else names
    if isinstance(amounts, (str, bytes)) or not isinstance(amounts, Sequence) or len(amounts) == 0:
        raise ValueError(f"`amounts` must be a non-empty list of amounts; got {amounts!r}")
    for name in chosen:
        remaining = _remaining(model.get_submodule(name), "weight")
        for i, amount in enumerate(amounts):
            check_amount(f"amounts[{i}]", amount, remaining)
    scan = {}
    for name in chosen:
        scores = []
        for amount in amounts:
            pruned = copy_model(model)
            l1_unstructured(pruned.get_submodule(name), "weight", amount)
            scores.append(float(score(pruned)))
        scan[name] = scores
    return scan
