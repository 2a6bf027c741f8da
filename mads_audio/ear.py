"""The ear of a speech model with CTC audio tokens, without its LLM: Whisper encoder + projector + CTC head.

A checkpoint of the alignment stage (``audio_tokens: ctc``) hears a clip as a sequence of the LLM's own token ids.
In torch (``SpeechLLM``) each kept position is fed to the LLM as the posterior-weighted mix of token embeddings; a
runtime that takes token ids only (llama.cpp) gets the most likely token at each position instead. This module is
that second path: it loads the encoder and the projector (a few MB; not the multi-GB LLM in torch), and hands back
the ids and their text, so the same Dialog Agent, backend, prompt and decoding as the text arms answer them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import PROJECTOR_FILE, read_checkpoint_info
from .config import SpeechModelError
from .data import SAMPLE_RATE

# the alignment stage's checkpoint for the default backbone (Qwen2.5-Coder-1.5B), projector in float16
PACKAGED = Path(__file__).parent / "checkpoints" / "qwen1.5b-ctc"


def packaged_checkpoint() -> Path | None:
    return PACKAGED if (PACKAGED / "config.json").exists() and (PACKAGED / PROJECTOR_FILE).exists() else None


@dataclass
class Heard:
    ids: list[int]  # LLM token ids, repeats merged and blanks dropped
    text: str
    confidence: float  # mean posterior of the emitted tokens (0 when nothing was heard)
    seconds: float  # encoder + projector wall time


class CTCEar:
    def __init__(self, ckpt: str | Path, threads: int | None = None):
        import torch
        from safetensors import safe_open

        from .encoder import AudioEncoder
        from .llm import llm_tokenizer
        from .projector import Projector

        info = read_checkpoint_info(ckpt)
        cfg = info.config
        if cfg.audio_tokens != "ctc" or not cfg.ctc_vocab:
            raise SpeechModelError(f"{ckpt}: not a CTC checkpoint (audio_tokens {cfg.audio_tokens!r}); "
                                   "only the alignment stage's checkpoints have an ear of their own")  # fmt: skip
        if threads:
            torch.set_num_threads(threads)
        self.vocab = list(cfg.ctc_vocab)
        self.max_samples = int(cfg.max_audio_s * SAMPLE_RATE)
        self.encoder = AudioEncoder(cfg.whisper, device="cpu")
        self.tokenizer = llm_tokenizer(cfg.llm)
        path = Path(ckpt) / PROJECTOR_FILE
        if not path.exists():
            raise SpeechModelError(f"{path}: projector weights missing")
        with safe_open(str(path), "pt") as f:
            sd = {k: f.get_tensor(k).float() for k in f.keys()}
        out_dim = sd["down.weight"].shape[0]
        classes = sd["ctc.weight"].shape[0] - 1
        if classes != len(self.vocab):
            raise SpeechModelError(f"{path}: CTC head has {classes} classes, the config lists {len(self.vocab)} tokens")
        self.projector = Projector(
            self.encoder.dim, out_dim, cfg.stack, sd["down.weight"].shape[1], ctc_classes=classes
        )
        self.projector.load_state_dict(sd)
        self.projector.eval()
        self.config = cfg

    def hear(self, audio: np.ndarray) -> Heard:
        import time

        import torch

        from .model import ctc_emitted

        t0 = time.perf_counter()
        with torch.no_grad():
            h, lens = self.encoder([np.asarray(audio, dtype=np.float32).reshape(-1)[: self.max_samples]])
            y = self.projector.embed(h, lens)[0]
            post = self.projector.ctc_logits(y).float().softmax(-1)
        best = post.argmax(-1).tolist()
        kept = ctc_emitted(best, len(self.vocab))
        ids = [int(self.vocab[best[i]]) for i in kept]
        probs = [float(post[i, best[i]]) for i in kept]
        text = self.tokenizer.decode(ids).strip()
        return Heard(ids, text, float(np.mean(probs)) if probs else 0.0, time.perf_counter() - t0)
