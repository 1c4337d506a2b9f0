"""What each classroom set-up keeps apart on disk, proven from inside a learner's kernel.

Learner A's code runs in A's own kernel, sent over the kernel's websocket as JupyterLab sends a
cell, and tries to read and write learner B's home, the hub's database and its cookie secret.

- One OS user per learner (classroom/jupyterhub_config_system_users.py): every try is refused by
  the operating system, A's kernel runs as A, and everything in A's home is A's.
- The default shared-user set-up (classroom/jupyterhub_config.py): every try SUCCEEDS, which is
  what docs/classroom.md says this set-up does not protect; the test keeps that statement true.

The system-users tests need root (they create throwaway OS users, with a unique prefix, and
remove them with their homes afterwards): they are skipped, saying so, when not run as root.
Where the course's Python sits where other users cannot reach it (pyenv under /root, mode 700),
one more test checks that the config refuses the spawn with a message naming the folder.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from classroom.hub import Hub, Learner
from classroom.loadtest import KernelChannel, start_kernel

REPO = Path(__file__).resolve().parents[2]
SYSTEM_USERS_CONFIG = REPO / "classroom" / "jupyterhub_config_system_users.py"
NOTEBOOK = "chapters/01_concepts.ipynb"

pytestmark = pytest.mark.usefixtures("hub_prerequisites")

# Run in A's kernel: each try is "allowed", "denied" (PermissionError) or another error's name.
PROBE = r'''
import json, os, pathlib
paths = json.loads(%r)
def attempt(action):
    try:
        action()
        return "allowed"
    except PermissionError:
        return "denied"
    except Exception as error:
        return f"{type(error).__name__}: {error}"
def write_new(path):
    with open(path, "x") as f:
        f.write("A was here")
def read(path):
    with open(path, "rb") as f:
        f.read(64)
def append_nothing(path):
    with open(path, "ab"):
        pass
mine = pathlib.Path.home() / "written-by-a.txt"
mine.write_text("mine")
print(json.dumps({
    "uid": os.getuid(), "home": str(pathlib.Path.home()),
    "read B's notebook": attempt(lambda: read(paths["other_notebook"])),
    "list B's home": attempt(lambda: os.listdir(paths["other_home"])),
    "write a file into B's home": attempt(lambda: write_new(paths["other_home"] + "/from-a.txt")),
    "open B's notebook for writing": attempt(lambda: append_nothing(paths["other_notebook"])),
    "read the hub's database": attempt(lambda: read(paths["database"])),
    "open the hub's database for writing": attempt(lambda: append_nothing(paths["database"])),
    "read the cookie secret": attempt(lambda: read(paths["cookie_secret"])),
    "write a file into the hub's folder": attempt(lambda: write_new(paths["hub_dir"] + "/from-a.txt")),
}))
'''
TRIES = ("read B's notebook", "list B's home", "write a file into B's home", "open B's notebook for writing",
         "read the hub's database", "open the hub's database for writing", "read the cookie secret",
         "write a file into the hub's folder")


def run_probe(a: Learner, b_home: Path, hub: Hub) -> dict:
    paths = {"other_home": str(b_home), "other_notebook": str(b_home / NOTEBOOK), "hub_dir": str(hub.folder),
             "database": str(hub.folder / "jupyterhub.sqlite"),
             "cookie_secret": str(hub.folder / "jupyterhub_cookie_secret")}
    for name in ("other_notebook", "database", "cookie_secret"):
        assert Path(paths[name]).is_file(), paths[name]  # each try aims at a file that exists
    channel = KernelChannel(a, start_kernel(a))
    try:
        channel.wait_ready()
        outputs, error = channel.execute(PROBE % json.dumps(paths), timeout=120)
    finally:
        channel.close()
    assert error is None, error
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    return json.loads(text.strip().splitlines()[-1])


# --- the default set-up: one OS user for everyone ------------------------------------------


def test_shared_user_setup_does_not_keep_learners_apart_on_disk(tmp_path):
    """docs/classroom.md: the shared set-up keeps learners apart in the browser but NOT on disk."""
    hub = Hub(tmp_path / "shared", password="isolation-workshop-2026")
    try:
        hub.start()
        ada, bob = Learner(hub, "ada"), Learner(hub, "bob")
        for learner in (ada, bob):
            learner.login()
            learner.start_server()
        result = run_probe(ada, hub.home("bob"), hub)
    finally:
        hub.stop()
    assert result["uid"] == os.getuid()  # every learner's kernel runs as the hub's own user
    assert {t: result[t] for t in TRIES} == {t: "allowed" for t in TRIES}, result
    assert (hub.home("bob") / "from-a.txt").read_text() == "A was here"
    assert (hub.folder / "from-a.txt").read_text() == "A was here"
    assert hub.processes() == []


# --- one OS user per learner -------------------------------------------------------------


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)


def _blocked_dirs(paths: list[Path]) -> list[Path]:
    """Directories above ``paths`` that other users may not enter (no o+x)."""
    found = []
    for path in paths:
        for folder in reversed(Path(os.path.realpath(path)).parents):
            if not folder.stat().st_mode & stat.S_IXOTH and folder not in found:
                found.append(folder)
    return found


@pytest.fixture
def two_os_users():
    """Two throwaway OS users with homes mode 0700, as the config's docstring tells the instructor
    to create them; removed afterwards with their homes, whatever happened. Where the course's
    Python sits under a directory other users cannot enter (pyenv under /root, mode 700), that
    directory gets o+x (enter, not list) for the test's duration and its mode back after."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip(f"needs root to create throwaway OS users (running as uid {os.getuid()}); CI runs as root")
    for tool in ("useradd", "userdel"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` is not installed: cannot create throwaway OS users")
    prefix = f"ck{secrets.token_hex(3)}"
    names = [f"{prefix}a", f"{prefix}b"]
    created, opened = [], []
    try:
        for name in names:
            _run("useradd", "--create-home", "--shell", "/bin/bash", name)
            created.append(name)
            os.chmod(pwd.getpwnam(name).pw_dir, 0o700)
        for folder in _blocked_dirs([Path(sys.executable), REPO / "pyproject.toml"]):
            opened.append((folder, stat.S_IMODE(folder.stat().st_mode)))
            os.chmod(folder, opened[-1][1] | stat.S_IXOTH)
        yield [pwd.getpwnam(name) for name in names]
    finally:
        for folder, mode in opened:
            os.chmod(folder, mode)
        for name in created:
            user = pwd.getpwnam(name)
            home = user.pw_dir
            theirs = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == user.pw_uid]
            for process in theirs:  # anything of theirs the hub's stop missed
                process.kill()
            psutil.wait_procs(theirs, timeout=10)
            subprocess.run(["userdel", "--remove", name], capture_output=True, timeout=60)
            shutil.rmtree(home, ignore_errors=True)
        for name in created:
            with pytest.raises(KeyError):
                pwd.getpwnam(name)


def test_one_os_user_per_learner_keeps_learners_apart_on_disk(two_os_users):
    a_user, b_user = two_os_users
    folder = Path(tempfile.mkdtemp(prefix="compresskit-hub-"))  # outside pytest's root-only tmp tree
    os.chmod(folder, 0o700)  # as the config's docstring says: the hub's database and cookie secret
    tokens = {a_user.pw_name: secrets.token_hex(12), b_user.pw_name: secrets.token_hex(12)}
    tokens_file = folder / "tokens"
    tokens_file.write_text("".join(f"{name} {token}\n" for name, token in tokens.items()))
    hub = Hub(folder, tokens_file=tokens_file, config=SYSTEM_USERS_CONFIG)
    try:
        hub.start()
        a, b = (Learner(hub, user.pw_name, password=tokens[user.pw_name]) for user in (a_user, b_user))
        for learner in (a, b):
            learner.login()
            learner.start_server()
        b_home = Path(b_user.pw_dir)
        result = run_probe(a, b_home, hub)
        # Each learner's server and kernel run as that learner, never as root.
        owners = {p.environ().get("JUPYTERHUB_USER"): p.uids().real for p in hub.processes()
                  if p.environ().get("JUPYTERHUB_USER")}
    finally:
        hub.stop()
        leftovers = hub.processes()
        shutil.rmtree(folder, ignore_errors=True)
    assert leftovers == []
    assert result["uid"] == a_user.pw_uid and result["home"] == a_user.pw_dir
    assert {t: result[t] for t in TRIES} == {t: "denied" for t in TRIES}, result
    assert owners == {a_user.pw_name: a_user.pw_uid, b_user.pw_name: b_user.pw_uid}
    assert not (b_home / "from-a.txt").exists()
    # A's files are A's: the course copy the hub made as root, and what A's kernel wrote.
    a_home = Path(a_user.pw_dir)
    assert (a_home / "written-by-a.txt").read_text() == "mine"
    assert (a_home / NOTEBOOK).is_file()
    not_a = [str(p) for p in [a_home, *a_home.rglob("*")] if p.lstat().st_uid != a_user.pw_uid]
    assert not_a == []


@pytest.fixture
def os_user_without_access():
    """One throwaway OS user, with the directories in the way of the course's Python left as
    they are; skipped where nothing is in the way (then the learner's server simply starts)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to create a throwaway OS user")
    blocked = _blocked_dirs([Path(sys.executable), REPO / "pyproject.toml"])
    if not blocked:
        pytest.skip("other users can reach the course's Python here: there is nothing for the config to refuse")
    name = f"ck{secrets.token_hex(3)}c"
    try:
        _run("useradd", "--create-home", "--shell", "/bin/bash", name)
        yield pwd.getpwnam(name), blocked[0]
    finally:
        try:
            home = pwd.getpwnam(name).pw_dir
        except KeyError:
            home = None
        subprocess.run(["userdel", "--remove", name], capture_output=True, timeout=60)
        if home:
            shutil.rmtree(home, ignore_errors=True)


def test_a_learner_who_cannot_reach_the_course_python_gets_a_message_naming_the_folder(os_user_without_access):
    """A .venv made from a Python under /root (mode 700) cannot start a learner's server: the
    config refuses the spawn and the hub's log names the folder in the way and what to do."""
    user, folder_in_the_way = os_user_without_access
    folder = Path(tempfile.mkdtemp(prefix="compresskit-hub-"))
    token = secrets.token_hex(12)
    (folder / "tokens").write_text(f"{user.pw_name} {token}\n")
    hub = Hub(folder, tokens_file=folder / "tokens", config=SYSTEM_USERS_CONFIG)
    try:
        hub.start()
        learner = Learner(hub, user.pw_name, password=token)
        learner.login()
        learner.session.get(learner.url(f"/hub/spawn/{user.pw_name}"), allow_redirects=False, timeout=60)
        deadline = time.monotonic() + 60
        while "cannot reach" not in hub.log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, hub.log_tail()
            time.sleep(0.5)
        log = hub.log_path.read_text(errors="replace")
        mode = f"{stat.S_IMODE(folder_in_the_way.stat().st_mode):o}"
        assert f"({folder_in_the_way} is mode {mode})" in log and "where learners can read them" in log
        while learner.server_status():  # the failed spawn is cleared; nothing runs as the learner
            assert time.monotonic() < deadline, learner.server_status()
            time.sleep(0.5)
        assert not [p for p in hub.processes() if p.uids().real == user.pw_uid]
    finally:
        hub.stop()
        shutil.rmtree(folder, ignore_errors=True)
