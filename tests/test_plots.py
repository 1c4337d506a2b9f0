"""compresskit.course.plots: the helpers draw what they say, with labelled axes, and refuse bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from compresskit.course import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_latency_histogram_marks_median_quartiles_and_mean():
    times = [1e-3, 1e-3, 2e-3, 3e-3, 50e-3]  # seconds; the 50 ms outlier drags the mean only
    ax = plots.latency_histogram(times)
    lines = {line.get_label(): line.get_xdata()[0] for line in ax.get_lines()}
    assert lines["median 2.000 ms"] == pytest.approx(2.0)
    assert lines["mean 11.400 ms"] == pytest.approx(11.4)
    assert any("IQR 1.000-3.000 ms" in t.get_text() for t in ax.get_legend().get_texts())
    assert ax.get_xscale() == "log"
    assert "ms" in ax.get_xlabel() and ax.get_ylabel() == "number of calls"
    counts = sum(bar.get_height() for bar in ax.containers[0])  # the histogram's bars
    assert counts == len(times)


@pytest.mark.parametrize("bad, match", [([1e-3], "at least 2 positive"), ([1e-3, 0.0], "at least 2 positive"),
                                        ([1e-3, float("nan")], "must be finite"), ([[1e-3, 2e-3]], "1 dimensions")])
def test_latency_histogram_refuses_bad_times(bad, match):
    with pytest.raises(ValueError, match=match):
        plots.latency_histogram(bad)


def test_bar_chart_draws_one_annotated_bar_per_entry():
    fig, ax = plt.subplots()
    out = plots.bar_chart({"params": 0.12, "MACs": 3.66}, ylabel="CNN / MLP", log=True, reference=1.0, ax=ax)
    assert out is ax
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.12, 3.66])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["params", "MACs"]
    assert [t.get_text() for t in ax.texts] == ["0.12", "3.66"]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "CNN / MLP"
    assert ax.get_lines()[0].get_ydata()[0] == 1.0


@pytest.mark.parametrize("values, kwargs, error, match", [
    ({}, {}, ValueError, "non-empty mapping"),
    ([1.0, 2.0], {}, ValueError, "non-empty mapping"),
    ({"a": 0.0}, {"log": True}, ValueError, "> 0 on a log scale"),
    ({"a": "x"}, {}, TypeError, "must hold numbers"),
])
def test_bar_chart_refuses_bad_values(values, kwargs, error, match):
    with pytest.raises(error, match=match):
        plots.bar_chart(values, ylabel="y", **kwargs)


def test_relative_spread_divides_each_series_by_its_median_and_labels_the_spread():
    series = {"ratio": [2.0, 2.1, 1.9], "single calls": [1e-4, 1e-4, 2e-4, 4e-3]}
    ax = plots.relative_spread(series)
    columns = [c.get_offsets() for c in ax.collections]
    assert columns[0][:, 1].tolist() == pytest.approx([2.0 / 2.0, 2.1 / 2.0, 1.9 / 2.0])
    assert columns[1][:, 1].tolist() == pytest.approx([2 / 3, 2 / 3, 4 / 3, 80 / 3])  # median 1.5e-4
    assert [round(float(np.mean(c[:, 0]))) for c in columns] == [0, 1]  # one column per series
    assert [t.get_text() for t in ax.texts] == ["spread 10.0%", "spread 2600.0%"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ratio", "single calls"]
    assert ax.get_yscale() == "log" and "median" in ax.get_ylabel()


@pytest.mark.parametrize("bad, match", [
    ({}, "non-empty mapping"),
    ({"a": [1.0]}, "at least 2 positive"),
    ({"a": [1.0, 0.0]}, "at least 2 positive"),
    ({"a": [1.0, float("nan")]}, "must be finite"),
])
def test_relative_spread_refuses_bad_series(bad, match):
    with pytest.raises(ValueError, match=match):
        plots.relative_spread(bad)


def test_quantization_grid_draws_values_levels_clip_range_and_arrows():
    levels = np.arange(8) * 0.25 - 0.5  # a 3-bit grid, scale 0.25
    ax = plots.quantization_grid([-0.62, 0.1, 0.33, 1.27], [-0.5, 0.0, 0.25, 1.25], levels, clip=(-0.5, 1.25), unit="weight")
    assert ax.collections[0].get_segments()[0][0][0] == pytest.approx(-0.5)  # one tick per level
    assert len(ax.collections[0].get_segments()) == 8
    assert ax.collections[1].get_offsets()[:, 0].tolist() == pytest.approx([-0.62, 0.1, 0.33, 1.27])  # the values
    assert [t.xyann[0] for t in ax.texts] == pytest.approx([-0.62, 0.1, 0.33, 1.27])  # each arrow starts at a value
    assert [t.xy[0] for t in ax.texts] == pytest.approx([-0.5, 0.0, 0.25, 1.25])  # and ends where it rounds to
    assert ax.patches[0].get_x() == pytest.approx(-0.5) and ax.patches[0].get_width() == pytest.approx(1.75)  # clip span
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["clipping range [-0.5, 1.25]", "grid: 8 levels", "real values"]
    assert "weight" in ax.get_xlabel()


@pytest.mark.parametrize("kwargs, match", [
    (dict(values=[0.1, 0.2], rounded=[0.0], levels=[0.0, 0.25], clip=(0, 1)), "one entry per value"),
    (dict(values=[], rounded=[], levels=[0.0], clip=(0, 1)), "must not be empty"),
    (dict(values=[0.1], rounded=[0.0], levels=[0.0], clip=(1, 0)), "low < high"),
    (dict(values=[0.1], rounded=[0.0], levels=[0.0], clip=(0, 1, 2)), "low < high"),
])
def test_quantization_grid_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.quantization_grid(**kwargs)


def test_accuracy_vs_sparsity_draws_each_curve_in_percent_with_dense_and_chance():
    curves = {"global": ([0.5, 0.9], [0.975, 0.797]), "random": ([0.5, 0.9], [0.931, 0.106])}
    ax = plots.accuracy_vs_sparsity(curves, dense=0.975, chance=0.1)
    drawn = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}
    assert drawn["global"] == (pytest.approx([50, 90]), pytest.approx([97.5, 79.7]))
    assert drawn["random"][1] == pytest.approx([93.1, 10.6])
    assert drawn["dense 97.5%"][1][0] == pytest.approx(97.5)
    assert drawn["chance 10.0%"][1][0] == pytest.approx(10.0)
    assert ax.get_xlabel() == "weights removed (%)" and ax.get_ylabel() == "test accuracy (%)"


@pytest.mark.parametrize("bad, match", [
    ({}, "non-empty mapping"),
    ({"a": [0.5, 0.9, 0.1]}, "must be a \\(sparsities, accuracies\\) pair"),
    ({"a": ([0.5, 0.9], [0.9])}, "as many accuracies as sparsities"),
    ({"a": ([50, 90], [0.9, 0.8])}, "fractions in \\[0, 1\\]"),
])
def test_accuracy_vs_sparsity_refuses_bad_curves(bad, match):
    with pytest.raises(ValueError, match=match):
        plots.accuracy_vs_sparsity(bad)


def test_accuracy_vs_bytes_puts_each_model_at_its_size_and_accuracy():
    points = {"teacher": (20_871_637, 0.989), "student": (11_933, 0.986), "tree": (33_589, 0.85)}
    ax = plots.accuracy_vs_bytes(points, highlight=["student"])
    offsets = np.array([c.get_offsets()[0] for c in ax.collections])
    assert offsets == pytest.approx(np.array([[20_871_637, 98.9], [11_933, 98.6], [33_589, 85.0]]))
    assert [t.get_text() for t in ax.texts] == ["teacher", "student", "tree"]
    sizes = [c.get_sizes()[0] for c in ax.collections]
    assert sizes[1] > sizes[0] == sizes[2]  # the highlighted student stands out
    assert ax.get_xscale() == "log" and "bytes" in ax.get_xlabel() and "log scale" in ax.get_xlabel()
    assert ax.get_ylabel() == "test accuracy (%)"


@pytest.mark.parametrize("bad, kwargs, match", [
    ({}, {}, "non-empty mapping"),
    ({"a": (0, 0.5)}, {}, "bytes must all be > 0"),
    ({"a": (10, 98.0)}, {}, "fractions in \\[0, 1\\]"),
    ({"a": (10, 0.5, 3)}, {}, "\\(bytes, accuracy\\) pairs"),
    ({"a": (10, 0.5)}, {"highlight": ["b"]}, "`highlight` must name entries"),
])
def test_accuracy_vs_bytes_refuses_bad_input(bad, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.accuracy_vs_bytes(bad, **kwargs)


def test_accuracy_curves_draw_the_mean_and_the_spread_of_seeds():
    ax = plots.accuracy_curves([1, 2, 4], {"one seed": [0.9, 0.95, 0.97], "seeds": [[0.9, 0.9, 0.9], [0.8, 1.0, 0.96]]},
                               xlabel="temperature T", log_x=True)
    lines = ax.get_lines()
    assert lines[0].get_ydata().tolist() == pytest.approx([90, 95, 97])
    assert lines[1].get_ydata().tolist() == pytest.approx([85, 95, 93])  # the mean over the two seeds
    bars = ax.containers[1].lines[2][0].get_segments()  # the error bars of the second curve: min to max
    assert [float(v) for s in bars for v in (s[0][1], s[1][1])] == pytest.approx([80, 90, 90, 100, 90, 96])
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "temperature T" and "%" in ax.get_ylabel()
    assert "seeds (mean, min-max of 2 seeds)" in [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize("x, curves, match", [
    ([1, 2], {"a": [0.9]}, "one accuracy per x"),
    ([1, 2], {"a": [90, 95]}, "fractions in \\[0, 1\\]"),
    ([1, 2], {}, "non-empty mapping"),
    ([0, 2], {"a": [0.9, 0.8]}, "> 0 on a log axis"),
])
def test_accuracy_curves_refuse_bad_input(x, curves, match):
    with pytest.raises(ValueError, match=match):
        plots.accuracy_curves(x, curves, xlabel="x", log_x=True)
