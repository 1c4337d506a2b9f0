"""Ensembles explorer: an ensemble choice and a number-of-estimators slider -> training and
test accuracy after that many members, on the curves of all of them.

The curves are computed once (``staged_accuracy``), so an update only redraws a figure.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display


def staged_accuracy(model: Any, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Accuracy after 1, 2, ..., M members, from an ensemble's ``staged_predict``."""
    return np.array([np.mean(pred == y) for pred in model.staged_predict(X)])


def ensemble_explorer(curves: dict[str, tuple[np.ndarray, np.ndarray]], *, n_estimators: int = 10) -> widgets.VBox:
    """A dropdown (ensemble) and a slider (number of estimators) over precomputed
    ``{name: (training accuracies, test accuracies)}``, one entry per number of members."""
    if not curves:
        raise ValueError("`curves` must hold at least one ensemble; got none")
    longest = max(len(train) for train, _ in curves.values())
    choice = widgets.Dropdown(options=list(curves), description="ensemble")
    slider = widgets.IntSlider(value=min(n_estimators, longest), min=1, max=longest, description="estimators",
                               continuous_update=False)
    summary = widgets.HTML()
    output = widgets.Output()

    def update(_=None) -> None:
        train, test = curves[choice.value]
        m = min(slider.value, len(train))
        summary.value = (f"<b>{choice.value}</b> with {m} estimators: training accuracy <b>{train[m - 1]:.1%}</b>, "
                         f"test accuracy <b>{test[m - 1]:.1%}</b> (gap {100 * (train[m - 1] - test[m - 1]):.1f} points)")
        output.clear_output(wait=True)
        with output:
            fig, ax = plt.subplots(figsize=(7, 3))
            for name, (tr, te) in curves.items():
                style = dict(lw=2.5) if name == choice.value else dict(lw=1, alpha=0.4)
                line, = ax.plot(np.arange(1, len(te) + 1), 100 * te, label=f"{name}, test", **style)
                ax.plot(np.arange(1, len(tr) + 1), 100 * tr, ls=":", color=line.get_color(), label=f"{name}, training", **style)
            ax.axvline(m, color="k", lw=0.8)
            ax.set(xscale="log", xlabel="number of estimators", ylabel="accuracy (%)")
            ax.legend(fontsize=7, loc="lower right")
            fig.tight_layout()
            display(fig)
            plt.close(fig)

    slider.observe(update, names="value")
    choice.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([slider, choice]), summary, output])
