"""Every notebook is committed clean: valid nbformat, the course kernel, no outputs, and a
first code cell that imports; chapters end with exercises."""

from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "chapters").glob("*.ipynb")) + sorted((REPO / "solutions").glob("*.ipynb"))
CHAPTERS = sorted((REPO / "chapters").glob("*.ipynb"))


def test_there_are_notebooks():
    assert CHAPTERS, "chapters/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_is_valid_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "compresskit", "run `make strip` to set the course kernel"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"cells {dirty} have outputs or execution counts: run `make strip` before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_code_cell_imports(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "import" in first.source


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_has_objectives_and_exercises(path):
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown").lower()
    assert "learning objectives" in text or "you will learn" in text
    assert "exercise" in text
    solution = REPO / "solutions" / path.name
    assert solution.exists(), f"{path.name} has exercises but no solutions/{path.name}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_defines_no_library_code(path):
    """Chapters import compresskit; they do not define classes (library code lives in compresskit)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not any(line.startswith("class ") for line in cell.source.splitlines()), cell.source[:80]
