"""Fitting the labelers' heads (``train/labeler.py``): a recipe, the training sentences, logistic regression
exported to the plain arrays of ``LinearHead``, prediction through the head's own inference path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mads_text.labelers.features import FeatureSpec, NgramVectorizer, SentenceInput, context_text, dense_features
from mads_text.labelers.heads import LinearHead

from .labeler_scores import scores


@dataclass
class Recipe:
    """A feature set and the head's regularisation."""

    name: str
    spec: FeatureSpec
    C: float = 0.1
    class_weight: str | None = None  # None, "balanced", or "sqrt-balanced" (the square root of sklearn's balanced)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "features": self.spec.model_dump(), "C": self.C, "class_weight": self.class_weight}


@dataclass
class Sentences:
    dialogue: list[str] = field(default_factory=list)
    inputs: list[SentenceInput] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def subset(self, mask: np.ndarray) -> Sentences:
        idx = np.flatnonzero(mask)
        return Sentences([self.dialogue[i] for i in idx], [self.inputs[i] for i in idx], [self.labels[i] for i in idx])

    def plus(self, other: Sentences) -> Sentences:
        return Sentences(self.dialogue + other.dialogue, self.inputs + other.inputs, self.labels + other.labels)


def class_weights(kind: str | None, labels: Sequence[str]) -> dict[str, float] | str | None:
    """sklearn's class_weight; "sqrt-balanced" softens "balanced" (rare strategies gain recall, common ones keep it)."""
    if kind != "sqrt-balanced":
        return kind
    names, counts = np.unique(np.asarray(labels), return_counts=True)
    return {str(c): float(np.sqrt(len(labels) / (len(names) * n))) for c, n in zip(names, counts)}


def fit_head(name: str, recipe: Recipe, data: Sentences, encode, classes: Sequence[str], seed: int) -> LinearHead:
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    spec = recipe.spec
    dense = dense_features(spec, data.inputs, encode).astype(np.float64)
    mean = dense.mean(axis=0)
    scale = dense.std(axis=0)
    scale[scale < 1e-8] = 1.0
    x = (dense - mean) / scale
    blocks, vec, ctx = [sparse.csr_matrix(x)], None, None
    if spec.ngram_max > 0:
        vec = NgramVectorizer.fit([i.text for i in data.inputs], spec.ngram_max, min_df=2)
        blocks.append(vec.transform_sparse([i.text for i in data.inputs]) * spec.ngram_weight)
    if spec.prev_turn_ngrams:  # the same text the labelers build at run time (features.context_text)
        contexts = [context_text(i) for i in data.inputs]
        ctx = NgramVectorizer.fit(contexts, spec.ngram_max or 1, min_df=2)
        blocks.append(ctx.transform_sparse(contexts) * spec.ngram_weight)
    x = sparse.hstack(blocks).tocsr() if len(blocks) > 1 else x
    clf = LogisticRegression(C=recipe.C, max_iter=3000, class_weight=class_weights(recipe.class_weight, data.labels),
                             random_state=seed)
    clf.fit(x, np.array(data.labels))
    order = [list(clf.classes_).index(c) for c in classes if c in clf.classes_]
    coef = clf.coef_[order]
    bias = clf.intercept_[order]
    d = dense.shape[1]
    nv = len(vec.vocab) if vec is not None else 0
    w_dense = coef[:, :d].T
    w_ngram = (coef[:, d : d + nv] * spec.ngram_weight).T if vec is not None else np.zeros((0, len(order)))
    w_ctx = (coef[:, d + nv :] * spec.ngram_weight).T if ctx is not None else None
    return LinearHead(name, [classes[i] for i in range(len(classes)) if classes[i] in clf.classes_], spec,
                      mean, scale, w_dense, w_ngram, bias, vec, {"variant": recipe.name, "recipe": recipe.describe()},
                      ctx, w_ctx)


def predict(head: LinearHead, data: Sentences, encode) -> list[str]:
    """Labels from the head's own inference path (``LinearHead.predict_inputs``, as the labelers call it)."""
    probs = head.predict_inputs(data.inputs, encode)
    return [head.classes[i] for i in probs.argmax(axis=1)]


def cross_validate(task: str, recipe: Recipe, data: Sentences, encode, classes, folds: int, seed: int) -> dict[str, float]:
    from sklearn.model_selection import GroupKFold

    groups = np.array(data.dialogue)
    accs, f1s = [], []
    for tr, va in GroupKFold(folds).split(np.zeros(len(groups)), groups=groups):
        mtr = np.zeros(len(groups), dtype=bool)
        mtr[tr] = True
        head = fit_head(task, recipe, data.subset(mtr), encode, classes, seed)
        s = scores([data.labels[i] for i in va], predict(head, data.subset(~mtr), encode), classes)
        accs.append(s["accuracy"])
        f1s.append(s["macro_f1"])
    return {"accuracy": round(float(np.mean(accs)), 4), "macro_f1": round(float(np.mean(f1s)), 4)}


def out_of_fold_logits(task: str, recipe: Recipe, data: Sentences, encode, classes: Sequence[str], folds: int,
                       seed: int) -> np.ndarray:
    """Log-probabilities (n, classes) of every sentence from a head fitted on the other folds (grouped by dialogue)."""
    from sklearn.model_selection import GroupKFold

    groups = np.array(data.dialogue)
    out = np.full((len(groups), len(classes)), -1e9)  # a class missing from a fold's training part is never chosen
    for tr, va in GroupKFold(folds).split(np.zeros(len(groups)), groups=groups):
        mtr = np.zeros(len(groups), dtype=bool)
        mtr[tr] = True
        head = fit_head(task, recipe, data.subset(mtr), encode, classes, seed)
        cols = [list(classes).index(c) for c in head.classes]
        out[np.ix_(va, cols)] = np.log(head.predict_inputs(data.subset(~mtr).inputs, encode) + 1e-12)
    return out


def tune_offsets(logits: np.ndarray, labels: Sequence[str], classes: Sequence[str], acc_slack: float = 0.003,
                 grid: Sequence[float] = tuple(np.round(np.arange(-1.5, 1.51, 0.1), 2)), sweeps: int = 3) -> np.ndarray:
    """Per-class offsets added to the logits that raise macro-F1 on out-of-fold predictions while accuracy stays
    within ``acc_slack`` of the plain argmax (coordinate ascent over a grid). Rare strategies are under-predicted by
    a head that is fitted for likelihood; an offset moves its decision threshold and nothing else."""
    from sklearn.metrics import f1_score

    y = np.asarray(labels)
    names = np.asarray(classes)

    def value(off: np.ndarray) -> tuple[float, float]:
        pred = names[(logits + off).argmax(axis=1)]
        return float((pred == y).mean()), float(f1_score(y, pred, labels=list(classes), average="macro", zero_division=0))

    floor = value(np.zeros(len(classes)))[0] - acc_slack
    off = np.zeros(len(classes))
    best = value(off)[1]
    for _ in range(sweeps):
        for c in range(len(classes)):
            for g in grid:
                trial = off.copy()
                trial[c] = g
                acc, f1 = value(trial)
                if acc >= floor and f1 > best + 1e-9:
                    best, off = f1, trial
    return off
