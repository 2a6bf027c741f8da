"""Features of the embedded labelers, shared by training (``train/labeler.py``) and inference.

A sentence is described by up to four blocks, chosen by a :class:`FeatureSpec`:

* ``sentence``: its MiniLM embedding: the mean-pooled, normalised output of each layer in ``layers``
  (384 per layer; layer 6 alone is the usual sentence embedding, lower layers add lexical detail);
* ``prev_turn``: the mean (layer-6) embedding of the previous turn's sentences (the other speaker), re-normalised;
* ``prev_sentence``: the embedding of the preceding sentence of the same turn (zeros for the first);
* ``position``: six numbers about where it sits (turn index, sentence index, first/last sentence, turn length);
* ``ngrams``: sparse TF-IDF of word 1..n-grams (sublinear tf, smoothed idf, L2 norm), with our own
  tokenizer so that the numpy inference reproduces training exactly;
* ``prev_turn_ngrams``: the same TF-IDF of the previous turn (the other speaker's words, joined with
  :func:`context_text`), with its own vocabulary and weights: what the persuadee just said is the best cheap
  cue for what the persuader answers (no encoder pass, so it costs nothing at run time).

Dense blocks are standardised with the training mean and scale before the linear head.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from .encoder import DIM, LAST_LAYER


class FeatureSpec(BaseModel):
    sentence: bool = True
    layers: list[int] = Field(default_factory=lambda: [LAST_LAYER])
    prev_turn: bool = False
    prev_sentence: bool = False
    position: bool = True
    ngram_max: int = 0
    ngram_weight: float = 1.0
    prev_turn_ngrams: bool = False

    def dense_dim(self) -> int:
        return (DIM * (len(self.layers) * int(self.sentence) + int(self.prev_turn) + int(self.prev_sentence))
                + (6 if self.position else 0))


@dataclass
class SentenceInput:
    """Everything the features need about one sentence."""

    text: str
    turn_index: int = 0  # 0-based index of its turn among all turns
    sentence_index: int = 0  # 0-based index inside the turn
    n_sentences: int = 1  # sentences in the turn
    prev_turn_sentences: tuple[str, ...] = ()  # sentences of the previous turn (other speaker)
    prev_sentence: str | None = None  # preceding sentence of the same turn


def context_text(x: SentenceInput) -> str:
    """The previous turn as one text: what the context n-grams of training and inference both read."""
    return " ".join(x.prev_turn_sentences)


def position_features(turn_index: int, sentence_index: int, n_sentences: int) -> list[float]:
    n = max(1, n_sentences)
    return [
        min(turn_index, 20) / 10.0,
        min(sentence_index, 6) / 3.0,
        float(sentence_index == 0),
        float(turn_index <= 1),
        float(sentence_index == n - 1),
        min(n, 6) / 3.0,
    ]


_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_TOKEN = re.compile(r"<num>|[a-z]+(?:'[a-z]+)?|[$?!]")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(_NUM.sub(" <num> ", text.lower()))


def ngrams(tokens: list[str], n_max: int) -> list[str]:
    out = list(tokens)
    for n in range(2, n_max + 1):
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


class NgramVectorizer:
    """TF-IDF over word n-grams; fitted vocabulary and idf are plain arrays (saved in the head's .npz)."""

    def __init__(self, n_max: int, vocab: Sequence[str] = (), idf: np.ndarray | None = None):
        self.n_max = n_max
        self.vocab = list(vocab)
        self.index = {g: i for i, g in enumerate(self.vocab)}
        self.idf = np.asarray(idf if idf is not None else np.zeros(len(self.vocab)), dtype=np.float64)

    @classmethod
    def fit(cls, texts: Sequence[str], n_max: int, min_df: int = 2) -> NgramVectorizer:
        df: Counter = Counter()
        for t in texts:
            df.update(set(ngrams(tokenize(t), n_max)))
        vocab = sorted(g for g, c in df.items() if c >= min_df)
        n = len(texts)
        idf = np.array([math.log((1 + n) / (1 + df[g])) + 1.0 for g in vocab])
        return cls(n_max, vocab, idf)

    def transform_rows(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (column indices, values) of its L2-normalised TF-IDF vector."""
        rows = []
        for t in texts:
            counts = Counter(g for g in ngrams(tokenize(t), self.n_max) if g in self.index)
            if not counts:
                rows.append((np.zeros(0, dtype=np.int64), np.zeros(0)))
                continue
            idx = np.array([self.index[g] for g in counts], dtype=np.int64)
            val = np.array([(1.0 + math.log(c)) for c in counts.values()]) * self.idf[idx]
            val /= np.linalg.norm(val) or 1.0
            rows.append((idx, val))
        return rows

    def transform_sparse(self, texts: Sequence[str]):
        from scipy import sparse

        rows = self.transform_rows(texts)
        indptr = np.cumsum([0] + [len(i) for i, _ in rows])
        indices = np.concatenate([i for i, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
        data = np.concatenate([v for _, v in rows]) if rows else np.zeros(0)
        return sparse.csr_matrix((data, indices, indptr), shape=(len(texts), len(self.vocab)))


def _normed_mean(vecs: np.ndarray) -> np.ndarray:
    if vecs.size == 0:
        return np.zeros(DIM, dtype=np.float32)
    m = vecs.mean(axis=0)
    n = np.linalg.norm(m)
    return (m / n if n > 0 else m).astype(np.float32)


def dense_features(spec: FeatureSpec, inputs: Sequence[SentenceInput], encode) -> np.ndarray:
    """The dense block matrix (n, spec.dense_dim()).

    ``encode(texts, layers) -> (n, 384 * len(layers))`` is called at most twice: once for the sentences
    (``spec.layers``), once for the context sentences (layer 6).
    """
    sent_texts = list(dict.fromkeys(x.text for x in inputs)) if spec.sentence else []
    ctx: dict[str, int] = {}
    for x in inputs:
        if spec.prev_turn:
            for s in x.prev_turn_sentences:
                ctx.setdefault(s, len(ctx))
        if spec.prev_sentence and x.prev_sentence:
            ctx.setdefault(x.prev_sentence, len(ctx))
    sent_slot = {t: i for i, t in enumerate(sent_texts)}
    sent_emb = encode(sent_texts, tuple(spec.layers)) if sent_texts else None
    ctx_emb = encode(list(ctx), (LAST_LAYER,)) if ctx else None
    zero = np.zeros(DIM, dtype=np.float32)
    rows = []
    for x in inputs:
        parts = []
        if spec.sentence:
            parts.append(sent_emb[sent_slot[x.text]])
        if spec.prev_turn:
            parts.append(_normed_mean(np.stack([ctx_emb[ctx[s]] for s in x.prev_turn_sentences]))
                         if x.prev_turn_sentences else zero)
        if spec.prev_sentence:
            parts.append(ctx_emb[ctx[x.prev_sentence]] if x.prev_sentence else zero)
        if spec.position:
            parts.append(np.array(position_features(x.turn_index, x.sentence_index, x.n_sentences), dtype=np.float32))
        rows.append(np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32))
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, spec.dense_dim()), dtype=np.float32)
