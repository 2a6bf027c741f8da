"""Streaming inference of the speech agent: customer audio (+ text context) in, reply tokens and agent voice out.

``SpeechAgent`` wraps a trained checkpoint. ``stream`` yields the reply one
token at a time (time to first token is the prompt pass: encoder, projector and
the LLM over the context); ``speak`` cuts the stream into sentences and voices
each as soon as it is complete, so playback can start before the reply is
finished. Voicing goes through a TTS callable ``tts(text) -> (pcm, sample_rate)``;
by default the synthesis stage's engine with the scenario's agent voice, whose
engines are imported only when first needed. Where a sentence ends and what is
speakable are decided by ``synth.textnorm``, the same rules the voice server's
audio arm and the training data use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mads_text.common.aio import iterate_in_thread
from mads_text.common.records import Turn
from synth.textnorm import sentence_complete, speakable

from .config import SpeechModelError
from .data import SAMPLE_RATE, resample
from .model import SpeechLLM
from .sampling import TokenEvent

TTS = Callable[[str], tuple[np.ndarray, int]]


@dataclass
class AgentReply:
    text: str
    tokens: int
    prompt_tokens: int
    ttft_s: float
    total_s: float
    finish: str | None = None

    @property
    def tokens_per_s(self) -> float:
        gen = self.total_s - self.ttft_s
        return (self.tokens - 1) / gen if self.tokens > 1 and gen > 0 else 0.0


@dataclass
class SpokenChunk:
    text: str
    pcm: np.ndarray
    sample_rate: int
    elapsed_s: float = 0.0
    events: list[TokenEvent] = field(default_factory=list)


def to_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at 16 kHz from int16/float PCM of any rate."""
    a = np.asarray(audio)
    if a.dtype == np.int16:
        a = a.astype(np.float32) / 32768.0
    a = a.astype(np.float32)
    if a.ndim == 2:
        a = a.mean(axis=1 if a.shape[1] <= 2 else 0)
    return resample(a, sample_rate, SAMPLE_RATE)


def agent_tts(scenario: str | None = None, engine: str | None = None, threads: int | None = None) -> TTS:
    """The synthesis stage's engine speaking with the scenario's agent voice (``synth`` imported here, lazily).

    The voice is the one ``mads synth`` gives the agent in the training data
    (``agent.voice`` of the scenario, on ``engine`` or the engine it names), and
    the text goes through the same speakable-text normalisation first.
    """
    try:
        from synth.assign import agent_speaker
        from synth.engines import get_engine
    except ImportError as e:
        raise SpeechModelError(f"voicing replies needs the synth package and the audio extra: {e}") from e
    spec: dict = {}
    name = scenario or "agent"
    if scenario:
        from mads_text.scenario import load_scenario

        sc = load_scenario(scenario)
        spec, name = dict(sc.agent.voice or {}), sc.name
    eng_name = engine or spec.get("engine") or "kokoro"
    voice = agent_speaker(name, spec, eng_name).voice
    eng = get_engine(eng_name, threads=threads)

    def speak(text: str) -> tuple[np.ndarray, int]:
        said = speakable(text)
        if not said:  # only markers or stage directions: nothing to say
            return np.zeros(0, np.float32), SAMPLE_RATE
        return eng.synthesize(said, voice)

    return speak


class SpeechAgent:
    """A trained speech LLM ready to answer customer audio; one generation at a time per agent."""

    def __init__(
        self,
        ckpt: str | Path | SpeechLLM,
        *,
        scenario: str | None = None,
        system: str | None = None,
        device: str | None = None,
        tts: TTS | None = None,
        max_new_tokens: int = 60,
        temperature: float = 0.0,
    ):
        self.model = ckpt if isinstance(ckpt, SpeechLLM) else SpeechLLM.load(ckpt, device=device)
        self.model.eval()
        self.scenario = scenario
        self.system = system
        self._tts = tts
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self._lock = threading.Lock()

    @property
    def tts(self) -> TTS:
        if self._tts is None:
            self._tts = agent_tts(self.scenario)
        return self._tts

    def stream(
        self,
        audio: np.ndarray,
        sample_rate: int = SAMPLE_RATE,
        context: Sequence[Turn] = (),
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> Iterator[TokenEvent]:
        """Reply tokens as they are generated; the last event has ``done=True``."""
        pcm = to_16k(audio, sample_rate)
        with self._lock:
            yield from self.model.stream(
                pcm,
                list(context),
                scenario=self.scenario,
                system=self.system,
                max_new_tokens=max_new_tokens or self.max_new_tokens,
                temperature=self.temperature if temperature is None else temperature,
                seed=seed,
            )

    def reply(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, context: Sequence[Turn] = (), **kw) -> AgentReply:
        parts, ttft, last = [], None, None
        for ev in self.stream(audio, sample_rate, context, **kw):
            if not ev.done and ttft is None:
                ttft = ev.elapsed_s
            parts.append(ev.text)
            last = ev
        n = last.index if last else 0
        return AgentReply("".join(parts).strip(), n, last.prompt_tokens if last else 0,
                          ttft if ttft is not None else (last.elapsed_s if last else 0.0),
                          last.elapsed_s if last else 0.0, last.finish if last else None)

    def speak(
        self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, context: Sequence[Turn] = (), **kw
    ) -> Iterator[SpokenChunk]:
        """Voiced reply, one sentence at a time, each synthesised as soon as its text is complete."""
        buf, events = "", []
        t0 = time.perf_counter()
        for ev in self.stream(audio, sample_rate, context, **kw):
            buf += ev.text
            events.append(ev)
            if buf.strip() and sentence_complete(buf, ev.done):
                text = buf.strip()
                buf = ""
                pcm, sr = self.tts(text)
                yield SpokenChunk(text, pcm, sr, time.perf_counter() - t0, events)
                events = []

    def astream(
        self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, context: Sequence[Turn] = (), **kw
    ) -> AsyncIterator[TokenEvent]:
        """``stream`` for asyncio servers: generation runs in a worker thread and stops when the consumer does."""
        return iterate_in_thread(lambda: self.stream(audio, sample_rate, context, **kw))
