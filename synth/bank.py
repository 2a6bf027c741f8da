"""The Kokoro voice bank: measured blends of the five packaged base styles.

``synth/data/kokoro_bank.json`` is written by ``mads voices search`` (see
:mod:`synth.voicesearch`): every entry is a voice (timbre and prosody blend
weights, pitch, speed) with its measured median F0, Whisper round-trip WER and
GE2E d-vector, and its rank in a farthest-point ordering. Entries marked
``distinct`` are at a d-vector cosine below the bank's threshold from every
other distinct entry; the rest are near neighbours used once those run out.
Presets (``agent_female``, ``agent_male``, any bank id) resolve through here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from .voice import Voice, VoiceError

BANK_FILE = "kokoro_bank.json"


class BankVoice(BaseModel):
    id: str
    gender: Literal["female", "male"]
    voice: Voice
    f0_hz: float
    wer: float
    rank: int = Field(description="order in the farthest-point selection among intelligible voices (0 first)")
    distinct: bool
    max_cos: float | None = Field(None, description="highest d-vector cosine to a voice ranked before it")
    dvector: list[float] = Field(default_factory=list)


class Bank(BaseModel):
    version: int = 1
    engine: str = "kokoro"
    created: str = ""
    command: str = ""
    threshold: float = Field(0.8, description="d-vector cosine below which two voices count as clearly distinct")
    max_wer: float = 0.1
    sentences: list[str] = Field(default_factory=list)
    voices: list[BankVoice] = Field(default_factory=list)
    rejected: list[dict] = Field(default_factory=list, description="measured candidates that failed the WER gate")
    presets: dict[str, str] = Field(default_factory=dict, description="preset name -> bank id")
    summary: dict = Field(default_factory=dict)

    def by_id(self, bid: str) -> BankVoice:
        for v in self.voices:
            if v.id == bid:
                return v
        raise VoiceError(f"voice.preset: '{bid}' is not in the Kokoro bank ({', '.join(v.id for v in self.voices)})")

    def cos(self, a: str, b: str) -> float:
        va, vb = np.asarray(self.by_id(a).dvector), np.asarray(self.by_id(b).dvector)
        return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb) + 1e-9))


# Used only before a bank has been measured: blends known to be intelligible (prosody from jm_kumo).
FALLBACK_PRESETS = {
    "agent_female": Voice(timbre={"jf_nezumi": 1.0}, prosody={"jf_nezumi": 0.5, "jm_kumo": 0.5}, pitch=1.45),
    "agent_male": Voice(timbre={"jm_kumo": 1.0}, prosody={"jm_kumo": 1.0}, pitch=1.05),
}


@lru_cache(maxsize=1)
def load_bank() -> Bank | None:
    f = resources.files("synth") / "data" / BANK_FILE
    if not f.is_file():
        return None
    return Bank.model_validate(json.loads(f.read_text(encoding="utf-8")))


def resolve(voice: Voice) -> Voice:
    """Expand a Kokoro preset into blend weights; the voice's own pitch and speed multiply the preset's."""
    if voice.engine != "kokoro" or not voice.preset or voice.timbre:
        return voice
    bank = load_bank()
    base: Voice | None = None
    if bank is not None:
        bid = bank.presets.get(voice.preset, voice.preset)
        if any(v.id == bid for v in bank.voices):
            base = bank.by_id(bid).voice
    if base is None:
        base = FALLBACK_PRESETS.get(voice.preset)
    if base is None:
        known = sorted(set(FALLBACK_PRESETS) | set(bank.presets if bank else {}) | {v.id for v in (bank.voices if bank else [])})
        raise VoiceError(f"voice.preset: unknown Kokoro preset '{voice.preset}'; known: {', '.join(known)}")
    return voice.model_copy(
        update={
            "timbre": dict(base.timbre),
            "prosody": dict(base.prosody),
            "pitch": round(base.pitch * voice.pitch, 4),
            "speed": round(base.speed * voice.speed, 4),
        }
    )
