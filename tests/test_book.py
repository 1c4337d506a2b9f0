"""The course's static site (`make book`, book/build.py), built offline and checked as a reader sees it.

`make test` runs this after nbval has executed every notebook (book/record.py moves it last and
keeps nbval's run in build/executed/), so the build renders that run instead of executing the
chapters a fourth time. Run alone, the build executes whatever build/executed/ lacks.
COMPRESSKIT_BOOK_ONLY=01_concepts,03_quantization builds and checks only those notebooks.

Checked: a page per chapter and solution (found by glob), each with as many figures as its
executed notebook drew and one for every cell that shows a plot; no error output; the banner
naming the machine; each explorer's place says it needs a live kernel and shows a still;
math as MathML; every internal link and anchor resolves; nothing in the site loads from the
network; search finds a chapter; and in Chromium every chapter page renders with its images
loaded and no request beyond file:// (a screenshot per chapter in build/test-artifacts/book/).
"""

from __future__ import annotations

import html.parser
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from book import build as book_build
from book import record

pytestmark = pytest.mark.book

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "build" / "book"
SITE = OUT / "html"
ARTIFACTS = REPO / "build" / "test-artifacts" / "book"
ONLY = [w for w in os.environ.get("COMPRESSKIT_BOOK_ONLY", "").split(",") if w]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PLOT_CALL = re.compile(r"plt\.show\(")  # an explorer's still is checked on its own


def _picked(paths: list[Path]) -> list[Path]:
    return [p for p in paths if not ONLY or any(w in p.stem for w in ONLY)]


CHAPTERS = _picked(book_build.chapters())
SOLUTIONS = _picked(book_build.solutions())
NOTEBOOKS = CHAPTERS + SOLUTIONS


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@pytest.fixture(scope="module")
def site() -> dict:
    """Build the site once (build/book/html), and note which runs it reused."""
    fresh_before = {p: record.executed_path(p).stat().st_mtime_ns for p in NOTEBOOKS if book_build.is_fresh(p)}
    command = [sys.executable, "-m", "book.build", "--out", str(OUT)] + (["--only", ",".join(ONLY)] if ONLY else [])
    started = time.perf_counter()
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3000)
    assert run.returncode == 0, f"make book failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    print(f"the site built in {time.perf_counter() - started:.1f} s; {len(fresh_before)} of {len(NOTEBOOKS)} runs reused")
    return {"fresh_before": fresh_before, "log": run.stdout + run.stderr}


def page(path: Path) -> Path:
    return SITE / path.parent.name / f"{path.stem}.html"


def staged(path: Path):
    return nbformat.read(book_build.STAGE / path.parent.name / path.name, as_version=4)


