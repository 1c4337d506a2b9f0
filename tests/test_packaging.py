"""`pip install .` into a clean virtual environment, without the course extras: compresskit imports
and one function from each package works, with no JupyterLab, ipywidgets or matplotlib in sight.

The wheel is built from this checkout with the environment's setuptools (offline: no build
isolation), installed by pip into a new venv; that venv sees only the distributions that
compresskit's own requirements need (the closure of its Requires-Dist, found in the running
environment and linked in), so a stray import of a course package fails here.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
COURSE_ONLY = ["matplotlib", "ipywidgets", "IPython", "jupyterlab", "ipykernel", "nbformat", "onnx", "onnxruntime", "skimage"]

SMOKE = textwrap.dedent('''
    import importlib, pkgutil, sys
    import numpy as np, torch
    import compresskit
    from compresskit import data, measure, models, pruning, quantization, sparsity, superres, train, ensembles

    # Every module outside course support imports (quantization.ort loads onnx only when called).
    library = [m.name for m in pkgutil.walk_packages(compresskit.__path__, "compresskit.") if ".course" not in m.name]
    for name in library:
        importlib.import_module(name)

    X = torch.rand(12, 64)
    y = torch.arange(12) % 3
    model = models.mlp((8,), in_features=64, num_classes=3, seed=0)
    train.fit(model, data.make_loader(X, y, 4), epochs=1, progress=False, device="cpu")
    assert measure.count_parameters(model) == 64 * 8 + 8 + 8 * 3 + 3
    pruning.l1_unstructured(model.fc1, "weight", amount=0.5)
    assert int((model.fc1.weight == 0).sum()) == 256
    q = quantization.quantize(torch.tensor([0.0, 0.25, 1.0]), 1 / 255, 0, 0, 255)
    assert q.tolist() == [0, 64, 255]  # round(0.25 * 255) = round(63.75)
    csr = sparsity.to_csr(torch.tensor([[0.0, 2.0], [3.0, 0.0]]))
    assert csr.values.tolist() == [2.0, 3.0]
    assert abs(superres.psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1)) - 20.0) < 1e-6  # 10 log10(1 / 0.01)
    bag = ensembles.BaggingClassifier(n_estimators=2, random_state=0).fit(X.numpy(), y.numpy())
    assert bag.predict(X.numpy()).shape == (12,)

    missing = []
    for name in COURSE_ONLY:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    print("imported", len(library), "modules; absent:", " ".join(missing))
''').replace("COURSE_ONLY", repr(COURSE_ONLY))


def requirement_closure(requirements: list[str]) -> set[str]:
    """The distributions (canonical names) that ``requirements`` pull in, extras left out."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        todo += [Requirement(r) for r in (importlib.metadata.distribution(name).requires or [])]
    return seen


def link_distributions(names: set[str], into: Path) -> None:
    """Symlink each distribution's top-level packages, modules and metadata into ``into``."""
    into.mkdir()
    for name in names:
        dist = importlib.metadata.distribution(name)
        site = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            if (site / top).exists() and not (into / top).exists():
                (into / top).symlink_to(site / top)


def test_pip_install_dot_works_without_the_course_extras(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    "--wheel-dir", str(wheels), str(REPO)], check=True, cwd=tmp_path)
    wheel, = wheels.glob("compresskit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        assert not any(n.startswith(("tests/", "chapters/", "benchmarks/")) for n in archive.namelist())
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    assert {canonicalize_name(Requirement(r).name) for r in core} == {"torch", "numpy", "scipy", "scikit-learn", "tqdm"}

    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
                    str(wheel)], check=True, cwd=tmp_path)
    deps = tmp_path / "deps"
    link_distributions(requirement_closure(core), deps)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "core_dependencies.pth").write_text(f"{deps}\n")

    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    run = subprocess.run([str(python), "-s", "-c", SMOKE], capture_output=True, text=True, cwd=tmp_path, env=clean)
    assert run.returncode == 0, run.stderr[-3000:]
    absent = run.stdout.split("absent:")[1].split()
    assert absent == COURSE_ONLY, f"the clean venv must not have the course extras; it has {sorted(set(COURSE_ONLY) - set(absent))}"
    installed = Path(subprocess.run([str(python), "-c", "import compresskit; print(compresskit.__file__)"],
                                    capture_output=True, text=True, check=True, cwd=tmp_path, env=clean).stdout.strip())
    assert installed.is_relative_to(site)  # the installed wheel, not this checkout
