"""Remove outputs, execution counts and run metadata from notebooks: ``make strip``.

A thin wrapper around nbstripout (https://github.com/kynan/nbstripout), which does the
stripping; the wrapper only keeps cell ids as they are (no churn in diffs) and sets the
course's kernel, which tests/test_notebooks.py checks next to the missing outputs.

    python -m compresskit.course.strip chapters/*.ipynb solutions/*.ipynb
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import nbformat

KERNELSPEC = {"name": "compresskit", "display_name": "Python (compresskit)", "language": "python"}


def _has_nbstripout() -> bool:
    if importlib.util.find_spec("nbstripout") is not None:
        return True
    # An environment made before nbstripout joined requirements.txt: remove this branch once none is left.
    print("nbstripout is not installed: stripping outputs and counts only; update the environment "
          "with `make` (or `pip install -r requirements.txt`)", file=sys.stderr)
    return False


def _outputs_and_counts_only(path: str) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


def strip(path: str) -> bool:
    """Strip one notebook in place with nbstripout and set the course kernel; return True if it changed."""
    with open(path, encoding="utf-8") as f:
        before = f.read()
    if _has_nbstripout():
        # nbstripout's own defaults (outputs, counts, run metadata); --keep-id: cell ids stay as they are.
        subprocess.run([sys.executable, "-m", "nbstripout", "--keep-id", path], check=True)
    else:
        _outputs_and_counts_only(path)
    nb = nbformat.read(path, as_version=4)
    nb.metadata.kernelspec = dict(KERNELSPEC)
    nbformat.write(nb, path)
    with open(path, encoding="utf-8") as f:
        return f.read() != before


if __name__ == "__main__":
    for p in sys.argv[1:]:
        if strip(p):
            print(f"stripped {p}")
