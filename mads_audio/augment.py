"""Telephony augmentation applied on the fly while training the speech LLM.

The deployment target is phone calls, so clean synthesized clips are degraded
the way a phone line degrades speech: band-limited to 300-3400 Hz through an
8 kHz round trip, 8-bit mu-law companding, line/room noise at a random SNR and
a random level. Every effect is drawn per clip from a seeded generator, so a
resumed run sees the same sequence of degradations.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field
from scipy import signal

SAMPLE_RATE = 16000


class TelephonyConfig(BaseModel):
    p: float = Field(0.5, ge=0, le=1, description="probability that a clip is degraded at all")
    p_band: float = Field(0.9, ge=0, le=1, description="8 kHz round trip + 300-3400 Hz band pass")
    p_mulaw: float = Field(0.7, ge=0, le=1, description="8-bit mu-law companding")
    p_noise: float = Field(0.7, ge=0, le=1)
    snr_db: tuple[float, float] = (8.0, 30.0)
    gain_db: tuple[float, float] = (-8.0, 4.0)


_BAND = signal.butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")


def band_limit(audio: np.ndarray) -> np.ndarray:
    """16 kHz -> 8 kHz -> telephone band -> 16 kHz."""
    x = signal.resample_poly(audio, 1, 2)
    x = signal.sosfilt(_BAND, x)
    return signal.resample_poly(x, 2, 1)[: len(audio)].astype(np.float32)


def mulaw(audio: np.ndarray, mu: int = 255) -> np.ndarray:
    """Encode to 8-bit mu-law and back: the quantisation noise of a G.711 line."""
    x = np.clip(audio, -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round((y + 1) / 2 * mu) / mu * 2 - 1
    return (np.sign(q) * ((1 + mu) ** np.abs(q) - 1) / mu).astype(np.float32)


def coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown-ish noise, unit RMS."""
    white = rng.standard_normal(n)
    kind = rng.integers(0, 3)
    if kind == 1:  # pink: 1/f via a one-pole low-pass mix
        noise = signal.lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                               [1, -2.494956002, 2.017265875, -0.522189400], white)
    elif kind == 2:  # brown: integrated and high-passed to remove drift
        noise = signal.lfilter([1.0], [1.0, -0.98], white)
    else:
        noise = white
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-9)).astype(np.float32)


def telephony(audio: np.ndarray, rng: np.random.Generator, cfg: TelephonyConfig | None = None) -> np.ndarray:
    """A degraded copy of a 16 kHz float32 clip (or the clip itself when the draw says clean)."""
    cfg = cfg or TelephonyConfig()
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if x.size == 0 or rng.random() >= cfg.p:
        return x
    if rng.random() < cfg.p_band:
        x = band_limit(x)
    if rng.random() < cfg.p_noise:
        rms = float(np.sqrt(np.mean(x**2))) + 1e-9
        snr = rng.uniform(*cfg.snr_db)
        x = x + coloured_noise(x.size, rng) * rms / (10 ** (snr / 20))
    x = x * (10 ** (rng.uniform(*cfg.gain_db) / 20))
    if rng.random() < cfg.p_mulaw:
        x = mulaw(x)
    return np.clip(x, -1.0, 1.0).astype(np.float32)
