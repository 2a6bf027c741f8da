"""Whisper speech recognition of finished utterances (faster-whisper, CTranslate2 int8 on CPU).

Turn-taking already cut the audio at the end of speech, so each call gets one
short utterance of 16 kHz float32 PCM and returns its text. The model loads
from the packaged folders through ``mads_text.common.assets.resolve_whisper`` (preset
``base`` or ``tiny.en``, or a CTranslate2 folder the user gives); nothing is
downloaded. One model is shared per process; calls are serialised on a lock
because the CPU is the bottleneck anyway and CTranslate2 would only split it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from mads_text.common import assets

SAMPLE_RATE = 16000
# Whisper fills silence and noise with stock phrases; a segment that is probably
# no speech and has a poor score is dropped instead of becoming a user turn.
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0


class ASRError(RuntimeError):
    pass


@dataclass
class Transcription:
    text: str
    language: str | None
    duration_s: float
    latency_s: float
    segments: list[dict] = field(default_factory=list)

    @property
    def rtf(self) -> float:
        return self.latency_s / self.duration_s if self.duration_s else 0.0


class WhisperASR:
    _shared: ClassVar[dict[tuple, WhisperASR]] = {}
    _shared_lock = threading.Lock()

    def __init__(
        self,
        model: str | None = "base",
        *,
        language: str | None = "en",
        threads: int = 2,
        compute_type: str = "int8",
        beam_size: int = 1,
    ):
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:  # pragma: no cover - audio extra
            raise ASRError(f"faster-whisper is not installed: {e}") from e
        try:
            self.path = assets.resolve_whisper(model)
        except assets.AssetError as e:
            raise ASRError(str(e)) from e
        self.name = model or "base"
        # an English-only checkpoint rejects a language argument other than en
        self.language = "en" if self.name.endswith(".en") else language
        self.beam_size = beam_size
        self.model = WhisperModel(str(self.path), device="cpu", compute_type=compute_type, cpu_threads=threads)
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, model: str | None = "base", **kwargs) -> WhisperASR:
        key = (model or "base", tuple(sorted(kwargs.items())))
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(model, **kwargs)
            return cls._shared[key]

    def transcribe(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Transcription:
        """Text of one utterance; an empty string when it holds no recognisable speech."""
        if sample_rate != SAMPLE_RATE:
            raise ASRError(f"audio must be {SAMPLE_RATE} Hz, got {sample_rate} Hz; resample first")
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        dur = len(audio) / SAMPLE_RATE
        if dur < 0.1:
            return Transcription("", self.language, dur, 0.0)
        t0 = time.perf_counter()
        with self._lock:
            segs, info = self.model.transcribe(
                audio,
                language=self.language,
                beam_size=self.beam_size,
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=False,
            )
            segs = list(segs)  # the generator does the decoding
        latency = time.perf_counter() - t0
        kept = []
        for s in segs:
            if s.no_speech_prob > NO_SPEECH_PROB and s.avg_logprob < LOW_LOGPROB:
                continue
            kept.append(
                {"text": s.text.strip(), "avg_logprob": s.avg_logprob, "no_speech_prob": s.no_speech_prob}
            )
        text = " ".join(k["text"] for k in kept if k["text"]).strip()
        return Transcription(text, getattr(info, "language", self.language), dur, latency, kept)
