"""No chapter asserts a timing: every chapter runs to the end with its timers on a random clock.

``compresskit.measure.clock`` returns random durations under ``COMPRESSKIT_CLOCK=random``, so
every latency and ratio a chapter measures is noise. A chapter that judges its speed claims
with ``compresskit.course.verdict.judge`` still runs to the end; one that asserts a speed-up
fails here, as it would on a learner's CPU where the claim does not hold.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from compresskit import measure

CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("*.ipynb"))
TIMES_SOMETHING = ("measure_latency", "latency_ratio", "measure.clock", "judge(")


def _printed(nb) -> str:
    return "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.outputs if out.get("output_type") == "stream")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_runs_to_the_end_on_a_random_clock(path, monkeypatch):
    monkeypatch.setenv(measure.CLOCK_ENV, "random:0")  # the kernel inherits the environment
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="compresskit",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{path.name} stops when its timings are random, so it asserts something that "
                    f"depends on the machine's speed; show it with verdict.judge instead:\n{error}")
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    if any(word in source for word in TIMES_SOMETHING):
        assert "random test clock" in _printed(nb), (
            f"{path.name} times something but prints no verdict made on the random clock: "
            "judge each speed claim with compresskit.course.verdict.judge")
