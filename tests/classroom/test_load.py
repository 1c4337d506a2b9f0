"""The classroom load test: 8 simulated learners log in through the hub's proxy at once, each gets
their own server and runs a chapter end to end in their own kernel (classroom/loadtest.py).

What must hold on any machine is asserted: every server starts, every chapter finishes clean,
each learner's executed copy is saved in their own home (the repository untouched), memory is
measured for each learner and for the hub, and nothing is left running. How long it took is
hardware: printed (the table below), never asserted. Marked ``slow`` (a few minutes on the
2-core CI machine): ``pytest -m "not slow"`` skips it; ``make test`` runs it.
"""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest

import time

import psutil

from classroom.loadtest import (CHAPTER, MIB, BusyLoad, ChapterRun, LearnerResult, LoadReport, format_report,
                                run_load_test)

REPO = Path(__file__).resolve().parents[2]
LEARNERS = 8


@pytest.fixture(scope="module")
def load(request, tmp_path_factory, hub_prerequisites) -> tuple[LoadReport, Path]:
    folder = tmp_path_factory.mktemp("classroom-load")
    report = run_load_test(folder, learners=LEARNERS, chapter=CHAPTER)
    table = format_report(report)
    if report.errors:  # what the servers logged, to tell a learner's mistake from the hub's
        log = (folder / "jupyterhub.log").read_text(errors="replace").splitlines()
        table += "\n\nWarnings and errors in the hub's log:\n" + "\n".join(
            [line for line in log if line.startswith(("[W", "[E", "[C")) or "Error" in line][-80:])
    (folder / "load_report.md").write_text(table + "\n")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # the table, in the test log: timings shown, never asserted
        print(f"\n{table}\n(also in {folder / 'load_report.md'})")
    return report, folder


@pytest.mark.slow
def test_every_learner_gets_their_own_server(load):
    report, _ = load
    assert len(report.learners) == LEARNERS
    assert report.started == LEARNERS, "\n".join(report.errors)
    assert len({r.name for r in report.learners}) == LEARNERS


@pytest.mark.slow
def test_every_chapter_finishes_clean(load):
    report, _ = load
    assert report.solo.clean, "\n".join(report.errors)  # the reference run, one learner alone
    assert report.clean == LEARNERS, "\n".join(report.errors)
    for result in report.learners:
        assert result.run.cells_run == result.run.cells > 0
        assert result.run.seconds > 0


@pytest.mark.slow
def test_each_learner_saved_their_own_executed_copy(load):
    report, folder = load
    kernels = set()
    for result in report.learners:
        saved = nbformat.read(folder / "homes" / result.name / CHAPTER, as_version=4)
        nbformat.validate(saved)
        code = [cell for cell in saved.cells if cell.cell_type == "code"]
        assert all(cell.execution_count for cell in code)
        assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
        assert any(o.output_type == "display_data" for cell in code for o in cell.outputs)  # the figures came back
        kernels.add(result.run.kernel_id)
    assert len(kernels) == LEARNERS  # a kernel each
    # Nothing the learners ran came back into the repository: its chapter has no outputs.
    course = nbformat.read(REPO / CHAPTER, as_version=4)
    assert not [c for c in course.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]


