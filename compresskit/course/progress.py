"""Which exercises pass, per chapter: every checker notes its outcome, and :func:`show` prints them.

Each ``check_*`` in :mod:`compresskit.course.exercises` reports through
:func:`compresskit.course.checker.check_function` or ``check_value``, and those call
:func:`record` with the outcome: passed, failed (with the first line the checker printed about
what is wrong) or not attempted (the stub still raises ``NotImplementedError``). A learner sees
the result in one cell or one command::

    from compresskit.course.progress import show; show()      # every chapter
    show(2)                                                    # chapter 2 only
    python -m compresskit.course.progress                      # in a terminal
    python -m compresskit.course.progress --room ~/compresskit-hub/homes   # the instructor: every learner

The record is one line of JSON per checker run, appended to a file in the learner's own home:

* ``$COMPRESSKIT_PROGRESS`` if it is set (``off`` turns recording off);
* else ``$XDG_DATA_HOME/compresskit/progress.jsonl``;
* else ``~/.local/share/compresskit/progress.jsonl``.

Appending lines (JSON Lines) instead of rewriting one JSON document costs one small write per
check, lets two kernels of the same learner record at once without losing each other's
outcome, and a kernel killed in the middle of a write spoils at most its own line, which
:func:`show` skips. Recording never breaks a checker and never changes what it prints or
returns: a home that cannot be written, or any other error, is reported once, as a warning,
and the checkers go on.

Which exercise a record belongs to is read off the call: the ``check_*`` function of the
``compresskit.course.exercises.<topic>`` module that called the checker. The list of
exercises a chapter has is the list of ``check_*`` functions its module defines, so an
exercise never run shows up too.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import json
import os
import pkgutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

ENV = "COMPRESSKIT_PROGRESS"
PASSED, FAILED, NOT_ATTEMPTED, NEVER_RUN = "passed", "failed", "not attempted", "never run"
MARKS = {PASSED: "\u2705", FAILED: "\u274c", NOT_ATTEMPTED: "\u23f3", NEVER_RUN: "\u00b7 "}

EXERCISES = "compresskit.course.exercises"
OTHER = "other"  # checks called from outside the exercise modules
#: chapter number and title of each exercise module (a test checks it against the chapters' imports)
CHAPTERS: dict[str, tuple[int, str]] = {
    "concepts": (1, "Concepts"),
    "pruning": (2, "Pruning"),
    "quantization": (3, "Quantization"),
    "sparsity": (4, "Sparsity"),
    "ensembles": (5, "Ensembles"),
    "distillation": (6, "Distillation"),
    "superres": (7, "Super-resolution"),
    "training": (8, "Training-time compression"),
    "llm": (9, "Language-model quantization"),
    "inference": (10, "Language-model inference"),
}
_MESSAGE_LIMIT = 300  # characters of the checker's message kept in the file
_SHOWN = 160  # and shown in the table
_warned: set[str] = set()
_appended: set[Path] = set()  # files this process has appended to (their last line is whole)


@dataclass(frozen=True)
class Row:
    """One exercise as :func:`summary` sees it: where it belongs, and its latest outcome."""

    chapter: int | None
    topic: str
    exercise: str
    status: str
    message: str = ""
    time: str = ""
    notebook: str = ""


# --- where the record lives ------------------------------------------------------------------

def progress_path() -> Path | None:
    """The learner's progress file, or None when ``$COMPRESSKIT_PROGRESS`` is ``off``."""
    chosen = os.environ.get(ENV, "").strip()
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(chosen).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME", "").strip() or Path.home() / ".local" / "share"
    return Path(data_home) / "compresskit" / "progress.jsonl"


