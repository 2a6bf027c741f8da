"""The speech-LLM arm: the caller's audio goes straight into the speech LLM (Whisper encoder ->
projector -> LLM, ``mads_audio.infer.SpeechAgent``) with the call so far as text context.

The reply streams token by token; each sentence is voiced as soon as it is complete, by the
same TTS and agent voice as the pipeline arm, so the A/B compares the two ways of understanding
and answering, not two voices. The caller's words are still transcribed with Whisper, in
parallel and off the response path, because the call record, the next turn's text context and
the outcome detection need them.

The arm refuses to start (``ArmUnavailable``) without the speech runtime or a checkpoint: it
never stands in with another model's answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import numpy as np

from mads_audio.asr import WhisperASR
from mads_text.agents import derive_seed
from mads_text.common.aio import iterate_in_thread
from mads_text.prompts import CALL_CONNECTED
from mads_text.scenario import Scenario
from synth.textnorm import sentence_complete, speakable

from ..frames import EventFrame, Frame, TranscriptFrame
from ..tts import TTS, Voice
from .base import Arm, ArmUnavailable, CallContext
from .pipeline import FALLBACK_LINE, speak_sentence


class AudioArm(Arm):
    name = "audio"

    def __init__(
        self,
        scenario: Scenario,
        checkpoint: str | None,
        tts: TTS,
        voice: Voice,
        asr: WhisperASR | None = None,
        *,
        max_tokens: int = 60,
        temperature: float = 0.0,
        threads: int | None = None,
    ):
        try:
            from mads_audio.infer import SpeechAgent  # noqa: F401 - fail here, not mid-call
        except ImportError as e:
            raise ArmUnavailable(f"the audio arm needs the speech LLM runtime (mads_audio.infer, torch): {e}") from None
        if not checkpoint:
            raise ArmUnavailable("the audio arm needs a speech-LLM checkpoint: pass --audio-model SCKPT (from `mads train speech`)")
        from mads_audio.checkpoint import read_checkpoint_info
        from mads_audio.config import SpeechModelError

        try:
            self.info = read_checkpoint_info(checkpoint)
        except SpeechModelError as e:
            raise ArmUnavailable(str(e)) from None
        self.scenario = scenario
        self.checkpoint = checkpoint
        self.tts = tts
        self.voice = voice
        self.asr = asr
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.threads = threads
        self.agent: Any = None
        self._lock = asyncio.Lock()  # one generation at a time per speech model

    def describe(self) -> dict[str, Any]:
        return {
            "arm": self.name,
            "checkpoint": self.checkpoint,
            "llm": self.info.config.llm,
            "whisper": self.info.config.whisper,
            "trained": self.info.trained,
            "step": self.info.step,
            "tts": self.voice.model_dump(),
        }

    async def load(self) -> None:
        from mads_audio.config import SpeechModelError
        from mads_audio.infer import SpeechAgent

        def build():
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            return SpeechAgent(
                self.checkpoint, scenario=self.scenario.source_file or self.scenario.name,
                max_new_tokens=self.max_tokens, temperature=self.temperature,
            )  # fmt: skip

        try:
            self.agent = await asyncio.to_thread(build)
        except SpeechModelError as e:
            raise ArmUnavailable(f"speech checkpoint {self.checkpoint}: {e}") from e

    async def _stream_reply(self, events, t0: float, timings: dict[str, float]) -> AsyncIterator[Frame]:
        """Turn a token stream into agent transcript updates and per-sentence audio."""
        text, voiced, first = "", 0, True
        # closed on any exit (barge-in, hang-up), so the model stops generating a reply nobody hears
        async with aclosing(events):
            async for ev in events:
                text += ev.text
                pending = text[voiced:]
                if speakable(pending) and sentence_complete(pending, ev.done):
                    voiced = len(text)
                    if first:
                        timings["llm_ms"] = timings["llm_first_ms"] = round((time.perf_counter() - t0) * 1000, 1)
                    yield TranscriptFrame("agent", text.strip(), -1, final=False)
                    async for f in speak_sentence(self.tts, self.voice, pending.strip(), timings, first=first):
                        yield f
                    first = False
        rest = text[voiced:].strip()
        if speakable(rest):
            if first:
                timings["llm_ms"] = timings["llm_first_ms"] = round((time.perf_counter() - t0) * 1000, 1)
                yield TranscriptFrame("agent", text.strip(), -1, final=False)
            async for f in speak_sentence(self.tts, self.voice, rest, timings, first=first):
                yield f
            first = False
        if first:  # the model said nothing speakable
            yield TranscriptFrame("agent", FALLBACK_LINE, -1, final=False)
            async for f in speak_sentence(self.tts, self.voice, FALLBACK_LINE, timings, first=True):
                yield f
            text = FALLBACK_LINE
        yield TranscriptFrame("agent", text.strip(), -1, final=True)

    async def opening(self, ctx: CallContext) -> AsyncIterator[Frame]:
        t0 = time.perf_counter()
        if self.scenario.agent.opening:
            async for f in self._stream_reply(_once(self.scenario.agent.opening), t0, {}):
                yield f
            return
        model = self.agent.model
        scen = self.scenario.source_file or self.scenario.name

        def gen():
            return model.stream(None, [], scenario=scen, user_text=CALL_CONNECTED, max_new_tokens=self.max_tokens,
                                temperature=self.temperature, seed=derive_seed(ctx.call_id, "opening"))  # fmt: skip

        async with self._lock:
            async for f in self._stream_reply(iterate_in_thread(gen), t0, {}):
                yield f

    async def respond(self, ctx: CallContext, utterance: np.ndarray, heard=None) -> AsyncIterator[Frame]:
        t0 = time.perf_counter()
        context = list(ctx.history)
        yield TranscriptFrame("user", "", -1, final=False)  # reserve the caller's turn; text comes from ASR
        if heard is not None:  # transcribed while the caller spoke
            transcript = asyncio.ensure_future(heard.text())
        elif self.asr:
            transcript = asyncio.ensure_future(self._transcribe(utterance))
        else:
            transcript = None
        timings: dict[str, float] = {}
        try:
            async with self._lock:
                events = self.agent.astream(utterance, 16000, context, seed=derive_seed(ctx.call_id, len(context)))
                async for f in self._stream_reply(events, t0, timings):
                    yield f
            if transcript is not None:
                text = await transcript
                # the speech LLM answers from the audio: the transcript is for the record, off the latency path
                timings["transcript_ms"] = round((time.perf_counter() - t0) * 1000, 1)
                yield EventFrame("timing", dict(timings))
                yield TranscriptFrame("user", text.strip() or "(unintelligible)", -1, final=True)
            else:
                yield TranscriptFrame("user", "(speech)", -1, final=True)
        finally:
            if transcript is not None and not transcript.done():
                transcript.cancel()

    async def _transcribe(self, utterance: np.ndarray) -> str:
        return (await asyncio.to_thread(self.asr.transcribe, utterance)).text


async def _once(text: str):
    class _Ev:
        def __init__(self, t: str, done: bool):
            self.text, self.done = t, done

    yield _Ev(text, True)
