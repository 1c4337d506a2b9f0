"""JupyterHub for a compresskit workshop on one machine: `make hub`, or `python -m classroom.hub`.

Every choice is read from the environment, so the instructor changes nothing in this file:

    COMPRESSKIT_HUB_PASSWORD       the workshop password (8 characters or more), or
    COMPRESSKIT_HUB_PASSWORD_FILE  a file holding it (first line), or
    COMPRESSKIT_HUB_TOKENS_FILE    a token list: one "learner-name  token" per line, a token per learner
    COMPRESSKIT_HUB_DIR            the workshop folder: database, cookie secret, learners' homes
                                   (default ~/compresskit-hub; keep it outside the repository)
    COMPRESSKIT_HUB_IP, _PORT      where learners connect (default 127.0.0.1:8000)
    COMPRESSKIT_HUB_IDLE_TIMEOUT   seconds without activity before a learner's server is stopped (3600)

There is no default password: without one of the first three the hub refuses to start.

Isolation, plainly. This file uses SimpleLocalProcessSpawner: every learner's JupyterLab and
kernels run as the OS user who started the hub. The hub keeps learners apart in the browser (a
learner's login opens only their own server: another learner's /user/<name>/ answers 403), but
NOT on disk: code that a learner runs in a kernel or terminal can read and change every other
learner's home, this folder's database and cookie secret, and the repository. That is fine for a
workshop among colleagues on a machine that holds nothing else; for a class where it matters, use
classroom/jupyterhub_config_system_users.py (one OS user per learner) or containers (docs/classroom.md,
"Run it in a classroom").
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import sys
from pathlib import Path

c = get_config()  # noqa: F821  (JupyterHub provides get_config when it loads this file)

# The course: this file lives in classroom/ of the repository whose chapters learners get.
REPO = Path(__file__).resolve().parents[1]
# The hub runs from the course's environment (.venv), so learners' servers and kernels use the
# same pinned packages and the "compresskit" kernel that `make` installed there.
PYTHON = sys.executable


def _setting(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"COMPRESSKIT_HUB_{name}", "").strip()
    return value or default


# --- State: one workshop folder outside the repository ---------------------------------------
# The database (who logged in, which servers run), the cookie secret (so logins survive a hub
# restart) and every learner's home live here; deleting the folder resets the workshop.
HUB_DIR = Path(_setting("DIR", str(Path.home() / "compresskit-hub"))).expanduser().resolve()
if HUB_DIR == REPO or REPO in HUB_DIR.parents:
    raise SystemExit(f"COMPRESSKIT_HUB_DIR={HUB_DIR} is inside the repository {REPO}: "
                     "choose a folder outside it (learners' copies must never touch the course)")
HOMES = HUB_DIR / "homes"
HOMES.mkdir(parents=True, exist_ok=True)
c.JupyterHub.db_url = f"sqlite:///{HUB_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(HUB_DIR / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(HUB_DIR / "jupyterhub.pid")

# --- Network: everything on loopback unless the instructor opens it ----------------------------
# Learners connect to the proxy at IP:PORT. To serve a room over the LAN, set
# COMPRESSKIT_HUB_IP=0.0.0.0 and put HTTPS in front (c.JupyterHub.ssl_key / ssl_cert): the
# password travels in the login form. The hub and the proxy's API stay on 127.0.0.1 always.
c.JupyterHub.ip = _setting("IP", "127.0.0.1")
c.JupyterHub.port = int(_setting("PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(_setting("INTERNAL_PORT", "8081"))
c.Spawner.ip = "127.0.0.1"  # learners' servers: reached only through the proxy

# --- The proxy: JupyterHub's standard configurable-http-proxy, from npm -----------------------
# `make` installs the version pinned in classroom/package-lock.json into classroom/node_modules
# (npm ci); one installed on the PATH (npm install -g configurable-http-proxy) works too.
_proxy = REPO / "classroom" / "node_modules" / ".bin" / "configurable-http-proxy"
if not _proxy.exists():
    _proxy = Path(shutil.which("configurable-http-proxy") or _proxy)
if not _proxy.exists():
    raise SystemExit("configurable-http-proxy is not installed: run `make hub` (it runs `npm ci` in classroom/; "
                     "it needs Node.js and npm, e.g. `sudo apt-get install nodejs npm`)")
c.ConfigurableHTTPProxy.command = [str(_proxy)]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(_setting('PROXY_API_PORT', '8001'))}"
c.ConfigurableHTTPProxy.pid_file = str(HUB_DIR / "proxy.pid")

# --- Who may log in: a workshop password or a token list, never a default -------------------
_password = _setting("PASSWORD")
_password_file = _setting("PASSWORD_FILE")
_tokens_file = _setting("TOKENS_FILE")
if _password_file and not _password:
    _password = Path(_password_file).expanduser().read_text().splitlines()[0].strip() if Path(
        _password_file).expanduser().is_file() else None
    if not _password:
        raise SystemExit(f"COMPRESSKIT_HUB_PASSWORD_FILE={_password_file} is missing or its first line is empty")
# Names become folder names under homes/: lower-case letters, digits, '-' and '_', 1-32 of them.
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
c.Authenticator.username_pattern = USERNAME_PATTERN

if _tokens_file:
    # A token per learner: a learner can log in only as the name their token belongs to.
    from jupyterhub.auth import Authenticator  # noqa: E402
    from secrets import compare_digest  # noqa: E402

    def _read_tokens(path: str) -> dict[str, str]:
        tokens = {}
        for number, line in enumerate(Path(path).expanduser().read_text().splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                fields = line.split()
                if len(fields) != 2 or not re.match(USERNAME_PATTERN, fields[0]) or len(fields[1]) < 8:
                    raise SystemExit(f"{path}, line {number}: expected 'learner-name token' (a name of lower-case "
                                     f"letters, digits, '-' or '_'; a token of 8 characters or more); got {line.strip()!r}")
                tokens[fields[0]] = fields[1]
        if not tokens:
            raise SystemExit(f"COMPRESSKIT_HUB_TOKENS_FILE={path} holds no 'learner-name token' line")
        return tokens

    _TOKENS = _read_tokens(_tokens_file)

    class TokenListAuthenticator(Authenticator):
        """The login form's password is the learner's own token from the instructor's list."""

        async def authenticate(self, handler, data):
            name = data["username"].strip().lower()
            expected = _TOKENS.get(name)
            if expected is not None and compare_digest(data["password"].encode(), expected.encode()):
                return name
            return None

    c.JupyterHub.authenticator_class = TokenListAuthenticator
    c.Authenticator.allowed_users = set(_TOKENS)
