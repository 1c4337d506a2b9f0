"""Drive the course's JupyterLab the way a learner does, and report what the page shows.

`LabServer` starts the course's own JupyterLab (this Python's environment, the `compresskit`
kernel) on a free loopback port with a token, on a folder of notebooks, with its settings,
workspaces, runtime, config and IPython folders all in a temporary directory, and with
nothing fetched from the network. `stop()` shuts it down through the server's API and then
kills every process it started, by PID.

`check_in_lab(page, server, path, expect_widgets)` is the whole check: it opens a notebook,
waits for the idle course kernel, clears the outputs and runs every cell through the menus
(`run_all` returns a `NotebookRun` listing error outputs, cells that never ran, dialogs and
widgets that did not render), then presses keys on the first slider of an explorer
(`move_first_slider`) and requires its summary to change, while sampling the kernel's
memory. It returns a `Verdict` whose `failures` the tests assert on.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

KERNEL_NAME = "compresskit"
KERNEL_DISPLAY_NAME = "Python (compresskit)"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# Chromium flags: headless, no sandbox (CI runs as root), and nothing that phones home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
CHROMIUM_CANDIDATES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]


def find_chromium() -> str | None:
    """The path of a system Chromium: $COMPRESSKIT_CHROMIUM, else the first one on PATH."""
    explicit = os.environ.get("COMPRESSKIT_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=1))


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, ask for SIGTERM if the test process dies, so a
    killed pytest leaves no server behind (its kernels exit when their parent goes)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LabServer:
    """A JupyterLab server on 127.0.0.1 serving `root`, isolated in a temporary directory."""

    def __init__(self, root: Path, log_path: Path) -> None:
        self.root = Path(root)
        self.port = free_loopback_port()
        self.token = secrets.token_hex(24)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.home = Path(tempfile.mkdtemp(prefix="compresskit-lab-home-"))
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log = None

    # -- environment -------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        folders = {
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTER_DATA_DIR": "data",  # the user data dir; <sys.prefix>/share/jupyter (kernelspec, extensions) stays on the path
            "JUPYTERLAB_SETTINGS_DIR": "settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
            "IPYTHONDIR": "ipython",
        }
        for variable, name in folders.items():
            (self.home / name).mkdir(parents=True, exist_ok=True)
            env[variable] = str(self.home / name)
        env.pop("JUPYTER_PATH", None)  # no notebook extensions or kernels from elsewhere
        env.pop("JUPYTER_TOKEN", None)
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        return env

    def _write_config(self) -> None:
        # The front end's news and update plugin stays off (the server side is off by flags).
        _write_json(
            self.home / "config" / "labconfig" / "page_config.json",
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}},
        )
        _write_json(
            self.home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
            {"fetchNews": "false", "checkForUpdates": False},
        )

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.allow_root=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            "--LabApp.expose_app_in_browser=True",  # lets the checks read the notebook model
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        self._write_config()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            self.command(), env=self._environment(), cwd=self.root,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.process.returncode}; see {self.log_path}")
            try:
                self.api("GET", "/api/status", timeout=2)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer on {self.base_url} within {timeout:.0f} s; see {self.log_path}")

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 10.0):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
        return json.loads(text) if text else None

    def descendants(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> list[str]:
        """Shut the server and its kernels down, whatever state they are in; return the
        description of any process that had to be killed after the shutdown API."""
        if self.process is None:
            return []
        started = self.descendants()  # kernels run in their own sessions: remember them now
        try:
            self.api("POST", "/api/shutdown", timeout=5)
        except Exception:
            pass  # a dead or hung server: the kill below handles it
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        procs = list(started)
        if self.process.poll() is None:
            procs.append(psutil.Process(self.process.pid))
        killed = []
        for proc in procs:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    killed.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
                    proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        psutil.wait_procs(started, timeout=10)
        if self._log:
            self._log.close()
        shutil.rmtree(self.home, ignore_errors=True)
        return killed

    # -- kernels -----------------------------------------------------------------------------

    def session_for(self, path: str) -> dict | None:
        for session in self.api("GET", "/api/sessions"):
            if session.get("path") == path:
                return session
        return None

    def kernel_process(self, kernel_id: str) -> psutil.Process | None:
        for proc in self.descendants():
            try:
                if any(kernel_id in arg for arg in proc.cmdline()):
                    return proc
            except psutil.NoSuchProcess:
                continue
        return None

    def kernel_memory(self, path: str) -> PeakMemory:
        """A sampler of the resident memory of the kernel running `path` (and its children)."""
        session = self.session_for(path)
        if session is None:
            raise RuntimeError(f"no kernel session for {path}")
        process = self.kernel_process(session["kernel"]["id"])
        if process is None:
            raise RuntimeError(f"no process for the kernel of {path}")
        return PeakMemory(process)

    def server_memory(self) -> PeakMemory:
        """A sampler of the resident memory of the server process alone (no kernels)."""
        return PeakMemory(psutil.Process(self.process.pid), include_children=False)

    def shut_down_session(self, path: str) -> None:
        session = self.session_for(path)
        if session is not None:
            self.api("DELETE", f"/api/sessions/{session['id']}")


class PeakMemory:
    """Sample the resident memory (RSS, from /proc via psutil) of a process, and of its
    children unless `include_children` is False, until stopped: first, peak and last value."""

    def __init__(self, process: psutil.Process, include_children: bool = True, interval: float = 0.1) -> None:
        self.process = process
        self.include_children = include_children
        self.interval = interval
        self.first_bytes = self.peak_bytes = self.last_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True) if self.include_children else []:
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._rss()
            except psutil.NoSuchProcess:
                return
            self.first_bytes = self.first_bytes or rss
            self.peak_bytes = max(self.peak_bytes, rss)
            self.last_bytes = rss
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ------------------------------------------------------------------------------------------
# What the page shows
# ------------------------------------------------------------------------------------------

@dataclass
class NotebookRun:
    """What one Run All left on the page."""

    path: str
    errors: list[str] = field(default_factory=list)          # error outputs: "cell 3: ZeroDivisionError: ..."
    not_run: list[int] = field(default_factory=list)         # code cells without an execution count
    widget_outputs: int = 0                                  # widget views the kernel displayed
    widget_problems: list[str] = field(default_factory=list) # widgets the page failed to render
    dialogs: list[str] = field(default_factory=list)         # e.g. "Kernel Restarting"
    seconds: float = 0.0
    cells: list[dict] = field(default_factory=list)          # the code cells as the front end holds them

    def problems(self) -> list[str]:
        found = [f"error output in {e}" for e in self.errors]
        if self.not_run and not self.errors:
            found.append(f"code cells never ran (kernel died?): {self.not_run}")
        found += [f"widget not rendered: {w}" for w in self.widget_problems]
        found += [f"dialog on the page: {d}" for d in self.dialogs]
        return found


_CELLS_JS = """(path) => {
  const app = window.jupyterapp;
  const panel = Array.from(app.shell.widgets('main')).find(w => w.context && w.context.path === path);
  if (!panel) return null;
  const cells = panel.content.model.cells;
  const found = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    const outputs = [];
    for (let j = 0; j < cell.outputs.length; j++) outputs.push(cell.outputs.get(j).toJSON());
    found.push({index: i, execution_count: cell.executionCount, source: cell.sharedModel.getSource(), outputs});
  }
  return found;
}"""

_RUNNING_PROMPTS_JS = """() => Array.from(document.querySelectorAll(
  '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt'))
  .filter(p => p.textContent.includes('[*]')).length"""

_KERNEL_JS = """(path) => {
  const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path);
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return kernel ? {name: panel.sessionContext.kernelDisplayName, status: kernel.status,
                   connection: kernel.connectionStatus} : null;
}"""


def kernel_state(page, path: str) -> dict | None:
    """{name, status, connection} of the kernel behind the open notebook `path`, or None."""
    return page.evaluate(_KERNEL_JS, path)


def kernel_idle(page, path: str) -> bool:
    state = kernel_state(page, path)
    return bool(state) and state["status"] == "idle" and state["connection"] == "connected"


def code_cells(page, path: str) -> list[dict]:
    cells = page.evaluate(_CELLS_JS, path)
    if cells is None:
        raise RuntimeError(f"{path} is not open in JupyterLab")
    return cells


def menu(page, top: str, item: str) -> None:
    """Click a main-menu entry, e.g. menu(page, "Run", "Run All Cells")."""
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel").get_by_text(top, exact=True).first.click()
    page.locator(".lm-Menu .lm-Menu-itemLabel").get_by_text(item, exact=True).first.click()


def open_notebook(page, server: LabServer, path: str, timeout_ms: int = 120_000) -> None:
    """Open `path` (relative to the server root) in a fresh workspace and wait for an idle kernel."""
    workspace = "ui-" + secrets.token_hex(4)  # a fresh workspace restores no other notebook
    page.goto(f"{server.base_url}/lab/workspaces/{workspace}/tree/{path}?reset&token={server.token}")
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=timeout_ms)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    while not kernel_idle(page, path):
        if time.monotonic() > deadline:
            dialogs = page.locator(".jp-Dialog").all_inner_texts()
            raise TimeoutError(f"{path}: the kernel is not idle after {timeout_ms / 1000:.0f} s: "
                               f"{kernel_state(page, path)}; dialogs: {dialogs}")
        page.wait_for_timeout(200)
    name = kernel_state(page, path)["name"]
    if name != KERNEL_DISPLAY_NAME:
        raise AssertionError(f"{path} opened with kernel {name!r}; the course kernel is {KERNEL_DISPLAY_NAME!r}")


def _wait_until_finished(page, path: str, started: float, timeout_s: float) -> None:
    """Wait until no cell shows [*] and the kernel is idle, twice in a row."""
    quiet_polls = 0
    while quiet_polls < 2:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{path}: cells still running after {timeout_s:.0f} s")
        running = page.evaluate(_RUNNING_PROMPTS_JS)
        idle = kernel_idle(page, path)
        quiet_polls = quiet_polls + 1 if (running == 0 and idle) else 0
        page.wait_for_timeout(250)


# The views of widgets displayed by cells (not outputs nested inside a widgets.Output): every
# other renderer marks its node with data-mime-type, the widget renderer does not.
WIDGET_VIEWS = ".jp-NotebookPanel .jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output:not([data-mime-type])"
NO_CONTROL = "no widget control rendered"

_WIDGET_VIEW_STATE_JS = """(el) => {
  const error = el.querySelector('.jupyter-widgets-error-widget');
  if (error) {
    error.click();  // the error widget shows its message when clicked
    return 'error widget: ' + error.textContent.replace(/\\s+/g, ' ').trim().slice(0, 300);
  }
  const text = el.innerText;
  for (const bad of ['Error displaying widget', 'Loading widget...'])
    if (text.includes(bad)) return text.trim().slice(0, 300);
  if (!el.querySelector('.widget-box, .widget-inline-hbox, .widget-html, .widget-output, .widget-label, .widget-button'))
    return '%s';
  return '';
}""" % NO_CONTROL


def _widget_problems(page, widget_outputs: int, settle_ms: int = 15_000) -> list[str]:
    """Widget views that show an error, never finish loading, or render no control."""
    views = page.locator(WIDGET_VIEWS)
    deadline = time.monotonic() + settle_ms / 1000
    while True:  # give the widget manager time to load models and render views
        states = views.evaluate_all(f"(els) => els.map({_WIDGET_VIEW_STATE_JS})")
        waiting = len(states) < widget_outputs or any(s.startswith("Loading widget") or s == NO_CONTROL for s in states)
        if not waiting or time.monotonic() > deadline:
            break
        page.wait_for_timeout(250)
    problems = [f"widget view {i}: {state}" for i, state in enumerate(states) if state]
    if len(states) < widget_outputs:
        problems.append(f"the kernel displayed {widget_outputs} widgets; the page shows {len(states)}")
    return problems


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _failing_line(error_output: dict) -> str:
    """The line the traceback points at ("----> 5 assert x > 4"), to name an empty AssertionError."""
    lines = _ANSI.sub("", "\n".join(error_output.get("traceback", []))).splitlines()
    arrows = [line.strip() for line in lines if line.lstrip().startswith("---->")]
    return f" (at: {arrows[-1].removeprefix('---->').strip()})" if arrows else ""


def run_all(page, path: str, timeout_s: float = 240.0) -> NotebookRun:
    """In the open notebook `path`: clear the outputs and Run All through the menus, wait
    until nothing runs, and report the errors, unrun cells and unrendered widgets."""
    menu(page, "Edit", "Clear Outputs of All Cells")
    started = time.monotonic()
    menu(page, "Run", "Run All Cells")
    page.wait_for_function(  # the run has begun: some prompt shows [*] or a number
        "() => Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt'))"
        ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))",
        timeout=30_000,
    )
    _wait_until_finished(page, path, started, timeout_s)
    run = NotebookRun(path=path, seconds=time.monotonic() - started, cells=code_cells(page, path))
    for cell in run.cells:
        if cell["execution_count"] is None and cell["source"].strip():
            run.not_run.append(cell["index"])
        for output in cell["outputs"]:
            if output.get("output_type") == "error":
                run.errors.append(f"cell {cell['index']}: {output.get('ename')}: {output.get('evalue')}{_failing_line(output)}")
            if WIDGET_MIME in output.get("data", {}):
                run.widget_outputs += 1
    run.widget_problems = _widget_problems(page, run.widget_outputs)
    run.dialogs = [t.strip() for t in page.locator(".jp-Dialog").all_inner_texts()]
    return run


@contextmanager
def notebook_open(page, server: LabServer, path: str) -> Iterator[None]:
    """Open `path` in the page; on leaving, shut its kernel down (pass or fail)."""
    try:
        open_notebook(page, server, path)
        yield
    finally:
        server.shut_down_session(path)


def run_notebook_in_lab(page, server: LabServer, path: str, timeout_s: float = 240.0) -> NotebookRun:
    """Open `path`, Run All, report; the kernel is shut down afterwards."""
    with notebook_open(page, server, path):
        return run_all(page, path, timeout_s)


# ------------------------------------------------------------------------------------------
# Moving an explorer's control with the keyboard
# ------------------------------------------------------------------------------------------

# The explorer's visible result, without the control's own readout (which always moves).
_EXPLORER_STATE_JS = """(el) => {
  const copy = el.cloneNode(true);
  copy.querySelectorAll('.widget-readout, .noUi-target, select, input').forEach(n => n.remove());
  const hash = (text) => { let h = 0; for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0; return h; };
  const images = Array.from(el.querySelectorAll('img')).map(i => 'img#' + hash(i.src));
  return copy.textContent.replace(/\\s+/g, ' ').trim() + ' | images: ' + images.join(',');
}"""


@dataclass
class ControlMove:
    keys: list[str]
    value_before: str
    value_after: str
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def move_first_slider(page, wait_ms: int = 6_000) -> ControlMove | None:
    """Focus the handle of the first slider of the first explorer that has one, press keys
    until its value moves, and return the explorer's visible state before and after (its
    summary text and plot images, not the slider's own readout). None when no widget
    output holds a slider."""
    outputs = page.locator(WIDGET_VIEWS)
    for i in range(outputs.count()):
        explorer = outputs.nth(i)
        if explorer.locator(".widget-slider .noUi-handle").count() == 0:
            continue
        handle = explorer.locator(".widget-slider .noUi-handle").first
        readout = explorer.locator(".widget-slider .widget-readout").first
        handle.scroll_into_view_if_needed()
        before, value_before = explorer.evaluate(_EXPLORER_STATE_JS), readout.inner_text()
        pressed = []
        for key in ("ArrowRight", "End", "Home"):  # a slider already at its maximum moves with Home
            handle.focus()
            page.keyboard.press(key)
            pressed.append(key)
            if readout.inner_text() != value_before:
                break
        deadline = time.monotonic() + wait_ms / 1000
        after = explorer.evaluate(_EXPLORER_STATE_JS)
        while after == before and time.monotonic() < deadline:
            page.wait_for_timeout(200)
            after = explorer.evaluate(_EXPLORER_STATE_JS)
        settle = time.monotonic() + 3.0  # let a plot that follows the summary arrive: wait for 0.5 s of calm
        while after != before and time.monotonic() < settle:
            page.wait_for_timeout(500)
            latest = explorer.evaluate(_EXPLORER_STATE_JS)
            if latest == after:
                break
            after = latest
        return ControlMove(pressed, value_before, readout.inner_text(), before, after)
    return None


# ------------------------------------------------------------------------------------------
# The whole check, as the chapter tests run it
# ------------------------------------------------------------------------------------------

EXPLORER_HINTS = ("compresskit.course.explorers", "ipywidgets")


def builds_widgets(notebook: Path) -> bool:
    """Whether a notebook's code mentions an explorer or ipywidgets (so widgets must appear)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return any(hint in source for hint in EXPLORER_HINTS)


