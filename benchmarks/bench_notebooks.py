"""Wall time and peak kernel memory of every notebook, chapters and solutions, run end to end.

The course's time budget (so that a laptop twice as slow as the CI machine still runs each
chapter in under a minute): every notebook under 30 s, and all of them together under 3
minutes. Each row says whether this machine met it.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from benchmarks import table

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_BUDGET_S = 30.0
COURSE_BUDGET_S = 180.0
PEAK_RSS = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"  # KiB on Linux


def measure(path: Path) -> tuple[float, float]:
    """(seconds, peak kernel RSS in MiB) to execute the notebook at ``path`` from a fresh kernel."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_RSS))
    client = NotebookClient(nb, timeout=600, kernel_name="compresskit", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()  # the real clock: a budget, not a claim made in a chapter
    client.execute()
    seconds = time.perf_counter() - start
    peak_kib = int(nb.cells[-1].outputs[0]["text"].strip())
    return seconds, peak_kib / 1024


def met(seconds: float, budget: float) -> str:
    return f"< {budget:.0f} s ({'met' if seconds < budget else 'NOT met'})"


def run() -> str:
    rows, total = [], 0.0
    for path in sorted((REPO / "chapters").glob("*.ipynb")) + sorted((REPO / "solutions").glob("*.ipynb")):
        seconds, peak = measure(path)
        total += seconds
        rows.append([f"{path.parent.name}/{path.name}", f"{seconds:.1f}", f"{peak:.0f}", met(seconds, NOTEBOOK_BUDGET_S)])
    rows.append(["**all notebooks**", f"**{total:.1f}**", "", met(total, COURSE_BUDGET_S)])
    return "\n".join([
        "### Notebooks",
        "",
        "Each notebook executed end to end in a fresh `compresskit` kernel (kernel start included);",
        "peak memory is the kernel's maximum resident set size: the per-learner cost on a shared hub.",
        f"Budget: each notebook under {NOTEBOOK_BUDGET_S:.0f} s and all of them under {COURSE_BUDGET_S:.0f} s on this machine,",
        "so that a laptop twice as slow still runs a chapter in under a minute.",
        "",
        table(["notebook", "wall time (s)", "peak kernel memory (MiB)", "budget"], rows),
    ])
