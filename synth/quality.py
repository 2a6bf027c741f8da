"""Quality gates: ASR round trip (faster-whisper, bundled Whisper) and GE2E speaker vectors (resemblyzer).

Per clip: the word error rate of Whisper's transcript against the text that was
spoken, word times from Whisper's alignment, and a 256-d d-vector. Per build:
how close clips of one speaker are to each other and how far apart speakers are.
The means over all pairs come from sums of unit vectors, so they are exact and
cost O(clips), not O(clips^2).
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from .textnorm import wer_words

ASR_RATE = 16000
# d-vectors of clips shorter than this are too noisy to judge a voice by
MIN_EMBED_S = 1.0


class QAConfig(BaseModel):
    asr: str | None = Field("base", description="Whisper preset (base, tiny.en) or CTranslate2 folder; None skips ASR")
    speaker: bool = Field(True, description="compute GE2E d-vectors (resemblyzer)")
    max_wer: float = Field(0.35, ge=0, description="clips above this WER are re-synthesised, then flagged")
    short_words: int = Field(4, ge=0, description="clips with fewer reference words get max_wer_short")
    max_wer_short: float = Field(0.5, ge=0)
    retakes: int = Field(2, ge=0, le=3, description="re-syntheses with another voice seed before a clip is flagged")
    beam_size: int = Field(1, ge=1, description="Whisper beam; greedy is 2x faster and as good on clean TTS")


def resample(pcm: np.ndarray, sr: int, to: int) -> np.ndarray:
    if sr == to:
        return pcm.astype(np.float32, copy=False)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr, to)
    return resample_poly(pcm, to // g, sr // g).astype(np.float32)


def wer(ref: str, hyp: str) -> float:
    r, h = wer_words(ref), wer_words(hyp)
    if not r:
        return 0.0 if not h else 1.0
    import jiwer

    return float(jiwer.wer(" ".join(r), " ".join(h) if h else ""))


class QualityModels:
    """Whisper and the speaker encoder, loaded once per worker."""

    def __init__(self, cfg: QAConfig, threads: int | None = None):
        self.cfg = cfg
        self.threads = max(1, threads or os.cpu_count() or 1)
        self._asr = None
        self._enc = None

    @property
    def asr_model(self):
        if self._asr is None and self.cfg.asr:
            from faster_whisper import WhisperModel

            from mads_text.common.assets import resolve_whisper

            self._asr = WhisperModel(
                str(resolve_whisper(self.cfg.asr)), device="cpu", compute_type="int8", cpu_threads=self.threads
            )
        return self._asr

    @property
    def encoder(self):
        if self._enc is None and self.cfg.speaker:
            import torch
            from resemblyzer import VoiceEncoder

            torch.set_num_threads(self.threads)
            self._enc = VoiceEncoder("cpu", verbose=False)
        return self._enc

    def transcribe(self, pcm: np.ndarray, sr: int) -> tuple[str, list[dict[str, Any]]]:
        """Whisper's text and its words with times in seconds from the clip start."""
        if self.asr_model is None:
            return "", []
        audio = resample(pcm, sr, ASR_RATE)
        segs, _ = self.asr_model.transcribe(
            audio, language="en", beam_size=self.cfg.beam_size, word_timestamps=True,
            condition_on_previous_text=False, vad_filter=False,
        )  # fmt: skip
        words, texts = [], []
        for s in segs:
            texts.append(s.text.strip())
            for w in s.words or []:
                words.append({"word": w.word.strip(), "start": round(float(w.start), 3), "end": round(float(w.end), 3)})
        return " ".join(texts).strip(), words

    def dvector(self, pcm: np.ndarray, sr: int) -> np.ndarray | None:
        if self.encoder is None or len(pcm) < MIN_EMBED_S * sr:
            return None
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(resample(pcm, sr, ASR_RATE), source_sr=ASR_RATE)
        if len(wav) < 0.5 * ASR_RATE:  # mostly silence after trimming
            return None
        return self.encoder.embed_utterance(wav).astype(np.float32)


