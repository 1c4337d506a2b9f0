"""classroom/z2jh-values.yaml (Zero to JupyterHub on Kubernetes, docs/kubernetes.md) can be
checked here without a cluster: it parses, it has no password in it, and its per-learner memory
holds the peaks measured in docs/classroom.md (read from there, the one place they are written;
it was README's classroom section until issue 24)."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import nbformat
import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML comes with JupyterLab (jupyter-events): install the course extras")

REPO = Path(__file__).resolve().parents[1]
VALUES = REPO / "classroom" / "z2jh-values.yaml"
README = REPO / "docs" / "classroom.md"  # the memory table moved here from README.md (issue 24)
UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}  # KubeSpawner's ByteSpecification
MIB = 1024**2
# A learner's server under the hub, from the classroom load test (docs/teaching.md; helper LOAD's
# tests/classroom/test_load.py): larger than README's plain JupyterLab, and not in README yet.
HUB_SERVER_MIB = 216


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text(encoding="utf-8"))


def to_bytes(spec) -> int:
    """A z2jh memory value as KubeSpawner reads it: an int, or digits and one of K, M, G, T (1024-based)."""
    if isinstance(spec, int):
        return spec
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT])", str(spec))
    assert match, f"{spec!r} is not a memory value KubeSpawner accepts (digits then K, M, G or T)"
    return int(float(match[1]) * UNITS[match[2]])


def measured_peaks() -> tuple[int, int]:
    """(highest chapter-kernel peak, JupyterLab server) in MiB, from README's "Per-learner cost"."""
    text = README.read_text(encoding="utf-8")
    peaks = [int(high) for high in re.findall(r"^\| \d\d_\w+ \| \d+-(\d+) MiB \|", text, flags=re.M)]
    server = re.search(r"JupyterLab\s+server\s+takes\s+about\s+(\d+)\s+MiB", text)
    assert peaks and server, "README's kernel-memory table or its server figure moved: update measured_peaks()"
    return max(peaks), int(server[1])


def test_to_bytes_reads_units_as_kubespawner_does():
    assert to_bytes("1G") == 1024**3 and to_bytes("512M") == 512 * MIB and to_bytes(2048) == 2048
    with pytest.raises(AssertionError):
        to_bytes("1Gi")  # Kubernetes' spelling, which KubeSpawner's mem_limit refuses


def test_memory_holds_one_chapter_in_the_guarantee_and_two_in_the_limit(values):
    kernel, server = measured_peaks()
    server = max(server, HUB_SERVER_MIB)
    memory = values["singleuser"]["memory"]
    assert to_bytes(memory["guarantee"]) >= (server + kernel) * MIB
    assert to_bytes(memory["limit"]) >= (server + 2 * kernel) * MIB
    assert to_bytes(memory["limit"]) >= to_bytes(memory["guarantee"])


def test_cpu_gives_a_chapter_its_one_thread(values):
    """Every chapter runs torch on one thread: a limit of one core is what Run All can use."""
    for path in sorted((REPO / "chapters").glob("*.ipynb")):
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert "torch.set_num_threads(1)" in code, path.name
    cpu = values["singleuser"]["cpu"]
    assert 0 < cpu["guarantee"] <= cpu["limit"] and cpu["limit"] >= 1


def test_the_course_lives_on_the_learners_volume(values):
    single = values["singleuser"]
    mount = PurePosixPath(single["storage"]["homeMountPath"])
    home = PurePosixPath("/home/jovyan")  # repo2docker's home, where the image holds the course
    assert mount.parent == home, "mount the volume in a subfolder: over the home it would hide compresskit"
    assert single["defaultUrl"] == f"/lab/tree/{mount.name}/chapters"
    assert f"{mount}/" in " ".join(single["lifecycleHooks"]["postStart"]["exec"]["command"])
    assert PurePosixPath(single["extraEnv"]["COMPRESSKIT_PROGRESS"]).is_relative_to(mount)


def test_the_culler_is_on_and_no_password_is_committed(values):
    assert values["cull"]["enabled"] is True and values["cull"]["timeout"] > 0
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] == "shared-password"
    assert "password" not in yaml.safe_dump(values["hub"]["config"]).replace("shared-password", "")
    assert values["singleuser"]["image"]["name"] and values["singleuser"]["image"]["tag"]


def test_the_kernel_peaks_quoted_in_the_kubernetes_guide_are_readmes():
    """docs/kubernetes.md quotes README's range of kernel peaks; it must be today's."""
    kernel, _ = measured_peaks()
    low = min(int(low) for low in re.findall(r"^\| \d\d_\w+ \| (\d+)-\d+ MiB \|", README.read_text(encoding="utf-8"), flags=re.M))
    text = " ".join((REPO / "docs" / "kubernetes.md").read_text(encoding="utf-8").split())
    assert f"peaks at {low}-{kernel} MiB" in text, "README's kernel peaks changed: update docs/kubernetes.md"
    hub_server = HUB_SERVER_MIB
    assert f"about {hub_server} + {kernel} = {hub_server + kernel} MiB" in text
    assert f"about {hub_server} + 2 x {kernel} = {hub_server + 2 * kernel} MiB" in text