elif _password:
    # One password for the room; each learner picks a name on the login page. Anyone with the
    # password can log in under ANY name, a classmate's included: use a token list if that matters.
    # JupyterHub refuses a password shorter than 8 characters.
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = _password
    c.Authenticator.allow_all = True
else:
    raise SystemExit(
        "refusing to start: no workshop password. Set COMPRESSKIT_HUB_PASSWORD (8 characters or more), "
        "COMPRESSKIT_HUB_PASSWORD_FILE (a file whose first line is the password) or COMPRESSKIT_HUB_TOKENS_FILE "
        "(lines 'learner-name token'); there is no default password")

# --- Learners' servers: one home per learner with a fresh copy of the course ----------------
# SimpleLocalProcessSpawner runs every server as this OS user (see "Isolation" above) with
# HOME = homes/<name>; it needs no system accounts.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(HOMES / "{username}")
c.Spawner.notebook_dir = str(HOMES / "{username}")
# The course's copy of JupyterHub's single-user server, from this Python (not whatever is on PATH).
c.Spawner.cmd = [PYTHON, "-m", "jupyterhub.singleuser"]
# Learners land in JupyterLab on chapters/, and a new notebook gets the course kernel.
c.Spawner.default_url = "/lab/tree/chapters"
c.Spawner.args = [
    "--MappingKernelManager.default_kernel_name=compresskit",
    # Nothing asks the network for news or updates (the course runs offline).
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
]
if os.geteuid() == 0:
    # Jupyter refuses to run as root without this; CI and containers often are root.
    c.Spawner.args.append("--allow-root")
