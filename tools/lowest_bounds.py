"""Print pip constraints that pin packages to the lowest release pyproject.toml allows.

    python tools/lowest_bounds.py numpy scikit-learn matplotlib
    numpy==1.26
    scikit-learn==1.6
    matplotlib==3.8

`make test-lowest` installs the course with these constraints and runs the unit tests, so the
lower bounds in pyproject.toml stay true. Each package must have a ``>=`` bound there.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def lower_bounds(pyproject: Path = PYPROJECT) -> dict[str, str]:
    """Package name (lower case) -> its ``>=`` bound, over the dependencies and every extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    bounds = {}
    for requirement in requirements:
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)", requirement)
        if match:
            bounds[match.group(1).lower()] = match.group(2)
    return bounds


def main(names: list[str]) -> int:
    bounds = lower_bounds()
    missing = [name for name in names if name.lower() not in bounds]
    if missing:
        print(f"no >= bound in {PYPROJECT.name} for: {', '.join(missing)}", file=sys.stderr)
        return 1
    for name in names:
        print(f"{name}=={bounds[name.lower()]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
