"""TTS engines behind one interface: ``synthesize(text, voice) -> (pcm, sample_rate)``.

Engines load lazily and are cached per process, so a worker pays the model load
once. ``get_engine`` raises :class:`EngineUnavailable` with the install hint when
an engine's runtime or weights are missing.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from ..voice import ENGINES, Voice


class EngineUnavailable(RuntimeError):
    pass


class TTSEngine(Protocol):
    name: str
    sample_rate: int

    def synthesize(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        """Mono float32 PCM in [-1, 1] and its sample rate."""
        ...

    def embedding(self, voice: Voice) -> list[float] | None:
        """The engine's own speaker vector for ``voice`` (None when it has none)."""
        ...


_cache: dict[tuple, TTSEngine] = {}
_lock = threading.Lock()


def get_engine(name: str, threads: int | None = None) -> TTSEngine:
    if name not in ENGINES:
        raise EngineUnavailable(f"unknown TTS engine '{name}'; choose one of {', '.join(ENGINES)}")
    key = (name, threads)
    with _lock:
        if key not in _cache:
            if name == "kokoro":
                from .kokoro import KokoroEngine

                _cache[key] = KokoroEngine(threads=threads)
            elif name == "flite":
                from .flite import FliteEngine

                _cache[key] = FliteEngine()
            else:
                from .coqui import CoquiEngine

                _cache[key] = CoquiEngine(threads=threads)
        return _cache[key]


__all__ = ["EngineUnavailable", "TTSEngine", "get_engine"]
