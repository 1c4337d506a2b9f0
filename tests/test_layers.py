"""The library's three layers: imports only point down (see compresskit/__init__.py).

core (data, models, train, measure, cache, text, _validation) imports no technique and no course module;
a technique imports core only, never another technique, so it can be copied out alone;
nothing outside compresskit.course imports compresskit.course.

Imports are read from the source with ``ast``, absolute (``from compresskit.pruning import x``)
and relative (``from ..pruning import x``, ``from . import pruning`` in a top-level module) alike.
"""

import ast
import importlib.metadata
import re
from pathlib import Path

import pytest

import compresskit

PACKAGE = Path(compresskit.__file__).resolve().parent
CORE = {"data", "models", "train", "measure", "cache", "text", "_validation"}


def techniques_in(package: Path) -> list[str]:
    """Every top-level module or package of compresskit that is neither core nor course support."""
    return sorted(p.stem if p.is_file() else p.name for p in package.iterdir()
                  if (p.is_dir() and (p / "__init__.py").exists() and p.name != "course")
                  or (p.suffix == ".py" and p.stem not in CORE | {"__init__"}))


TECHNIQUES = techniques_in(PACKAGE)
# Training-time compression combines techniques by design (STYLE.md): the one exception.
COMBINES_TECHNIQUES = {"training"}


def compresskit_imports(path: Path, package: Path = PACKAGE) -> set[str]:
    """The top-level compresskit modules that ``path`` (a file under ``package``) imports,
    e.g. {"measure", "pruning"}; relative imports are resolved against the file's own package."""
    inside = path.resolve().relative_to(package.resolve()).parts  # e.g. ("quantization", "ort.py")
    here = [package.name, *inside[:-1]]  # the package the file belongs to, as dotted parts
    found = set()

    def add(dotted: list[str], names: list[str]) -> None:
        if dotted[:1] != [package.name]:
            return
        if len(dotted) == 1:  # from compresskit import pruning / from . import pruning (top level)
            found.update(names)
        else:
            found.add(dotted[1])

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: level 1 is the file's own package, 2 its parent, ...
                base = here[: len(here) - (node.level - 1)]
                dotted = base + (node.module.split(".") if node.module else [])
            else:
                dotted = (node.module or "").split(".")
            add(dotted, [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if len(parts) > 1:
                    add(parts, [])
    return found


def files_of(name: str, package: Path = PACKAGE) -> list[Path]:
    target = package / name
    return sorted(target.rglob("*.py")) if target.is_dir() else [package / f"{name}.py"]


def layer_violations(name: str, package: Path = PACKAGE, techniques: list[str] = TECHNIQUES) -> dict[str, list[str]]:
    """For core module or technique ``name``: each of its files -> the modules it may not import."""
    if name in CORE:
        allowed = CORE
    else:
        allowed = CORE | {name} | (set(techniques) if name in COMBINES_TECHNIQUES else set())
    found = {}
    for path in files_of(name, package):
        extra = compresskit_imports(path, package) - allowed
        if extra:
            found[str(path.relative_to(package))] = sorted(extra)
    return found


def test_there_are_techniques():
    assert {"pruning", "quantization", "ensembles"} <= set(TECHNIQUES)


@pytest.mark.parametrize("name", sorted(CORE))
def test_core_imports_only_core(name):
    assert not layer_violations(name), f"core must import core only: {layer_violations(name)}"


@pytest.mark.parametrize("name", TECHNIQUES)
def test_technique_imports_core_and_itself_only(name):
    assert not layer_violations(name), f"a technique may import core only: {layer_violations(name)}"


# Each line: a file of a synthetic compresskit, its source, and what the check must report.
SYNTHETIC = [
    ("quantization/bad.py", "from ..pruning import magnitude_mask\n", {"quantization/bad.py": ["pruning"]}),
    ("quantization/bad.py", "from .. import pruning\n", {"quantization/bad.py": ["pruning"]}),
    ("quantization/sub/bad.py", "from ...pruning.magnitude import x\n", {"quantization/sub/bad.py": ["pruning"]}),
    ("quantization/bad.py", "from compresskit.pruning import x\n", {"quantization/bad.py": ["pruning"]}),
    ("quantization/bad.py", "import compresskit.pruning.magnitude as m\n", {"quantization/bad.py": ["pruning"]}),
    ("quantization/bad.py", "from compresskit import course\n", {"quantization/bad.py": ["course"]}),
    ("quantization/ok.py", "from . import helpers\nfrom .helpers import y\nfrom ..train import fit\n", {}),
    ("quantization/ok.py", "from ..data import make_loader\nimport compresskit\nfrom torch import nn\n", {}),
]


@pytest.mark.parametrize("where, source, expected", SYNTHETIC, ids=[s for _, s, _ in SYNTHETIC])
def test_the_check_catches_relative_and_absolute_imports_of_another_technique(tmp_path, where, source, expected):
    package = tmp_path / "compresskit"
    for folder in ("pruning", "quantization", "quantization/sub"):
        (package / folder).mkdir(parents=True, exist_ok=True)
        (package / folder / "__init__.py").write_text("")
    (package / where).write_text(source)
    assert layer_violations("quantization", package, techniques_in(package)) == expected


def test_a_relative_import_in_a_core_module_is_caught(tmp_path):
    package = tmp_path / "compresskit"
    (package / "pruning").mkdir(parents=True)
    (package / "pruning" / "__init__.py").write_text("")
    (package / "train.py").write_text("from . import pruning\nfrom .measure import count\n")
    assert layer_violations("train", package, techniques_in(package)) == {"train.py": ["pruning"]}


def test_the_package_docstring_names_exactly_the_techniques_that_exist():
    listed = set(re.findall(r"``(\w+)``", compresskit.__doc__.split("* techniques:")[1].split("* course")[0]))
    assert listed == set(TECHNIQUES), f"compresskit/__init__.py lists {sorted(listed)}; the package has {TECHNIQUES}"


def test_version_matches_the_installed_metadata():
    assert compresskit.__version__ == importlib.metadata.version("compresskit")