@dataclass
class Verdict:
    """Everything that went wrong for one notebook, and what it cost."""

    failures: list[str]
    run: NotebookRun
    move: ControlMove | None
    kernel: PeakMemory   # the chapter's kernel (and its children)
    server: PeakMemory   # the JupyterLab server process alone


def check_in_lab(page, server: LabServer, path: str, expect_widgets: bool, timeout_s: float = 240.0) -> Verdict:
    """Run All `path` in the browser; if it shows widgets (or `expect_widgets`), check that
    they render and that moving the first control with the keyboard changes the explorer.
    The kernel's memory is sampled throughout; the kernel is shut down afterwards."""
    with notebook_open(page, server, path):
        with server.kernel_memory(path) as kernel, server.server_memory() as server_memory:
            run = run_all(page, path, timeout_s)
            failures = run.problems()
            move = None
            if expect_widgets and run.widget_outputs == 0 and not run.errors:
                shown = [(c["index"], [o.get("data", {}).get("text/plain", o["output_type"])[:80] for o in c["outputs"]])
                         for c in run.cells if any(hint in c["source"] for hint in ("explorer(", "widgets."))]
                failures.append(f"the notebook builds widgets but none was displayed; the cells that "
                                f"should show one hold (cell, outputs): {shown}")
            if run.widget_outputs and not run.widget_problems:
                move = move_first_slider(page)
                if move is None:
                    failures.append("no explorer has a slider to move (the browser test presses keys on the first one)")
                elif move.value_before == move.value_after:
                    failures.append(f"pressing {move.keys} on the slider did not change its value ({move.value_before!r})")
                elif not move.changed:
                    failures.append(f"the slider moved ({move.value_before!r} -> {move.value_after!r}) "
                                    f"but the explorer's summary and plot did not change: {move.before[:200]!r}")
    return Verdict(failures, run, move, kernel, server_memory)
