"""The ensembles explorer: it builds, and its summary line follows the slider and the dropdown."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib
import numpy as np
import pytest
from sklearn.datasets import load_iris

from compresskit.course.explorers.ensembles import ensemble_explorer, staged_accuracy
from compresskit.ensembles import AdaBoostClassifier

matplotlib.use("Agg")


def test_staged_accuracy_follows_the_ensemble():
    X, y = load_iris(return_X_y=True)
    ada = AdaBoostClassifier(n_estimators=8, random_state=0).fit(X, y)
    acc = staged_accuracy(ada, X, y)
    assert acc.shape == (len(ada.estimators_),)
    assert acc[-1] == pytest.approx(ada.score(X, y))
    assert acc[0] < 0.7  # one stump separates one class of three at most


def test_explorer_summary_changes_with_the_slider_and_the_choice():
    curves = {"bagging": (np.linspace(0.9, 1.0, 20), np.linspace(0.8, 0.95, 20)),
              "boosting": (np.linspace(0.2, 0.9, 50), np.linspace(0.2, 0.85, 50))}
    box = ensemble_explorer(curves, n_estimators=5)
    assert isinstance(box, widgets.VBox)
    slider, choice = box.children[0].children
    summary = box.children[1]
    assert slider.continuous_update is False and slider.max == 50
    before = summary.value
    assert "bagging" in before and "5 estimators" in before
    slider.value = 6
    assert summary.value != before and "6 estimators" in summary.value
    after_slider = summary.value
    choice.value = "boosting"
    assert summary.value != after_slider and "boosting" in summary.value
    slider.value = 40  # past the end of the shorter curve: the bagging curve stops at 20
    choice.value = "bagging"
    assert "20 estimators" in summary.value


def test_explorer_needs_curves():
    with pytest.raises(ValueError, match="`curves` must hold at least one ensemble"):
        ensemble_explorer({})
