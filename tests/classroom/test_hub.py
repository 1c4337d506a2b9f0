"""The workshop's JupyterHub (classroom/jupyterhub_config.py, driven by classroom/hub.py), tested
the way learners use it: through the proxy, with the login form and cookies of a browser.

One hub serves the module (starting it takes most of the time); two learners, ada and bob, log in
and get their servers. The last test stops the hub and checks that nothing it started is left.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from urllib.parse import urlparse

import psutil
import pytest

from classroom.hub import Hub, HubError, Learner, LoginRefused

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "compression-workshop-2026"
NOTEBOOK = "chapters/01_concepts.ipynb"

pytestmark = pytest.mark.usefixtures("hub_prerequisites")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def course_files(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every notebook under chapters/ and solutions/."""
    return {str(p.relative_to(root)): digest(p) for folder in ("chapters", "solutions")
            for p in sorted((root / folder).glob("*.ipynb"))}


@pytest.fixture(scope="module")
def repo_before() -> dict[str, str]:
    return course_files(REPO)


@pytest.fixture(scope="module")
def hub(tmp_path_factory, repo_before):
    hub = Hub(tmp_path_factory.mktemp("workshop"), password=PASSWORD)
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()


def _learner(hub: Hub, name: str) -> Learner:
    """A learner logged in through the proxy, with their server started."""
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


def test_the_hub_refuses_to_start_without_a_password(tmp_path):
    hub = Hub(tmp_path / "no-password", password=None)
    try:
        with pytest.raises(HubError, match="no workshop password"):
            hub.start(timeout=60)
        assert hub.process.returncode != 0
        assert not (tmp_path / "no-password" / "jupyterhub.sqlite").exists()  # it stopped before creating state
    finally:
        hub.stop()


def test_a_wrong_password_is_refused(hub):
    with pytest.raises(LoginRefused):
        Learner(hub, "eve", password="not-the-workshop-password").login()
    with pytest.raises(LoginRefused):
        Learner(hub, "eve", password="").login()
    users = {user["name"] for user in hub.api("GET", "users")}
    assert "eve" not in users


def unchanged_since(before: dict[str, str]) -> set[str]:
    """The course files nobody changed in the repository while the test ran (in a shared working
    tree other people edit chapters; in CI this is every file)."""
    now = course_files(REPO)
    return {name for name, sha in before.items() if now.get(name) == sha}


def test_a_learner_logs_in_and_gets_a_fresh_copy_of_the_course(hub, ada, repo_before):
    home = hub.home("ada")
    # The copy is the repository's course, notebook for notebook, byte for byte.
    copy = course_files(home)
    assert set(copy) == set(repo_before)
    stable = unchanged_since(repo_before)
    assert NOTEBOOK in stable
    assert {name: copy[name] for name in stable} == {name: repo_before[name] for name in stable}
    assert hub.folder not in REPO.parents and REPO not in hub.folder.parents

    # Through the proxy, ada's own server lists and opens her copy.
    listing = ada.server_request("GET", "api/contents/chapters")
    assert listing.status_code == 200
    names = {item["name"] for item in listing.json()["content"]}
    assert names == {p.name for p in (REPO / "chapters").glob("*.ipynb")}
    assert ada.contents(NOTEBOOK).json()["content"]["metadata"]["kernelspec"]["name"] == "compresskit"

    # Her server opens JupyterLab on chapters/, and a new kernel is the course kernel.
    landing = ada.session.get(ada.url("/user/ada/"), timeout=60)
    assert landing.status_code == 200 and urlparse(landing.url).path == "/user/ada/lab/tree/chapters"
    server = ada.server_status()
    assert server["ready"] and server["url"] == "/user/ada/"
    kernel = ada.server_request("POST", "api/kernels", json={})
    assert kernel.status_code == 201, kernel.text
    assert kernel.json()["name"] == "compresskit"


def test_editing_the_copy_touches_neither_the_repository_nor_another_learner(hub, ada, bob, repo_before):
    notebook = ada.contents(NOTEBOOK).json()["content"]
    notebook["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "source": "ada was here"})
    saved = ada.save(NOTEBOOK, {"type": "notebook", "format": "json", "content": notebook})
    assert saved.status_code == 200, saved.text

    on_disk = json.loads((hub.home("ada") / NOTEBOOK).read_text())
    assert "".join(on_disk["cells"][0]["source"]) == "ada was here"  # on disk, nbformat keeps lines as a list
    assert digest(REPO / NOTEBOOK) == repo_before[NOTEBOOK]  # the repository's notebook is untouched
    assert digest(hub.home("bob") / NOTEBOOK) == repo_before[NOTEBOOK]  # and so is bob's copy
    assert bob.contents(NOTEBOOK).json()["content"]["cells"][0]["source"] != "ada was here"

    # A later start keeps her work: the copy is made once, on the first start.
    ada.stop_server()
    ada.start_server()
    assert ada.contents(NOTEBOOK).json()["content"]["cells"][0]["source"] == "ada was here"


def test_a_learner_cannot_open_another_learners_notebook(hub, ada, bob):
    # bob, logged in, asks the hub for ada's JupyterLab and for her notebook: 403, not the file.
    page = bob.session.get(bob.url("/user/ada/lab"), timeout=60)
    assert page.status_code == 403
    api = bob.contents(NOTEBOOK, user="ada")
    assert api.status_code == 403
    for response in (page, api):
        assert '"cells"' not in response.text and "ada was here" not in response.text
    # Her server is running (so the 403 is the hub's refusal, not a missing server).
    assert ada.contents(NOTEBOOK).status_code == 200
    # Nor can he read her record in the hub's API.
    assert bob.hub_api("GET", "users/ada").status_code in (403, 404)


def _processes_under(folder: Path) -> list[str]:
    """Processes whose working directory or command line is inside ``folder``: found without the
    hub's own marker, so this check does not rely on classroom/hub.py's bookkeeping."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cwd = process.info["cwd"] or ""
        cmdline = " ".join(process.info["cmdline"] or [])
        if process.pid != os.getpid() and (cwd.startswith(str(folder)) or str(folder) in cmdline):
            found.append(f"{process.pid} {cmdline[:150]}")
    return found


def test_stopping_the_hub_leaves_nothing_running(hub, ada, bob):
    assert ada.server_request("POST", "api/kernels", json={}).status_code == 201  # a running kernel to clean up
    running = hub.processes()
    commands = [" ".join(p.cmdline()) for p in running]
    assert any("configurable-http-proxy" in c for c in commands)
    assert any("jupyterhub.singleuser" in c for c in commands)
    assert any("ipykernel_launcher" in c for c in commands)
    assert any("classroom/culler.py" in c for c in commands)  # the culler runs as the hub's service
    assert _processes_under(hub.folder)  # the check below can see them while they run
    # Everything listens on loopback only: hub, proxy, servers, kernels.
    listening = {(c.laddr.ip, c.laddr.port) for p in running for c in p.net_connections("tcp") if c.status == "LISTEN"}
    assert (("127.0.0.1", hub.port)) in listening and len(listening) > 3
    assert {ip for ip, _ in listening} <= {"127.0.0.1", "::1"}, sorted(listening)

    killed = hub.stop()
    print(f"ended after the hub's own shutdown: {killed}")
    assert not psutil.wait_procs(running, timeout=10)[1]
    assert hub.processes() == []
    assert _processes_under(hub.folder) == []
    for port in (hub.port, hub.internal_port, hub.proxy_api_port):
        listening = [c for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port and c.status == "LISTEN"]
        assert listening == [], f"port {port} still open"
