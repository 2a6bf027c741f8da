"""Sentence embeddings from the packaged all-MiniLM-L6-v2 (mean pooling + L2 norm, as the model was trained).

Loaded with plain ``transformers`` from :func:`mads_text.common.assets.minilm_dir`, offline;
sentence-transformers is not needed. Texts are encoded in length-sorted batches so
padding stays small, which matters more than batch size on two CPU cores.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

DIM = 384
LAST_LAYER = 6
N_LAYERS = 7  # token embeddings + six transformer layers
_LOCK = threading.Lock()
_MODELS: dict[str, tuple[object, object]] = {}


def _load(path: str):
    with _LOCK:
        if path not in _MODELS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path).eval()
            _MODELS[path] = (tok, model)
        return _MODELS[path]


class MiniLMEncoder:
    """``encode(texts) -> float32 array (n, 384)``, unit-length rows."""

    def __init__(self, path: str | None = None, batch_size: int = 64, max_length: int = 128, memo_size: int = 50_000):
        if path is None:
            from ..common import assets

            path = str(assets.minilm_dir())
        self.path = str(path)
        self.batch_size = batch_size
        self.max_length = max_length
        self.n_encoded = 0
        self.memo_size = memo_size
        self._memo: OrderedDict[str, dict[int, np.ndarray]] = OrderedDict()

    @property
    def model_id(self) -> str:
        return "all-MiniLM-L6-v2"

    def encode(self, texts: Sequence[str], layers: Sequence[int] = (LAST_LAYER,)) -> np.ndarray:
        """Mean-pooled, L2-normalised hidden states of ``layers`` (0 = token embeddings, 6 = the sentence
        embedding the model was trained for), concatenated: shape (n, 384 * len(layers)).

        Results are memoised per text (layer 6 always, so the fine-state similarity after a
        multi-layer feature pass costs nothing)."""
        layers = tuple(layers)
        texts = [t if isinstance(t, str) else "" for t in texts]
        out = np.zeros((len(texts), DIM * len(layers)), dtype=np.float32)
        if not texts:
            return out
        want = tuple(sorted(set(layers) | {LAST_LAYER}))
        missing = [t for t in dict.fromkeys(texts) if not self._has(t, layers)]
        if missing:
            self._forward(missing, want)
        for i, t in enumerate(texts):
            entry = self._memo[t]
            self._memo.move_to_end(t)
            out[i] = np.concatenate([entry[layer] for layer in layers])
        while len(self._memo) > self.memo_size:  # evict only after this call's rows were read
            self._memo.popitem(last=False)
        return out

    def _has(self, text: str, layers: tuple[int, ...]) -> bool:
        entry = self._memo.get(text)
        return entry is not None and all(layer in entry for layer in layers)

    def _forward(self, texts: list[str], layers: tuple[int, ...]) -> None:
        import torch

        tok, model = _load(self.path)
        order = np.argsort([len(t) for t in texts], kind="stable")
        hidden_all = layers != (LAST_LAYER,)
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                idx = order[i : i + self.batch_size]
                enc = tok([texts[j] for j in idx], padding=True, truncation=True, max_length=self.max_length,
                          return_tensors="pt")
                res = model(**enc, output_hidden_states=hidden_all)
                states = res.hidden_states if hidden_all else {LAST_LAYER: res.last_hidden_state}
                mask = enc["attention_mask"].unsqueeze(-1).to(res.last_hidden_state.dtype)
                pooled = {}
                for layer in layers:
                    p = (states[layer] * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                    pooled[layer] = torch.nn.functional.normalize(p, dim=-1).numpy()
                for k, j in enumerate(idx):
                    entry = self._memo.setdefault(texts[j], {})
                    for layer in layers:
                        entry[layer] = pooled[layer][k]
        self.n_encoded += len(texts)


def texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]