def _warn_once(key: str, text: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(text, RuntimeWarning, stacklevel=3)


# --- recording (called by compresskit.course.checker) ---------------------------------------

def _calling_exercise() -> tuple[str, str] | None:
    """``(topic, check function name)`` of the exercise checker on the call stack, if any."""
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(EXERCISES + ".") and frame.f_code.co_name.startswith("check_"):
            return module[len(EXERCISES) + 1:], frame.f_code.co_name
        frame = frame.f_back
    return None


def _notebook() -> str:
    """``folder/name.ipynb`` of the notebook whose kernel this is (Jupyter sets JPY_SESSION_NAME)."""
    session = os.environ.get("JPY_SESSION_NAME", "")
    if not session:
        return ""
    path = Path(session)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _append(path: Path, line: str) -> None:
    """Append one line. The first time this process writes to ``path``, start a new line first
    if a killed write left the last one unfinished; after that, append without reading."""
    data = line.encode("utf-8") + b"\n"
    if path in _appended:
        try:
            with open(path, "ab") as f:
                f.write(data)
            return
        except OSError:  # its folder was removed since: make it again below
            _appended.discard(path)
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                data = b"\n" + data
        f.write(data)
    _appended.add(path)


def record(part: str, status: str, message: str = "") -> None:
    """Note that the check ``part`` ended with ``status`` (passed / failed / not attempted).

    Never raises and prints nothing; if the file cannot be written it warns once per session.
    """
    path = None
    try:
        path = progress_path()
        if path is None:
            return
        topic, exercise = _calling_exercise() or (OTHER, str(part))
        entry = {
            "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "topic": topic, "exercise": exercise, "part": str(part), "status": status,
            "message": str(message)[:_MESSAGE_LIMIT], "notebook": _notebook(),
        }
        _append(path, json.dumps(entry, ensure_ascii=False))
    except Exception as exc:  # noqa: BLE001 - a checker must never fail because of its record
        _warn_once("write", f"compresskit could not record your progress in {path} "
                            f"({type(exc).__name__}: {exc}). The checkers work as before; to keep a "
                            f"record, set {ENV} to a file you can write (or to 'off').")


# --- reading ---------------------------------------------------------------------------------

def exercises() -> dict[str, list[str]]:
    """The ``check_*`` functions of each exercise module, in the order they are defined."""
    package = importlib.import_module(EXERCISES)
    found: dict[str, list[str]] = {}
    for info in pkgutil.iter_modules(package.__path__):
        try:
            module = importlib.import_module(f"{EXERCISES}.{info.name}")
        except Exception as exc:  # noqa: BLE001 - one broken module must not hide the others
            _warn_once(f"import {info.name}", f"could not list the exercises of {info.name}: {exc}")
            found[info.name] = []
            continue
        checks = [f for name, f in vars(module).items()
                  if name.startswith("check_") and inspect.isfunction(f) and f.__module__ == module.__name__]
        found[info.name] = [f.__name__ for f in sorted(checks, key=lambda f: f.__code__.co_firstlineno)]
    return found


def load(path: Path | None = None) -> dict[tuple[str, str], dict[str, dict]]:
    """The latest entry of every part of every exercise: ``{(topic, exercise): {part: entry}}``.

    Lines that cannot be read (a corrupt or unfinished file) are skipped with one warning.
    """
    path = progress_path() if path is None else Path(path)
    latest: dict[tuple[str, str], dict[str, dict]] = {}
    if path is None or not path.exists():
        return latest
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        _warn_once("read", f"could not read your progress file {path}: {exc}")
        return latest
    skipped = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            key, part = (str(entry["topic"]), str(entry["exercise"])), str(entry["part"])
            str(entry["status"])
        except (ValueError, KeyError, TypeError):
            skipped += 1
            continue
        latest.setdefault(key, {})[part] = entry
    if skipped:
        _warn_once("corrupt", f"{skipped} line(s) of {path} could not be read and were skipped")
    return latest


def _display(exercise: str) -> str:
    return exercise[len("check_"):] if exercise.startswith("check_") else exercise


def _row(topic: str, exercise: str, parts: dict[str, dict]) -> Row:
    """One exercise's status from its parts' latest entries: any failure fails it."""
    chapter = CHAPTERS.get(topic, (None, ""))[0]
    if not parts:
        return Row(chapter, topic, _display(exercise), NEVER_RUN)
    entries = sorted(parts.values(), key=lambda e: str(e.get("time", "")))
    last = entries[-1]
    for status in (FAILED, NOT_ATTEMPTED):
        bad = [e for e in entries if e["status"] == status]
        if bad:
            several = len(parts) > 1 or bad[-1]["part"] != _display(exercise)
            message = str(bad[-1].get("message", "")) or (f"{status} yet" if several else "")
            message = f"{bad[-1]['part']}: {message}" if several else message
            return Row(chapter, topic, _display(exercise), status, message, last.get("time", ""), last.get("notebook", ""))
    return Row(chapter, topic, _display(exercise), PASSED, "", last.get("time", ""), last.get("notebook", ""))


def summary(path: Path | None = None) -> list[Row]:
    """Every exercise of every chapter with its latest outcome, chapters in order."""
    latest = load(path)
    known = exercises()
    rows = [_row(topic, exercise, latest.get((topic, exercise), {}))
            for topic, checks in known.items() for exercise in checks]
    listed = {(topic, exercise) for topic, checks in known.items() for exercise in checks}
    rows += [_row(topic, exercise, parts) for (topic, exercise), parts in latest.items() if (topic, exercise) not in listed]
    order = {topic: number for topic, (number, _) in CHAPTERS.items()}
    return sorted(rows, key=lambda r: (order.get(r.topic, len(order) + 1), r.topic))  # stable within a topic


def _when(time: str) -> str:
    return time.replace("T", " ")[:16] if time else ""


def table(path: Path | None = None, chapter: int | None = None) -> str:
    """The progress as text: per chapter, one line per exercise (mark, name, status, when, message)."""
    rows = [r for r in summary(path) if chapter is None or r.chapter == chapter]
    where = progress_path() if path is None else path
    lines = [f"Your progress, from {where} (times in UTC)" if where else f"Recording is off (${ENV}=off)"]
    if not rows:
        lines.append(f"no exercises found for chapter {chapter}" if chapter is not None else "no exercises found")
    width = max((len(r.exercise) for r in rows), default=0)
    for topic in dict.fromkeys(r.topic for r in rows):
        mine = [r for r in rows if r.topic == topic]
        number, title = CHAPTERS.get(topic, (None, topic))
        heading = f"Chapter {number}, {title}" if number else f"Other checks ({topic})"
        lines += ["", f"{heading}: {sum(r.status == PASSED for r in mine)} of {len(mine)} pass"]
        for r in mine:
            note = r.message if len(r.message) <= _SHOWN else r.message[:_SHOWN - 3] + "..."
            if r.status == PASSED and r.notebook.startswith("solutions/"):
                note = f"(the worked answer, run in {r.notebook})"
            text = f"  {MARKS[r.status]} {r.exercise:<{width}}  {r.status:<13}  {_when(r.time):<16}  {note}"
            lines.append(text.rstrip())
    return "\n".join(lines)


def show(chapter: int | None = None, path: Path | None = None) -> None:
    """Print which exercises pass, fail (with the checker's message) or were never run."""
    print(table(path, chapter))


def room(homes: Path) -> str:
    """One line per learner of a hub (a folder of homes, ``homes/<learner>/``): how many
    exercises of each chapter pass, read from each learner's own progress file."""
    homes = Path(homes)
    learners = sorted(p for p in homes.iterdir() if p.is_dir()) if homes.is_dir() else []
    numbers = sorted({number for number, _ in CHAPTERS.values()})
    lines = [f"Exercises passed per chapter, learners in {homes}", "",
             "learner".ljust(20) + "".join(f"ch{n}".rjust(7) for n in numbers) + "  last check (UTC)"]
    for home in learners:
        rows = summary(home / ".local" / "share" / "compresskit" / "progress.jsonl")
        cells = []
        for number in numbers:
            mine = [r for r in rows if r.chapter == number]
            cells.append(f"{sum(r.status == PASSED for r in mine)}/{len(mine)}".rjust(7) if mine else "-".rjust(7))
        last = max((r.time for r in rows if r.time), default="")
        lines.append(home.name[:19].ljust(20) + "".join(cells) + f"  {_when(last)}")
    if not learners:
        lines.append("(no learners yet)")
    return "\n".join(lines)


def reset(path: Path | None = None) -> bool:
    """Delete the progress file; True if there was one."""
    path = progress_path() if path is None else Path(path)
    if path is None or not path.exists():
        return False
    path.unlink()
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compresskit.course.progress",
                                     description="Which exercises of the course pass, per chapter.")
    parser.add_argument("--chapter", type=int, help="only this chapter (1, 2, ...)")
    parser.add_argument("--file", type=Path, help=f"the progress file (default: ${ENV} or ~/.local/share/compresskit/progress.jsonl)")
    parser.add_argument("--reset", action="store_true", help="delete the progress file and start again")
    parser.add_argument("--room", type=Path, metavar="HOMES",
                        help="the instructor's view: one line per learner of a hub whose homes are in HOMES "
                             "(make hub: ~/compresskit-hub/homes)")
    args = parser.parse_args(argv)
    if args.room:
        print(room(args.room))
        return 0
    if args.reset:
        where = args.file or progress_path()
        print(f"removed {where}" if reset(args.file) else f"nothing to remove at {where}")
        return 0
    show(args.chapter, args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