# Learners' servers see only what JupyterHub passes plus these (never the hub's secrets):
# PATH (with this environment's bin first, so `!pip list` and terminals use the course's
# packages), the locale, and compresskit's own settings.
c.Spawner.environment = {"PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}
c.Spawner.env_keep = ["JUPYTERHUB_SINGLEUSER_APP", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "COMPRESSKIT_DATASETS",
                      "COMPRESSKIT_CLOCK", "COMPRESSKIT_HUB_ID"]
# Eight learners starting at once on two cores: give a server two minutes to answer.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

COURSE_FOLDERS = ("chapters", "solutions")


def copy_course(spawner) -> None:
    """On a learner's first start: copy chapters/ and solutions/ into their home. Later starts
    keep the learner's edits (a folder already there is left alone), and nothing is ever written
    back to the repository. compresskit itself, and datasets/, are read from the repository."""
    home = Path(spawner.home_dir)
    home.mkdir(parents=True, exist_ok=True)
    for folder in COURSE_FOLDERS:
        target = home / folder
        if not target.exists():
            partial = home / f".{folder}.copying"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(REPO / folder, partial, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
            partial.rename(target)  # all or nothing: a copy cut short is redone on the next start
    # No "get Jupyter news?" pop-up for a room of learners.
    page_config = home / ".jupyter" / "labconfig" / "page_config.json"
    if not page_config.exists():
        page_config.parent.mkdir(parents=True, exist_ok=True)
        page_config.write_text(json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))


c.Spawner.pre_spawn_hook = copy_course

# --- The idle culler: a service the hub starts and stops -----------------------------------
# A learner's server with no activity for COMPRESSKIT_HUB_IDLE_TIMEOUT seconds is stopped (its
# files stay; the learner logs in again and gets it back), so a forgotten tab does not hold
# 0.5-1 GiB all afternoon. It may only list learners and stop servers. It runs through
# classroom/culler.py, which stops it at once on the hub's SIGINT: `python -m
# jupyterhub_idle_culler` ignores SIGINT when the hub was started from a background shell, and
# the hub then waited 30 s for it before stopping anyone's server (tests/classroom/test_shutdown.py).
# A hub started by a background shell inherits SIGINT *ignored*, and a process spawned with it
# ignored keeps ignoring it until it installs a handler: a SIGINT that reached the culler while
# it was still starting was lost. JupyterHub sets its own SIGINT handler once it runs anyway;
# this sets one before it spawns anything, so services start with the default disposition.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [PYTHON, str(REPO / "classroom" / "culler.py"), f"--timeout={int(_setting('IDLE_TIMEOUT', '3600'))}",
                "--cull-every=60"],
    # classroom/hub.py finds everything a hub started by this mark (services get no env_keep).
    "environment": {"COMPRESSKIT_HUB_ID": _setting("ID", "")},
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]

# --- The instructor's (and the tests') API token, only when one is given ---------------------
# classroom/hub.py sets COMPRESSKIT_HUB_API_TOKEN to start and stop servers through the REST API
# (/hub/api/...). It cannot open learners' notebooks: no access:servers scope.
if _setting("API_TOKEN"):
    c.JupyterHub.services.append({"name": "classroom-control", "api_token": _setting("API_TOKEN")})
    c.JupyterHub.load_roles.append({
        "name": "classroom-control",
        "scopes": ["admin:users", "admin:servers", "list:users", "read:users"],
        "services": ["classroom-control"],
    })

# --- The instructor's token: python -m classroom.instructor list | stop <learner> | progress ----
# Written on the first start to instructor.token in this folder (mode 0600; never in the
# repository: the folder cannot be inside it), kept across restarts. Its role may list learners,
# read their servers and last activity and stop a server, nothing more: no creating or deleting
# learners, no starting servers, no tokens, no access to learners' notebooks or kernels.
INSTRUCTOR_TOKEN = HUB_DIR / "instructor.token"
if not INSTRUCTOR_TOKEN.exists():
    with os.fdopen(os.open(INSTRUCTOR_TOKEN, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as _file:
        _file.write(secrets.token_hex(32) + "\n")
c.JupyterHub.services.append({"name": "instructor", "api_token": INSTRUCTOR_TOKEN.read_text().strip()})
c.JupyterHub.load_roles.append({
    "name": "instructor",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],  # = classroom.instructor.INSTRUCTOR_SCOPES
    "services": ["instructor"],
})

# Stopping the hub stops every learner's server (their files stay in homes/).
c.JupyterHub.cleanup_servers = True
