"""Build the course as a static site: ``make book`` (``python -m book.build``).

1. Every chapter and solution (found by glob: ``chapters/*.ipynb``, ``solutions/*.ipynb``) is
   taken executed from ``build/executed/``, where `make test`'s nbval run leaves it
   (``book/record.py``); a notebook whose copy is missing or older than its source is executed
   here, once, with nbclient in the course kernel.
2. The sources are staged in ``build/book-src/``: README as the front page, the executed
   notebooks, ``docs/*.md`` and ``benchmarks/RESULTS.md``. Each notebook page gets a banner
   naming the machine that ran it (its speed verdicts are that machine's), and each widget
   explorer's place says it needs a live kernel and shows a still of its default state.
3. Sphinx with myst-nb renders them (``book/conf.py``; nothing executes there), then
   ``book/slides.py`` writes an offline slide deck per chapter into ``slides/``.

The site is ``build/book/html/index.html``; it loads nothing from the network (no CDN: math
is rendered to MathML at build time, widget JavaScript is left out). Usage:
``python -m book.build [--only 01_concepts,02_pruning] [--out build/book]``.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from book import record, slides

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
STAGE = REPO / "build" / "book-src"
OUT = REPO / "build" / "book"
KERNEL = "compresskit"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = record.WIDGET_STATE
EXPLORER_NOTE = ("<div class=\"explorer-still\"><p><b>An interactive explorer stands here.</b> Its controls need "
                 "a live Python kernel, which a static page does not have: open this chapter with "
                 "<code>make lab</code> and run it to move them. Below is a still of its default state, "
                 "as the run that built this page drew it.</p></div>")
GUIDES = ["docs/*.md", "benchmarks/RESULTS.md"]


def chapters() -> list[Path]:
    return sorted((REPO / "chapters").glob("*.ipynb"))


def solutions() -> list[Path]:
    return sorted((REPO / "solutions").glob("*.ipynb"))


# --- 1. executed notebooks ------------------------------------------------------------------------

def is_fresh(source: Path) -> bool:
    """Whether build/executed/ holds a run of ``source`` as it is now."""
    target = record.executed_path(source)
    if not target.exists():
        return False
    meta = nbformat.read(target, as_version=4).metadata.get("compresskit_executed", {})
    return meta.get("source_hash") == record.source_hash(nbformat.read(source, as_version=4))


def execute(source: Path, timeout: int = 300) -> Path:
    """Run ``source`` in the course kernel (from its own folder, as JupyterLab does) into build/executed/."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, allow_errors=False,
                            resources={"metadata": {"path": str(source.parent)}})
    try:
        client.execute()
    except CellExecutionError as error:  # keep the run, error shown: the site's test reports it
        print(f"book: {source.parent.name}/{source.name} stopped with an error:\n{str(error)[:2000]}", file=sys.stderr)
    return record.write_executed(source, nb, runner="nbclient (make book)")


def executed(sources: list[Path]) -> list[Path]:
    paths = []
    for source in sources:
        if is_fresh(source):
            print(f"book: {source.parent.name}/{source.name}: using the run in build/executed/")
        else:
            started = time.perf_counter()
            execute(source)
            print(f"book: {source.parent.name}/{source.name}: executed in {time.perf_counter() - started:.1f} s")
        paths.append(record.executed_path(source))
    return paths


# --- 2. staging ---------------------------------------------------------------------------------

def _widget_state(nb) -> dict:
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _still_outputs(state: dict, model_id: str) -> list:
    """The outputs a widget tree shows: HTML widgets' values and Output widgets' outputs, in order."""
    model = state.get(model_id)
    if model is None:
        return []
    name, values = model.get("model_name", ""), model.get("state", {})
    if name == "OutputModel":
        return [nbformat.from_dict(o) for o in values.get("outputs", [])]
    if name == "HTMLModel" and values.get("value"):
        return [nbformat.v4.new_output("display_data", data={"text/html": values["value"]})]
    found = []
    for child in values.get("children", []):
        found += _still_outputs(state, str(child).removeprefix("IPY_MODEL_"))
    return found


def explorer_stills(nb) -> int:
    """Replace each widget output by a note (it needs a live kernel) and a still of its default state.

    Under nbval the figure an explorer draws at start arrives as an ordinary output of its cell;
    under nbclient it sits in the notebook's widget state, and is taken from there.
    """
    state, count = _widget_state(nb), 0
    for cell in nb.cells:
        if cell.cell_type != "code" or not any(WIDGET_VIEW in o.get("data", {}) for o in cell.outputs):
            continue
        count += 1
        kept, stills = [], []
        for out in cell.outputs:
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                stills += _still_outputs(state, data[WIDGET_VIEW]["model_id"])
            else:
                kept.append(out)
        note = nbformat.v4.new_output("display_data", data={"text/html": EXPLORER_NOTE})
        cell.outputs = [note] + kept + stills
    nb.metadata.pop("widgets", None)
    return count


