"""The library's three layers: imports only point down (see compresskit/__init__.py).

core (data, models, train, measure, _validation) imports no technique and no course module;
a technique imports core only, never another technique, so it can be copied out alone;
nothing outside compresskit.course imports compresskit.course.
"""

import ast
import importlib.metadata
from pathlib import Path

import pytest

import compresskit

PACKAGE = Path(compresskit.__file__).resolve().parent
CORE = {"data", "models", "train", "measure", "_validation"}
TECHNIQUES = sorted(p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
                    if (p.is_dir() and (p / "__init__.py").exists() and p.name != "course")
                    or (p.suffix == ".py" and p.stem not in CORE | {"__init__"}))
# Training-time compression combines techniques by design (STYLE.md): the one exception.
COMBINES_TECHNIQUES = {"training"}


def compresskit_imports(path: Path) -> set[str]:
    """The top-level compresskit modules that ``path`` imports, e.g. {"measure", "pruning"}."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("compresskit."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "compresskit":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("compresskit."))
    return found


def files_of(name: str) -> list[Path]:
    target = PACKAGE / name
    return sorted(target.rglob("*.py")) if target.is_dir() else [PACKAGE / f"{name}.py"]


def test_there_are_techniques():
    assert {"pruning", "quantization", "ensembles"} <= set(TECHNIQUES)


@pytest.mark.parametrize("name", sorted(CORE))
def test_core_imports_only_core(name):
    for path in files_of(name):
        assert compresskit_imports(path) <= CORE, f"{path.name} imports {compresskit_imports(path) - CORE}"


@pytest.mark.parametrize("name", TECHNIQUES)
def test_technique_imports_core_and_itself_only(name):
    allowed = CORE | {name} | (set(TECHNIQUES) if name in COMBINES_TECHNIQUES else set())
    for path in files_of(name):
        extra = compresskit_imports(path) - allowed
        assert not extra, f"{path.relative_to(PACKAGE)} imports {sorted(extra)}: a technique may import core only"


def test_version_matches_the_installed_metadata():
    assert compresskit.__version__ == importlib.metadata.version("compresskit")
