"""Faults a real class meets, each tried through the hub's proxy as learners' browsers meet them,
and each checked for what a learner could lose: saved notebooks, a running server, a kernel's state.

- a wrong password: refused, and nobody else notices;
- a learner's kernel killed (SIGKILL) in the middle of a chapter: the others carry on; the learner
  restarts the kernel and runs the chapter again, and their saved work is still there;
- a learner who runs the same chapter twice at once (two kernels): both finish, and the file
  saved last is one whole run, not a mix of the two;
- the hub restarted mid-session: stopped cleanly (the learners' servers stop with it and start
  again at their next visit, files intact), or killed (their servers and kernels carry on and the
  new hub picks them up, kernel state included).

One hub serves the module. The chapter is chapter 7 (the cheapest), as in the load test.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import nbformat
import psutil
import pytest

from classroom.hub import Hub, Learner, LoginRefused
from classroom.loadtest import (CHAPTER, KernelChannel, kernel_process, read_notebook, restart_kernel, run_chapter,
                                save_notebook, start_kernel)

PASSWORD = "faults-workshop-2026"
OTHER = "chapters/01_concepts.ipynb"  # the notebook the hub-restart tests edit and save
TRAINING_CELL = 6  # chapter 7's first training cell (0-based among code cells): the kill lands in a busy kernel

pytestmark = pytest.mark.usefixtures("hub_prerequisites")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("faults"), password=PASSWORD)
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        assert hub.processes() == []  # nothing left, whatever the tests did


def _learner(hub: Hub, name: str) -> Learner:
    learner = Learner(hub, name)
    learner.login()
    learner.start_server()
    return learner


@pytest.fixture(scope="module")
def ada(hub):
    return _learner(hub, "ada")


@pytest.fixture(scope="module")
def bob(hub):
    return _learner(hub, "bob")


def code_outputs(notebook: nbformat.NotebookNode) -> list:
    return [cell.outputs for cell in notebook.cells if cell.cell_type == "code"]


def stdout(outputs: list) -> str:
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream")


def server_process(hub: Hub, name: str) -> psutil.Process:
    found = [p for p in hub.processes() if p.environ().get("JUPYTERHUB_USER") == name
             and "jupyterhub.singleuser" in " ".join(p.cmdline())]
    assert len(found) == 1, found
    return found[0]


def test_a_wrong_password_is_refused_and_nobody_notices(hub, ada):
    before = ada.server_status()
    with pytest.raises(LoginRefused):
        Learner(hub, "ada", password="not-the-password").login()  # someone tries ada's name
    with pytest.raises(LoginRefused):
        Learner(hub, "mallory", password="not-the-password").login()
    assert "mallory" not in {user["name"] for user in hub.api("GET", "users")}
    assert not hub.home("mallory").exists()
    after = ada.server_status()
    assert after["ready"] and after["started"] == before["started"]  # ada's server untouched
    assert ada.contents(CHAPTER).status_code == 200  # and her session still valid


@pytest.fixture(scope="module")
def busy_class(hub, ada, bob):
    """ada runs chapter 7 twice at once, in two kernels, while bob runs it once and his kernel is
    SIGKILLed during the first training cell. bob saved a note in the chapter beforehand."""
    notebook = read_notebook(bob, CHAPTER)
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell("bob's notes, saved before the crash"))
    assert save_notebook(bob, CHAPTER, notebook) == 200
    bob_kernel = start_kernel(bob)
    killed: dict[str, object] = {}

    def kill_during_training(index: int) -> None:
        if index == TRAINING_CELL:
            process = kernel_process(hub, "bob", bob_kernel)
            killed["process"] = process
            killed["at"] = time.time()
            threading.Timer(1.0, process.send_signal, [signal.SIGKILL]).start()

    with ThreadPoolExecutor(3) as pool:
        ada_runs = [pool.submit(run_chapter, ada, CHAPTER) for _ in range(2)]
        bob_run = pool.submit(run_chapter, bob, CHAPTER, kernel_id=bob_kernel, on_cell=kill_during_training)
        return {"ada": [f.result() for f in ada_runs], "bob": bob_run.result(), "bob_kernel": bob_kernel, **killed}


def test_a_killed_kernel_leaves_the_others_running_and_the_learner_restarts(hub, bob, busy_class):
    died = busy_class["bob"]
    assert not died.clean and any("KernelDied" in error for error in died.errors), died.errors
    assert TRAINING_CELL <= died.cells_run < died.cells  # it died mid-chapter, where we killed it
    assert not busy_class["process"].is_running()

    # The others were not disturbed: ada's two runs finished clean in the kernels they started in.
    assert all(run.clean for run in busy_class["ada"]), [run.errors for run in busy_class["ada"]]
    for run in busy_class["ada"]:
        kernel = kernel_process(hub, "ada", run.kernel_id)
        assert kernel is not None and kernel.create_time() < busy_class["at"] + 1.0  # started before the kill, never restarted

    # Nothing of bob's is lost: his saved notes are on disk; he restarts the kernel (Kernel >
    # Restart) and runs the chapter again, clean.
    assert read_notebook(bob, CHAPTER).cells[0].source == "bob's notes, saved before the crash"
    assert restart_kernel(bob, busy_class["bob_kernel"]) == 200
    again = run_chapter(bob, CHAPTER, kernel_id=busy_class["bob_kernel"])
    assert again.clean, again.errors
    saved = read_notebook(bob, CHAPTER)
    assert saved.cells[0].source == "bob's notes, saved before the crash"
    assert code_outputs(saved) == code_outputs(again.notebook)


def test_the_same_chapter_twice_at_once(hub, ada, busy_class):
    first, second = busy_class["ada"]
    assert first.clean and second.clean, first.errors + second.errors
    assert first.kernel_id != second.kernel_id
    # The file on disk is one whole run, the one saved last, never a mix of the two.
    on_disk = nbformat.read(hub.home("ada") / CHAPTER, as_version=4)
    nbformat.validate(on_disk)
    assert code_outputs(on_disk) in (code_outputs(first.notebook), code_outputs(second.notebook))
    assert code_outputs(read_notebook(ada, CHAPTER)) == code_outputs(on_disk)


def test_the_hub_restarted_cleanly_mid_session(hub, ada):
    """A clean stop stops every learner's server with the hub (cleanup_servers); at the next
    visit, with the same browser (no new login), the server starts again on the same files."""
    notebook = read_notebook(ada, OTHER)
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell("ada's work before the restart"))
    assert save_notebook(ada, OTHER, notebook) == 200
    digest = hashlib.sha256((hub.home("ada") / OTHER).read_bytes()).hexdigest()
    old_server = server_process(hub, "ada")

    hub.stop_hub()
    psutil.wait_procs([old_server], timeout=30)
    assert not old_server.is_running()
    hub.start()

    ada.start_server()  # her cookies from before the restart still open the hub
    assert server_process(hub, "ada").pid != old_server.pid
    assert hashlib.sha256((hub.home("ada") / OTHER).read_bytes()).hexdigest() == digest
    assert read_notebook(ada, OTHER).cells[0].source == "ada's work before the restart"
    channel = KernelChannel(ada, start_kernel(ada))
    try:
        channel.wait_ready()
        outputs, error = channel.execute("print(6 * 7)")
    finally:
        channel.close()
    assert error is None and stdout(outputs) == "42\n"


def test_the_hub_killed_mid_session(hub, bob):
    """A crashed hub (SIGKILL): learners' servers and kernels keep running, and the restarted hub
    picks them up: same server, same kernel, the kernel's variables intact."""
    bob.start_server()  # back after the clean restart above (or a first start when run alone)
    kernel = start_kernel(bob)
    channel = KernelChannel(bob, kernel)
    try:
        channel.wait_ready()
        assert channel.execute("x = 41")[1] is None
    finally:
        channel.close()
    server = server_process(hub, "bob")
    kernel_pid = kernel_process(hub, "bob", kernel).pid

    hub.stop_hub(kill=True)
    assert server.is_running() and psutil.pid_exists(kernel_pid)
    hub.start()

    assert bob.server_status()["ready"]  # no new spawn: the hub found his server running
    assert server_process(hub, "bob").pid == server.pid
    channel = KernelChannel(bob, kernel)
    try:
        channel.wait_ready()
        outputs, error = channel.execute("print(x + 1)")
    finally:
        channel.close()
    assert error is None and stdout(outputs) == "42\n"
    assert kernel_process(hub, "bob", kernel).pid == kernel_pid