def align_words(ref_text: str, hyp_words: list[dict[str, Any]], duration: float) -> list[dict[str, Any]]:
    """Times for the words that were meant to be spoken, taken from Whisper's recognised words.

    Reference and recognised words are aligned by edit distance on normalised
    forms; a matched or substituted word takes its partner's times, a word
    Whisper dropped is placed between its neighbours.
    """
    ref = ref_text.split()
    if not ref:
        return []
    norm_ref = [" ".join(wer_words(w)) for w in ref]
    norm_hyp = [" ".join(wer_words(w["word"])) for w in hyp_words]
    n, m = len(ref), len(hyp_words)
    d = np.zeros((n + 1, m + 1), dtype=np.int32)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = 0 if norm_ref[i - 1] == norm_hyp[j - 1] else 1
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + cost)
    times: list[tuple[float, float] | None] = [None] * n
    i, j = n, m
    while i > 0 and j > 0:
        cost = 0 if norm_ref[i - 1] == norm_hyp[j - 1] else 1
        if d[i, j] == d[i - 1, j - 1] + cost:
            times[i - 1] = (hyp_words[j - 1]["start"], hyp_words[j - 1]["end"])
            i, j = i - 1, j - 1
        elif d[i, j] == d[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    # fill words Whisper missed by spreading them over the gap between known neighbours
    out = []
    k = 0
    while k < n:
        if times[k] is not None:
            out.append({"word": ref[k], "start": times[k][0], "end": times[k][1], "aligned": True})
            k += 1
            continue
        e = k
        while e < n and times[e] is None:
            e += 1
        lo = times[k - 1][1] if k > 0 and times[k - 1] else 0.0
        hi = times[e][0] if e < n and times[e] else duration
        hi = max(hi, lo)
        step = (hi - lo) / (e - k)
        for q in range(k, e):
            out.append({"word": ref[q], "start": round(lo + step * (q - k), 3),
                        "end": round(lo + step * (q - k + 1), 3), "aligned": False})  # fmt: skip
        k = e
    return out


class SpeakerStats(BaseModel):
    same_speaker_cos_mean: float | None
    diff_speaker_cos_mean: float | None
    margin: float | None
    speakers: int
    clips_embedded: int
    per_speaker: dict[str, dict[str, Any]] = Field(default_factory=dict)


def speaker_stats(vectors: dict[str, list[np.ndarray]]) -> SpeakerStats:
    """Mean cosine over same-speaker clip pairs and over different-speaker clip pairs (exact, via sums)."""
    sums, counts = {}, {}
    for spk, vs in vectors.items():
        if vs:
            a = np.stack([v / (np.linalg.norm(v) + 1e-9) for v in vs]).astype(np.float64)
            sums[spk], counts[spk] = a.sum(0), len(vs)
    same_num = same_den = 0.0
    per: dict[str, dict[str, Any]] = defaultdict(dict)
    for spk, s in sums.items():
        n = counts[spk]
        if n >= 2:
            pair_sum = (s @ s - n) / 2
            same_num += pair_sum
            same_den += n * (n - 1) / 2
            per[spk]["self_cos"] = round(float(pair_sum / (n * (n - 1) / 2)), 4)
        per[spk]["clips"] = n
    total = sum(sums.values()) if sums else None
    n_all = sum(counts.values())
    diff_den = (n_all**2 - sum(c**2 for c in counts.values())) / 2
    diff = None
    if total is not None and diff_den > 0:
        diff = float((total @ total - sum(s @ s for s in sums.values())) / 2 / diff_den)
    # nearest other speaker by centroid: the persona most likely to be confused with this one
    names = list(sums)
    if len(names) >= 2:
        c = np.stack([sums[k] / np.linalg.norm(sums[k]) for k in names])
        sim = c @ c.T
        np.fill_diagonal(sim, -1)
        for i, k in enumerate(names):
            j = int(np.argmax(sim[i]))
            per[k]["nearest"] = names[j]
            per[k]["nearest_cos"] = round(float(sim[i, j]), 4)
    same = float(same_num / same_den) if same_den else None
    return SpeakerStats(
        same_speaker_cos_mean=None if same is None else round(same, 4),
        diff_speaker_cos_mean=None if diff is None else round(diff, 4),
        margin=None if same is None or diff is None else round(same - diff, 4),
        speakers=len(sums),
        clips_embedded=n_all,
        per_speaker=dict(per),
    )
