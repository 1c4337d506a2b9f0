"""Regenerate the measured parts of docs/teaching.md, so the instructor guide cannot drift.

Three sections of docs/teaching.md are written by this script, each between two markers:

* **cost**: per chapter, the wall time of Run All and the kernel's peak memory (from
  ``benchmarks/RESULTS.md``, written by ``make bench``; the browser tests' peak from docs/classroom.md's
  table), the words of prose and the number of exercises (counted in ``chapters/``), and the
  minutes a workshop should budget for it (see :func:`minutes`).
* **plans**: the 3-hour and the 1-day workshop of :data:`PLANS`, block by block, with those minutes.
* **mistakes**: every wrong answer that ``tests/test_exercises_<topic>.py`` feeds a checker, and
  the first line the checker prints for it. The script runs those tests (``pytest -k "reject or
  mistake or wrong"``) with the checkers' progress record (:mod:`compresskit.course.progress`)
  pointed at a scratch file, and reads the failures back: nothing is copied by hand.

    python tools/teaching_doc.py              # print the three sections
    python tools/teaching_doc.py --write      # replace them in docs/teaching.md
    python tools/teaching_doc.py --check      # exit 1 if docs/teaching.md is out of date
    python tools/teaching_doc.py --check --no-mistakes   # the quick part only (no test run)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from compresskit.course import progress

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "teaching.md"
RESULTS = REPO / "benchmarks" / "RESULTS.md"
CLASSROOM = REPO / "docs" / "classroom.md"  # the classroom guide, with the per-learner memory table

# Assumptions behind the minutes, stated in the guide next to the table (change them here).
WORDS_PER_MINUTE = 150  # technical prose with code and equations, read with care
MINUTES_PER_EXERCISE = 8  # a short function (5-15 lines in solutions/), a failed try, the checker's hint
LAPTOP_SLOWDOWN = 2  # Run All budgeted for a laptop twice as slow as the measuring machine

# The workshops: blocks of (what, chapter or None, exercises: "all" or names, fixed minutes for other blocks).
PLANS: dict[str, tuple[int, list[tuple[str, int | None, str | tuple[str, ...], int]]]] = {
    "3-hour workshop: what compression buys, measured (chapters 1-3)": (180, [
        ("Log in, open chapter 1, Run All while you introduce the course", None, (), 10),
        ("Chapter 1, Concepts: accuracy, bytes, MACs, latency; why the hardware decides", 1,
         ("check_tensor_bytes", "check_ratio_and_saving"), 0),
        ("Chapter 2, Pruning: masks save nothing until units are cut out", 2,
         ("check_threshold_mask", "check_global_magnitude_masks"), 0),
        ("Break", None, (), 10),
        ("Chapter 3, Quantization: scale, zero point, calibration, int8 on this CPU", 3,
         ("check_scale_zero_point", "check_fake_quantize"), 0),
        ("Wrap-up: everyone runs `show()`; the rest of the exercises are homework", None, (), 10),
    ]),
    "1-day workshop: measure, prune, quantize, sparsify, distil, then combine (chapters 1-4, 6, 8), 9:00 to 16:30": (450, [
        ("Log in, Run All on chapter 1 while you introduce the course", None, (), 10),
        ("Chapter 1, Concepts", 1, ("check_count_nonzero", "check_tensor_bytes", "check_layer_macs", "check_ratio_and_saving"), 0),
        ("Chapter 2, Pruning", 2, ("check_threshold_mask", "check_row_norm_mask", "check_global_magnitude_masks"), 0),
        ("Break", None, (), 15),
        ("Chapter 3, Quantization", 3, ("check_scale_zero_point", "check_fake_quantize", "check_to_fixed_point"), 0),
        ("Lunch", None, (), 60),
        ("Chapter 4, Sparsity", 4, ("check_csr_encode", "check_nm_mask"), 0),
        ("Chapter 6, Distillation", 6, ("check_softened_softmax", "check_distillation_loss"), 0),
        ("Break", None, (), 15),
        ("Chapter 8, Training-time compression and the ledger: the capstone", 8, ("check_fake_quantize_ste", "check_huffman_lengths"), 0),
        ("Wrap-up: `show()`; chapters 5 and 7 are homework", None, (), 10),
    ]),
    "3-hour workshop: a language model, compressed and served (chapters 9-10)": (180, [
        ("Log in, open chapter 9, Run All while you introduce the model and its text", None, (), 10),
        ("Chapter 9, weights: group-wise int4 in real bytes, GPTQ, AWQ, the outlier mechanism", 9,
         ("check_quantize_group", "check_pack_int4", "check_gptq_column_step"), 0),
        ("Break", None, (), 10),
        ("Chapter 10, generation: KV cache, Wanda, LoRA, speculative decoding, judged on this CPU", 10,
         ("check_kv_cache_bytes", "check_wanda_mask", "check_lora_forward", "check_accept_draft"), 0),
        ("Wrap-up: `show()`; the rest of the exercises are homework", None, (), 10),
    ]),
}

SELECT = "reject or mistake or wrong"
_RUNNER = """
import os, sys, pytest
class Record:  # set at session start, after the repository's conftest.py chose its throwaway file
    def pytest_sessionstart(self, session):
        os.environ["COMPRESSKIT_PROGRESS"] = sys.argv[1]
