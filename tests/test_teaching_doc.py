"""docs/teaching.md's generated tables match what they are generated from: the benchmark
results, README's memory table, the chapters, and what the checkers print for the tests' wrong
answers (tools/teaching_doc.py). When one fails, run ``python tools/teaching_doc.py --write``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("teaching_doc", REPO / "tools" / "teaching_doc.py")
teaching_doc = sys.modules["teaching_doc"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(teaching_doc)

FIX = "out of date: run python tools/teaching_doc.py --write"


@pytest.fixture(scope="module")
def doc() -> str:
    return teaching_doc.DOC.read_text(encoding="utf-8")


def test_the_cost_table_and_the_plans_are_up_to_date(doc):
    for name, body in teaching_doc.sections(with_mistakes=False).items():
        assert teaching_doc.current(name, doc) == body, f"the {name} in docs/teaching.md is {FIX}"


def test_the_mistakes_table_is_up_to_date(doc):
    """Runs every wrong answer of tests/test_exercises_*.py through its checker (about as long
    as those tests' rejection cases)."""
    assert teaching_doc.current("mistakes table", doc) == teaching_doc.generate_mistakes(), f"the mistakes table is {FIX}"


def test_every_chapter_is_measured_and_every_exercise_has_mistakes_listed(doc):
    chapters = teaching_doc.chapters()
    assert [c.number for c in chapters] == list(range(1, len(chapters) + 1))
    table = teaching_doc.current("mistakes table", doc)
    for c in chapters:
        for check in c.exercises:
            assert f"| `{check.removeprefix('check_')}` |" in table, f"no mistake listed for {check}"


def test_each_workshop_plan_fits_its_time():
    found = teaching_doc.chapters()
    text = teaching_doc.plans_text(found)
    for title, (available, _) in teaching_doc.PLANS.items():
        total = int(text.split(f"**{title}**")[1].split("| **total** | | **")[1].split("**")[0])
        assert 0 < total <= available, (title, total, available)


def test_minutes_grow_with_reading_exercises_and_run_time():
    chapter = teaching_doc.Chapter(1, "01_x", run_all_s=30.0, peak_mib=500, browser_peak="", words=1500, exercises=("a",))
    # 1500 words at 150 a minute, 8 minutes an exercise, 30 s twice over: 10 + 8 + 1
    assert teaching_doc.minutes(chapter, 1) == 19
    assert teaching_doc.minutes(chapter, 2) == 27


def test_the_mistakes_are_read_from_the_failures_recorded(tmp_path):
    """Only failures of exercise checkers count; a repeated line is listed once; exercises come
    in the order their module defines them, and a part other than the exercise is named."""
    def entry(exercise, part, status, message, topic="pruning"):
        return json.dumps({"topic": topic, "exercise": exercise, "part": part, "status": status, "message": message})

    record = tmp_path / "progress.jsonl"
    record.write_text("\n".join([
        entry("check_row_norm_mask", "row_norm_mask", "failed", "zeroes rows [0]: L2"),
        entry("check_threshold_mask", "threshold_mask", "failed", "you used >"),
        entry("check_threshold_mask", "threshold_mask", "passed", ""),
        entry("check_threshold_mask", "threshold_mask", "failed", "you used >"),
        entry("check_threshold_mask", "threshold_mask", "not attempted", ""),
        entry("my check", "my check", "failed", "not an exercise", topic="other"),
        entry("check_int8_claims", "third_ratio", "failed", "expected 1.5, got 3.0", topic="concepts"),
    ]) + "\n")
    found = teaching_doc.mistakes(record)
    assert found == {"pruning": [("threshold_mask", "you used >"), ("row_norm_mask", "zeroes rows [0]: L2")],
                     "concepts": [("int8_claims", "third_ratio: expected 1.5, got 3.0")]}
    text = teaching_doc.mistakes_text(found)
    assert text.index("Chapter 1, Concepts") < text.index("Chapter 2, Pruning")
    assert "| `threshold_mask` | you used > |" in text
