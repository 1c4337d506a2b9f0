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
