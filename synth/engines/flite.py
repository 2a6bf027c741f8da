"""flite (Debian package): four CMU speakers, synthesis in a few hundredths of real time.

Used for smoke tests and quick drafts. slt, awb and kal16 follow a mean-F0
target, so ``voice.pitch`` scales their natural mean; rms ignores it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np

from ..voice import Voice, VoiceError
from . import EngineUnavailable

# natural median F0 (Hz) measured per voice; the pitch factor multiplies it
VOICES = {"slt": 167.0, "rms": 99.0, "awb": 124.0, "kal16": 100.0}
GENDER = {"slt": "female", "rms": "male", "awb": "male", "kal16": "male"}
PRESETS = {"agent_female": ("slt", 1.05), "agent_male": ("rms", 1.0)}


class FliteEngine:
    name = "flite"
    sample_rate = 16000

    def __init__(self, binary: str | None = None):
        self.binary = binary or shutil.which("flite")
        if not self.binary:
            raise EngineUnavailable("flite is not installed: apt-get install -y flite (or run the project's setup script)")

    def resolve(self, voice: Voice) -> Voice:
        if voice.preset and not voice.name:
            if voice.preset not in PRESETS:
                raise VoiceError(f"voice.preset: unknown flite preset '{voice.preset}'; known: {', '.join(PRESETS)}")
            name, pitch = PRESETS[voice.preset]
            return voice.model_copy(update={"name": name, "pitch": voice.pitch * pitch})
        if (voice.name or "slt") not in VOICES:
            raise VoiceError(f"voice.name: unknown flite voice '{voice.name}'; known: {', '.join(VOICES)}")
        return voice.model_copy(update={"name": voice.name or "slt"})

    def synthesize(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        import soundfile as sf

        v = self.resolve(voice)
        speed = v.speed * (0.95**v.seed)
        args = [self.binary, "-voice", v.name, "--setf", f"duration_stretch={1.0 / speed:.4f}"]
        if v.pitch != 1.0:
            args += ["--setf", f"int_f0_target_mean={VOICES[v.name] * v.pitch:.1f}"]
        fd, wav = tempfile.mkstemp(suffix=".wav", prefix="mads-flite-")
        os.close(fd)
        # the text goes through a file: no argument parsing touches it
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as tf:
            tf.write(text)
        try:
            r = subprocess.run([*args, "-f", tf.name, "-o", wav], capture_output=True, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"flite failed ({r.returncode}): {r.stderr.decode(errors='replace')[:300]}")
            pcm, sr = sf.read(wav, dtype="float32")
        finally:
            os.unlink(tf.name)
            os.unlink(wav)
        if pcm.ndim > 1:
            pcm = pcm.mean(axis=1)
        return pcm, int(sr)

    def embedding(self, voice: Voice) -> None:
        return None
