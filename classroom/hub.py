"""Start, drive and stop the workshop's JupyterHub (classroom/jupyterhub_config.py).

`make hub` runs ``python -m classroom.hub``: a hub on 127.0.0.1:8000 with its state in
~/compresskit-hub, until Ctrl-C, which stops it and everything it started.

The tests and the load test use the same two classes:

    hub = Hub(folder, password="a long workshop password")   # free loopback ports, state in folder
    with hub:                                                # start(), then stop() whatever happens
        learner = Learner(hub, "ada")
        learner.login()                                      # the login form, as a browser sends it
        learner.start_server()                               # waits until /user/ada/ answers
        learner.contents("chapters/01_concepts.ipynb")       # the Jupyter contents API, via the proxy

`Hub.stop()` ends the hub, the proxy, the idle culler, every learner's server and kernel: each
process the hub started carries COMPRESSKIT_HUB_ID=<this hub's id> in its environment, and
whatever is still running with it after a graceful shutdown is killed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "classroom" / "jupyterhub_config.py"
PROXY = REPO / "classroom" / "node_modules" / ".bin" / "configurable-http-proxy"
MARKER = "COMPRESSKIT_HUB_ID"
DEFAULT_DIR = Path.home() / "compresskit-hub"


class HubError(RuntimeError):
    """The hub did not start, or a learner's request did not do what a browser expects."""


