"""Trained heads of the embedded labelers: a ``NAME.npz`` of plain arrays plus ``NAME.json`` metadata.

No pickle anywhere: the .npz is loaded with ``allow_pickle=False`` and holds only numeric
arrays and the n-gram vocabulary as a unicode array. A head is a multinomial logistic
regression evaluated in numpy::

    z = ((x_dense - mean) / scale) @ W_dense + tfidf(text) @ W_ngram [+ tfidf(previous turn) @ W_ctx] + b,
    p = softmax(z)

(the previous-turn term only for heads whose features ask for it, see :class:`FeatureSpec`).
Training and inference both go through :meth:`LinearHead.predict_inputs`, so a head is always fed
the inputs it was fitted on.

The shipped heads live in ``mads_text/labelers/heads/``; ``mads train labeler --out DIR``
writes the same files, and ``MADS_LABELER_HEADS=DIR`` makes the labelers use them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .features import FeatureSpec, NgramVectorizer, SentenceInput, context_text, dense_features

HEAD_FORMAT = 1
SHIPPED_DIR = Path(__file__).resolve().parent / "heads"


class HeadError(RuntimeError):
    pass


def heads_dir(override: str | Path | None = None) -> Path:
    return Path(override or os.environ.get("MADS_LABELER_HEADS") or SHIPPED_DIR)


def has_head(name: str, directory: str | Path | None = None) -> bool:
    d = heads_dir(directory)
    return (d / f"{name}.npz").exists() and (d / f"{name}.json").exists()


class LinearHead:
    def __init__(self, name: str, classes: Sequence[str], spec: FeatureSpec, mean: np.ndarray, scale: np.ndarray,
                 w_dense: np.ndarray, w_ngram: np.ndarray, bias: np.ndarray, vectorizer: NgramVectorizer | None,
                 meta: dict[str, Any] | None = None, ctx_vectorizer: NgramVectorizer | None = None,
                 w_ctx: np.ndarray | None = None):
        self.name = name
        self.classes = list(classes)
        self.spec = spec
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.w_dense = np.asarray(w_dense, dtype=np.float64)
        self.w_ngram = np.asarray(w_ngram, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.vectorizer = vectorizer
        self.ctx_vectorizer = ctx_vectorizer
        self.w_ctx = np.asarray(w_ctx if w_ctx is not None else np.zeros((0, len(self.classes))), dtype=np.float64)
        self.meta = meta or {}
        c = len(self.classes)
        if self.w_dense.shape != (spec.dense_dim(), c) or self.bias.shape != (c,):
            raise HeadError(f"head '{name}': weight shapes {self.w_dense.shape}/{self.bias.shape} do not match "
                            f"{spec.dense_dim()} features x {c} classes")
        if spec.prev_turn_ngrams and (ctx_vectorizer is None or self.w_ctx.shape != (len(ctx_vectorizer.vocab), c)):
            raise HeadError(f"head '{name}': its features use previous-turn n-grams but the context vocabulary or "
                            "weights are missing or do not match")

    def logits(self, dense: np.ndarray, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        z = ((np.asarray(dense, dtype=np.float64) - self.mean) / self.scale) @ self.w_dense + self.bias
        if self.vectorizer is not None and self.w_ngram.size:
            for i, (idx, val) in enumerate(self.vectorizer.transform_rows(texts)):
                if idx.size:
                    z[i] += val @ self.w_ngram[idx]
        if self.spec.prev_turn_ngrams:
            if contexts is None or len(contexts) != len(texts):
                raise HeadError(f"head '{self.name}' needs the previous turn of every sentence (use predict_inputs)")
            for i, (idx, val) in enumerate(self.ctx_vectorizer.transform_rows(contexts)):
                if idx.size:
                    z[i] += val @ self.w_ctx[idx]
        return z

    def predict_proba(self, dense: np.ndarray, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        z = self.logits(dense, texts, contexts)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_inputs(self, inputs: Sequence[SentenceInput], encode) -> np.ndarray:
        """Class probabilities (n, classes) of sentence inputs; ``encode`` as in :func:`dense_features`."""
        if not inputs:
            return np.zeros((0, len(self.classes)))
        dense = dense_features(self.spec, inputs, encode)
        contexts = [context_text(x) for x in inputs] if self.spec.prev_turn_ngrams else None
        return self.predict_proba(dense, [x.text for x in inputs], contexts)

    # --- files -------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> tuple[Path, Path]:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {"mean": self.mean, "scale": self.scale, "w_dense": self.w_dense.astype(np.float32),
                  "w_ngram": self.w_ngram.astype(np.float32), "bias": self.bias}
        if self.vectorizer is not None:
            arrays["vocab"] = np.array(self.vectorizer.vocab, dtype=str)
            arrays["idf"] = self.vectorizer.idf
        if self.ctx_vectorizer is not None:
            arrays["ctx_vocab"] = np.array(self.ctx_vectorizer.vocab, dtype=str)
            arrays["ctx_idf"] = self.ctx_vectorizer.idf
            arrays["w_ctx"] = self.w_ctx.astype(np.float32)
        npz = d / f"{self.name}.npz"
        np.savez_compressed(npz, **arrays)
        meta = {"format": HEAD_FORMAT, "name": self.name, "classes": self.classes,
                "features": self.spec.model_dump(), **{k: v for k, v in self.meta.items() if k not in ("classes",)}}
        js = d / f"{self.name}.json"
        js.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return npz, js

    @classmethod
    def load(cls, name: str, directory: str | Path | None = None) -> LinearHead:
        d = heads_dir(directory)
        npz, js = d / f"{name}.npz", d / f"{name}.json"
        if not npz.exists() or not js.exists():
            raise HeadError(f"labeler head '{name}' not found in {d} (expected {npz.name} and {js.name}); "
                            "retrain with `mads train labeler --p4g PATH --out DIR`")
        try:
            meta = json.loads(js.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise HeadError(f"{js}: not valid JSON: {e}") from e
        if meta.get("format") != HEAD_FORMAT:
            raise HeadError(f"{js}: head format {meta.get('format')!r}, this version reads {HEAD_FORMAT}")
        spec = FeatureSpec.model_validate(meta["features"])
        with np.load(npz, allow_pickle=False) as z:
            vec = ctx = None
            if "vocab" in z.files:
                vec = NgramVectorizer(spec.ngram_max, [str(v) for v in z["vocab"]], z["idf"])
            if "ctx_vocab" in z.files:
                ctx = NgramVectorizer(spec.ngram_max or 1, [str(v) for v in z["ctx_vocab"]], z["ctx_idf"])
            return cls(name, meta["classes"], spec, z["mean"], z["scale"], z["w_dense"], z["w_ngram"], z["bias"],
                       vec, meta, ctx, z["w_ctx"] if "w_ctx" in z.files else None)
