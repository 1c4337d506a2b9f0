"""Small plotting helpers for the chapters: every axis labelled, every unit named.

* :func:`latency_histogram`: single-call times with the median, quartiles and mean marked,
  to show why the course quotes medians.
* :func:`bar_chart`: one labelled bar per entry, optionally on a log scale with a reference
  line (a ratio of 1, say), each bar annotated with its value.
"""

from __future__ import annotations

import statistics
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from compresskit._validation import check_array


def latency_histogram(times_s: Sequence[float], *, ax: Axes | None = None, title: str = "") -> Axes:
    """Histogram of single-call times (given in seconds, drawn in ms on a log axis) with the
    median, the quartiles (the IQR) and the mean drawn as vertical lines."""
    times = check_array("times_s", times_s, ndim=1)
    if times.size < 2 or (times <= 0).any():
        raise ValueError(f"`times_s` must hold at least 2 positive times; got {times.size} values, min {times.min()!r}")
    ms = times * 1e3
    q1, median, q3 = statistics.quantiles(ms.tolist(), n=4, method="inclusive")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    bins = np.geomspace(ms.min(), ms.max() * 1.0001, 40)
    ax.hist(ms, bins=bins, color="0.7", edgecolor="0.4")
    ax.axvline(median, color="C0", lw=2, label=f"median {median:.3f} ms")
    ax.axvspan(q1, q3, color="C0", alpha=0.2, label=f"IQR {q1:.3f}-{q3:.3f} ms")
    ax.axvline(float(ms.mean()), color="C3", ls="--", label=f"mean {ms.mean():.3f} ms")
    ax.set_xscale("log")
    ax.set_xlabel("time of one call (ms, log scale)")
    ax.set_ylabel("number of calls")
    ax.set_title(title or f"{ms.size} single calls")
    ax.legend(fontsize="small")
    return ax


def bar_chart(
    values: Mapping[str, float],
    *,
    ylabel: str,
    title: str = "",
    log: bool = False,
    reference: float | None = None,
    ax: Axes | None = None,
    fmt: str = "{:.3g}",
) -> Axes:
    """One bar per ``label: value``, annotated with ``fmt``; ``log`` for a log y axis
    (values must then be positive); ``reference`` draws a dashed horizontal line there."""
    if not isinstance(values, Mapping) or len(values) == 0:
        raise ValueError(f"`values` must be a non-empty mapping of label to number; got {values!r}")
    heights = check_array("values", list(values.values()), ndim=1)
    if log and (heights <= 0).any():
        raise ValueError(f"`values` must all be > 0 on a log scale; got {heights.min()!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    labels = [str(k) for k in values]
    bars = ax.bar(labels, heights, color=[f"C{i % 10}" for i in range(len(labels))])
    for bar, h in zip(bars, heights):
        ax.annotate(fmt.format(h), (bar.get_x() + bar.get_width() / 2, h), ha="center", va="bottom", fontsize="small")
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", lw=1)
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.15)  # room for the labels above the tallest bar
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    return ax


def relative_spread(series: Mapping[str, Sequence[float]], *, ax: Axes | None = None, title: str = "") -> Axes:
    """Each series as a column of dots, every value divided by the series' own median, on a
    log y axis: a tight column is a steady quantity, a tall one a noisy one. Each column is
    labelled with its spread, (max - min) / median, the number the chapters quote."""
    if not isinstance(series, Mapping) or len(series) == 0:
        raise ValueError(f"`series` must be a non-empty mapping of label to values; got {series!r}")
    columns = {}
    for label, values in series.items():
        v = check_array(f"series[{label!r}]", values, ndim=1)
        if v.size < 2 or (v <= 0).any():
            raise ValueError(f"`series[{label!r}]` must hold at least 2 positive values; got {v.tolist()!r}")
        columns[str(label)] = v / np.median(v)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    for i, (label, rel) in enumerate(columns.items()):
        x = i + np.linspace(-0.2, 0.2, rel.size)  # spread the dots sideways so they do not hide each other
        ax.scatter(x, rel, s=12, alpha=0.6, color=f"C{i % 10}", zorder=3)
        ax.annotate(f"spread {rel.max() - rel.min():.1%}", (i, rel.max()), xytext=(0, 4),
                    textcoords="offset points", ha="center", fontsize="small")
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(columns)), list(columns))
    ax.set_ylabel("value / its median (log scale)")
    ax.set_title(title)
    ax.margins(y=0.2)  # room for the labels above the columns
    return ax


