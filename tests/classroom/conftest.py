"""Set-up for the classroom tests: a JupyterHub needs JupyterHub (requirements.txt) and
configurable-http-proxy, which `make` installs from npm into classroom/node_modules.

Without the proxy (no npm on this machine) the hub tests are skipped with a message that says what
to install, except when CI=true, where a missing proxy is a failure (as tests/ui does for a browser).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `classroom` is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from classroom.hub import PROXY  # noqa: E402


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _missing(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true and {reason}: `make test`'s set-up must install it (Node.js and npm, then "
                    "`npm ci` in classroom/)", pytrace=False)
    pytest.skip(f"JupyterHub tests skipped: {reason}. Install Node.js and npm (sudo apt-get install nodejs npm) "
                "and run `make test` again: its set-up runs `npm ci` in classroom/")


@pytest.fixture(scope="session")
def hub_prerequisites() -> None:
    """Skip (or, under CI, fail) when the hub cannot run here; say what is missing."""
    for module in ("jupyterhub", "jupyterhub_idle_culler"):
        if importlib.util.find_spec(module) is None:
            _missing(f"the Python package {module} is not installed (run `make`, which installs requirements.txt)")
    if not PROXY.exists():
        _missing(f"configurable-http-proxy is not installed ({PROXY.relative_to(REPO)} is missing)")
    if shutil.which("node") is None:
        _missing("Node.js (`node`) is not on PATH; configurable-http-proxy runs on it")