sys.exit(pytest.main(sys.argv[2:], plugins=[Record()]))
"""


def markers(name: str) -> tuple[str, str]:
    return (f"<!-- {name}: generated by tools/teaching_doc.py; do not edit by hand -->",
            f"<!-- end of {name} -->")


# --- cost: time and memory per chapter ------------------------------------------------------

@dataclass(frozen=True)
class Chapter:
    number: int
    name: str  # file stem, e.g. 02_pruning
    run_all_s: float | None  # make bench, fresh kernel, kernel start included
    peak_mib: int | None  # make bench: the kernel's maximum resident set size
    browser_peak: str  # docs/classroom.md's range from the browser tests, e.g. "619-629"
    words: int  # of the markdown cells, to the nearest hundred (a small edit does not change the guide)
    exercises: tuple[str, ...]  # check_* names the chapter calls


def measured_on() -> str:
    """When and on what machine RESULTS.md's notebook table was measured: the Notebooks section's own
    line when that section comes from a separate run, else the file's header line."""
    text = RESULTS.read_text(encoding="utf-8")
    section = re.search(r"^### Notebooks\n(.*?)(?=^#{2,3} |\Z)", text, flags=re.M | re.S)
    own = re.search(r"^_(Measured .*?)_$", section[1], flags=re.M) if section else None
    if own:
        return own[1].rstrip(".").removesuffix(" (a separate run from the header's)").rstrip(".")
    for line in text.splitlines():
        if line.startswith("Measured "):
            return line.rstrip(".")
    raise ValueError(f"{RESULTS} has no 'Measured ...' line")


def bench_rows() -> dict[str, tuple[float, int]]:
    """``{notebook path: (wall seconds of the first run, peak MiB)}`` from RESULTS.md's notebook table
    (a second-run column, with the model cache warm, may follow the first)."""
    rows = re.findall(r"^\| ((?:chapters|solutions)/\S+\.ipynb) \| ([\d.]+) \|(?: [\d.]+ \|)? (\d+) \|",
                      RESULTS.read_text(encoding="utf-8"), flags=re.M)
    return {path: (float(seconds), int(mib)) for path, seconds, mib in rows}


def browser_peaks() -> dict[str, tuple[int, int]]:
    """docs/classroom.md's kernel-memory table: ``{chapter stem: (low MiB, high MiB)}``."""
    rows = re.findall(r"^\| (\d\d_\w+) \| (\d+)-(\d+) MiB \|", CLASSROOM.read_text(encoding="utf-8"), flags=re.M)
    return {name: (int(low), int(high)) for name, low, high in rows}


def server_mib() -> int:
    """docs/classroom.md's figure for one learner's JupyterLab server, in MiB."""
    found = re.search(r"JupyterLab\s+server\s+takes\s+about\s+(\d+)\s+MiB", CLASSROOM.read_text(encoding="utf-8"))
    if not found:
        raise ValueError("docs/classroom.md no longer says 'the JupyterLab server takes about N MiB'")
    return int(found[1])


