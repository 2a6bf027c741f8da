"""Telephone-channel variant: 300-3400 Hz band, 8 kHz, G.711 mu-law, optional line noise.

The deployment target is phone calls, so models trained on the wide-band audio
also get the narrow-band version of every clip and call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from .quality import resample


class TelephonyConfig(BaseModel):
    rate: int = 8000
    low_hz: float = Field(300.0, gt=0)
    high_hz: float = Field(3400.0, gt=0)
    noise_snr_db: float | None = Field(None, description="add band-limited noise at this SNR to speech; None: clean line")


def _band(pcm: np.ndarray, sr: int, cfg: TelephonyConfig) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    sos = butter(8, [cfg.low_hz, min(cfg.high_hz, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    return sosfilt(sos, pcm, axis=0).astype(np.float32)


def telephone(pcm: np.ndarray, sr: int, cfg: TelephonyConfig, rng: np.random.Generator | None = None) -> np.ndarray:
    """Band-limit, resample to ``cfg.rate`` and add noise; mono ``(n,)`` or stereo ``(n, 2)`` in, same layout out."""
    x = resample(_band(pcm, sr, cfg), sr, cfg.rate) if pcm.ndim == 1 else np.stack(
        [resample(_band(pcm[:, c], sr, cfg), sr, cfg.rate) for c in range(pcm.shape[1])], axis=1
    )
    if cfg.noise_snr_db is not None and len(x):
        rng = rng or np.random.default_rng(0)
        chans = x[:, None] if x.ndim == 1 else x
        for c in range(chans.shape[1]):
            s = chans[:, c]
            active = s[np.abs(s) > 0.01 * (np.abs(s).max() + 1e-9)]
            level = float(np.sqrt(np.mean(active**2))) if len(active) else 0.0
            noise = _band(rng.standard_normal(len(s)).astype(np.float32), cfg.rate, cfg)
            noise *= level / (float(np.sqrt(np.mean(noise**2))) + 1e-12) * 10 ** (-cfg.noise_snr_db / 20)
            chans[:, c] = s + noise
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > 0.99:
        x = x * (0.99 / peak)
    return x.astype(np.float32)


def write_ulaw(path: Path, pcm: np.ndarray, rate: int = 8000) -> None:
    import soundfile as sf

    sf.write(str(path), pcm, rate, subtype="ULAW")
