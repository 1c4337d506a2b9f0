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
README for per-learner memory); containers (DockerSpawner, or Zero to JupyterHub on Kubernetes)
add those limits and a separate filesystem per learner.
"""

import os
import pwd
import shutil
from pathlib import Path

c = get_config()  # noqa: F821
REPO = Path(__file__).resolve().parents[1]
if not os.environ.get("COMPRESSKIT_HUB_TOKENS_FILE"):
    raise SystemExit("one OS user per learner needs one token per learner: set COMPRESSKIT_HUB_TOKENS_FILE "
                     "(lines 'learner-name token'); a shared password would let anyone log in as anyone")
load_subconfig(str(Path(__file__).with_name("jupyterhub_config.py")))  # noqa: F821

c.JupyterHub.spawner_class = "localprocess"
c.Spawner.notebook_dir = "~"  # the learner's own home, from the system's user database
c.Spawner.args = [a for a in c.Spawner.args if a != "--allow-root"]  # servers run as the learner, never root


def copy_course_as_learner(spawner) -> None:
    """On a learner's first start, copy chapters/ and solutions/ into their system home, owned by them."""
    try:
        user = pwd.getpwnam(spawner.user.name)
    except KeyError:
        raise RuntimeError(f"no OS user {spawner.user.name!r} on this machine: create it first "
                           f"(useradd --create-home {spawner.user.name} && chmod 700 /home/{spawner.user.name})") from None
    home = Path(user.pw_dir)
    for folder in ("chapters", "solutions"):
        target = home / folder
        if not target.exists():
            shutil.copytree(REPO / folder, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
            for path in [target, *target.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)


c.Spawner.pre_spawn_hook = copy_course_as_learner
