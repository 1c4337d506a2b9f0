"""The quantization explorer builds, and its summary changes with each control."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")

from compresskit import data, models  # noqa: E402
from compresskit.course.explorers.quantization import quantization_explorer  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


def test_explorer_summary_follows_the_controls():
    X, y = data.load_digits_split().tensors("test")
    box = quantization_explorer(models.mlp(), X, y, layer="fc2")
    bits, scheme = box.children[0].children
    summary = box.children[1]
    assert bits.continuous_update is False
    before = summary.value
    assert "4-bit per-tensor symmetric" in before and "16 levels" in before
    bits.value = 5
    assert summary.value != before and "5-bit" in summary.value and "32 levels" in summary.value
    after_bits = summary.value
    scheme.value = "k-means"
    assert summary.value != after_bits and "k-means" in summary.value


def test_explorer_rejects_unknown_layer():
    X, y = data.load_digits_split().tensors("test")
    with pytest.raises(ValueError, match="`layer` must name a layer"):
        quantization_explorer(models.mlp(), X, y, layer="conv7")
