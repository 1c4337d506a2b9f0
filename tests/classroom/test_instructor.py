"""The instructor's terminal (classroom/instructor.py) against a running hub: `list` shows the
learners and their servers, `stop` stops a stuck server (a kernel in an endless loop) and only
that one, `progress` shows the room; the token the hub wrote for the instructor is 0600 and can do
nothing outside its four scopes (create a learner, start a server, mint a token, open a notebook)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from classroom.hub import Hub, Learner
from classroom.instructor import INSTRUCTOR_SCOPES, Instructor, read_token, token_path
from classroom.loadtest import KernelChannel, start_kernel

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "instructor-workshop-2026"

pytestmark = pytest.mark.usefixtures("hub_prerequisites")

# A passing chapter-1 exercise, as a learner's notebook runs it: the checker records the pass
# in the learner's own progress file (~/.local/share/compresskit/progress.jsonl in their home).
PASSING_EXERCISE = """
import torch
from compresskit.course.exercises.concepts import check_tensor_bytes
def tensor_bytes(numel, dtype):
    if numel < 0:
        raise ValueError("numel must be >= 0")
    return numel * torch.empty((), dtype=dtype).element_size()
check_tensor_bytes(tensor_bytes)
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("instructor"), password=PASSWORD)
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        assert hub.processes() == []


@pytest.fixture(scope="module")
def learners(hub):
    found = {}
    for name in ("ada", "bob"):
        found[name] = Learner(hub, name)
        found[name].login()
        found[name].start_server()
    return found


def instructor(hub: Hub, *args: str) -> subprocess.CompletedProcess:
    """`python -m classroom.instructor ...` as the instructor types it, in the repository."""
    return subprocess.run([sys.executable, "-m", "classroom.instructor", "--dir", str(hub.folder), "--url",
                           hub.base_url, *args], cwd=REPO, capture_output=True, text=True, timeout=180)


def processes_of(hub: Hub, name: str) -> list[psutil.Process]:
    return [p for p in hub.processes() if p.environ().get("JUPYTERHUB_USER") == name]


def test_the_token_file_is_the_instructors_alone(hub):
    path = token_path(hub.folder)
    assert path.parent == hub.folder and REPO not in path.parents
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(read_token(hub.folder)) == 64
    os.chmod(path, 0o644)
    try:
        result = instructor(hub, "list")
        assert result.returncode == 1 and "chmod 600" in result.stderr  # refused while others could read it
    finally:
        os.chmod(path, 0o600)


def test_list_shows_the_learners_and_their_servers(hub, learners):
    result = instructor(hub, "list")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert rows == {"ada": "ready", "bob": "ready"}


def test_stop_stops_a_stuck_server_and_only_that_one(hub, learners):
    ada, bob = learners["ada"], learners["bob"]
    channel = KernelChannel(ada, start_kernel(ada))
    try:
        channel.wait_ready()
        channel.send("shell", "execute_request", {"code": "while True:\n    pass", "silent": False,
                                                  "store_history": False, "user_expressions": {},
                                                  "allow_stdin": False, "stop_on_error": True})
        ada_processes = processes_of(hub, "ada")
        assert len(ada_processes) == 2  # her server and her busy kernel
        result = instructor(hub, "stop", "ada")
    finally:
        channel.close()
    assert result.returncode == 0, result.stderr
    assert "ada: server stopped" in result.stdout
    assert not psutil.wait_procs(ada_processes, timeout=10)[1]
    assert processes_of(hub, "ada") == []
    assert ada.server_status() == {}
    assert bob.server_status()["ready"] and bob.contents("chapters").status_code == 200  # bob carries on
    assert (hub.home("ada") / "chapters").is_dir()  # her files stay
    again = instructor(hub, "stop", "ada")
    assert again.returncode == 0 and "no server was running" in again.stdout
    nobody = instructor(hub, "stop", "nobody")
    assert nobody.returncode == 1 and "no learner 'nobody'" in nobody.stderr
    ada.start_server()  # as the learner does after the instructor's stop


def test_progress_shows_the_room(hub, learners):
    ada = learners["ada"]
    channel = KernelChannel(ada, start_kernel(ada))
    try:
        channel.wait_ready()
        outputs, error = channel.execute(PASSING_EXERCISE, timeout=180)
    finally:
        channel.close()
    assert error is None, error
    result = instructor(hub, "progress")
    assert result.returncode == 0, result.stderr
    header, = [line for line in result.stdout.splitlines() if line.startswith("learner")]
    ch1 = header.split().index("ch1")
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()
            if line.split() and line.split()[0] in ("ada", "bob")}
    passed_ada, total = rows["ada"][ch1].split("/")
    assert passed_ada == "1" and int(total) > 1
    assert rows["bob"][ch1] == f"0/{total}"


def test_the_token_can_do_nothing_outside_its_scopes(hub, learners):
    token = Instructor(hub.base_url, read_token(hub.folder))
    me = token.request("GET", "user").json()
    assert me["kind"] == "service" and me["name"] == "instructor"
    # Exactly these, as the hub expands them (list:users and read:servers imply reading names).
    assert sorted(me["scopes"]) == ["delete:servers", "list:users", "read:servers", "read:users:activity",
                                    "read:users:name"]
    assert set(INSTRUCTOR_SCOPES) <= set(me["scopes"]) and not me["admin"]
    refused = {
        "create a learner": token.request("POST", "users/mallory"),
        "create learners": token.request("POST", "users", json={"usernames": ["mallory"]}),
        "delete a learner": token.request("DELETE", "users/bob"),
        "make a learner admin": token.request("PATCH", "users/bob", json={"admin": True}),
        "start a server": token.request("POST", "users/bob/server"),
        "mint a token for a learner": token.request("POST", "users/bob/tokens", json={}),
        "read the hub's tokens": token.request("GET", "users/bob/tokens"),
    }
    assert {what: r.status_code for what, r in refused.items()} == {what: 403 for what in refused}
    # Nor can it open a learner's notebooks or kernels: no access:servers.
    assert token.request("GET", "users/bob").status_code == 200  # what it may do: read the server's state
    contents = requests.get(f"{hub.base_url}/user/bob/api/contents/chapters", timeout=60,
                            headers={"Authorization": f"token {token.token}"}, allow_redirects=False)
    assert contents.status_code in (302, 403) and '"content"' not in contents.text
    names = {user["name"] for user in hub.api("GET", "users")}
    assert names == {"ada", "bob"}  # nothing was created or deleted
    assert not any(user["admin"] for user in hub.api("GET", "users"))
