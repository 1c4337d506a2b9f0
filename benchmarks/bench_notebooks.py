"""Wall time and peak kernel memory of every notebook, chapters and solutions, run end to end.

The course's time budget (so that a laptop twice as slow as the CI machine still runs each
chapter in under a minute): every notebook under 30 s, and all of them together under 3
minutes. Each row says whether this machine met it.

Each notebook runs twice with a model cache (``compresskit.cache``) of its own: first with the
cache empty, as on a fresh machine (the budget is judged on this run), then again with what the
first run stored, as after a kernel restart. A learner's cache is never read or written.
"""

from __future__ import annotations

import os
import tempfile
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


def cold_and_warm(path: Path) -> tuple[float, float, float]:
    """(first run with an empty model cache, second run with the first one's cache, peak MiB)."""
    before = os.environ.get("COMPRESSKIT_CACHE")
    with tempfile.TemporaryDirectory(prefix="compresskit-bench-cache-") as folder:
        os.environ["COMPRESSKIT_CACHE"] = folder  # the kernel inherits the environment
        try:
            cold, peak = measure(path)
            warm, peak_warm = measure(path)
        finally:
            if before is None:
                del os.environ["COMPRESSKIT_CACHE"]
            else:
                os.environ["COMPRESSKIT_CACHE"] = before
    return cold, warm, max(peak, peak_warm)


def run() -> str:
    rows, total, total_warm = [], 0.0, 0.0
    for path in sorted((REPO / "chapters").glob("*.ipynb")) + sorted((REPO / "solutions").glob("*.ipynb")):
        seconds, warm, peak = cold_and_warm(path)
        total += seconds
        total_warm += warm
        rows.append([f"{path.parent.name}/{path.name}", f"{seconds:.1f}", f"{warm:.1f}", f"{peak:.0f}", met(seconds, NOTEBOOK_BUDGET_S)])
    rows.append(["**all notebooks**", f"**{total:.1f}**", f"**{total_warm:.1f}**", "", met(total, COURSE_BUDGET_S)])
    return "\n".join([
        "### Notebooks",
        "",
        "Each notebook executed end to end in a fresh `compresskit` kernel (kernel start included);",
        "peak memory is the kernel's maximum resident set size: the per-learner cost on a shared hub.",
        "First run: an empty model cache (`compresskit.cache`), as on a fresh machine; second run: the",
        "models the first run trained are loaded, as after a kernel restart. The budget is judged on the first.",
        f"Budget: each notebook under {NOTEBOOK_BUDGET_S:.0f} s and all of them under {COURSE_BUDGET_S:.0f} s on this machine,",
        "so that a laptop twice as slow still runs a chapter in under a minute.",
        "",
        table(["notebook", "first run (s)", "second run (s)", "peak kernel memory (MiB)", "budget"], rows),
    ])
