"""A voice is data: an engine name plus the settings that reproduce it.

The same ``Voice`` travels from the persona mapping into ``AUD/voices.json``,
into every manifest line (as its hash) and into the engines, so any clip can be
re-made from the files alone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

EngineName = Literal["kokoro", "flite", "coqui"]
ENGINES: tuple[str, ...] = ("kokoro", "flite", "coqui")


class VoiceError(ValueError):
    """A voice that an engine cannot use; the message names the field."""


class Voice(BaseModel):
    """Engine settings for one speaker.

    Kokoro: ``timbre`` and ``prosody`` are blend weights over the packaged base
    styles for the two halves of the 256-d style vector (dims 0-127 shape the
    timbre, 128-255 pitch contour and rhythm); ``pitch`` multiplies the F0 curve
    the model predicts, ``speed`` its duration scale. A ``preset`` names a voice
    in the bank and is expanded by :func:`synth.bank.resolve`.
    flite: ``name`` is the CMU voice (slt, rms, awb, kal16), ``pitch`` scales its
    mean F0 target where the voice honours one.
    coqui: ``model`` is a local model folder, ``speaker_wav`` a reference clip or
    ``name`` a built-in speaker of a multi-speaker model.
    """

    model_config = ConfigDict(extra="forbid")

    engine: EngineName = "kokoro"
    preset: str | None = None
    timbre: dict[str, float] = Field(default_factory=dict)
    prosody: dict[str, float] = Field(default_factory=dict)
    pitch: float = Field(1.0, ge=0.5, le=3.0)
    speed: float = Field(1.0, ge=0.5, le=2.0)
    seed: int = Field(0, ge=0, description="retake number; 0 is the voice as assigned")
    name: str | None = None
    model: str | None = None
    speaker_wav: str | None = None
    language: str = "en-us"

    @field_validator("timbre", "prosody")
    @classmethod
    def _weights_ok(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in v.values()):
            raise ValueError("blend weights must be >= 0")
        if v and sum(v.values()) <= 0:
            raise ValueError("blend weights sum to 0")
        return v

    def key(self) -> str:
        """Short stable hash of everything that changes the sound (resume checks it)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def stable_unit(*parts: object) -> float:
    """A number in [0, 1) fixed by its inputs: the persona hash used for voice choices."""
    h = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64
