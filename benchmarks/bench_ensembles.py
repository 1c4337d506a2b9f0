"""Ensembles benchmark: compresskit's from-scratch ensembles against scikit-learn's own classes
with the same settings (fit-time ratio, accuracy, bytes), and the ensemble distilled into a
small MLP (accuracy, bytes, latency ratio at batch 1).

Targets from the issue: accuracy within 1 point of scikit-learn's class; the distilled MLP
within 1.5 points of its teacher (every student seed) and at least 1000x smaller and faster at batch 1
(per request, the student answering requests back to back; the alternated one-request ratio is reported too).
Run alone: ``python -c "from benchmarks import bench_ensembles as b; print(b.run())"``.
"""

from __future__ import annotations

import sklearn.ensemble as sk
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from benchmarks import torch_threads
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


SEEDS = (0, 1, 2)  # student seeds: initial weights, MUNGE points and batch order
REQUESTS = 100     # single-digit requests the student answers back to back in the steady-state timing


def _teacher(split: data.DigitsSplit) -> ensembles.StackingClassifier:
    """The chapter's teacher: a 300-tree forest, 100 extra-trees, 3-NN and logistic regression, stacked."""
    forest = ensembles.BaggingClassifier(DecisionTreeClassifier(max_features="sqrt"), n_estimators=300, random_state=0)
    members = [
        ("forest", forest),
        ("extra-trees", sk.ExtraTreesClassifier(n_estimators=100, random_state=0, n_jobs=1)),
        ("knn", KNeighborsClassifier(3)),
        ("logistic", LogisticRegression(max_iter=2000)),
    ]
    return ensembles.StackingClassifier(members, cv=3).fit(split.X_train, split.y_train)


def _distilled_row(split: data.DigitsSplit) -> str:
    teacher = _teacher(split)
    X_test, y_test = torch.tensor(split.X_test), torch.tensor(split.y_test)
    students = [
        ensembles.distill_ensemble(teacher, split.X_train, hidden=(32,), n_copies=4, epochs=60, lr=1e-2, batch_size=128, seed=seed)
        for seed in SEEDS
    ]
    acc_teacher = teacher.score(split.X_test, split.y_test)
    acc_students = [measure.accuracy(student, X_test, y_test) for student in students]
    student = students[0]
    bytes_teacher, bytes_student = measure.serialized_bytes(teacher), measure.serialized_bytes(student)
    one, one_t = split.X_test[:1], X_test[:1]  # batch 1: one request
    alternated = measure.latency_ratio(teacher.predict_proba, student, one, args_b=(one_t,), warmup=3, repeats=30)
    requests = [X_test[i : i + 1] for i in range(REQUESTS)]

    def serve() -> None:
        for x in requests:
            student(x)

    in_a_row = measure.latency_ratio(lambda: teacher.predict_proba(one), serve, warmup=1, repeats=15)
    per_request = in_a_row.ratio * REQUESTS
    met = (
        min(acc_students) >= acc_teacher - 0.015 and bytes_teacher / bytes_student >= 1000 and per_request >= 1000
    )
    accs = " / ".join(f"{100 * a:.1f}" for a in acc_students)
    changes = " / ".join(f"{100 * (a - acc_teacher):+.1f}" for a in acc_students)
    return (
        "\n| teacher -> student | teacher accuracy (%) | student accuracy (%), seeds "
        + "/".join(map(str, SEEDS))
        + " | change (points) | teacher bytes | student bytes | smaller | faster at batch 1, alternated | "
        f"faster at batch 1, {REQUESTS} requests in a row | target |\n|---|---|---|---|---|---|---|---|---|---|\n"
        "| stacking (300-tree forest + 100 extra-trees + 3-NN + logistic) -> MLP 64-32-10 on soft targets + 4 MUNGE "
        f"copies | {100 * acc_teacher:.1f} | {accs} | {changes} | {bytes_teacher:,} | {bytes_student:,} | "
        f"{bytes_teacher / bytes_student:.0f}x | {alternated.ratio:.0f}x | {per_request:.0f}x | within 1.5 points on every "
        f"seed, >= 1000x smaller and >= 1000x faster per request ({'met' if met else 'NOT met'}) |"
    )


def run() -> str:
    with torch_threads(1):
        split = data.load_digits_split()
        rows = [_comparison_row(name, ours, theirs, split) for name, (ours, theirs) in _pairs().items()]
        with threadpool_limits(limits=1):  # the teacher's k-NN (OpenMP) and BLAS on one thread too: one core against one
            distilled = _distilled_row(split)
    header = [
        "### Ensembles",
        "",
        "compresskit.ensembles (from scratch, on scikit-learn's trees) against scikit-learn's own ensemble with the "
        f"same settings on the digits split (1078 train, 360 test; 1 digit = 0.28 point): fit-time ratio ours / "
        f"scikit-learn (median of {REPEATS} alternating fits), test accuracy, pickled bytes; then the best ensemble "
        "distilled into a small MLP (3 student seeds), latency ratio teacher / student for one sample (one thread each, scikit-learn's thread pools included): "
        "timed alternately one request each (every student call starts with the caches the teacher just flushed), and "
        f"with the student answering {REQUESTS} single-digit requests back to back against one teacher request (per request).",
        "",
        "| ensemble | fit time, ours / scikit-learn | ours (%) | scikit-learn (%) | gap (points, target 1) "
        "| ours bytes | scikit-learn bytes |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join(header + rows) + "\n" + distilled + "\n"
