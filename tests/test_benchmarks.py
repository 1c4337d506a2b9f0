"""The benchmark helpers (the benchmarks themselves run with `make bench`, not in tests)."""

import pytest
import torch

from benchmarks import table, torch_threads


def test_table_is_markdown():
    assert table(["a", "b"], [[1, "x"], [2.5, "y"]]) == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 | y |"


def test_torch_threads_restores_the_count_even_on_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_every_benchmark_module_has_run():
    import importlib
    from pathlib import Path

    names = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))
    assert {"bench_notebooks", "bench_pruning", "bench_quantization", "bench_ensembles"} <= set(names)
    for name in names:
        assert callable(importlib.import_module(f"benchmarks.{name}").run)


def test_notebook_budget_verdicts():
    from benchmarks.bench_notebooks import COURSE_BUDGET_S, NOTEBOOK_BUDGET_S, met

    assert (NOTEBOOK_BUDGET_S, COURSE_BUDGET_S) == (30.0, 180.0)
    assert met(29.9, 30) == "< 30 s (met)"
    assert met(30.0, 30) == "< 30 s (NOT met)"
