"""Every chapter, run in JupyterLab in a real browser the way a learner runs it.

For each chapters/*.ipynb: open it, wait for the idle course kernel, clear the outputs, Run
All through the menu, wait until no cell runs, and require no error output, no cell left
unrun, and no dialog. Where the chapter displays widgets, they must render (no "Error
displaying widget") and pressing a key on the first slider must change the explorer's
summary. The kernel's peak memory is recorded for the README's per-learner cost.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .lab import builds_widgets, check_in_lab

pytestmark = pytest.mark.ui

CHAPTERS_DIR = Path(__file__).resolve().parents[2] / "chapters"
CHAPTERS = sorted(p.name for p in CHAPTERS_DIR.glob("*.ipynb"))
MIB = 2**20


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_in_jupyterlab(page, lab, chapter, kernel_memory_report):
    verdict = check_in_lab(page, lab, f"chapters/{chapter}", expect_widgets=builds_widgets(CHAPTERS_DIR / chapter))
    kernel_memory_report[chapter] = {
        "peak_mib": verdict.kernel.peak_bytes / MIB,
        "start_mib": verdict.kernel.first_bytes / MIB,
        "end_mib": verdict.kernel.last_bytes / MIB,
        "server_peak_mib": verdict.server.peak_bytes / MIB,
        "run_all_s": verdict.run.seconds,
        "widgets": verdict.run.widget_outputs,
    }
    if verdict.move is not None:
        kernel_memory_report[chapter]["explorer"] = {
            "keys": verdict.move.keys,
            "value": [verdict.move.value_before, verdict.move.value_after],
            "summary": [verdict.move.before[:160], verdict.move.after[:160]],
        }
    assert verdict.failures == [], f"{chapter} in JupyterLab:\n" + "\n".join(verdict.failures)
    if verdict.run.widget_outputs:
        assert verdict.move is not None and verdict.move.changed