class LoginRefused(HubError):
    """The hub answered the login form with its 'Invalid username or password' page."""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_installed() -> bool:
    """configurable-http-proxy in classroom/node_modules (make's set-up), or one on PATH (npm install -g)."""
    return PROXY.exists() or shutil.which("configurable-http-proxy") is not None


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM the hub if the process that started it dies,
    so a killed test run leaves no hub behind (the hub then stops what it started)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Hub:
    """A JupyterHub from classroom/jupyterhub_config.py with its state in ``folder``.

    ``port=None`` picks free loopback ports (the hub's internal and proxy-API ports are always
    free ones), so several hubs can run at once. ``extra_args`` go to the jupyterhub command
    line and override the config file (e.g. ``["--JupyterHub.cleanup_servers=False"]``);
    ``config`` is the config file (default classroom/jupyterhub_config.py).
    """

    def __init__(self, folder: Path | str, *, password: str | None = None, tokens_file: Path | str | None = None,
                 port: int | None = None, ip: str = "127.0.0.1", idle_timeout: int = 3600,
                 extra_args: tuple[str, ...] | list[str] = (), env: dict[str, str] | None = None,
                 config: Path | str = CONFIG) -> None:
        self.config = Path(config)
        self.folder = Path(folder).expanduser().resolve()
        self.password = password
        self.tokens_file = None if tokens_file is None else Path(tokens_file)
        self.ip = ip
        self.port = port or free_loopback_port()
        self.internal_port = free_loopback_port()
        self.proxy_api_port = free_loopback_port()
        self.idle_timeout = idle_timeout
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.id = secrets.token_hex(8)
        self.api_token = secrets.token_hex(24)
        self.process: subprocess.Popen | None = None
        self.log_path = self.folder / "jupyterhub.log"

    # -- where things are ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The proxy's address: what a learner types into the browser."""
        host = "127.0.0.1" if self.ip in ("0.0.0.0", "") else self.ip
        return f"http://{host}:{self.port}"

    @property
    def homes(self) -> Path:
        return self.folder / "homes"

    def home(self, name: str) -> Path:
        return self.homes / name

    # -- lifecycle -----------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPRESSKIT_HUB_")}
        env.update({
            "COMPRESSKIT_HUB_DIR": str(self.folder),
            "COMPRESSKIT_HUB_IP": self.ip,
            "COMPRESSKIT_HUB_PORT": str(self.port),
            "COMPRESSKIT_HUB_INTERNAL_PORT": str(self.internal_port),
            "COMPRESSKIT_HUB_PROXY_API_PORT": str(self.proxy_api_port),
            "COMPRESSKIT_HUB_IDLE_TIMEOUT": str(self.idle_timeout),
            "COMPRESSKIT_HUB_API_TOKEN": self.api_token,
            MARKER: self.id,
        })
        if self.password is not None:
            env["COMPRESSKIT_HUB_PASSWORD"] = self.password
        if self.tokens_file is not None:
            env["COMPRESSKIT_HUB_TOKENS_FILE"] = str(self.tokens_file)
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        return [sys.executable, "-m", "jupyterhub", "-f", str(self.config), *self.extra_args]

    def start(self, timeout: float = 120.0) -> Hub:
        """Start the hub and wait until its REST API answers through the proxy."""
        if self.process is not None and self.process.poll() is None:
            raise HubError(f"the hub is already running (pid {self.process.pid})")
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.folder, env=self.environment(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
                # PR_SET_PDEATHSIG fires when the starting *thread* ends: only from the main thread.
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
                start_new_session=True)  # Ctrl-C in the terminal reaches this process, which stops the hub
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HubError(f"jupyterhub exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.base_url}/hub/api/", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise HubError(f"the hub did not answer on {self.base_url} within {timeout:.0f} s:\n{self.log_tail()}")

    def stop_hub(self, *, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop the JupyterHub process alone. ``kill=False``: SIGTERM, a clean shutdown (with the
        config's cleanup_servers=True the learners' servers stop too). ``kill=True``: SIGKILL, a
        crash: the proxy, the servers and their kernels keep running. ``start()`` again reuses
        the folder and the ports, so learners' cookies stay valid."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def processes(self) -> list[psutil.Process]:
        """Every running process that this hub started, directly or not (its environment carries
        COMPRESSKIT_HUB_ID=<id>): the hub, the proxy, the culler, servers and kernels."""
        found = []
        for process in psutil.process_iter():
            try:
                if process.pid != os.getpid() and process.environ().get(MARKER) == self.id:
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        if self.process is not None and self.process.poll() is None and all(p.pid != self.process.pid for p in found):
            found.append(psutil.Process(self.process.pid))
        return found

    def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop everything this hub started. Returns a description of each process that was still
        running after the hub's own clean shutdown and had to be terminated or killed."""
        self.stop_hub(timeout=timeout)
        leftovers = self.processes()
        described = []
        for process in leftovers:
            try:
                described.append(f"{process.pid} {' '.join(process.cmdline())[:200]}")
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(leftovers, timeout=5)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        return described

    def __enter__(self) -> Hub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- the REST API, as the instructor ------------------------------------------------------

    def api(self, method: str, path: str, json: dict | None = None, timeout: float = 30.0):
        """Call /hub/api/<path> with the instructor's token (admin:users, admin:servers): list
        learners and their servers, start or stop a server. Returns the decoded JSON (or None)."""
        response = requests.request(method, f"{self.base_url}/hub/api/{path.lstrip('/')}", json=json, timeout=timeout,
                                    headers={"Authorization": f"token {self.api_token}"})
        response.raise_for_status()
        return response.json() if response.content else None


class Learner:
    """One learner's browser: a cookie jar that logs in through the proxy and talks to the hub
    and to the learner's own server exactly as JupyterLab's pages do."""

    def __init__(self, hub: Hub, name: str, password: str | None = None) -> None:
        self.hub = hub
        self.name = name
        self.password = hub.password if password is None else password
        self.session = requests.Session()

    def url(self, path: str) -> str:
        return f"{self.hub.base_url}/{path.lstrip('/')}"

    def _xsrf(self, path: str) -> str | None:
        """The _xsrf cookie set for ``path`` (the hub's is on /hub/, each server's on /user/<name>/)."""
        for cookie in self.session.cookies:
            if cookie.name == "_xsrf" and cookie.path.rstrip("/") == path.rstrip("/"):
                return cookie.value
        return None

    def login(self) -> requests.Response:
        """Fill in and send the login form (with the _xsrf value the form page set as a cookie).
        Raises LoginRefused if the hub shows the login page again."""
        page = self.session.get(self.url("/hub/login"), timeout=30)
        page.raise_for_status()
        form = {"username": self.name, "password": self.password or "", "_xsrf": self._xsrf("/hub/") or ""}
        response = self.session.post(self.url("/hub/login"), data=form, allow_redirects=False, timeout=60)
        if response.status_code == 403 or (response.status_code == 200 and "Invalid username or password" in response.text):
            raise LoginRefused(f"login as {self.name!r} refused ({response.status_code})")
        if response.status_code not in (302, 303):
            raise HubError(f"login as {self.name!r}: unexpected {response.status_code}")
        return response

    def hub_api(self, method: str, path: str, **kwargs) -> requests.Response:
        """/hub/api/<path> with the learner's login cookie, as the hub's own pages call it."""
        headers = {"X-XSRFToken": self._xsrf("/hub/") or ""}
        return self.session.request(method, self.url(f"/hub/api/{path.lstrip('/')}"), headers=headers, timeout=60,
                                    **kwargs)

    def server_status(self) -> dict:
        response = self.hub_api("GET", f"users/{self.name}")
        response.raise_for_status()
        return response.json().get("servers", {}).get("", {})

    def start_server(self, timeout: float = 180.0) -> requests.Response:
        """Ask for the server as the hub's home page does (/hub/spawn), wait until the hub says it
        is ready, then open JupyterLab: the learner's server completes the OAuth handshake
        and sets its own cookie. Returns the JupyterLab page's response."""
        self.session.get(self.url(f"/hub/spawn/{self.name}"), allow_redirects=False, timeout=60)
        deadline = time.monotonic() + timeout
        while not self.server_status().get("ready"):
            if time.monotonic() > deadline:
                raise HubError(f"{self.name}'s server not ready within {timeout:.0f} s:\n{self.hub.log_tail()}")
            time.sleep(0.5)
        page = self.session.get(self.url(f"/user/{self.name}/lab"), timeout=60)
        if page.status_code != 200 or urlparse(page.url).path.rstrip("/") != f"/user/{self.name}/lab":
            raise HubError(f"{self.name}'s JupyterLab: {page.status_code} at {page.url}")
        return page

    def stop_server(self, timeout: float = 60.0) -> None:
        """Stop the learner's server (the hub page's "Stop My Server") and wait until it has stopped."""
        self.hub_api("DELETE", f"users/{self.name}/server").raise_for_status()
        deadline = time.monotonic() + timeout
        while self.server_status():
            if time.monotonic() > deadline:
                raise HubError(f"{self.name}'s server did not stop within {timeout:.0f} s")
            time.sleep(0.5)

    def server_request(self, method: str, path: str, *, user: str | None = None, **kwargs) -> requests.Response:
        """A request to /user/<user>/<path> (the learner's own server unless ``user`` is given),
        with the server's _xsrf cookie echoed in X-XSRFToken as JupyterLab does."""
        prefix = f"/user/{user or self.name}/"
        headers = {"X-XSRFToken": self._xsrf(prefix) or "", **kwargs.pop("headers", {})}
        return self.session.request(method, self.url(prefix + path.lstrip("/")), headers=headers, timeout=60, **kwargs)

    def contents(self, path: str, *, user: str | None = None) -> requests.Response:
        """GET /user/<user>/api/contents/<path>: a notebook's JSON, as JupyterLab opens it."""
        return self.server_request("GET", f"api/contents/{path}", user=user)

    def save(self, path: str, model: dict) -> requests.Response:
        """PUT a contents model (``{"type": "notebook", "format": "json", "content": nb}``)."""
        return self.server_request("PUT", f"api/contents/{path}", json=model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the workshop's JupyterHub until Ctrl-C (make hub).")
    parser.add_argument("--dir", default=os.environ.get("COMPRESSKIT_HUB_DIR") or str(DEFAULT_DIR),
                        help="the workshop folder: database, cookie secret, learners' homes (default %(default)s)")
    parser.add_argument("--ip", default=os.environ.get("COMPRESSKIT_HUB_IP") or "127.0.0.1",
                        help="address learners connect to (default %(default)s; 0.0.0.0 for the room, behind HTTPS)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("COMPRESSKIT_HUB_PORT") or 8000))
    parser.add_argument("--idle-timeout", type=int, default=int(os.environ.get("COMPRESSKIT_HUB_IDLE_TIMEOUT") or 3600),
                        help="seconds of inactivity before the culler stops a learner's server (default %(default)s)")
    args = parser.parse_args(argv)
    password = os.environ.get("COMPRESSKIT_HUB_PASSWORD")
    password_file = os.environ.get("COMPRESSKIT_HUB_PASSWORD_FILE")
    tokens_file = os.environ.get("COMPRESSKIT_HUB_TOKENS_FILE")
    if not (password or password_file or tokens_file):
        print("make hub: no workshop password. Choose one and start again, e.g.\n"
              "  COMPRESSKIT_HUB_PASSWORD='a-long-phrase-for-today' make hub\n"
              "or COMPRESSKIT_HUB_PASSWORD_FILE=path, or COMPRESSKIT_HUB_TOKENS_FILE=path with lines "
              "'learner-name token'. There is no default password.", file=sys.stderr)
        return 2
    if not proxy_installed():
        print("make hub: configurable-http-proxy is missing from classroom/node_modules: install Node.js and npm "
              "(sudo apt-get install nodejs npm), then run `make hub` again (it runs `npm ci` in classroom/).",
              file=sys.stderr)
        return 2
    # Ctrl-C, or a SIGTERM from a service manager, ends the loop below and stops everything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    env = {k: v for k, v in {"COMPRESSKIT_HUB_PASSWORD_FILE": password_file}.items() if v}
    hub = Hub(args.dir, password=password, tokens_file=tokens_file, ip=args.ip, port=args.port,
              idle_timeout=args.idle_timeout, env=env)
    try:
        hub.start()
    except HubError as error:
        print(f"make hub: {error}", file=sys.stderr)
        hub.stop()
        return 1
    print(f"JupyterHub for the course: {hub.base_url}  (learners' homes in {hub.homes}; log in {hub.log_path})\n"
          f"Instructor, in another terminal: python -m classroom.instructor --dir {hub.folder} --url {hub.base_url} "
          "list | stop <learner> | progress\n"
          f"  (its token, mode 0600: {hub.folder / 'instructor.token'})\n"
          "Ctrl-C stops it and every learner's server; their files stay.", flush=True)
    try:
        while hub.process.poll() is None:
            time.sleep(1)
        print(f"jupyterhub exited with code {hub.process.returncode}:\n{hub.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the hub...", flush=True)
        return 0
    finally:
        killed = hub.stop()
        if killed:
            print("still running after the hub stopped, ended:\n  " + "\n  ".join(killed), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
