"""`make strip` (python -m compresskit.course.strip): nbstripout strips, the course kernel is set,
and the result passes the hygiene check of tests/test_notebooks.py."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from compresskit.course import strip

REPO = Path(__file__).resolve().parents[1]
CHAPTER = sorted((REPO / "chapters").glob("*.ipynb"))[0]


def dirty_copy(tmp_path: Path) -> Path:
    """A chapter as JupyterLab saves it after a run: outputs, counts, timing metadata, another kernel."""
    nb = nbformat.read(CHAPTER, as_version=4)
    for i, cell in enumerate(nb.cells):
        cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
        if cell.cell_type == "code":
            cell.execution_count = i + 1
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
            cell.metadata["scrolled"] = True
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / CHAPTER.name
    nbformat.write(nb, path)
    return path


def test_strip_leaves_a_notebook_the_hygiene_check_accepts(tmp_path):
    path = dirty_copy(tmp_path)
    ids = [c.get("id") for c in nbformat.read(path, as_version=4).cells]
    assert strip.strip(str(path)) is True
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "compresskit"
    assert not [c for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not [c for c in nb.cells if "execution" in c.metadata]
    assert [c.get("id") for c in nb.cells] == ids  # cell ids kept: no churn in diffs
    assert [c.source for c in nb.cells] == [c.source for c in nbformat.read(CHAPTER, as_version=4).cells]
    assert strip.strip(str(path)) is False  # a second run changes nothing


def test_strip_is_nbstripout_plus_the_course_kernel(tmp_path):
    pytest.importorskip("nbstripout", reason="nbstripout joins the environment with requirements.txt")
    ours = dirty_copy(tmp_path)
    (tmp_path / "theirs").mkdir()
    theirs = Path(shutil.copy(ours, tmp_path / "theirs" / ours.name))
    strip.strip(str(ours))
    subprocess.run([sys.executable, "-m", "nbstripout", "--keep-id", str(theirs)], check=True)
    expected = json.loads(theirs.read_text())
    expected["metadata"]["kernelspec"] = strip.KERNELSPEC
    got = json.loads(ours.read_text())
    assert got["metadata"].pop("kernelspec") == expected["metadata"].pop("kernelspec")
    assert got == expected
    assert not any("scrolled" in c["metadata"] for c in got["cells"])  # nbstripout's own keys, gone


def test_the_command_line_strips_every_file_given(tmp_path):
    path = dirty_copy(tmp_path)
    done = subprocess.run([sys.executable, "-m", "compresskit.course.strip", str(path)], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert f"stripped {path}" in done.stdout
