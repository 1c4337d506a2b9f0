"""Generate requirements.txt, the course's pinned environment, from pyproject.toml: `make lock`.

pip-compile (pip-tools) resolves every extra of pyproject.toml, the build requirements
(setuptools, which `make` needs for the editable install) and the torch release given by
``--torch``; pins that nothing needs any more drop out, pins that still fit are kept. Then the
local build label of torch is removed (a CPU index resolves ``torch==2.13.0`` to ``2.13.0+cpu``),
so that the same file installs the CPU build, a CUDA build or the macOS build, whichever index
the Makefile's TORCH_INDEX points pip at.

Usage: python tools/lock.py --pip-compile PATH [--torch 2.13.0] [--index URL]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
# The course's pinned environment: `make lab` and `make test` install exactly this.
# Do not edit: `make lock` generates it from pyproject.toml (see README, "Two commands").
# torch is pinned without a build label: TORCH_INDEX in the Makefile picks the CPU or a CUDA build.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pip-compile", required=True, help="the pip-compile executable")
    parser.add_argument("--torch", default="2.13.0", help="the torch release to pin")
    parser.add_argument("--index", default="", help="an extra index to resolve torch from (PyTorch's CPU wheels)")
    parser.add_argument("--output", default=str(ROOT / "requirements.txt"))
    args = parser.parse_args(argv)
    command = [
        args.pip_compile, "--quiet", "--all-extras", "--all-build-deps", "--allow-unsafe", "--strip-extras",
        "--no-emit-index-url", "--no-emit-find-links", "--no-emit-trusted-host",
        "--upgrade-package", f"torch=={args.torch}", "--output-file", args.output, "pyproject.toml",
    ]
    if args.index:
        command[1:1] = ["--extra-index-url", args.index]
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "CUSTOM_COMPILE_COMMAND": "make lock"})
    path = Path(args.output)
    text = re.sub(r"(?m)^torch==([^+\s]+)\+\S+", r"torch==\1", path.read_text())
    if not text.startswith(HEADER):
        text = HEADER + text
    path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
