"""The instructor's terminal: act on the workshop's hub without the browser.

    python -m classroom.instructor list             # learners, their servers, last activity
    python -m classroom.instructor stop ada         # stop ada's server (a stuck kernel with it); her files stay
    python -m classroom.instructor progress         # exercises passed per chapter, per learner

It talks to the hub's REST API (/hub/api/, through the proxy) with the instructor's token, which
the hub writes, on its first start, to ``<workshop folder>/instructor.token`` (mode 0600, made
again only if deleted). The workshop folder is never inside the repository (the config refuses
that), so the token cannot be committed. The token belongs to the hub service "instructor",
whose role grants exactly what these commands need (INSTRUCTOR_SCOPES): list learners, read
their servers and last activity, stop a server. It cannot create or delete learners, start a
server, mint tokens, or open a learner's notebooks or kernels (no ``access:servers``), so a
leaked token can at worst stop servers. ``progress`` reads the learners' progress files on disk
(compresskit.course.progress.room), which needs no API scope.

Options: ``--dir`` the workshop folder (default $COMPRESSKIT_HUB_DIR or ~/compresskit-hub),
``--url`` the hub's address (default http://$COMPRESSKIT_HUB_IP:$COMPRESSKIT_HUB_PORT, i.e.
http://127.0.0.1:8000).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from pathlib import Path
from typing import Sequence

import requests

TOKEN_FILE = "instructor.token"
SERVICE = "instructor"
#: What the instructor's token may do, and nothing more (JupyterHub scopes).
INSTRUCTOR_SCOPES = ("list:users", "read:users:activity", "read:servers", "delete:servers")
DEFAULT_DIR = Path.home() / "compresskit-hub"


class InstructorError(RuntimeError):
    """The hub refused or failed a request; the message says what to do."""


def token_path(folder: Path | str) -> Path:
    return Path(folder).expanduser() / TOKEN_FILE


def read_token(folder: Path | str) -> str:
    """The instructor's token from the workshop folder; refuses a file others may read."""
    path = token_path(folder)
    if not path.is_file():
        raise InstructorError(f"no instructor token at {path}: start the hub first (make hub), which writes it")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InstructorError(f"{path} is mode {mode:o}: other users could read it; `chmod 600 {path}`")
    return path.read_text().strip()


class Instructor:
    """The hub's REST API with the instructor's token: ``Instructor(url, token).learners()``."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """/hub/api/<path> with the token; the response as it came (the caller checks the status)."""
        return requests.request(method, f"{self.url}/hub/api/{path.lstrip('/')}", timeout=self.timeout,
                                headers={"Authorization": f"token {self.token}"}, **kwargs)

    def _ok(self, response: requests.Response, what: str) -> requests.Response:
        if response.status_code == 403:
            raise InstructorError(f"{what}: the hub refused the instructor's token (403): {response.text[:200]}")
        if response.status_code >= 400:
            raise InstructorError(f"{what}: the hub answered {response.status_code}: {response.text[:200]}")
        return response

    def learners(self) -> list[dict]:
        """Every learner the hub knows: name, last activity, and their default server's state."""
        users = self._ok(self.request("GET", "users"), "listing learners").json()
        return sorted(users, key=lambda user: user["name"])

    def server(self, name: str) -> dict:
        """``name``'s default server as the hub reports it ({} when none is running)."""
        response = self.request("GET", f"users/{name}")
        if response.status_code == 404:
            raise InstructorError(f"no learner {name!r} on this hub (see `list`)")
        return self._ok(response, f"reading {name}'s server").json().get("servers", {}).get("", {})

    def stop(self, name: str, timeout: float = 120.0) -> float:
        """Stop ``name``'s server (and its kernels) and wait until the hub says it has stopped.
        Returns the seconds it took; 0.0 when no server was running."""
        if not self.server(name):
            return 0.0
        start = time.monotonic()
        self._ok(self.request("DELETE", f"users/{name}/server"), f"stopping {name}'s server")
        while self.server(name):
            if time.monotonic() - start > timeout:
                raise InstructorError(f"{name}'s server had not stopped {timeout:.0f} s after the request")
            time.sleep(0.5)
        return time.monotonic() - start


def _state(server: dict) -> str:
    if not server:
        return "stopped"
    if server.get("pending"):
        return f"{server['pending']}ing"
    return "ready" if server.get("ready") else "starting"


def format_learners(users: list[dict]) -> str:
    """One line per learner: name, server state, since when, last activity (UTC)."""
    lines = [f"{'learner':<20} {'server':<10} {'started (UTC)':<17} last activity (UTC)"]
    for user in users:
        server = user.get("servers", {}).get("", {})
        started = (server.get("started") or "")[:16].replace("T", " ")
        last = (user.get("last_activity") or "")[:16].replace("T", " ")
        lines.append(f"{user['name']:<20} {_state(server):<10} {started:<17} {last}".rstrip())
    if not users:
        lines.append("(no learners yet)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classroom.instructor",
                                     description="Act on the workshop's hub from a terminal.")
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("COMPRESSKIT_HUB_DIR") or DEFAULT_DIR),
                        help="the workshop folder, with instructor.token (default %(default)s)")
    ip = os.environ.get("COMPRESSKIT_HUB_IP") or "127.0.0.1"
    parser.add_argument("--url", default=f"http://{'127.0.0.1' if ip == '0.0.0.0' else ip}:"
                                         f"{os.environ.get('COMPRESSKIT_HUB_PORT') or 8000}",
                        help="the hub's address (default %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="learners, their servers and last activity")
    stop = commands.add_parser("stop", help="stop a learner's server and kernels (their files stay)")
    stop.add_argument("learner")
    progress = commands.add_parser("progress", help="exercises passed per chapter, per learner")
    progress.add_argument("--homes", type=Path, help="the learners' homes (default: <dir>/homes)")
    args = parser.parse_args(argv)
    try:
        if args.command == "progress":
            from compresskit.course.progress import room

            print(room(args.homes or args.dir.expanduser() / "homes"))
            return 0
        hub = Instructor(args.url, read_token(args.dir))
        if args.command == "list":
            print(format_learners(hub.learners()))
        else:
            seconds = hub.stop(args.learner)
            print(f"{args.learner}: no server was running" if seconds == 0.0
                  else f"{args.learner}: server stopped in {seconds:.1f} s (their files stay)")
        return 0
    except (InstructorError, requests.RequestException) as error:
        print(f"instructor: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