@pytest.mark.slow
def test_memory_is_measured_per_learner_and_for_the_hub(load):
    """Sanity only (the figures depend on the machine): each learner's server + kernel holds
    between 100 MiB and 4 GiB; the class's peak is at least the largest learner's and at most the
    sum of their peaks, and likewise each learner's against their server's and kernel's; the
    hub, its proxy and its culler were all seen."""
    report, _ = load
    peaks = [r.peak_rss for r in report.learners]
    assert all(100 * MIB < p < 4096 * MIB for p in peaks + [report.solo.peak_rss]), [p // MIB for p in peaks]
    assert max(peaks) <= report.peak_learners_total <= sum(peaks)
    assert all(report.peak_hub[k] > 0 for k in ("hub", "proxy", "idle-culler")), report.peak_hub
    assert report.peak_hub_total < report.peak_learners_total
    for r in [report.solo, *report.learners]:  # the split into server and kernel adds up
        assert r.peak_server_rss > 50 * MIB and r.peak_kernel_rss > 50 * MIB
        assert max(r.peak_server_rss, r.peak_kernel_rss) <= r.peak_rss <= r.peak_server_rss + r.peak_kernel_rss
    assert all(r.cpu_s > 0 for r in report.learners)


@pytest.mark.slow
def test_nothing_is_left_running(load):
    report, _ = load
    assert report.leftovers == []


def test_the_report_names_every_failure():
    """The table says which learner failed and why, instead of hiding it in an average."""
    broken = ChapterRun("learner02", CHAPTER, seconds=3.0, cells=16, cells_run=5,
                        errors=["learner02 chapters/07_super_resolution.ipynb cell 5: KernelDied: kernel restarting"])
    fine = ChapterRun("learner01", CHAPTER, seconds=20.0, cells=16, cells_run=16, saved=True)
    solo = ChapterRun("solo", CHAPTER, seconds=10.0, cells=16, cells_run=16, saved=True)
    report = LoadReport(CHAPTER, [LearnerResult("learner01", True, 4.0, fine, peak_rss=600 * MIB, cpu_s=30.0),
                                  LearnerResult("learner02", True, 4.0, broken, peak_rss=600 * MIB, cpu_s=5.0),
                                  LearnerResult("learner03", False, error="HubError: server not ready")],
                        LearnerResult("solo", True, 3.0, solo, peak_rss=590 * MIB, cpu_s=12.0))
    assert (report.started, report.clean) == (2, 1)
    text = format_report(report)
    assert "| chapters that finished clean | 1 of 3 |" in text
    assert "| learners whose server started | 2 of 3 |" in text
    assert "KernelDied: kernel restarting" in text and "learner03: HubError: server not ready" in text
    assert "| learner02 | yes | 4.0 | 3.0 | 5/16 | NO |" in text
    assert "| slowdown at 3 learners (median / alone) | 2.0x |" in text  # 20 s / 10 s, clean runs only
    assert not math.isnan(report.chapter_seconds()[0])


def test_the_report_says_when_it_ran_beside_generated_load():
    solo = ChapterRun("solo", CHAPTER, seconds=10.0, cells=16, cells_run=16, saved=True)
    report = LoadReport(CHAPTER, [], LearnerResult("solo", True, 3.0, solo), busy=4)
    assert "| generated load: busy processes beside the hub for the whole test | 4 |" in format_report(report)
    report.busy = 0
    assert "| generated load: busy processes beside the hub for the whole test | 0 |" in format_report(report)
    with pytest.raises(ValueError, match="`busy` must be 0"):
        run_load_test("unused", learners=1, busy=-1)


def test_generated_load_keeps_the_cores_busy_and_is_stopped():
    with pytest.raises(ValueError, match="`processes` must be at least 1; got 0"):
        BusyLoad(processes=0)
    with pytest.raises(ValueError, match="`seconds` must be positive; got 0"):
        BusyLoad(seconds=0)
    with pytest.raises(RuntimeError, match="inside"):
        with BusyLoad(processes=2, seconds=60) as load:
            processes = [psutil.Process(p.pid) for p in load.processes]
            time.sleep(1.0)
            assert load.running() == 2
            assert all(p.cpu_times().user > 0.1 for p in processes)  # spinning, not sleeping
            raise RuntimeError("an error inside the block")
    assert load.running() == 0  # killed on the way out, error or not
    assert not psutil.wait_procs(processes, timeout=5)[1]
    with BusyLoad(processes=1, seconds=0.5) as short:
        short.processes[0].wait(30)  # ends by itself when its time is up
        assert short.running() == 0 and short.processes[0].returncode == 0