def banner(nb, source: Path) -> None:
    """A note under the title: which machine ran this page, and where its worked answers are."""
    meta = nb.metadata.get("compresskit_executed", {})
    m = meta.get("machine", {})
    ran = (f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('os', '?')}, Python {m.get('python', '?')}, "
           f"torch {m.get('torch', '?')}, on {m.get('date', '?')}, by {meta.get('runner', '?')}")
    text = (f"> **Executed on the machine that built this site:** {ran}. Every number and figure below is "
            "that run's; the speed verdicts judge that machine, not yours. `make lab` runs the chapter on yours.")
    if source.parent.name == "chapters" and (REPO / "solutions" / source.name).exists():
        text += f" Worked answers to its exercises: [solutions/{source.stem}](../solutions/{source.name})."
    elif source.parent.name == "solutions":
        text += f" The chapter: [chapters/{source.stem}](../chapters/{source.name})."
    first_heading = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("#")), -1)
    nb.cells.insert(first_heading + 1, nbformat.v4.new_markdown_cell(text))


def _title(md_path: Path) -> str:
    for line in md_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return md_path.stem


def front_page(chapter_docs: list[str], solution_docs: list[str], guide_docs: list[str]) -> str:
    """README as the front page, with the site's table of contents (hidden: the sidebar shows it)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")

    def toctree(caption: str, docs: list[str]) -> str:
        return "\n```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(docs) + "\n```\n"

    slide_links = "\n".join(f"- <a href=\"slides/{Path(d).name}.html\">{html.escape(Path(d).name)}</a>" for d in chapter_docs)
    text += ("\n## Slides\n\nAn offline slide deck per chapter, its figures and the claims they support "
             "(arrow keys or space to move; nothing is fetched from the network):\n\n" + slide_links + "\n")
    return (text + toctree("Chapters", chapter_docs) + toctree("Worked answers", solution_docs)
            + toctree("Results and guides", guide_docs))


def _copy_linked_files(text: str, where: Path) -> None:
    """Repository files a page links to that are not pages (LICENSE, a config file): copied beside it,
    so the link serves the file instead of breaking."""
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target or target.startswith(("mailto:", "/")) or target.endswith((".md", ".ipynb")):
            continue
        source = (REPO / where.relative_to(STAGE) / target).resolve()
        if source.is_file() and REPO in source.parents:
            destination = STAGE / source.relative_to(REPO)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)


def stage(chapter_paths: list[Path], solution_paths: list[Path]) -> dict[str, int]:
    """Write build/book-src/; returns the number of explorers per page."""
    shutil.rmtree(STAGE, ignore_errors=True)
    STAGE.mkdir(parents=True)
    explorers = {}
    for source in chapter_paths + solution_paths:
        nb = nbformat.read(record.executed_path(source), as_version=4)
        explorers[f"{source.parent.name}/{source.stem}"] = explorer_stills(nb)
        banner(nb, source)
        (STAGE / source.parent.name).mkdir(exist_ok=True)
        nbformat.write(nb, STAGE / source.parent.name / source.name)
    guides = []
    for pattern in GUIDES:
        for path in sorted(REPO.glob(pattern)):
            target = STAGE / path.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            _copy_linked_files(path.read_text(encoding="utf-8"), target.parent)
            guides.append(str(path.relative_to(REPO).with_suffix("")).replace("\\", "/"))
    index = front_page([f"chapters/{p.stem}" for p in chapter_paths],
                       [f"solutions/{p.stem}" for p in solution_paths], guides)
    (STAGE / "index.md").write_text(index, encoding="utf-8")
    _copy_linked_files(index, STAGE)
    return explorers


# --- 3. render ----------------------------------------------------------------------------------

def sphinx(out: Path) -> None:
    html_dir = out / "html"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    warnings = out / "sphinx-warnings.txt"
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(BOOK), "-d", str(out / "doctrees"),
               "-w", str(warnings), str(STAGE), str(html_dir)]
    subprocess.run(command, cwd=REPO, check=True)
    text = warnings.read_text(encoding="utf-8") if warnings.exists() else ""
    if text.strip():
        print(f"book: Sphinx warnings ({warnings}):\n{text}", file=sys.stderr)


def build(only: list[str] | None = None, out: Path = OUT) -> Path:
    def pick(paths: list[Path]) -> list[Path]:
        return [p for p in paths if not only or any(word in p.stem for word in only)]

    started = time.perf_counter()
    chapter_paths, solution_paths = pick(chapters()), pick(solutions())
    executed(chapter_paths + solution_paths)
    stage(chapter_paths, solution_paths)
    sphinx(out)
    for source in chapter_paths:
        slides.write_deck(nbformat.read(record.executed_path(source), as_version=4), source.stem, out / "html" / "slides")
    print(f"book: {out / 'html' / 'index.html'} built in {time.perf_counter() - started:.1f} s "
          f"({len(chapter_paths)} chapters, {len(solution_paths)} solutions)")
    return out / "html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated parts of notebook names (a quick partial build)")
    parser.add_argument("--out", default=str(OUT), help="output folder (the site is OUT/html)")
    args = parser.parse_args(argv)
    build([w for w in args.only.split(",") if w] or None, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