def quantization_grid(
    values: Sequence[float],
    rounded: Sequence[float],
    levels: Sequence[float],
    *,
    clip: tuple[float, float],
    ax: Axes | None = None,
    unit: str = "",
    title: str = "",
) -> Axes:
    """A quantization grid on a number line: the real ``values`` (dots above the line), the
    grid ``levels`` (ticks on it), the clipping range ``clip`` (shaded: values outside it are
    clamped to its ends) and an arrow from each value to the level it is ``rounded`` to."""
    v = check_array("values", values, ndim=1)
    r = check_array("rounded", rounded, ndim=1)
    g = check_array("levels", levels, ndim=1)
    if v.size == 0 or g.size == 0:
        raise ValueError(f"`values` and `levels` must not be empty; got {v.size} values and {g.size} levels")
    if r.shape != v.shape:
        raise ValueError(f"`rounded` must have one entry per value ({v.size}); got {r.size}")
    c = check_array("clip", clip, ndim=1)
    if c.size != 2 or not c[0] < c[1]:
        raise ValueError(f"`clip` must be (low, high) with low < high; got {clip!r}")
    lo, hi = float(c[0]), float(c[1])
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 2.2))
    ax.axhline(0.0, color="0.3", lw=1)
    ax.axvspan(lo, hi, color="C0", alpha=0.12, label=f"clipping range [{lo:.3g}, {hi:.3g}]")
    ax.vlines(g, -0.15, 0.15, color="C0", lw=1.2, label=f"grid: {g.size} levels")
    ax.scatter(v, np.full(v.size, 1.0), color="C3", zorder=3, label="real values")
    for x, x_hat in zip(v, r):
        ax.annotate("", xy=(x_hat, 0.15), xytext=(x, 0.9), arrowprops=dict(arrowstyle="->", color="C3", lw=1))
    ax.set_ylim(-0.5, 1.6)
    ax.set_yticks([])
    ax.set_xlabel(f"value{f' ({unit})' if unit else ''}: each arrow ends at the grid level the value is stored as")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small", ncol=3, frameon=False)
    return ax


