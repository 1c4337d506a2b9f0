"""Speed claims are judged, never asserted: the verdict helper and the random test clock."""

from __future__ import annotations

import pytest
import torch

from compresskit import measure
from compresskit.course import verdict


@pytest.fixture
def real_clock(monkeypatch):
    monkeypatch.delenv(measure.CLOCK_ENV, raising=False)


@pytest.fixture
def random_clock(monkeypatch):
    monkeypatch.setenv(measure.CLOCK_ENV, "random:3")
    monkeypatch.setattr(measure, "_random_clock", None)


def test_judge_holds_above(real_clock, capsys):
    v = verdict.judge("int8 faster", 3.7, above=1.5)
    assert v.holds and v.value == 3.7 and v.expected == "> 1.5x"
    out = capsys.readouterr().out
    assert "holds on this machine: int8 faster: 3.70x (expected > 1.5x)" in out
    assert "does not" not in out


def test_judge_does_not_hold_names_value_threshold_reason_and_machine(real_clock, capsys):
    v = verdict.judge("int8 faster", 1.11, above=1.5, why="no VNNI", hardware=("int8", "threads"))
    assert not v.holds
    out = capsys.readouterr().out
    assert "does not hold on this machine: int8 faster: 1.11x, expected > 1.5x" in out
    assert "likely why: no VNNI" in out
    assert "int8 dot-product instructions" in out and "torch threads" in out


@pytest.mark.parametrize("value, holds", [(0.69, False), (0.71, True), (1.39, True), (1.41, False)])
def test_judge_between(real_clock, value, holds):
    assert verdict.judge("about equal", value, above=0.7, below=1.4, show=False).holds is holds


def test_judge_at_the_threshold_does_not_hold(real_clock):
    assert not verdict.judge("faster", 1.5, above=1.5, show=False).holds


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(claim="x", value=2.0), ValueError, "`above` or `below`"),
    (dict(claim=3, value=2.0, above=1), TypeError, "`claim`"),
    (dict(claim="x", value=float("nan"), above=1), ValueError, "`value`"),
    (dict(claim="x", value=-1.0, above=1), ValueError, "`value`"),
    (dict(claim="x", value="fast", above=1), TypeError, "`value`"),
])
def test_judge_bad_input(kwargs, error, words):
    with pytest.raises(error, match=words):
        verdict.judge(**kwargs)


def test_machine_notes_topics():
    notes = verdict.machine_notes(verdict.TOPICS)
    assert len(notes) >= len(verdict.TOPICS)
    assert any(torch.backends.cpu.get_cpu_capability() in n for n in notes)
    with pytest.raises(ValueError, match="`topics`.*'gpu'"):
        verdict.machine_notes(("gpu",))


def test_random_clock_is_monotonic_and_says_so(random_clock, capsys):
    ticks = [measure.clock() for _ in range(1000)]
    steps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert min(steps) > 0
    assert max(steps) / min(steps) > 1e4  # durations spread over decades: they mean nothing
    assert measure.clock_is_random()
    v = verdict.judge("faster", 9.0, above=1.5)
    assert v.random_clock and "random test clock" in capsys.readouterr().out


def test_random_clock_reproduces_with_its_seed(monkeypatch):
    runs = []
    for _ in range(2):
        monkeypatch.setenv(measure.CLOCK_ENV, "random:7")
        monkeypatch.setattr(measure, "_random_clock", None)
        runs.append([measure.clock() for _ in range(5)])
    assert runs[0] == runs[1]


def test_timings_under_the_random_clock_do_not_follow_the_work(random_clock):
    """A 50x bigger matmul is not reliably slower: the clock, not the code, decides."""
    small, big = torch.randn(8, 8), torch.randn(400, 400)
    ratios = [measure.latency_ratio(lambda: big @ big, lambda: small @ small, warmup=0, repeats=9).ratio
              for _ in range(40)]
    assert min(ratios) < 1 < max(ratios)


@pytest.mark.parametrize("setting", ["fast", "random:x", "random:-1"])
def test_bad_clock_setting(monkeypatch, setting):
    monkeypatch.setenv(measure.CLOCK_ENV, setting)
    monkeypatch.setattr(measure, "_random_clock", None)
    with pytest.raises(ValueError, match=f"`{measure.CLOCK_ENV}`.*{setting!r}"):
        measure.clock()