def memory_text() -> str:
    """One learner's memory: the server plus one or two chapter kernels. A chapter's kernel peak is the
    larger of docs/classroom.md's browser figure and RESULTS.md's `make bench` figure (a chapter the browser
    tests have not measured yet has only the latter)."""
    peaks = {name: high for name, (_, high) in browser_peaks().items()}
    for path, (_, mib) in bench_rows().items():
        if path.startswith("chapters/"):
            name = path.removeprefix("chapters/").removesuffix(".ipynb")
            peaks[name] = max(peaks.get(name, 0), mib)
    worst = max(peaks, key=peaks.get)
    server, kernel = server_mib(), peaks[worst]
    low = min(peaks.values())
    return (f"Memory per learner ([classroom.md](classroom.md), \"Per-learner cost, measured\", and `make bench`): the JupyterLab server takes about "
            f"{server} MiB and a chapter's kernel peaks at {low}-{kernel} MiB, highest in {worst}. One learner with "
            f"one chapter open needs about {server} + {kernel} = {server + kernel} MiB; with a finished chapter's "
            f"kernel still running, about {server + 2 * kernel} MiB.")


def chapters() -> list[Chapter]:
    bench, browser = bench_rows(), browser_peaks()
    found = []
    for path in sorted((REPO / "chapters").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        prose = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        calls = tuple(dict.fromkeys(re.findall(r"^(check_\w+)\(", code, flags=re.M)))
        seconds, mib = bench.get(f"chapters/{path.name}", (None, None))
        low_high = browser.get(path.stem)
        found.append(Chapter(int(path.name[:2]), path.stem, seconds, mib, f"{low_high[0]}-{low_high[1]}" if low_high else "",
                             round(len(re.findall(r"[A-Za-z0-9']+", prose)), -2), calls))
    return found


def minutes(chapter: Chapter, exercises: int) -> int:
    """Reading + exercises + Run All on a laptop :data:`LAPTOP_SLOWDOWN` times slower, rounded up."""
    run = (chapter.run_all_s or 60.0) * LAPTOP_SLOWDOWN / 60
    return math.ceil(chapter.words / WORDS_PER_MINUTE + MINUTES_PER_EXERCISE * exercises + run)


def cost_table(found: list[Chapter]) -> str:
    lines = [f"{measured_on()} (`benchmarks/RESULTS.md`).", "",
             "| chapter | Run All (s) | kernel peak, `make bench` (MiB) | kernel peak, browser tests (MiB) "
             "| words of prose (to 100) | exercises | minutes to budget |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for c in found:
        seconds = f"{c.run_all_s:.1f}" if c.run_all_s is not None else "not measured yet"
        title = {n: t for n, t in progress.CHAPTERS.values()}.get(c.number, c.name[3:])
        lines.append(f"| [{c.number} {title}](../chapters/{c.name}.ipynb) | {seconds} | {c.peak_mib if c.peak_mib else '-'} | "
                     f"{c.browser_peak or '-'} | {c.words:,} | {len(c.exercises)} | {minutes(c, len(c.exercises))} |")
    total = sum(minutes(c, len(c.exercises)) for c in found)
    lines += ["", f"All chapters with every exercise: {total} minutes ({total / 60:.1f} hours) of a learner's time.",
              "", memory_text()]
    over = [str(c.number) for c in found if c.run_all_s is not None and c.run_all_s > 30]
    if over:
        lines += ["", f"Over the course's budget of 30 s per chapter on this machine: chapter{'s' * (len(over) > 1)} {', '.join(over)}."]
    unmeasured = [str(c.number) for c in found if c.run_all_s is None]
    if unmeasured:
        lines += ["", f"Not yet measured by `make bench`: chapter{'s' * (len(unmeasured) > 1)} {', '.join(unmeasured)}; "
                      "minutes assume a Run All of 60 s."]
    return "\n".join(lines)


def plans_text(found: list[Chapter]) -> str:
    by_number = {c.number: c for c in found}
    parts = []
    for title, (available, blocks) in PLANS.items():
        parts += [f"**{title}** ({available} minutes)", "", "| block | exercises | minutes |", "|---|---|---:|"]
        total = 0
        for what, number, chosen, fixed in blocks:
            if number is None:
                spent, names = fixed, ""
            else:
                chapter = by_number[number]
                names_ = chapter.exercises if chosen == "all" else chosen
                missing = set(names_) - set(chapter.exercises)
                if missing:
                    raise ValueError(f"plan {title!r}: chapter {number} has no exercise {sorted(missing)}")
                spent = minutes(chapter, len(names_))
                names = ", ".join(f"`{n.removeprefix('check_')}`" for n in names_)
                if chosen != "all" and len(names_) < len(chapter.exercises):
                    names += f" ({len(names_)} of {len(chapter.exercises)})"
            total += spent
            parts.append(f"| {what} | {names} | {spent} |")
        parts += [f"| **total** | | **{total}** of {available} |", ""]
    return "\n".join(parts).rstrip()


# --- mistakes: the tests' wrong answers and what the checkers print ---------------------------

def run_wrong_answers(record: Path) -> None:
    """Run every test that feeds a checker a wrong answer, recording each outcome in ``record``."""
    tests = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_exercises_*.py"))
    command = [sys.executable, "-c", _RUNNER, str(record), "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
               "-k", SELECT, *tests]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the exercise tests failed; fix them first:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")


def mistakes(record: Path) -> dict[str, list[tuple[str, str]]]:
    """``{topic: [(exercise, first line printed), ...]}`` of every distinct failure recorded,
    exercises in the order their module defines them, failures in the order the tests ran."""
    order = progress.exercises()
    found: dict[str, list[tuple[str, str]]] = {}
    for line in record.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["status"] != progress.FAILED or entry["topic"] not in order:
            continue
        exercise = entry["exercise"].removeprefix("check_")
        message = entry["message"] if entry["part"] == exercise else f"{entry['part']}: {entry['message']}"
        rows = found.setdefault(entry["topic"], [])
        if (exercise, message) not in rows:
            rows.append((exercise, message))
    for topic, rows in found.items():
        position = {name.removeprefix("check_"): i for i, name in enumerate(order[topic])}
        rows.sort(key=lambda row: position.get(row[0], len(position)))  # stable: test order within an exercise
    return found


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def mistakes_text(found: dict[str, list[tuple[str, str]]]) -> str:
    parts = []
    for topic in sorted(found, key=lambda t: progress.CHAPTERS.get(t, (99, t))):
        number, title = progress.CHAPTERS.get(topic, (None, topic))
        parts += [f"**Chapter {number}, {title}** ({len(found[topic])} wrong answers, "
                  f"`tests/test_exercises_{topic}.py`)", "",
                  "| exercise | what the checker prints first |", "|---|---|"]
        parts += [f"| `{exercise}` | {_cell(message)} |" for exercise, message in found[topic]]
        parts.append("")
    return "\n".join(parts).rstrip()


def generate_mistakes() -> str:
    with tempfile.TemporaryDirectory(prefix="compresskit-mistakes-") as folder:
        record = Path(folder) / "progress.jsonl"
        run_wrong_answers(record)
        return mistakes_text(mistakes(record))


# --- the document ---------------------------------------------------------------------------

def sections(with_mistakes: bool = True) -> dict[str, str]:
    found = chapters()
    generated = {"cost table": cost_table(found), "workshop plans": plans_text(found)}
    if with_mistakes:
        generated["mistakes table"] = generate_mistakes()
    return generated


def current(name: str, text: str) -> str:
    begin, end = markers(name)
    if begin not in text or end not in text:
        raise ValueError(f"{DOC} lacks the markers of the {name}: {begin} ... {end}")
    return text[text.index(begin) + len(begin):text.index(end)].strip("\n")


def replaced(text: str, name: str, body: str) -> str:
    current(name, text)  # both markers are there
    begin, end = markers(name)
    return text[:text.index(begin)] + f"{begin}\n{body}\n{end}" + text[text.index(end) + len(end):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"replace the sections in {DOC.relative_to(REPO)}")
    group.add_argument("--check", action="store_true", help="exit 1 if a section there is out of date")
    parser.add_argument("--no-mistakes", action="store_true", help="skip the mistakes table (it runs the exercise tests)")
    args = parser.parse_args(argv)
    generated = sections(with_mistakes=not args.no_mistakes)
    if args.write:
        text = DOC.read_text(encoding="utf-8")
        for name, body in generated.items():
            text = replaced(text, name, body)
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {', '.join(generated)} into {DOC.relative_to(REPO)}")
    elif args.check:
        text = DOC.read_text(encoding="utf-8")
        stale = [name for name, body in generated.items() if current(name, text) != body]
        if stale:
            print(f"{DOC.relative_to(REPO)}: out of date: {', '.join(stale)}; run python tools/teaching_doc.py --write")
            return 1
        print(f"{DOC.relative_to(REPO)} is up to date ({', '.join(generated)})")
    else:
        for name, body in generated.items():
            print(f"{markers(name)[0]}\n{body}\n{markers(name)[1]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
