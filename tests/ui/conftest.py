"""Fixtures for the browser tests: one JupyterLab server and one headless Chromium per session.

Without a browser (or without the Playwright package) these tests are skipped with a message
that says what to install, except when CI=true, where a missing browser is a failure.
On a failed test the page is kept as a screenshot in tests/ui/artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .lab import CHROMIUM_ARGS, KERNEL_NAME, LabServer, find_chromium

UI_DIR = Path(__file__).resolve().parent
REPO = UI_DIR.parents[1]
ARTIFACTS = UI_DIR / "artifacts"
FIXTURES = UI_DIR / "fixtures"

# The fixture notebooks are broken on purpose: only the browser tests may run them, never nbval.
collect_ignore_glob = ["fixtures/*", "artifacts/*"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _missing(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true and {reason}: .ci/run must install the browser (apt-get install -y chromium)", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}. Install Debian's `chromium` package "
                "(sudo apt-get install chromium) or set COMPRESSKIT_CHROMIUM=/path/to/chromium")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the `playwright` Python package is not installed")
    path = find_chromium()
    if path is None:
        explicit = os.environ.get("COMPRESSKIT_CHROMIUM")
        _missing(f"COMPRESSKIT_CHROMIUM={explicit} is not a file" if explicit else "no Chromium found on PATH")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path, sync_playwright_session):
    # Playwright gives the browser a fresh temporary profile (user-data-dir) and deletes it.
    browser = sync_playwright_session.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def served_root(tmp_path_factory) -> Path:
    """A throw-away copy of chapters/ (and of the test fixtures) for the server to run."""
    root = tmp_path_factory.mktemp("lab-root")
    shutil.copytree(REPO / "chapters", root / "chapters", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(FIXTURES, root / "ui-fixtures")
    return root


@pytest.fixture(scope="session")
def lab(chromium_path, served_root):
    """The course's JupyterLab, shut down (API, then kill by PID) whatever the outcome."""
    server = LabServer(served_root, log_path=ARTIFACTS / "jupyterlab.log")
    try:
        server.start()
        kernels = server.api("GET", "/api/kernelspecs")["kernelspecs"]
        if KERNEL_NAME not in kernels:
            pytest.fail(f"kernelspec {KERNEL_NAME!r} is not installed in this environment (found {sorted(kernels)}); "
                        "run `make` or `.venv/bin/python -m ipykernel install --sys-prefix --name compresskit`",
                        pytrace=False)
        yield server
    finally:
        killed = server.stop()
        if killed:
            print(f"\nkilled after the shutdown API: {killed}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, request):
    """A fresh browser context and page per test; a screenshot is kept when the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    console_errors: list[str] = []
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
        (ARTIFACTS / f"{name}.page-errors.txt").write_text("\n".join(console_errors))
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as error:  # a crashed page must not hide the test's own failure
            print(f"\nno screenshot of {name}: {error}")
    context.close()


_MEMORY: dict[str, dict] = {}


@pytest.fixture(scope="session")
def kernel_memory_report():
    """Per-chapter kernel memory, written to tests/ui/artifacts/kernel_memory.json at the end."""
    yield _MEMORY
    if _MEMORY:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "kernel_memory.json").write_text(json.dumps(_MEMORY, indent=1))


def pytest_terminal_summary(terminalreporter):
    if not _MEMORY:
        return
    terminalreporter.section("per-learner cost: kernel memory per chapter (RSS, kernel and its children)")
    for name, row in sorted(_MEMORY.items()):
        terminalreporter.write_line(
            f"{name:28s} kernel peak {row['peak_mib']:5.0f} MiB (start {row['start_mib']:4.0f}, after {row['end_mib']:4.0f})   "
            f"server {row['server_peak_mib']:4.0f} MiB   Run All {row['run_all_s']:5.1f} s"
        )
