"""Ensembles benchmark: compresskit's from-scratch ensembles against scikit-learn's own classes
with the same settings (fit-time ratio, accuracy, bytes), and the ensemble distilled into a
small MLP (accuracy, bytes, latency ratio at batch 1).

Targets from the issue: accuracy within 1 point of scikit-learn's class; the distilled MLP
within 1.5 points of its teacher and at least 1000x smaller and faster at batch 1.
Run alone: ``python -c "from benchmarks import bench_ensembles as b; print(b.run())"``.
"""

from __future__ import annotations

import sklearn.ensemble as sk
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from compresskit import data, ensembles, measure

REPEATS = 3  # alternating fits of ours and scikit-learn's; the ratio of the medians


def _base_learners() -> list:
    return [
        ("tree", DecisionTreeClassifier(max_depth=8, random_state=0)),
        ("knn", KNeighborsClassifier(3)),
        ("logistic", LogisticRegression(max_iter=2000)),
    ]


def _pairs() -> dict[str, tuple]:
    return {
        "Bagging, 50 deep trees": (
            ensembles.BaggingClassifier(n_estimators=50, random_state=0),
            sk.BaggingClassifier(n_estimators=50, random_state=0),
        ),
        "AdaBoost SAMME, 100 stumps": (
            ensembles.AdaBoostClassifier(n_estimators=100, random_state=0),
            sk.AdaBoostClassifier(n_estimators=100, random_state=0),
        ),
        "Gradient boosting, 20 x 10 trees": (
            ensembles.GradientBoostingClassifier(n_estimators=20, random_state=0),
            sk.GradientBoostingClassifier(n_estimators=20, random_state=0),
        ),
        "Stacking, tree + k-NN + logistic, 3 folds": (
            ensembles.StackingClassifier(_base_learners(), cv=3),
            sk.StackingClassifier(_base_learners(), LogisticRegression(max_iter=1000), cv=StratifiedKFold(3)),
        ),
    }


def _comparison_row(name: str, ours, theirs, split: data.DigitsSplit) -> str:
    X, y = split.X_train, split.y_train
    timing = measure.latency_ratio(lambda: ours.fit(X, y), lambda: theirs.fit(X, y), warmup=0, repeats=REPEATS)
    acc_ours, acc_theirs = ours.score(split.X_test, split.y_test), theirs.score(split.X_test, split.y_test)
    gap = 100 * (acc_ours - acc_theirs)
    verdict = "met" if abs(gap) <= 1.0 else "NOT met"
    return (
        f"| {name} | {timing.ratio:.2f}x | {100 * acc_ours:.1f} | {100 * acc_theirs:.1f} | {gap:+.1f} ({verdict}) | "
        f"{measure.serialized_bytes(ours):,} | {measure.serialized_bytes(theirs):,} |"
    )


def _distilled_row(split: data.DigitsSplit) -> str:
    forest = ensembles.BaggingClassifier(DecisionTreeClassifier(max_features="sqrt"), n_estimators=100, random_state=0)
    teacher = ensembles.StackingClassifier(
        [("forest", forest), ("knn", KNeighborsClassifier(3)), ("logistic", LogisticRegression(max_iter=2000))], cv=3
    ).fit(split.X_train, split.y_train)
    student = ensembles.distill_ensemble(teacher, split.X_train, hidden=(32,), n_copies=4, seed=0)
    X_test, y_test = torch.tensor(split.X_test), torch.tensor(split.y_test)
    acc_teacher, acc_student = teacher.score(split.X_test, split.y_test), measure.accuracy(student, X_test, y_test)
    bytes_teacher, bytes_student = measure.serialized_bytes(teacher), measure.serialized_bytes(student)
    one = split.X_test[:1]  # batch 1: one request
    timing = measure.latency_ratio(teacher.predict_proba, student, one, args_b=(X_test[:1],), warmup=3, repeats=30)
    met = acc_student >= acc_teacher - 0.015 and bytes_teacher / bytes_student >= 1000 and timing.ratio >= 1000
    return (
        "\n| teacher -> student | teacher accuracy (%) | student accuracy (%) | change (points) | teacher bytes | "
        "student bytes | smaller | faster at batch 1 | target |\n|---|---|---|---|---|---|---|---|---|\n"
        f"| stacking (100-tree forest + 3-NN + logistic) -> MLP 64-32-10 on soft targets + 4 MUNGE copies | "
        f"{100 * acc_teacher:.1f} | {100 * acc_student:.1f} | {100 * (acc_student - acc_teacher):+.1f} | {bytes_teacher:,} | "
        f"{bytes_student:,} | {bytes_teacher / bytes_student:.0f}x | {timing.ratio:.0f}x | "
        f"within 1.5 points, >= 1000x smaller and faster ({'met' if met else 'NOT met'}) |"
    )


def run() -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        split = data.load_digits_split()
        rows = [_comparison_row(name, ours, theirs, split) for name, (ours, theirs) in _pairs().items()]
        distilled = _distilled_row(split)
    finally:
        torch.set_num_threads(threads)
    header = [
        "### Ensembles",
        "",
        "compresskit.ensembles (from scratch, on scikit-learn's trees) against scikit-learn's own ensemble with the "
        f"same settings on the digits split (1078 train, 360 test; 1 digit = 0.28 point): fit-time ratio ours / "
        f"scikit-learn (median of {REPEATS} alternating fits), test accuracy, pickled bytes; then the best ensemble "
        "distilled into a small MLP, latency ratio teacher / student for one sample (one thread, timed alternately).",
        "",
        "| ensemble | fit time, ours / scikit-learn | ours (%) | scikit-learn (%) | gap (points, target 1) "
        "| ours bytes | scikit-learn bytes |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join(header + rows) + "\n" + distilled + "\n"
