"""One OS user per learner: for a class where learners must not read each other's work.

    sudo COMPRESSKIT_HUB_TOKENS_FILE=/etc/compresskit/tokens COMPRESSKIT_HUB_DIR=/var/lib/compresskit-hub \\
        /opt/compresskit/.venv/bin/python -m jupyterhub -f /opt/compresskit/classroom/jupyterhub_config_system_users.py

Everything in jupyterhub_config.py holds (it is loaded first), except where learners' servers run:

- LocalProcessSpawner starts each learner's server and kernels as the OS user of the same name, in
  that user's home, so the operating system keeps learners out of each other's files (with homes
  mode 0700) and out of the hub's folder. The hub itself runs as root to switch users.
- Each learner logs in with their own token (COMPRESSKIT_HUB_TOKENS_FILE, lines "name token"):
  with the shared workshop password anyone could log in under a classmate's name.

What the instructor does first (as root), for each learner in the token list:

    useradd --create-home --shell /bin/bash ada && chmod 700 /home/ada
    chmod 700 /var/lib/compresskit-hub      # the hub's database and cookie secret

and puts the repository, with its .venv, where learners can read but not write it (for example
/opt/compresskit, owned by root, mode 755): their kernels run its Python and read datasets/ there.

Learners still share the machine's CPU and memory: LocalProcessSpawner enforces no limits (see
docs/classroom.md for per-learner memory); containers (DockerSpawner, or Zero to JupyterHub on Kubernetes)
add those limits and a separate filesystem per learner.
"""

import os
import pwd
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

c = get_config()  # noqa: F821
REPO = Path(__file__).resolve().parents[1]
if not os.environ.get("COMPRESSKIT_HUB_TOKENS_FILE"):
    raise SystemExit("one OS user per learner needs one token per learner: set COMPRESSKIT_HUB_TOKENS_FILE "
                     "(lines 'learner-name token'); a shared password would let anyone log in as anyone")
load_subconfig(str(Path(__file__).with_name("jupyterhub_config.py")))  # noqa: F821
copy_course = c.Spawner.pre_spawn_hook  # jupyterhub_config.py's copy of the course into spawner.home_dir

c.JupyterHub.spawner_class = "localprocess"
c.Spawner.notebook_dir = "~"  # the learner's own home, from the system's user database
c.Spawner.args = [a for a in c.Spawner.args if a != "--allow-root"]  # servers run as the learner, never root


def blocked_directory(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first directory above ``path`` (symlinks resolved) that ``user`` may not enter, or None.
    A Python built under /root (pyenv's default, mode 700) is the usual one: the learner's server
    cannot even start."""
    for folder in reversed(Path(os.path.realpath(path)).parents):
        info = folder.stat()
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == user.pw_gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def copy_course_as_learner(spawner) -> None:
    """On a learner's first start, copy chapters/ and solutions/ into their system home (as the
    shared set-up does), then give the learner everything in it that root created."""
    try:
        user = pwd.getpwnam(spawner.user.name)
    except KeyError:
        raise RuntimeError(f"no OS user {spawner.user.name!r} on this machine: create it first "
                           f"(useradd --create-home {spawner.user.name} && chmod 700 /home/{spawner.user.name})") from None
    for needed in (Path(sys.executable), REPO / "pyproject.toml"):  # the course's Python, the repository
        folder = blocked_directory(needed, user)
        if folder is not None:
            raise RuntimeError(f"learner {user.pw_name!r} cannot reach {needed} ({folder} is mode "
                               f"{stat.S_IMODE(folder.stat().st_mode):o}): install the course, and the Python its "
                               f".venv was made from, where learners can read them (e.g. /opt/compresskit)")
    home = Path(user.pw_dir)
    copy_course(SimpleNamespace(home_dir=str(home)))  # all-or-nothing copies, the lab's page config
    for top in (home / "chapters", home / "solutions", home / ".jupyter"):  # what the copy made, as root
        for path in [top, *top.rglob("*")]:
            if path.lstat().st_uid == 0:
                os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)

c.Spawner.pre_spawn_hook = copy_course_as_learner
