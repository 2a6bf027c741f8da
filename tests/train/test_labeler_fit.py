"""Per-class offsets of the strategy head: tuned on out-of-fold logits, bounded by accuracy."""

import numpy as np
from sklearn.metrics import f1_score

from train.labeler_fit import tune_offsets

CLASSES = ["common", "rare"]


def _under_predicted_rare_class(seed=0, n_common=400, n_rare=60):
    rng = np.random.default_rng(seed)
    y = np.array(["common"] * n_common + ["rare"] * n_rare)
    margin = np.where(y == "rare", 0.6, -2.0) + rng.normal(0, 1.0, len(y))  # rare sits too low: argmax misses it
    logits = np.stack([np.zeros(len(y)), margin - 1.0], axis=1)
    return logits, y


def _scores(logits, y, off):
    pred = np.array(CLASSES)[(logits + off).argmax(axis=1)]
    return (pred == y).mean(), f1_score(y, pred, labels=CLASSES, average="macro")


def test_offsets_raise_the_under_predicted_class_and_keep_accuracy():
    logits, y = _under_predicted_rare_class()
    off = tune_offsets(logits, y, CLASSES, acc_slack=0.003)
    acc0, f10 = _scores(logits, y, np.zeros(2))
    acc1, f11 = _scores(logits, y, off)
    assert off[1] - off[0] > 0.2
    assert f11 > f10 + 0.02
    assert acc1 >= acc0 - 0.003


def test_no_offset_when_accuracy_would_fall_past_the_slack():
    logits, y = _under_predicted_rare_class()
    off = tune_offsets(logits, y, CLASSES, acc_slack=0.0)
    acc0, _ = _scores(logits, y, np.zeros(2))
    assert _scores(logits, y, off)[0] >= acc0


def test_a_well_placed_head_keeps_zero_offsets():
    y = np.array(["common"] * 50 + ["rare"] * 50)
    logits = np.stack([np.where(y == "common", 3.0, -3.0), np.where(y == "rare", 3.0, -3.0)], axis=1)
    assert np.allclose(tune_offsets(logits, y, CLASSES), 0.0)
