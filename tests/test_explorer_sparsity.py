"""The sparsity explorer: it builds, its summary follows every control, and its bytes are exact."""

from __future__ import annotations

import ipywidgets as widgets
import pytest
import torch

from compresskit import sparsity as S
from compresskit.course.explorers.sparsity import FORMATS, format_summary, sparsity_explorer


def test_explorer_summary_follows_the_controls():
    weight = torch.randn(64, 64)
    box = sparsity_explorer(weight, sparsity=0.9, repeats=2)
    assert isinstance(box, widgets.VBox)
    slider, fmt, batch = box.children[0].children
    summary = box.children[1]
    assert slider.continuous_update is False
    before = summary.value
    assert "<b>CSR</b> at 90% sparsity" in before and "batch 64" in before
    slider.value = 0.95
    assert "95% sparsity" in summary.value
    fmt.value = "bitmask"
    assert "<b>bitmask</b>" in summary.value
    batch.value = 1
    assert "batch 1:" in summary.value
    assert (weight != 0).all()  # the caller's weight is not changed


@pytest.mark.parametrize("label", list(FORMATS))
def test_format_summary_bytes_are_exact(label):
    weight = torch.randn(32, 48)
    sparse, measured, formula, dense = format_summary(weight, 0.8, FORMATS[label])
    assert measured == formula and dense == 32 * 48 * 4
    assert int((sparse == 0).sum()) == round(0.8 * 32 * 48)
    assert measured == S.nbytes(S.encode(sparse, FORMATS[label]))
