"""compresskit.course.progress: every checker notes its outcome in the learner's own file, and
``show()`` prints, per chapter, which exercises pass, fail (with the checker's message) or were
never run. Recording never breaks a checker: a corrupt file or a folder that cannot be written
gives one warning and the checker prints and returns exactly what it would without it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from compresskit.course import checker, progress
from compresskit.course.exercises import concepts, ensembles, pruning

REPO = Path(__file__).resolve().parents[1]


def right_threshold_mask(weight, threshold):
    return (weight.abs() >= threshold).float()


def wrong_threshold_mask(weight, threshold):
    return (weight.abs() > threshold).float()  # > instead of >=


def stub(*args):
    raise NotImplementedError  # your code here


@pytest.fixture
def progress_file(tmp_path, monkeypatch):
    """A fresh progress file for this test, and warnings that may be given once again."""
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    monkeypatch.setattr(progress, "_warned", set())
    return path


def entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def row(exercise: str, path: Path | None = None) -> progress.Row:
    (found,) = [r for r in progress.summary(path) if r.exercise == exercise]
    return found


# --- where it records ------------------------------------------------------------------------

def test_records_in_the_file_named_by_the_environment(progress_file, capsys):
    assert pruning.check_threshold_mask(right_threshold_mask) is True
    assert capsys.readouterr().out == "\u2705 threshold_mask: all 5 checks pass\n"  # nothing more printed
    (entry,) = entries(progress_file)
    assert (entry["topic"], entry["exercise"], entry["part"], entry["status"]) == (
        "pruning", "check_threshold_mask", "threshold_mask", "passed")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["time"])


def test_the_default_file_is_in_the_learners_home(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert progress.progress_path() == tmp_path / ".local" / "share" / "compresskit" / "progress.jsonl"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert progress.progress_path() == tmp_path / "data" / "compresskit" / "progress.jsonl"


def test_off_records_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(progress.ENV, "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert progress.progress_path() is None
    assert pruning.check_threshold_mask(right_threshold_mask) is True
    assert list(tmp_path.iterdir()) == []
    assert "Recording is off" in progress.table()


def test_the_test_session_never_records_in_the_real_home():
    """The conftest points the tests, and the kernels nbval starts, at a throwaway file."""
    path = Path(os.environ[progress.ENV])
    assert Path.home() not in path.parents
    assert "compresskit-progress-" in str(path)


# --- what it records -------------------------------------------------------------------------

def test_a_failure_keeps_the_first_line_the_checker_printed(progress_file, capsys):
    assert pruning.check_threshold_mask(wrong_threshold_mask) is False
    first = [line for line in capsys.readouterr().out.splitlines() if line.startswith("   - ")][0]
    found = row("threshold_mask")
    assert found.status == progress.FAILED
    assert found.message == first.removeprefix("   - ")
    assert "you used >" in found.message


def test_a_stub_is_not_attempted(progress_file, capsys):
    assert pruning.check_row_norm_mask(stub) is False
    assert row("row_norm_mask").status == progress.NOT_ATTEMPTED


def test_the_latest_outcome_wins(progress_file, capsys):
    pruning.check_threshold_mask(stub)
    pruning.check_threshold_mask(wrong_threshold_mask)
    assert row("threshold_mask").status == progress.FAILED
    pruning.check_threshold_mask(right_threshold_mask)
    assert row("threshold_mask").status == progress.PASSED
    assert len(entries(progress_file)) == 3


def test_an_exercise_with_several_values_fails_if_one_does(progress_file, capsys):
    file_bytes = {"float32": 342741, "int8 + scales": 89087}
    concepts.check_int8_claims(file_bytes, 342741 / 89087, 89087 / 342741, 1.5)  # the saving is the fraction kept
    found = row("int8_claims")
    assert found.status == progress.FAILED
    assert found.message.startswith("int8_saving: expected 0.74")
    concepts.check_int8_claims(file_bytes, 342741 / 89087, 1 - 89087 / 342741, 1.5)
    assert row("int8_claims").status == progress.PASSED


def test_a_failure_found_after_the_checks_is_recorded_too(progress_file, capsys):
    """check_bootstrap_sample's cases all pass for a sampler that ignores its seed; its later
    check fails it, and the record must say failed, not passed."""
    def fixed_seed(n_samples, random_state):
        indices = np.random.default_rng(0).integers(0, n_samples, n_samples)
        return indices, ~np.isin(np.arange(n_samples), indices)

    assert ensembles.check_bootstrap_sample(fixed_seed) is False
    found = row("bootstrap_sample")
    assert found.status == progress.FAILED
    assert "must come from `random_state` only" in found.message


def test_a_check_outside_the_exercises_is_listed_apart(progress_file, capsys):
    checker.check_value(3, 3, name="my own check")
    found = row("my own check")
    assert (found.topic, found.chapter, found.status) == (progress.OTHER, None, progress.PASSED)
    assert "Other checks (other): 1 of 1 pass" in progress.table()


def test_running_a_worked_solution_marks_its_chapter_passed(progress_file, capsys):
    """Execute the code of solutions/02_pruning.ipynb: each of its checkers records a pass."""
    nb = nbformat.read(REPO / "solutions" / "02_pruning.ipynb", as_version=4)
    namespace: dict = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, "solutions/02_pruning.ipynb", "exec"), namespace)
    rows = [r for r in progress.summary() if r.chapter == 2]
    assert [r.exercise for r in rows] == ["threshold_mask", "row_norm_mask", "global_magnitude_masks",
                                          "remove_hidden_unit", "cubic_sparsity"]
    assert {r.status for r in rows} == {progress.PASSED}
    assert "Chapter 2, Pruning: 5 of 5 pass" in progress.table()


def test_a_pass_in_the_solutions_notebook_is_labelled(progress_file, monkeypatch, capsys):
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/learner/solutions/02_pruning.ipynb")
    pruning.check_threshold_mask(right_threshold_mask)
    assert row("threshold_mask").notebook == "solutions/02_pruning.ipynb"
    assert "(the worked answer, run in solutions/02_pruning.ipynb)" in progress.table(chapter=2)


# --- the table ---------------------------------------------------------------------------------

def test_the_table_lists_every_exercise_never_run(progress_file):
    table = progress.table()
    for topic, checks in progress.exercises().items():
        assert checks, topic
        for check in checks:
            assert re.search(rf"\u00b7  {check.removeprefix('check_')} +never run", table), check
    assert "Chapter 2, Pruning: 0 of 5 pass" in table


def test_the_table_counts_passes_per_chapter(progress_file, capsys):
    pruning.check_threshold_mask(right_threshold_mask)
    pruning.check_row_norm_mask(stub)
    table = progress.table(chapter=2)
    assert "Chapter 2, Pruning: 1 of 5 pass" in table
    assert "Chapter 1" not in table
    assert re.search(r"\u2705 threshold_mask +passed", table)
    assert re.search(r"\u23f3 row_norm_mask +not attempted", table)


def test_every_exercise_module_is_a_chapter_and_the_chapters_agree():
    """CHAPTERS names the chapter of each exercise module; each chapter imports its own."""
    assert set(progress.exercises()) <= set(progress.CHAPTERS)
    for path in sorted((REPO / "chapters").glob("*.ipynb")):
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        topics = set(re.findall(r"compresskit\.course\.exercises\.(\w+)", source))
        for topic in topics:
            assert progress.CHAPTERS[topic][0] == int(path.name[:2]), (path.name, topic)


def test_the_command_line_shows_and_resets(progress_file, capsys):
    pruning.check_threshold_mask(right_threshold_mask)
    capsys.readouterr()
    assert progress.main(["--chapter", "2"]) == 0
    out = capsys.readouterr().out
    assert "Chapter 2, Pruning: 1 of 5 pass" in out and str(progress_file) in out
    assert progress.main(["--reset"]) == 0
    assert not progress_file.exists()
    assert "Chapter 2, Pruning: 0 of 5 pass" in progress.table()


# --- it never breaks a checker -------------------------------------------------------------------

def test_a_corrupt_file_warns_once_and_the_checker_goes_on(progress_file, capsys):
    progress_file.write_bytes(b"\x00\xff not json\n{\"topic\": \"pruning\"}\n{\"half a line")  # unfinished
    assert pruning.check_threshold_mask(right_threshold_mask) is True
    assert capsys.readouterr().out == "\u2705 threshold_mask: all 5 checks pass\n"
    with pytest.warns(RuntimeWarning, match="3 line.* could not be read and were skipped"):
        found = row("threshold_mask")
    assert found.status == progress.PASSED  # the new line did not stick to the unfinished one
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        progress.table()  # warned once already: silent now


def _three_checks() -> list[bool]:
    return [pruning.check_threshold_mask(right_threshold_mask), pruning.check_threshold_mask(wrong_threshold_mask),
            pruning.check_row_norm_mask(stub)]


def test_a_folder_that_cannot_be_written_warns_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(progress.ENV, "off")
    returned_off, printed_off = _three_checks(), capsys.readouterr().out
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("")
    monkeypatch.setenv(progress.ENV, str(blocker / "progress.jsonl"))
    monkeypatch.setattr(progress, "_warned", set())
    with pytest.warns(RuntimeWarning, match="could not record your progress") as caught:
        returned = _three_checks()
    assert len([w for w in caught if "could not record" in str(w.message)]) == 1
    assert (returned, capsys.readouterr().out) == (returned_off, printed_off) == ([True, False, False], printed_off)


_READ_ONLY_HOME = """
import json, warnings
from compresskit.course.exercises import pruning
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    results = [pruning.check_threshold_mask(lambda w, t: (w.abs() >= t).float()) for _ in range(2)]
print(json.dumps({"results": results, "warnings": [str(w.message) for w in caught if w.category is RuntimeWarning]}))
"""


def _as_a_user_who_cannot_write(home: Path) -> list[str] | None:
    """The command prefix that runs Python as a user for whom ``home`` is read-only: ourselves
    when we are not root (home is chmod 0o500), else ``nobody`` through setpriv (root writes
    into any folder, and `make test` runs as root in CI). None where neither works."""
    import shutil

    if os.geteuid() != 0:
        return [sys.executable]
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable]
    probe = subprocess.run([*prefix, "-c", f"import os; print(os.access({str(home)!r}, os.W_OK))"],
                           capture_output=True, text=True, timeout=60, cwd="/")
    return prefix if probe.returncode == 0 and probe.stdout.strip() == "False" else None


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_read_only_home_warns_once():
    """A learner whose home cannot be written still gets the checker's answer, and one warning
    for two checks. Run in a fresh process as a user who cannot write there (not skipped for root)."""
    import shutil
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="ro-home-", dir="/tmp"))
    try:
        home.chmod(0o555 if os.geteuid() == 0 else 0o500)
        prefix = _as_a_user_who_cannot_write(home)
        if prefix is None:
            pytest.skip("running as root without setpriv, or `nobody` cannot run this Python: no user to whom a folder is read-only")
        env = {k: v for k, v in os.environ.items() if k not in (progress.ENV, "XDG_DATA_HOME")}
        env.update(HOME=str(home), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        run = subprocess.run([*prefix, "-c", _READ_ONLY_HOME], capture_output=True, text=True, timeout=300, env=env, cwd=str(home))
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout.strip().splitlines()[-1])
        assert report["results"] == [True, True]
        recorded = [w for w in report["warnings"] if "could not record your progress" in w]
        assert len(recorded) == 1, report["warnings"]
        assert list(home.iterdir()) == []  # nothing was written
    finally:
        home.chmod(0o700)
        shutil.rmtree(home, ignore_errors=True)


def test_two_kernels_recording_at_once_lose_no_line(progress_file):
    """Two processes append 200 records each to one file: 400 whole lines come back."""
    script = ("from compresskit.course import progress\n"  # the standard library only: quick to start
              "for i in range(200):\n"
              "    progress.record(f'check {i}', progress.PASSED)\n")
    runs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL) for _ in range(2)]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    lines = progress_file.read_text().splitlines()
    assert len(lines) == 400
    assert all(json.loads(line)["status"] == "passed" for line in lines)


def test_a_record_that_cannot_be_written_changes_nothing_the_checker_returns(tmp_path, monkeypatch, capsys):
    """Any error inside record (here: a broken JSON encoder) is swallowed with a warning."""
    monkeypatch.setenv(progress.ENV, str(tmp_path / "progress.jsonl"))
    monkeypatch.setattr(progress, "_warned", set())

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(progress.json, "dumps", broken)
    with pytest.warns(RuntimeWarning, match="disk on fire"):
        assert checker.check_value(torch.tensor(1.0), 1.0, name="x") is True
    assert capsys.readouterr().out == "\u2705 x: correct\n"


def test_the_room_view_reads_each_learners_own_file(tmp_path, monkeypatch, capsys):
    """On a hub each learner's server runs with HOME = homes/<learner>: the instructor's view
    reads every learner's default file there."""
    for learner, answer in (("ada", right_threshold_mask), ("bo", wrong_threshold_mask)):
        monkeypatch.setenv(progress.ENV, str(tmp_path / "homes" / learner / ".local/share/compresskit/progress.jsonl"))
        pruning.check_threshold_mask(answer)
    (tmp_path / "homes" / "cy").mkdir()  # logged in, never ran a checker
    capsys.readouterr()
    assert progress.main(["--room", str(tmp_path / "homes")]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[3:]}
    assert lines["ada"][1:3] == ["0/5", "1/5"]  # chapter 1 none, chapter 2 one of five
    assert lines["bo"][2] == "0/5"
    assert lines["cy"][2] == "0/5" and len(lines["cy"]) == 1 + len(set(n for n, _ in progress.CHAPTERS.values()))


def test_recording_goes_on_after_the_file_and_its_folder_are_removed(tmp_path, monkeypatch, capsys):
    path = tmp_path / "deep" / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    pruning.check_threshold_mask(right_threshold_mask)
    progress.reset()
    pruning.check_threshold_mask(wrong_threshold_mask)
    path.unlink()
    path.parent.rmdir()
    pruning.check_threshold_mask(stub)
    assert [e["status"] for e in entries(path)] == [progress.NOT_ATTEMPTED]
