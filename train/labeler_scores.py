"""Scores of the labeler heads (``train/labeler.py``): per-class F1, confusion, the majority baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mads_text.attitude import COARSE, NO_ATTITUDE


def majority_baseline(train_labels: Sequence[str], test_labels: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    """Every test sentence gets the most frequent training label."""
    vals, counts = np.unique(np.asarray(train_labels), return_counts=True)
    top = str(vals[int(np.argmax(counts))])
    s = scores(test_labels, [top] * len(test_labels), classes)
    return {"label": top, "accuracy": s["accuracy"], "macro_f1": s["macro_f1"]}


def scores(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    present = [c for c in classes if c in set(y_true)]
    per = f1_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)), 4),
        "per_class_f1": {c: round(float(f), 4) for c, f in zip(present, per)},
        "support": {c: int(sum(1 for y in y_true if y == c)) for c in present},
        "labels": list(present),
        "confusion": confusion_matrix(y_true, y_pred, labels=present).tolist(),
    }


def attitude_scores(y_true: Sequence[str], probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Coarse 4-way scores on attitude-bearing sentences only (argmax over the four groups, as the paper's groups)."""
    idx = [classes.index(c) for c in COARSE]
    keep = [i for i, y in enumerate(y_true) if y != NO_ATTITUDE]
    yt = [y_true[i] for i in keep]
    yp = [COARSE[int(np.argmax(probs[i, idx]))] for i in keep]
    return scores(yt, yp, COARSE)
