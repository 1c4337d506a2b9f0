"""A classroom on one machine: 8 simulated learners run chapter 7 at once through the workshop's
JupyterHub (classroom/loadtest.py), after one learner ran it alone on the same hub; then all of it
again beside generated load (classroom.loadtest.BusyLoad: two busy processes per CPU), as on a
workshop machine that is doing something else too.

The figures an instructor sizes a server (or Kubernetes' per-user limits) from: time per chapter
with the class against one learner alone, peak memory per learner and for the class, the hub's
own memory, and whether every chapter finished clean, on a quiet machine and on a busy one.
"""

from __future__ import annotations

import statistics
import tempfile

import psutil

from classroom.hub import proxy_installed
from classroom.loadtest import CHAPTER, MIB, LoadReport, format_report, run_load_test
from compresskit.measure import machine_info

LEARNERS = 8


def _slowdown(report: LoadReport) -> float:
    times = report.chapter_seconds()
    return statistics.median(times) / report.solo.run.seconds if times and report.solo.clean else float("nan")


def _per_learner(report: LoadReport) -> float:
    peaks = [r.peak_rss for r in report.learners if r.peak_rss]
    return statistics.median(peaks) / MIB if peaks else float("nan")


def run() -> str:
    header = [f"### Classroom: {LEARNERS} learners at once on one JupyterHub, quiet and under generated load", ""]
    machine = "Machine: " + ", ".join(f"{k} {v}" for k, v in machine_info().items()) + "."
    if not proxy_installed():
        return "\n".join(header + ["Not measured: configurable-http-proxy is not installed in classroom/node_modules "
                                   "(`make` runs `npm ci` there; it needs Node.js and npm).", "", machine])
    busy = 2 * (psutil.cpu_count() or 1)
    reports = {}
    for name, load in (("quiet", 0), ("busy", busy)):
        with tempfile.TemporaryDirectory(prefix="compresskit-bench-classroom-") as folder:
            reports[name] = run_load_test(folder, learners=LEARNERS, chapter=CHAPTER, busy=load)
    quiet, loaded = reports["quiet"], reports["busy"]
    clean = all(r.clean == LEARNERS and r.solo.clean and not r.leftovers for r in reports.values())
    summary = [
        "| measure | quiet machine | beside generated load |",
        "|---|---|---|",
        f"| busy processes beside the hub | 0 | {loaded.busy} |",
        f"| chapter alone (s) | {quiet.solo.run.seconds:.1f} | {loaded.solo.run.seconds:.1f} |" if quiet.solo.run and loaded.solo.run else "| chapter alone (s) | - | - |",
        f"| slowdown at {LEARNERS} learners (median / alone, same run) | {_slowdown(quiet):.1f}x | {_slowdown(loaded):.1f}x |",
        f"| peak memory per learner, median (MiB RSS) | {_per_learner(quiet):.0f} | {_per_learner(loaded):.0f} |",
        f"| chapters that finished clean | {quiet.clean} of {LEARNERS} | {loaded.clean} of {LEARNERS} |",
        f"| processes left after the hub stopped | {len(quiet.leftovers)} | {len(loaded.leftovers)} |",
        "",
        ("Verdict: holds on this machine: every chapter finished clean and the hub stopped everything, quiet "
         f"and beside {busy} busy processes. The times are this machine's (the load shares its "
         f"{psutil.cpu_count()} cores with the class), so the slowdowns hold here only." if clean else
         "Verdict: does NOT hold on this machine: see the errors and leftovers in the tables below."),
    ]
    return "\n".join(header + [machine, "", *summary, "", "#### Quiet machine", "", format_report(quiet), "",
                               "#### Beside generated load", "", format_report(loaded)])
