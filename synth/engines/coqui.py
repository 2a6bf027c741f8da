"""Coqui TTS (XTTS v2, YourTTS) for users who have the weights; nothing ships them.

Install the optional extra (``pip install 'mads[coqui]'``) and give a local model
folder in ``voice.model`` plus a reference clip in ``voice.speaker_wav`` (cloning
models) or a built-in speaker in ``voice.name``. Models are never downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..voice import Voice, VoiceError
from . import EngineUnavailable


class CoquiEngine:
    name = "coqui"
    sample_rate = 24000

    def __init__(self, threads: int | None = None):
        try:
            from TTS.utils.synthesizer import Synthesizer  # noqa: F401
        except ImportError as e:
            raise EngineUnavailable(
                "the coqui engine needs the Coqui TTS package (pip install 'mads[coqui]') and local model weights"
            ) from e
        if threads:
            import torch

            torch.set_num_threads(threads)
        self._models: dict[str, object] = {}

    def _load(self, folder: str):
        if folder not in self._models:
            from TTS.utils.synthesizer import Synthesizer

            d = Path(folder).expanduser()
            cfg = d / "config.json"
            if not cfg.exists():
                raise VoiceError(f"voice.model: {d} has no config.json (a Coqui model folder is needed)")
            ckpt = next((p for p in sorted(d.glob("*.pth")) if "speaker" not in p.name), None)
            if ckpt is None and not (d / "model.pth").exists():
                raise VoiceError(f"voice.model: no checkpoint (*.pth) in {d}")
            xtts = "xtts" in cfg.read_text().lower()
            syn = Synthesizer(
                tts_checkpoint=str(ckpt or d / "model.pth") if not xtts else None,
                tts_config_path=str(cfg),
                model_dir=str(d) if xtts else None,
                use_cuda=False,
            )
            self._models[folder] = syn
        return self._models[folder]

    def synthesize(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        if not voice.model:
            raise VoiceError("voice.model: the coqui engine needs a local model folder")
        if voice.speaker_wav and not os.path.exists(voice.speaker_wav):
            raise VoiceError(f"voice.speaker_wav: {voice.speaker_wav} not found")
        syn = self._load(voice.model)
        lang = voice.language.split("-")[0]
        wav = syn.tts(
            text,
            speaker_name=voice.name,
            language_name=lang if getattr(syn.tts_model, "language_manager", None) else None,
            speaker_wav=voice.speaker_wav,
        )
        sr = int(syn.output_sample_rate)
        return np.asarray(wav, dtype=np.float32), sr

    def embedding(self, voice: Voice) -> None:
        return None