def _image_outputs(cell) -> int:
    return sum("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {}) for o in cell.get("outputs", []))


class _Tags(html.parser.HTMLParser):
    """Every tag's attributes, and every id, of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if attrs.get("id"):
            self.ids.add(attrs["id"])


def parse(path: Path) -> _Tags:
    tags = _Tags()
    tags.feed(path.read_text(encoding="utf-8"))
    return tags


def _article(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.find("<article")
    return text[start:text.find("</article>", start)] if start >= 0 else text


# --- the pieces, on hand-made input ----------------------------------------------------------------

def test_source_hash_follows_the_source_not_the_outputs():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)"), nbformat.v4.new_markdown_cell("# A")])
    before = record.source_hash(nb)
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[0].execution_count = 1
    assert record.source_hash(nb) == before
    nb.cells[0].source = "print(2)"
    assert record.source_hash(nb) != before
    nb.cells[0].source, nb.cells[1].cell_type = "print(1)", "raw"
    assert record.source_hash(nb) != before


def test_an_explorer_is_replaced_by_a_note_and_a_still_from_the_widget_state():
    """The state nbclient saves for VBox([HBox([slider]), HTML, Output(figure)]): the still is the
    HTML's text and the Output's figure, in that order, after the note; the widget view is gone."""
    png = "iVBORw0KGgo="
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_row", "IPY_MODEL_html", "IPY_MODEL_out"]}},
        "row": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_slider"]}},
        "slider": {"model_name": "FloatSliderModel", "state": {"value": 0.5}},
        "html": {"model_name": "HTMLModel", "state": {"value": "<b>accuracy 97%</b>"}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "display_data", "metadata": {}, "data": {"image/png": png, "text/plain": "<Figure>"}}]}},
    }
    cell = nbformat.v4.new_code_cell("pruning_explorer(model)")
    cell.outputs = [nbformat.v4.new_output("execute_result", execution_count=1,
                                           data={WIDGET_VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0},
                                                 "text/plain": "VBox(...)"})]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell("1")])
    nb.metadata["widgets"] = {book_build.WIDGET_STATE: {"state": state}}
    assert book_build.explorer_stills(nb) == 1
    kinds = [list(o["data"]) for o in nb.cells[0].outputs]
    assert [k[0] for k in kinds] == ["text/html", "text/html", "image/png"]
    assert "live Python kernel" in nb.cells[0].outputs[0]["data"]["text/html"]
    assert nb.cells[0].outputs[1]["data"]["text/html"] == "<b>accuracy 97%</b>"
    assert nb.cells[0].outputs[2]["data"]["image/png"] == png
    assert "widgets" not in nb.metadata and not any(WIDGET_VIEW in o.get("data", {}) for o in nb.cells[0].outputs)


def test_the_widget_models_follow_the_kernels_messages():
    """What nbval passes over, kept as a front end keeps it: a model opened, then updated; messages
    for other comms and other targets change nothing."""
    state: dict = {}
    opened = {"_model_name": "HTMLModel", "_model_module": "@jupyter-widgets/controls",
              "_model_module_version": "2.0.0", "value": ""}
    record.widget_message(state, {"msg_type": "comm_open", "content": {
        "comm_id": "a", "target_name": "jupyter.widget", "data": {"state": opened}}})
    record.widget_message(state, {"msg_type": "comm_open", "content": {
        "comm_id": "b", "target_name": "something.else", "data": {"state": {"value": 1}}}})
    record.widget_message(state, {"msg_type": "comm_msg", "content": {
        "comm_id": "a", "data": {"method": "update", "state": {"value": "<b>97%</b>"}}}})
    record.widget_message(state, {"msg_type": "comm_msg", "content": {
        "comm_id": "b", "data": {"method": "update", "state": {"value": 2}}}})
    record.widget_message(state, {"msg_type": "stream", "content": {"name": "stdout", "text": "x"}})
    assert list(state) == ["a"]
    assert state["a"]["model_name"] == "HTMLModel" and state["a"]["model_module_version"] == "2.0.0"
    assert state["a"]["state"]["value"] == "<b>97%</b>"
    assert opened["value"] == "", "the message's own dict was changed"
    still = book_build._still_outputs(state, "a")
    assert [o["data"]["text/html"] for o in still] == ["<b>97%</b>"]


# --- the built site ----------------------------------------------------------------------------

def test_the_site_reuses_the_runs_it_finds(site):
    """A notebook nbval (or an earlier build) ran as it is now is not executed again."""
    for source, mtime in site["fresh_before"].items():
        assert record.executed_path(source).stat().st_mtime_ns == mtime, f"{_id(source)} was executed again"
        assert f"{_id(source)}.ipynb: using the run in build/executed/" in site["log"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_every_notebook_has_a_page_with_its_figures_and_no_error(site, path):
    html_path = page(path)
    assert html_path.exists(), f"no page for {_id(path)} in {SITE}"
    nb = staged(path)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{_id(path)} stopped with {errors[0]['ename']}: {errors[0]['evalue']}"
    plots_without_image = [c.source[:60] for c in nb.cells if c.cell_type == "code" and PLOT_CALL.search(c.source) and not _image_outputs(c)]
    assert not plots_without_image, f"{_id(path)}: cells that plot but show no figure: {plots_without_image}"
    article = _article(html_path)
    images = re.findall(r"<img\b[^>]*>", article)
    expected = sum(_image_outputs(c) for c in nb.cells)
    assert len(images) == expected, f"{_id(path)}: {len(images)} images on the page, {expected} in the notebook"
    for img in images:
        src = re.search(r'src="([^"]+)"', img)[1]
        assert src.startswith("data:") or (html_path.parent / unquote(src)).is_file(), f"{_id(path)}: image {src} missing"
    assert "Traceback (most recent call last)" not in article and 'class="output traceback' not in article
    assert "Executed on the machine that built this site" in article
    cpu = nb.metadata.get("compresskit_executed", {}).get("machine", {}).get("cpu")
    assert cpu and cpu in article, f"{_id(path)}: the banner does not name the machine that ran it"


@pytest.mark.parametrize("path", CHAPTERS, ids=_id)
def test_each_explorer_says_it_needs_a_kernel_and_shows_a_still(site, path):
    source = nbformat.read(path, as_version=4)
    calls = sum(len(re.findall(r"_explorer\(", c.source)) for c in source.cells if c.cell_type == "code")
    article = _article(page(path))
    notes = article.split('class="explorer-still"')
    assert len(notes) - 1 == calls, f"{_id(path)}: {calls} explorers, {len(notes) - 1} notes on the page"
    for after in notes[1:]:
        cell = after[:min(i for i in (after.find('<div class="cell docutils container'), after.find("</section>"), len(after)) if i >= 0)]
        # the still: the figure the explorer drew, or the summary its HTML widget showed (chapter 4's has no figure)
        assert re.search(r'<img\b|<div class="output text_html">', cell), f"{_id(path)}: an explorer without its still"


def test_math_is_rendered_as_mathml_without_mathjax(site):
    pages = [p for p in NOTEBOOKS if any(c.cell_type == "markdown" and re.search(r"\$[^$\s][^$]*\$", c.source)
                                         for c in nbformat.read(p, as_version=4).cells)]
    for path in pages:
        assert "<math" in _article(page(path)), f"{_id(path)} has $math$ but no MathML on its page"
    for path in SITE.rglob("*.html"):
        scripts = [a.get("src", "") for tag, a in parse(path).tags if tag == "script"]
        assert not [s for s in scripts if "mathjax" in s.lower()], f"{path} loads MathJax"


def test_every_internal_link_resolves(site):
    broken = []
    pages = {p: parse(p) for p in SITE.rglob("*.html")}
    for path, tags in pages.items():
        for tag, attrs in tags.tags:
            for name in ("href", "src"):
                url = attrs.get(name)
                if not url or re.match(r"^(https?:|mailto:|data:|javascript:)", url):
                    continue
                parts = urlsplit(url)
                target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
                if target.is_dir():
                    target = target / "index.html"
                if not target.is_file():
                    broken.append(f"{path.relative_to(SITE)}: {url}")
                elif parts.fragment and target.suffix == ".html" and target in pages and unquote(parts.fragment) not in pages[target].ids:
                    broken.append(f"{path.relative_to(SITE)}: {url} (no such anchor)")
    if ONLY:  # a partial build: links to the notebooks it left out cannot resolve
        left_out = [p.name for p in book_build.chapters() + book_build.solutions() if p not in NOTEBOOKS]
        broken = [b for b in broken if not any(name in b for name in left_out)]
    assert not broken, f"{len(broken)} broken links, first: {broken[:10]}"


def test_nothing_in_the_site_loads_from_the_network(site):
    """No script, stylesheet, image, frame or font is fetched from a host: links (<a href>) may point
    out, nothing may load from one."""
    loads = []
    for path in SITE.rglob("*"):
        if path.suffix == ".html":
            for tag, attrs in parse(path).tags:
                urls = [attrs.get("src")] + ([attrs.get("href")] if tag == "link" else []) + [attrs.get("data")]
                loads += [f"{path.relative_to(SITE)}: <{tag}> {u}" for u in urls if u and re.match(r"^(https?:)?//", u)]
        if path.suffix in (".css", ".html"):
            text = path.read_text(encoding="utf-8")
            loads += [f"{path.relative_to(SITE)}: {m}" for m in re.findall(r"(?:url\(|@import\s)\s*['\"]?(?:https?:)?//[^)'\"\s]+", text)]
    assert not loads, f"the site loads from the network: {loads[:10]}"


def test_the_front_page_lists_every_chapter_and_the_guides(site):
    text = (SITE / "index.html").read_text(encoding="utf-8")
    for path in CHAPTERS:
        assert f'href="chapters/{path.stem}.html"' in text, f"the front page does not link {_id(path)}"
        assert f'href="slides/{path.stem}.html"' in text, f"the front page does not link {path.stem}'s slides"
    for guide in ("docs/teaching.html", "benchmarks/RESULTS.html"):
        assert f'href="{guide}' in text


@pytest.mark.parametrize("path", CHAPTERS, ids=_id)
def test_each_chapter_has_a_self_contained_deck_of_its_figures(site, path):
    deck = SITE / "slides" / f"{path.stem}.html"
    text = deck.read_text(encoding="utf-8")
    tags = parse(deck).tags
    assert all(a.get("src", "data:").startswith("data:") for _, a in tags), "a deck loads a file or host"
    nb = nbformat.read(record.executed_path(path), as_version=4)
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert text.count('<img alt="figure"') == figures, f"{path.stem}: the deck lacks some of the chapter's figures"
    corrections = sum(c.source.count("**In fact**") for c in nb.cells if c.cell_type == "markdown")
    assert text.count("<strong>In fact</strong>") == corrections, f"{path.stem}: the deck lacks a correction of the article"
    assert text.count("<section>") >= 1 + (figures > 0) + (corrections > 0)


# --- in a browser ------------------------------------------------------------------------------

def _lab_module():
    spec = importlib.util.spec_from_file_location("_ui_lab", REPO / "tests" / "ui" / "lab.py")
    module = sys.modules.setdefault("_ui_lab", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def browser_page(site, request):
    lab = _lab_module()
    chromium = lab.find_chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        chromium = None
    if chromium is None:
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail("CI=true and no Chromium (or Playwright): .ci/run must install it", pytrace=False)
        pytest.skip("no Chromium on PATH (sudo apt-get install chromium) or no playwright package")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    playwright = request.getfixturevalue("sync_playwright_session")  # shared with tests/ui (tests/conftest.py)
    browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=lab.CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requests: list[str] = []

    def refuse_the_network(route):
        if route.request.url.startswith(("file:", "data:", "about:")):
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()

    context.route("**/*", refuse_the_network)
    try:
        yield context.new_page(), requests
    finally:
        browser.close()


def _open(browser_page, path: Path):
    pg, requests = browser_page
    requests.clear()
    pg.goto(path.as_uri())
    pg.wait_for_load_state("load")
    return pg, requests


@pytest.mark.parametrize("path", CHAPTERS, ids=_id)
def test_each_chapter_page_renders_in_chromium(browser_page, path):
    pg, requests = _open(browser_page, page(path))
    assert pg.title().strip() and pg.locator("article h1").count() >= 1
    broken = pg.evaluate("[...document.querySelectorAll('article img')].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert not broken, f"{_id(path)}: images that did not load: {broken[:5]}"
    pg.screenshot(path=str(ARTIFACTS / f"{path.stem}.png"))
    first = pg.locator("article img").first
    if first.count():
        first.scroll_into_view_if_needed()
        pg.screenshot(path=str(ARTIFACTS / f"{path.stem}-figure.png"))
    assert not requests, f"{_id(path)} asked the network for {requests[:5]}"


def test_search_works_from_the_files_alone(browser_page):
    pg, requests = _open(browser_page, SITE / "search.html")
    word = "exercises"
    pg.goto((SITE / "search.html").as_uri() + f"?q={word}")
    pg.wait_for_selector("#search-results li", timeout=30_000)
    hits = pg.locator("#search-results li a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert any(h.startswith("chapters/") for h in hits), f"searching {word!r} finds no chapter: {hits[:10]}"
    pg.screenshot(path=str(ARTIFACTS / "search.png"))
    assert not requests, f"search asked the network for {requests[:5]}"


def test_a_deck_moves_with_the_keyboard(browser_page):
    path = CHAPTERS[0]
    pg, requests = _open(browser_page, SITE / "slides" / f"{path.stem}.html")
    assert pg.evaluate("document.querySelectorAll('section.on').length") == 1
    assert pg.evaluate("[...document.querySelectorAll('section')].indexOf(document.querySelector('section.on'))") == 0
    pg.keyboard.press("ArrowRight")
    assert pg.evaluate("[...document.querySelectorAll('section')].indexOf(document.querySelector('section.on'))") == 1
    pg.screenshot(path=str(ARTIFACTS / f"slides-{path.stem}.png"))
    assert not requests


def test_the_workflow_runs_the_tests_on_three_systems_and_publishes_the_site():
    """.github/workflows/ci.yml (untried here): make test on Linux and macOS, the same steps by hand on
    Windows, and Pages from the site the Linux run's tests built."""
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    test = workflow["jobs"]["test"]
    assert set(test["strategy"]["matrix"]["os"]) == {"ubuntu-latest", "macos-latest", "windows-latest"}
    steps = test["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "make test" in runs and "-m pytest" in runs
    pages = [s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert len(pages) == 1 and pages[0]["with"]["path"] == str(SITE.relative_to(REPO)).replace("\\", "/")
    assert "Linux" in pages[0]["if"]
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in workflow["jobs"]["pages"]["steps"])
