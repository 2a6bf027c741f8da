"""Text to speech for the server and the simulated callers, through the synthesis stage (``synth``).

``synth`` owns the engines (flite, Kokoro, Coqui), the voice records, the
persona -> voice assignment and the speakable-text clean-up (no end markers or
stage directions; ``synth.textnorm.speakable``, the same one the training audio
went through); this module only adapts them to a call: sentences for streaming,
and mono float32 at 16 kHz, the call's internal format.

flite is the server's default engine: on two CPU cores it voices a sentence in
a few hundredths of its duration, so it never holds up a call; Kokoro sounds
better but runs at about real time here (see docs/serve.md).
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np

from .audio import RATE, resample

try:
    from synth.textnorm import speakable
    from synth.voice import Voice
except ImportError as e:  # pragma: no cover - synth ships with the project
    raise ImportError(f"the voice server needs the synth package (TTS engines and voices): {e}") from e

__all__ = ["TTS", "TTSError", "Voice", "agent_voice", "next_chunk", "persona_voices", "speakable", "split_sentences"]


class TTSError(RuntimeError):
    pass


def split_sentences(text: str, max_chars: int = 160) -> list[str]:
    """Sentences for streaming synthesis: the first one plays while the rest is made."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?;])\s+", text.strip()) if p.strip()]
    out: list[str] = []
    for p in parts:
        while len(p) > max_chars:
            cut = p.rfind(",", 0, max_chars)
            cut = cut if cut > 20 else p.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            out.append(p[: cut + 1].strip())
            p = p[cut + 1 :].strip()
        if p:
            out.append(p)
    return out


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)")
_CLAUSE_END = re.compile(r"[,;:\u2014](?=\s)|\s[-\u2013]\s")


def first_sentence_end(text: str) -> int:
    """Length of streamed ``text`` up to its first finished sentence (0: none yet)."""
    m = _SENTENCE_END.search(text)
    return m.end() if m else 0


def open_sentence(text: str) -> str:
    """What streamed ``text`` has of a sentence not finished yet (after its last sentence end)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[ends[-1] :] if ends else text


def next_chunk(text: str, *, first: bool) -> int:
    """Length of the prefix of streamed ``text`` that can be voiced now (0: wait for more).

    A chunk ends at a sentence end or a clause boundary (comma, semicolon, colon, dash) followed by a
    space. The first chunk of a reply needs two speakable words, so the caller hears the agent start
    while the rest is still being written; later ones need five at a clause boundary (two at a sentence
    end), which keeps the phrasing natural and still hands the voice the next words before the audio
    already sent runs out when the LLM writes about as fast as the voice speaks.
    """
    ends = sorted([(m.end(), 2) for m in _SENTENCE_END.finditer(text)] +
                  [(m.end(), 2 if first else 5) for m in _CLAUSE_END.finditer(text)])  # fmt: skip
    for end, words in ends:
        if len(speakable(text[:end]).split()) >= words:
            return end
    return 0


class TTS:
    """Blocking synthesis (run it in a worker thread); engines load once per process in ``synth``."""

    def __init__(self, default_engine: str = "flite", threads: int | None = None):
        self.default_engine = default_engine
        self.threads = threads
        self._lock = threading.Lock()

    def synthesize(self, text: str, voice: Voice) -> np.ndarray:
        from synth import bank
        from synth.engines import EngineUnavailable, get_engine

        text = speakable(text)
        if not text:
            return np.zeros(0, dtype=np.float32)
        try:
            engine = get_engine(voice.engine, threads=self.threads)
        except EngineUnavailable as e:
            raise TTSError(str(e)) from e
        pcm, sr = engine.synthesize(text, bank.resolve(voice))
        pcm = np.asarray(pcm, dtype=np.float32)
        if pcm.ndim > 1:
            pcm = pcm.mean(axis=1)
        return resample(pcm, sr, RATE)


def agent_voice(scenario_name: str, scenario_voice: dict[str, Any] | None, engine: str) -> Voice:
    """The scenario's agent voice (``agent.voice`` in its YAML) on ``engine``."""
    from synth.assign import agent_speaker

    return agent_speaker(scenario_name, scenario_voice, engine).voice


def persona_voices(personas: list[tuple[str, dict[str, Any]]], engine: str = "flite", agent: Voice | None = None) -> dict[str, Voice]:
    """One stable voice per persona, gender- and age-matched and as far apart as the engine allows."""
    from synth.assign import SpeakerVoice, VoiceBook, assign_personas

    book = VoiceBook(engine=engine)
    if agent is not None:
        # the agent's voice counts as taken, so callers do not sound like the agent
        book.agents["agent"] = SpeakerVoice(speaker_id="agent", role="agent", gender="female", voice=agent)
    assign_personas(book, personas)
    return {pid: book.personas[pid].voice for pid, _ in personas}
