"""A classroom load test: simulated learners run a chapter at once through the workshop's hub.

Each simulated learner is a browser without the pixels (``classroom.hub.Learner``): it opens the
hub's login page through the proxy, sends the form with its ``_xsrf`` value, follows the hub to
its own server (spawned for it, with its own home and copy of the course), opens JupyterLab
(which completes the OAuth handshake and sets the server's cookies), then starts a kernel through
``/user/<name>/api/kernels`` and sends every code cell of a chapter as an ``execute_request``
over the kernel's websocket (``/user/<name>/api/kernels/<id>/channels``), as JupyterLab's Run All
does. It collects the outputs and every error, and saves the executed notebook through the
contents API, as the browser's save does.

The report (``LoadReport``, ``format_report``):

- learners whose server started, and chapters that finished clean (no error output, every cell run);
- time per chapter with the whole class running it, against ONE learner alone, measured first in
  the same run on the same hub (a ratio from one run: both saw the same machine);
- peak resident memory (RSS) of each learner's server and kernels, of all learners together, of
  the hub itself (hub, proxy, idle culler), and of the whole machine (used = total - available);
  CPU seconds per learner; the machine's load average before and after (other work shows there);
- every process the hub started, checked gone afterwards (``leftovers`` names any that had to be
  killed or are still there).

Timings depend on the machine and on what else runs on it: they are reported, never asserted.
RSS counts pages shared between processes (the Python libraries) once per process, so the sums
overstate the true total a little: a slight overestimate of what a per-user memory limit (a
cgroup) counts, which is the safe side for sizing one.

    python -m classroom.loadtest --learners 8               # prints the Markdown table
    python -m classroom.loadtest --learners 2 --chapter chapters/01_concepts.ipynb
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import psutil
import websocket

from classroom.hub import Hub, HubError, Learner
from compresskit.measure import clock

REPO = Path(__file__).resolve().parents[1]
# Chapter 7 is the course's cheapest chapter (about 20 s alone on the 2-core CI machine, with
# chapter 1); 8 learners running it at once fit in a few minutes there.
CHAPTER = "chapters/07_super_resolution.ipynb"
CELL_TIMEOUT_S = 300.0  # nbval's per-cell limit in pyproject.toml
MIB = 1024 * 1024


class KernelDied(RuntimeError):
    """The kernel went away (killed, crashed, restarted) while a cell ran."""


# --- one learner's kernel, over the websocket -------------------------------------------------


def start_kernel(learner: Learner, cwd: str = "chapters", kernel_name: str = "compresskit") -> str:
    """POST /user/<name>/api/kernels (the browser's cookies and _xsrf header): a new kernel whose
    working directory is ``cwd`` in the learner's home. Returns its id."""
    response = learner.server_request("POST", "api/kernels", json={"name": kernel_name, "path": cwd})
    if response.status_code != 201:
        raise HubError(f"{learner.name}: starting a kernel answered {response.status_code}: {response.text[:200]}")
    return response.json()["id"]


def restart_kernel(learner: Learner, kernel_id: str) -> int:
    """The Restart Kernel menu: POST /api/kernels/<id>/restart; returns the HTTP status."""
    return learner.server_request("POST", f"api/kernels/{kernel_id}/restart").status_code


def _cookie_header(learner: Learner) -> str:
    """The cookies a browser sends to /user/<name>/...: the session id and the server's own."""
    prefix = f"/user/{learner.name}/"
    return "; ".join(f"{c.name}={c.value}" for c in learner.session.cookies if prefix.startswith(c.path.rstrip("/") + "/"))


class KernelChannel:
    """The kernel's websocket (Jupyter's JSON messages, all channels multiplexed), opened with
    the learner's cookies and the hub's Origin, as JupyterLab opens it."""

    def __init__(self, learner: Learner, kernel_id: str, timeout: float = 60.0) -> None:
        self.learner = learner
        self.kernel_id = kernel_id
        self.session_id = uuid.uuid4().hex
        base = learner.hub.base_url
        url = base.replace("http", "ws", 1) + f"/user/{learner.name}/api/kernels/{kernel_id}/channels?session_id={self.session_id}"
        self.ws = websocket.create_connection(url, header=[f"Cookie: {_cookie_header(learner)}"], origin=base,
                                              timeout=timeout)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # a socket the server already closed
            pass

    def send(self, channel: str, msg_type: str, content: dict) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": msg_type, "username": self.learner.name, "session": self.session_id,
                  "version": "5.3", "date": ""}
        self.ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                                 "channel": channel, "buffers": []}))
        return msg_id

    def receive(self, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from the kernel in time")
        self.ws.settimeout(remaining)
        try:
            text = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            raise TimeoutError("no answer from the kernel in time") from None
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError) as error:
            raise KernelDied(f"the kernel's websocket closed: {error}") from None
        if not text:
            raise KernelDied("the kernel's websocket closed")
        message = json.loads(text)
        if message["header"]["msg_type"] == "status" and \
                message["content"].get("execution_state") in ("restarting", "dead", "autorestarting"):
            raise KernelDied(f"kernel {message['content']['execution_state']}")
        return message

    def wait_ready(self, timeout: float = 120.0) -> None:
        """kernel_info_request until the kernel answers (it may still be starting)."""
        deadline = time.monotonic() + timeout
        msg_id = self.send("shell", "kernel_info_request", {})
        while True:
            message = self.receive(deadline)
            if message["header"]["msg_type"] == "kernel_info_reply" and message["parent_header"].get("msg_id") == msg_id:
                return

    def execute(self, code: str, timeout: float = CELL_TIMEOUT_S) -> tuple[list, str | None]:
        """Run one cell; returns (its outputs as notebook outputs, the error text or None).
        Waits for the reply and for the kernel to go idle, so every output is collected."""
        deadline = time.monotonic() + timeout
        msg_id = self.send("shell", "execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})
        outputs, error, replied, idle = [], None, False, False
        while not (replied and idle):
            message = self.receive(deadline)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["header"]["msg_type"], message["content"]
            if kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append(nbformat.v4.output_from_msg(message))
                if kind == "error":
                    error = f"{content['ename']}: {content['evalue']}"
            elif kind == "clear_output":
                outputs.clear()
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
                if content.get("status") != "ok" and error is None:
                    error = f"execute_reply status {content.get('status')}: {content.get('ename', '')} {content.get('evalue', '')}".strip()
        return outputs, error


# --- a chapter, run end to end --------------------------------------------------------------


@dataclass
class ChapterRun:
    """One run of a notebook in one kernel: how long, how far, what went wrong."""

    learner: str
    path: str
    kernel_id: str = ""
    seconds: float = float("nan")
    cells: int = 0
    cells_run: int = 0
    errors: list[str] = field(default_factory=list)
    reconnects: int = 0  # kernel websockets lost while the kernel started, and opened again
    saved: bool = False
    notebook: nbformat.NotebookNode | None = field(default=None, repr=False)

    @property
    def clean(self) -> bool:
        """Every code cell ran, none printed an error, and the result was saved."""
        return not self.errors and self.cells_run == self.cells > 0 and self.saved


def _open_channel(learner: Learner, run: ChapterRun, attempts: int = 3) -> KernelChannel:
    """The kernel's websocket, ready for cells. When it is lost while the kernel starts (a busy
    server, a kernel restarted on new ports), open it again, as JupyterLab reconnects; each
    reconnection is counted in ``run.reconnects`` and shown in the report."""
    for attempt in range(attempts):
        channel = KernelChannel(learner, run.kernel_id)
        try:
            channel.wait_ready()
            return channel
        except KernelDied:
            channel.close()
            if attempt == attempts - 1:
                raise
            run.reconnects += 1
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def read_notebook(learner: Learner, path: str) -> nbformat.NotebookNode:
    """The notebook at ``path`` in the learner's home, as JupyterLab opens it (contents API)."""
    response = learner.contents(path)
    if response.status_code != 200:
        raise HubError(f"{learner.name}: GET contents {path} answered {response.status_code}")
    return nbformat.from_dict(response.json()["content"])


def save_notebook(learner: Learner, path: str, notebook: nbformat.NotebookNode) -> int:
    """Save as the browser does (PUT contents); returns the HTTP status."""
    return learner.save(path, {"type": "notebook", "format": "json", "content": notebook}).status_code


def run_chapter(learner: Learner, path: str = CHAPTER, *, kernel_id: str | None = None, save_as: str | None = None,
                on_cell=None, cell_timeout: float = CELL_TIMEOUT_S) -> ChapterRun:
    """Open ``path`` from the learner's home, run every code cell in a kernel (a new one unless
    ``kernel_id``), stop at the first error as Run All does, and save the executed notebook to
    ``save_as`` (default: ``path``). ``on_cell(index)`` is called before each code cell.
    Never raises for what goes wrong in the kernel: it is in ``errors``."""
    run = ChapterRun(learner.name, path)
    channel = None
    start = clock()
    try:
        notebook = read_notebook(learner, path)
        code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
        run.cells = len(code_cells)
        run.kernel_id = kernel_id or start_kernel(learner, cwd=str(Path(path).parent))
        channel = _open_channel(learner, run)
        for index, cell in enumerate(code_cells):
            if on_cell is not None:
                on_cell(index)
            cell.outputs, error = channel.execute(cell.source, timeout=cell_timeout)
            cell.execution_count = index + 1
            run.cells_run += 1
            if error is not None:
                run.errors.append(f"{learner.name} {path} cell {index + 1}: {error}")
                break
        run.seconds = clock() - start
        run.notebook = notebook
        status = save_notebook(learner, save_as or path, notebook)
        run.saved = status == 200
        if not run.saved:
            run.errors.append(f"{learner.name}: saving {save_as or path} answered {status}")
    except (KernelDied, TimeoutError, HubError, OSError, websocket.WebSocketException) as error:
        where = f"cell {run.cells_run + 1}" if channel is not None else "opening the kernel"
        run.errors.append(f"{learner.name} {path} {where}: {type(error).__name__}: {error}")
    finally:
        if channel is not None:
            channel.close()
    return run


# --- processes and memory -------------------------------------------------------------------


# A busy loop for one process, which ends by itself after the given seconds (argv[1]).
_BUSY = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


class BusyLoad:
    """Generated load: ``processes`` busy-looping Python processes (default: two per CPU), as a
    workshop machine is while learners run chapters. Each ends by itself after ``seconds``, and
    leaving the ``with`` block kills any still running, whatever happened inside it.

        with BusyLoad(seconds=120) as load:   # every core busy, twice over
            ...                               # start or stop the hub, run a chapter
    """

    def __init__(self, processes: int | None = None, seconds: float = 120.0) -> None:
        if processes is not None and processes < 1:
            raise ValueError(f"`processes` must be at least 1; got {processes}")
        if not seconds > 0:
            raise ValueError(f"`seconds` must be positive; got {seconds}")
        self.count = processes or 2 * (psutil.cpu_count() or 1)
        self.seconds = seconds
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> BusyLoad:
        try:
            for _ in range(self.count):
                self.processes.append(subprocess.Popen([sys.executable, "-c", _BUSY, str(self.seconds)],
                                                       stdin=subprocess.DEVNULL))
        except BaseException:
            self.stop()
            raise
        return self

    def running(self) -> int:
        return sum(process.poll() is None for process in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait(10)

    def __exit__(self, *exc) -> None:
        self.stop()



HUB_GROUPS = ("hub", "proxy", "idle-culler")


def _group(process: psutil.Process, hub_pid: int, cache: dict[int, str]) -> str | None:
    """Whose is this process: a learner's name (server and kernels carry JUPYTERHUB_USER),
    'hub', 'proxy' or 'idle-culler'."""
    if process.pid in cache:
        return cache[process.pid]
    try:
        env = process.environ()
        cmdline = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if env.get("JUPYTERHUB_USER"):
        group = env["JUPYTERHUB_USER"]
    elif process.pid == hub_pid:
        group = "hub"
    elif "configurable-http-proxy" in cmdline:
        group = "proxy"
    elif env.get("JUPYTERHUB_SERVICE_NAME"):
        group = env["JUPYTERHUB_SERVICE_NAME"]
    else:
        group = "other"
    cache[process.pid] = group
    return group


def hub_tree(hub: Hub) -> list[psutil.Process]:
    """The hub and every process under it: proxy, culler, learners' servers and their kernels."""
    if hub.process is None or hub.process.poll() is not None:
        return []
    try:
        root = psutil.Process(hub.process.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kernel_process(hub: Hub, learner: str, kernel_id: str) -> psutil.Process | None:
    """The process of a learner's kernel (its command line names kernel-<id>.json), wherever it
    runs: under the hub, or orphaned by a hub that crashed (found by the hub's marker)."""
    for process in hub.processes():
        try:
            if process.environ().get("JUPYTERHUB_USER") == learner and any(kernel_id in a for a in process.cmdline()):
                return process
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return None


class MemorySampler:
    """Samples, every ``interval`` s in a thread, the RSS of every process under the hub, summed
    per owner (each learner, hub, proxy, culler), and the machine's used memory; keeps the peaks
    of those sums and every process it saw (to check afterwards that none is left)."""

    def __init__(self, hub: Hub, interval: float = 0.5) -> None:
        self.hub = hub
        self.interval = interval
        self.peak: dict[str, int] = {}
        self.peak_part: dict[tuple[str, str], int] = {}  # (owner, "server" or "kernel") -> peak RSS
        self.peak_learners_total = 0
        self.peak_hub_total = 0
        self.machine_baseline = psutil.virtual_memory().total - psutil.virtual_memory().available
        self.machine_peak = self.machine_baseline
        self.seen: dict[int, tuple[float, str]] = {}  # pid -> (create_time, command), for the leftovers check
        self._cpu: dict[int, tuple[str, float]] = {}  # pid -> (owner, user + system CPU seconds so far)
        self._groups: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def sample(self) -> dict[str, int]:
        hub_pid = self.hub.process.pid if self.hub.process is not None else -1
        sums: dict[str, int] = {}
        parts: dict[tuple[str, str], int] = {}
        for process in hub_tree(self.hub):
            group = _group(process, hub_pid, self._groups)
            try:
                rss = process.memory_info().rss
                times = process.cpu_times()
                # The command now, not when first seen: a kernel sampled between the server's fork
                # and its exec still shows the server's command line, and was counted as server.
                command = " ".join(process.cmdline())[:160]
                if self.seen.get(process.pid, (None, None))[1] != command:
                    self.seen[process.pid] = (process.create_time(), command)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if group is not None:
                self._cpu[process.pid] = (group, times.user + times.system)
                sums[group] = sums.get(group, 0) + rss
                part = (group, "kernel" if "ipykernel" in command else "server")
                parts[part] = parts.get(part, 0) + rss
        for part, total in parts.items():
            self.peak_part[part] = max(self.peak_part.get(part, 0), total)
        for group, total in sums.items():
            self.peak[group] = max(self.peak.get(group, 0), total)
        learners = sum(v for k, v in sums.items() if k not in HUB_GROUPS and k != "other")
        self.peak_learners_total = max(self.peak_learners_total, learners)
        self.peak_hub_total = max(self.peak_hub_total, sum(sums.get(k, 0) for k in HUB_GROUPS))
        memory = psutil.virtual_memory()
        self.machine_peak = max(self.machine_peak, memory.total - memory.available)
        return sums

    def cpu_seconds(self, group: str) -> float:
        """CPU seconds (user + system) used by ``group``'s processes, as last sampled."""
        return sum(seconds for owner, seconds in self._cpu.values() if owner == group)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def still_running(self) -> list[str]:
        """Processes the sampler saw under the hub that are still alive (same pid and start time)."""
        alive = []
        for pid, (created, command) in self.seen.items():
            try:
                process = psutil.Process(pid)
                if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {command}")
            except psutil.NoSuchProcess:
                continue
        return alive


# --- the load test ---------------------------------------------------------------------------


@dataclass
class LearnerResult:
    name: str
    started: bool = False
    login_s: float = float("nan")  # login form sent until JupyterLab opened on their own server
    run: ChapterRun | None = None
    peak_rss: int = 0  # bytes, server + kernels
    peak_server_rss: int = 0  # bytes, the single-user server alone
    peak_kernel_rss: int = 0  # bytes, the kernels alone
    cpu_s: float = float("nan")  # CPU seconds of server + kernels, login to saved chapter
    error: str = ""

    @property
    def clean(self) -> bool:
        return self.started and self.run is not None and self.run.clean


@dataclass
class LoadReport:
    chapter: str
    learners: list[LearnerResult]
    solo: LearnerResult
    peak_learners_total: int = 0
    peak_hub: dict[str, int] = field(default_factory=dict)
    peak_hub_total: int = 0
    machine_baseline: int = 0
    machine_peak: int = 0
    machine_total: int = 0
    cpus: int = 0
    load_average: tuple[float, float] = (float("nan"), float("nan"))  # 1-minute, at the start and at the end
    wall_s: float = float("nan")
    leftovers: list[str] = field(default_factory=list)
    busy: int = 0  # busy processes generated for the whole test (BusyLoad); 0: none

    @property
    def started(self) -> int:
        return sum(r.started for r in self.learners)

    @property
    def clean(self) -> int:
        return sum(r.clean for r in self.learners)

    @property
    def errors(self) -> list[str]:
        found = []
        for result in [self.solo, *self.learners]:
            if result.error:
                found.append(f"{result.name}: {result.error}")
            if result.run is not None:
                found += result.run.errors
        return found

    def chapter_seconds(self) -> list[float]:
        return [r.run.seconds for r in self.learners if r.clean]


def _learner_session(hub: Hub, name: str, chapter: str, barrier: threading.Barrier | None) -> LearnerResult:
    """One learner, start to end: log in, get a server, run the chapter, save it."""
    result = LearnerResult(name)
    learner = Learner(hub, name)
    try:
        if barrier is not None:
            barrier.wait(timeout=120)  # the class logs in together
        start = clock()
        learner.login()
        learner.start_server()
        result.login_s = clock() - start
        result.started = True
        result.run = run_chapter(learner, chapter)
    except (HubError, OSError, threading.BrokenBarrierError) as error:
        result.error = f"{type(error).__name__}: {error}"
    except Exception as error:  # a load test reports every failure, it does not stop at one
        result.error = f"unexpected {type(error).__name__}: {error}"
    return result


def run_load_test(folder: Path | str, *, learners: int = 8, chapter: str = CHAPTER, password: str | None = None,
                  env: dict[str, str] | None = None, interval: float = 0.5, busy: int = 0) -> LoadReport:
    """Start a hub with its state in ``folder``; one learner runs ``chapter`` alone (the
    reference time and the per-learner memory alone), their server is stopped, then
    ``learners`` learners log in together and each runs it in their own kernel. The hub and
    everything it started are stopped at the end, and checked gone. ``env`` goes to the hub (and
    to learners' servers and kernels where the config's env_keep lets it: OMP_NUM_THREADS, ...).
    ``busy`` > 0 runs all of it, the learner alone included, beside that many busy processes
    (BusyLoad), as on a workshop machine that is doing something else too."""
    if learners < 1:
        raise ValueError(f"`learners` must be at least 1; got {learners}")
    if busy < 0:
        raise ValueError(f"`busy` must be 0 (no generated load) or more; got {busy}")
    if busy:
        with BusyLoad(busy, seconds=3600) as load:
            report = run_load_test(folder, learners=learners, chapter=chapter, password=password, env=env,
                                   interval=interval)
            report.busy = load.running()  # those still busy at the end: all of them, unless one died
        return report
    if not (REPO / chapter).is_file():
        raise ValueError(f"`chapter` must be a notebook of the course, relative to the repository; got {chapter!r}")
    password = password or uuid.uuid4().hex
    hub = Hub(folder, password=password, env=env)
    memory = psutil.virtual_memory()
    report = LoadReport(chapter, [], LearnerResult("solo"), machine_total=memory.total, cpus=psutil.cpu_count() or 0)
    sampler = None
    load_before = psutil.getloadavg()[0]
    start = clock()
    try:
        hub.start()
        sampler = MemorySampler(hub, interval).start()
        report.solo = _learner_session(hub, "solo", chapter, None)
        sampler.sample()
        _record_memory(report.solo, sampler)
        if report.solo.started:
            hub.api("DELETE", "users/solo/server")
            _wait_stopped(hub, "solo")
        names = [f"learner{i:02d}" for i in range(1, learners + 1)]
        barrier = threading.Barrier(learners)
        with ThreadPoolExecutor(max_workers=learners, thread_name_prefix="learner") as pool:
            report.learners = list(pool.map(lambda n: _learner_session(hub, n, chapter, barrier), names))
        sampler.sample()
        for result in report.learners:
            _record_memory(result, sampler)
    finally:
        _finish(report, hub, sampler, start, load_before)
    return report


def _finish(report: LoadReport, hub: Hub, sampler: MemorySampler | None, start: float, load_before: float) -> None:
    """Stop the hub and everything it started; fill in the report's totals and what was left."""
    if sampler is not None:
        sampler.stop()
    killed = hub.stop()
    report.wall_s = clock() - start
    report.load_average = (load_before, psutil.getloadavg()[0])
    report.leftovers = [f"killed after the hub stopped: {k}" for k in killed]
    if sampler is not None:
        report.peak_hub = {k: sampler.peak.get(k, 0) for k in HUB_GROUPS}
        report.peak_hub_total = sampler.peak_hub_total
        report.peak_learners_total = sampler.peak_learners_total
        report.machine_baseline = sampler.machine_baseline
        report.machine_peak = sampler.machine_peak
        report.leftovers += [f"still running: {p}" for p in sampler.still_running()]
    report.leftovers += [f"still running: {p.pid} {' '.join(p.cmdline())[:160]}" for p in _alive(hub.processes())]


def _record_memory(result: LearnerResult, sampler: MemorySampler) -> None:
    result.peak_rss = sampler.peak.get(result.name, 0)
    result.peak_server_rss = sampler.peak_part.get((result.name, "server"), 0)
    result.peak_kernel_rss = sampler.peak_part.get((result.name, "kernel"), 0)
    result.cpu_s = sampler.cpu_seconds(result.name)


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return alive


def _wait_stopped(hub: Hub, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not hub.api("GET", f"users/{name}").get("servers"):
            return
        time.sleep(0.5)
    raise HubError(f"{name}'s server did not stop within {timeout:.0f} s")


# --- the report ---------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / MIB:,.0f}"


def _s(x: float) -> str:
    return "-" if x != x else f"{x:.1f}"


def _s2(x: float) -> str:
    return "-" if x != x else f"{x:.2f}"


def format_report(report: LoadReport) -> str:
    """The load test as Markdown: a summary table, one row per learner, and any error."""
    times = report.chapter_seconds()
    solo = report.solo.run.seconds if report.solo.clean else float("nan")
    median = statistics.median(times) if times else float("nan")
    slowest = max(times) if times else float("nan")
    n = len(report.learners)
    per_learner = [r.peak_rss for r in report.learners if r.peak_rss]
    cpus = [r.cpu_s for r in report.learners if r.clean]
    solo_cores = report.solo.cpu_s / (report.solo.login_s + solo) if report.solo.clean else float("nan")
    hub = report.peak_hub
    lines = [
        f"{n} simulated learners logged in through the hub's proxy together, each got their own server",
        f"and ran `{report.chapter}` end to end in their own kernel (every code cell over the kernel's",
        "websocket, then saved), after one learner ran it alone on the same hub. Times depend on the",
        "machine and on whatever else runs on it: they are measured, never asserted.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| learners whose server started | {report.started} of {n} |",
        f"| chapters that finished clean | {report.clean} of {n} |",
        f"| chapter time, one learner alone (s) | {_s(solo)} |",
        f"| chapter time, {n} at once: median / slowest (s) | {_s(median)} / {_s(slowest)} |",
        f"| slowdown at {n} learners (median / alone) | {_s(median / solo) if solo == solo else '-'}x |",
        f"| login to JupyterLab, {n} at once: median / slowest (s) | "
        f"{_s(statistics.median([r.login_s for r in report.learners if r.started]) if report.started else float('nan'))} / "
        f"{_s(max([r.login_s for r in report.learners if r.started], default=float('nan')))} |",
        f"| peak memory of one learner alone, server + kernel (MiB RSS) | {_mib(report.solo.peak_rss)} |",
        f"| of which the learner's server / kernel, alone (MiB RSS) | {_mib(report.solo.peak_server_rss)} / "
        f"{_mib(report.solo.peak_kernel_rss)} |",
        f"| peak memory per learner at {n} at once: median / largest (MiB RSS) | "
        f"{_mib(statistics.median(per_learner)) if per_learner else '-'} / {_mib(max(per_learner, default=0))} |",
        f"| CPU seconds per learner, login to saved chapter (server + kernel): alone / median at {n} | "
        f"{_s(report.solo.cpu_s)} / {_s(statistics.median(cpus)) if cpus else '-'} |",
        f"| cores one learner kept busy on average, alone (CPU s / wall s) | {_s2(solo_cores)} |",
        f"| peak memory of all {n} learners together (MiB RSS) | {_mib(report.peak_learners_total)} |",
        f"| the hub's own memory: hub / proxy / idle culler (MiB RSS) | {_mib(hub.get('hub', 0))} / "
        f"{_mib(hub.get('proxy', 0))} / {_mib(hub.get('idle-culler', 0))} |",
        f"| whole machine, memory in use: before / peak (MiB, of {_mib(report.machine_total)}; includes other users) | "
        f"{_mib(report.machine_baseline)} / {_mib(report.machine_peak)} |",
        f"| generated load: busy processes beside the hub for the whole test | {report.busy} |",
        f"| CPUs; load average (1 min) before / after: other work on the machine shows here | "
        f"{report.cpus}; {_s2(report.load_average[0])} / {_s2(report.load_average[1])} |",
        f"| whole load test, hub start to everything stopped (s) | {_s(report.wall_s)} |",
        f"| kernel websockets lost while the kernel started, then reopened (as JupyterLab does) | "
        f"{sum(r.run.reconnects for r in [report.solo, *report.learners] if r.run)} |",
        f"| processes left running afterwards | {len(report.leftovers)} |",
        "",
        "| learner | server started | login to JupyterLab (s) | chapter (s) | cells run | clean | peak MiB: server + kernel (server / kernel) | CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in [report.solo, *report.learners]:
        run = r.run
        lines.append(f"| {r.name}{' (alone)' if r is report.solo else ''} | {'yes' if r.started else 'no'} | "
                     f"{_s(r.login_s)} | {_s(run.seconds) if run else '-'} | "
                     f"{f'{run.cells_run}/{run.cells}' if run else '-'} | {'yes' if r.clean else 'NO'} | "
                     f"{_mib(r.peak_rss)} ({_mib(r.peak_server_rss)} / {_mib(r.peak_kernel_rss)}) | {_s(r.cpu_s)} |")
    if report.errors:
        lines += ["", "Errors:", *[f"- {e}" for e in report.errors]]
    if report.leftovers:
        lines += ["", "Left running after the hub stopped (then killed):", *[f"- {p}" for p in report.leftovers]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulated learners run a chapter at once through the workshop's hub.")
    parser.add_argument("--learners", type=int, default=8, help="how many learners at once (default %(default)s)")
    parser.add_argument("--chapter", default=CHAPTER, help="the notebook each runs (default %(default)s)")
    parser.add_argument("--dir", default=None, help="the hub's folder (default: a temporary one, removed after)")
    parser.add_argument("--busy", type=int, default=0,
                        help="run it all beside this many busy processes (generated load; default none)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the hub and, if its config keeps it, the learners' "
                             "kernels, e.g. --env OMP_NUM_THREADS=1 (repeatable)")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="compresskit-loadtest-") as scratch:
        report = run_load_test(args.dir or scratch, learners=args.learners, chapter=args.chapter, env=env,
                               busy=args.busy)
    print(format_report(report))
    return 0 if report.clean == len(report.learners) and report.solo.clean and not report.leftovers else 1


if __name__ == "__main__":
    sys.exit(main())
