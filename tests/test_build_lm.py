"""datasets/build_lm.py: the first training steps (the full build is `make datasets`), the schedule,
and what a build writes: weights, their SHA-256 line beside the others, the metrics, the tolerance."""

import json
import sys
from pathlib import Path

import pytest
import torch

from compresskit import models

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "datasets"))
try:
    import build_lm
finally:
    sys.path.pop(0)


def test_first_steps_lower_the_loss_and_repeat_exactly():
    model, losses = build_lm.train_lm("draft", steps=20, progress=False)
    assert len(losses) == 20 and isinstance(model, models.TinyLM) and not model.training
    assert losses[0] == pytest.approx(torch.log(torch.tensor(256.0)).item(), abs=0.3)  # a uniform guess at first
    assert sum(losses[-5:]) / 5 < losses[0] - 1.0
    # The learning rate of the warm-up does not depend on the total steps: 5 steps repeat the first 5.
    _, again = build_lm.train_lm("draft", steps=5, progress=False)
    assert again == losses[:5]


def test_learning_rate_schedule_by_hand():
    peak, steps, w = 1.0, 100, build_lm.WARMUP
    assert build_lm.learning_rate(0, steps, peak) == pytest.approx(1 / w)
    assert build_lm.learning_rate(w - 1, steps, peak) == pytest.approx(1.0)
    assert build_lm.learning_rate(w, steps, peak) == pytest.approx(1.0)
    assert build_lm.learning_rate(steps - 1, steps, peak) == pytest.approx(0.1)  # cosine down to peak / 10
    middle = w + (steps - w - 1) / 2
    assert build_lm.learning_rate(int(middle), steps, peak) == pytest.approx(0.55, abs=0.02)


@pytest.fixture
def quick(monkeypatch):
    """Three training steps and a stand-in evaluation (the real one is checked on the real weights)."""
    monkeypatch.setattr(build_lm, "STEPS", {"main": 3, "draft": 3})
    monkeypatch.setattr(build_lm, "evaluate", lambda model: {"test_perplexity": 7.0, "val_perplexity": 7.5})


def test_build_writes_weights_checksums_and_metrics(tmp_path, quick):
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  sr_images.npz\n")
    build_lm.build(tmp_path, names=("draft",))
    sums = (tmp_path / "SHA256SUMS").read_text().splitlines()
    assert sums[0] == f"{'0' * 64}  sr_images.npz" and sums[1].endswith("  tiny_lm_draft.pt") and len(sums) == 2
    metrics = json.loads((tmp_path / "tiny_lm.json").read_text())
    assert metrics["draft"]["steps"] == 3 and metrics["draft"]["parameters"] == 132_864
    model = models.load_tiny_lm("draft", tmp_path)  # verified against the new checksum
    trained, _ = build_lm.train_lm("draft", steps=3, progress=False)
    for (name, a), b in zip(model.state_dict().items(), trained.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_rebuild_off_the_committed_perplexity_replaces_nothing(tmp_path, quick):
    (tmp_path / "tiny_lm.json").write_text(json.dumps({"draft": {"test_perplexity": 7.5}}))
    with pytest.raises(SystemExit, match=r"test perplexity 7.0000 is not within 3% of the committed 7.5000"):
        build_lm.build(tmp_path, names=("draft",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_lm.json"]
    (tmp_path / "tiny_lm.json").write_text(json.dumps({"draft": {"test_perplexity": 7.1}}))  # within 3%
    build_lm.build(tmp_path, names=("draft",))
    assert (tmp_path / "tiny_lm_draft.pt").is_file()
