"""The load test's memory sampler counts a kernel as a kernel even when it first saw the process
before the exec that made it one.

A learner's server starts a kernel by fork, then exec: sampled in between, the process still shows
the server's command line. The sampler used to remember the command line it saw first, so such a
kernel was counted as server for the whole run (CI, 2026-12-07: learner07's server 700 MiB, its
kernel 0 MiB, and test_memory_is_measured_per_learner_and_for_the_hub failed). No hub is needed:
a stand-in "hub" process starts a child with a learner's JUPYTERHUB_USER that execs into a
command line naming ipykernel when the test says so.
"""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import psutil

from classroom.loadtest import MemorySampler

CHILD = """
import os, sys, time
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.02)
os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", "ipy" + "kernel_launcher"])  # the word only after the exec
"""

PARENT = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], env=dict(os.environ, JUPYTERHUB_USER="ada"))
print(child.pid, flush=True)
child.wait()
"""


def _wait_for(condition, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_a_process_seen_before_its_exec_into_a_kernel_is_counted_as_kernel(tmp_path):
    go = tmp_path / "go"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(go)], stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        _wait_for(lambda: "ipykernel" not in " ".join(child.cmdline()) and child.memory_info().rss > 0)
        sampler = MemorySampler(SimpleNamespace(process=parent))
        sampler.sample()  # before the exec: the server's part
        assert sampler.peak_part.get(("ada", "server"), 0) > 0
        assert sampler.peak_part.get(("ada", "kernel"), 0) == 0
        go.touch()
        _wait_for(lambda: "ipykernel" in " ".join(child.cmdline()))
        sampler.sample()  # after it: the same pid is now a kernel
        assert sampler.peak_part.get(("ada", "kernel"), 0) > 0
        assert "ipykernel" in sampler.seen[child.pid][1]
    finally:
        for process in psutil.Process(parent.pid).children(recursive=True):
            process.kill()
        parent.kill()
        parent.wait()