def accuracy_vs_sparsity(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    dense: float | None = None,
    chance: float | None = None,
    ax: Axes | None = None,
    title: str = "",
    xlabel: str = "weights removed (%)",
) -> Axes:
    """One line per ``name: (sparsities, accuracies)``, both fractions in [0, 1], drawn in %:
    how much accuracy each pruning method keeps as it removes more. ``dense`` draws the
    unpruned model's accuracy and ``chance`` the accuracy of guessing, as horizontal lines."""
    if not isinstance(curves, Mapping) or len(curves) == 0:
        raise ValueError(f"`curves` must be a non-empty mapping of name to (sparsities, accuracies); got {curves!r}")
    lines = {}
    for name, pair in curves.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"`curves[{name!r}]` must be a (sparsities, accuracies) pair; got {pair!r}")
        x = check_array(f"curves[{name!r}] sparsities", pair[0], ndim=1)
        y = check_array(f"curves[{name!r}] accuracies", pair[1], ndim=1)
        if x.size == 0 or x.shape != y.shape:
            raise ValueError(f"`curves[{name!r}]` must hold as many accuracies as sparsities, at least one; "
                             f"got {x.size} and {y.size}")
        if ((x < 0) | (x > 1) | (y < 0) | (y > 1)).any():
            raise ValueError(f"`curves[{name!r}]` must hold fractions in [0, 1]; got {x.tolist()} and {y.tolist()}")
        lines[str(name)] = (x, y)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for i, (name, (x, y)) in enumerate(lines.items()):
        ax.plot(100 * x, 100 * y, "o-", color=f"C{i % 10}", label=name)
    for level, label, style in ((dense, "dense", "-"), (chance, "chance", ":")):
        if level is not None:
            ax.axhline(100 * check_array(label, [level], ndim=1)[0], color="k", ls=style, lw=0.8,
                       label=f"{label} {level:.1%}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 102)
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def accuracy_vs_bytes(
    points: Mapping[str, tuple[float, float]],
    *,
    ax: Axes | None = None,
    title: str = "",
    highlight: Sequence[str] = (),
) -> Axes:
    """One labelled point per ``name: (bytes on disk, accuracy as a fraction)``: bytes on a log
    x axis, accuracy in % on the y axis, so models a thousand times apart fit on one plot.
    Names in ``highlight`` (the compressed models, say) are drawn as larger stars."""
    if not isinstance(points, Mapping) or len(points) == 0:
        raise ValueError(f"`points` must be a non-empty mapping of name to (bytes, accuracy); got {points!r}")
    xy = check_array("points", [tuple(p) for p in points.values()], ndim=2)
    if xy.shape[1] != 2:
        raise ValueError(f"`points` values must be (bytes, accuracy) pairs; got {xy.shape[1]} numbers each")
    if (xy[:, 0] <= 0).any():
        raise ValueError(f"`points` bytes must all be > 0 on a log scale; got {xy[:, 0].min()!r}")
    if ((xy[:, 1] < 0) | (xy[:, 1] > 1)).any():
        raise ValueError(f"`points` accuracies must be fractions in [0, 1]; got {xy[:, 1].tolist()}")
    unknown = [name for name in highlight if name not in points]
    if unknown:
        raise ValueError(f"`highlight` must name entries of `points`; got {unknown}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for i, (name, (size, acc)) in enumerate(zip(points, xy)):
        star = name in highlight
        ax.scatter(size, 100 * acc, s=120 if star else 40, marker="*" if star else "o", color=f"C{i % 10}", zorder=3)
        ax.annotate(name, (size, 100 * acc), xytext=(5, 4), textcoords="offset points", fontsize="small")
    ax.set_xscale("log")
    ax.set_xlabel("bytes on disk (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.margins(x=0.25, y=0.1)  # room for the labels right of the points
    return ax


def accuracy_curves(
    x: Sequence[float],
    curves: Mapping[str, Sequence[float] | Sequence[Sequence[float]]],
    *,
    xlabel: str,
    title: str = "",
    log_x: bool = False,
    ax: Axes | None = None,
) -> Axes:
    """Test accuracy (fractions, drawn in %) against a swept setting ``x``, one line per curve.

    A curve is one accuracy per ``x`` (one seed), or one row per seed (seeds, len(x)): then the
    line is the mean over seeds and a bar spans the lowest to the highest seed.
    """
    xs = check_array("x", x, ndim=1)
    if not isinstance(curves, Mapping) or len(curves) == 0:
        raise ValueError(f"`curves` must be a non-empty mapping of name to accuracies; got {curves!r}")
    if log_x and (xs <= 0).any():
        raise ValueError(f"`x` must be > 0 on a log axis; got {xs.min()!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for i, (name, values) in enumerate(curves.items()):
        acc = np.atleast_2d(check_array(f"curves[{name!r}]", values))
        if acc.ndim != 2 or acc.shape[1] != xs.size:
            raise ValueError(f"`curves[{name!r}]` must hold one accuracy per x ({xs.size}), or one row of them per seed; "
                             f"got shape {np.shape(values)}")
        if ((acc < 0) | (acc > 1)).any():
            raise ValueError(f"`curves[{name!r}]` must hold fractions in [0, 1]; got values in [{acc.min()}, {acc.max()}]")
        mean = 100 * acc.mean(axis=0)
        spread = (mean - 100 * acc.min(axis=0), 100 * acc.max(axis=0) - mean)
        label = name if len(acc) == 1 else f"{name} (mean, min-max of {len(acc)} seeds)"
        ax.errorbar(xs, mean, yerr=spread if len(acc) > 1 else None, fmt="o-", color=f"C{i % 10}", capsize=3, label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax
