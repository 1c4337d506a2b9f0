"""A pytest plugin (loaded by the root conftest.py): keep what nbval executes, for the site.

`make test` already runs every chapter and solution under nbval. This plugin writes each
notebook nbval ran, with the outputs nbval received, to ``build/executed/<folder>/<name>``,
so that the site (``book/build.py``, tested by ``tests/test_book.py``) is built from that one
execution instead of running every chapter a fourth time. Each copy records a hash of the
source notebook's code and markdown (:func:`source_hash`) and the machine it ran on; the
site's build executes again only a notebook whose copy is missing or whose source changed.

It also moves ``tests/test_book.py`` to the end of the run, after the notebooks it reads.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import os
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
EXECUTED = REPO / "build" / "executed"
BOOK_TESTS = "tests/test_book.py"


def source_hash(nb) -> str:
    """A hash of what a learner's run depends on in a notebook: every cell's type and source."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        digest.update(cell.cell_type.encode() + b"\0" + cell.source.encode("utf-8") + b"\0")
    return digest.hexdigest()


def machine() -> dict[str, str]:
    """Where the notebook ran, for the banner of its page (the verdicts are this machine's)."""
    from compresskit.measure import machine_info

    info = machine_info()
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return info


def executed_path(source: Path) -> Path:
    return EXECUTED / source.parent.name / source.name


def write_executed(source: Path, nb, runner: str) -> Path:
    """Write ``nb`` (executed) as the site's copy of ``source``, with its hash and machine."""
    nb = copy.deepcopy(nb)
    nb.metadata["compresskit_executed"] = {"source_hash": source_hash(nbformat.read(source, as_version=4)),
                                           "runner": runner, "machine": machine()}
    target = executed_path(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(target)
    return target


def _is_course_notebook(path: Path) -> bool:
    return path.suffix == ".ipynb" and path.parent.name in ("chapters", "solutions") and path.parent.parent == REPO


# --- pytest hooks ------------------------------------------------------------------------------

def pytest_collection_modifyitems(session, config, items):
    """The site's test reads the notebooks nbval executes in the same run: it goes last."""
    book = [item for item in items if item.nodeid.startswith(BOOK_TESTS)]
    if book:
        items[:] = [item for item in items if not item.nodeid.startswith(BOOK_TESTS)] + book


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def widget_message(state: dict, msg: dict) -> None:
    """Follow the widget models a kernel opens and updates (the comm messages nbval passes over),
    as a front end would: ``state[comm_id]`` is the model in nbformat's widget-state form."""
    kind, content = msg.get("msg_type"), msg.get("content", {})
    if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
        values = dict(content.get("data", {}).get("state", {}))
        state[content["comm_id"]] = {"model_name": values.get("_model_name", ""),
                                     "model_module": values.get("_model_module", ""),
                                     "model_module_version": values.get("_model_module_version", ""),
                                     "state": values}
    elif kind == "comm_msg" and content.get("comm_id") in state:
        data = content.get("data", {})
        if data.get("method") in ("update", "echo_update"):
            state[content["comm_id"]]["state"].update(data.get("state", {}))


def pytest_runtest_setup(item):
    """Before nbval's first cell of a notebook: listen to the kernel's widget messages too."""
    nbfile = item.parent
    if type(item).__name__ != "IPyNbCell" or getattr(nbfile, "_book_widgets", None) is not None:
        return
    nbfile._book_widgets = {}
    original = nbfile.get_kernel_message

    def get_kernel_message(*args, **kwargs):
        msg = original(*args, **kwargs)
        widget_message(nbfile._book_widgets, msg)
        return msg

    nbfile.get_kernel_message = get_kernel_message


def pytest_runtest_makereport(item, call):
    """After nbval runs a cell, put the outputs it received into that cell of the notebook."""
    if call.when != "call" or type(item).__name__ != "IPyNbCell":
        return
    outputs = getattr(item, "test_outputs", None)
    if outputs is None:
        return
    counter = getattr(item.parent, "_book_count", 0) + 1
    item.parent._book_count = counter
    item.cell.outputs = [copy.deepcopy(o) for o in outputs]
    item.cell.execution_count = counter
    for out in item.cell.outputs:
        if out.get("output_type") == "execute_result":
            out["execution_count"] = counter


def pytest_runtest_teardown(item, nextitem):
    """After a notebook's last cell, write the executed copy (build/executed/)."""
    if type(item).__name__ != "IPyNbCell" or (nextitem is not None and nextitem.parent is item.parent):
        return
    source = Path(str(item.parent.path))
    ran = getattr(item.parent, "_book_count", 0)
    if not _is_course_notebook(source) or ran != sum(c.cell_type == "code" for c in item.parent.nb.cells):
        return  # not a course notebook, or only some of its cells ran (pytest -k): no copy
    widgets = getattr(item.parent, "_book_widgets", None)
    if widgets:
        item.parent.nb.metadata["widgets"] = {WIDGET_STATE: {"state": widgets, "version_major": 2, "version_minor": 0}}
    try:
        write_executed(source, item.parent.nb, runner="nbval (make test)")
    except Exception as error:  # the site is a by-product: never fail a notebook's test for it
        print(f"book/record.py: could not write the executed copy of {source.name}: {error}")
