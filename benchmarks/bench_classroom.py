"""A classroom on one machine: 8 simulated learners run chapter 7 at once through the workshop's
JupyterHub (classroom/loadtest.py), after one learner ran it alone on the same hub.

The figures an instructor sizes a server (or Kubernetes' per-user limits) from: time per chapter
with the class against one learner alone, peak memory per learner and for the class, the hub's
own memory, and whether every chapter finished clean.
"""

from __future__ import annotations

import tempfile

from classroom.hub import proxy_installed
from classroom.loadtest import CHAPTER, format_report, run_load_test
from compresskit.measure import machine_info

LEARNERS = 8


def run() -> str:
    header = ["### Classroom: 8 learners at once on one JupyterHub", ""]
    machine = "Machine: " + ", ".join(f"{k} {v}" for k, v in machine_info().items()) + "."
    if not proxy_installed():
        return "\n".join(header + ["Not measured: configurable-http-proxy is not installed in classroom/node_modules "
                                   "(`make` runs `npm ci` there; it needs Node.js and npm).", "", machine])
    with tempfile.TemporaryDirectory(prefix="compresskit-bench-classroom-") as folder:
        report = run_load_test(folder, learners=LEARNERS, chapter=CHAPTER)
    return "\n".join(header + [machine, "", format_report(report)])
