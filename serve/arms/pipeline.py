"""The cascaded baseline arm: ASR -> Dialog Agent LLM -> TTS (VAD runs in the shared call code).

The Dialog Agent is the text core's ``DialogAgent`` (transcript mode on the
embedded backend), one per call so its seed and prompt stay with the call.
Speech is synthesised sentence by sentence: the first sentence plays while the
rest is made, which is what sets the response latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from mads_audio.asr import WhisperASR
from mads_text.agents import DialogAgent, derive_seed
from mads_text.llm import GenParams, LLMBackend
from mads_text.scenario import Scenario

from ..frames import EventFrame, Frame, OutputAudio, TranscriptFrame
from ..tts import TTS, Voice, split_sentences
from .base import Arm, CallContext

FALLBACK_LINE = "Sorry, could you say that again?"


async def speak_sentence(
    tts: TTS, voice: Voice, sentence: str, timings: dict[str, float], *, first: bool
) -> AsyncIterator[Frame]:
    """One sentence of agent speech; both arms voice their replies through this, one sentence at a time.

    The first sentence's synthesis time is what the caller waits on before hearing
    anything, so it alone is reported (``tts_ms``, with the timings so far).
    """
    t1 = time.perf_counter()
    pcm = await asyncio.to_thread(tts.synthesize, sentence, voice)  # the engine blocks; the call must not
    if first:
        timings["tts_ms"] = round((time.perf_counter() - t1) * 1000, 1)
        yield EventFrame("timing", dict(timings))
    if len(pcm):
        yield OutputAudio(pcm, -1)


class PipelineArm(Arm):
    name = "pipeline"

    def __init__(
        self,
        scenario: Scenario,
        backend: LLMBackend,
        asr: WhisperASR,
        tts: TTS,
        voice: Voice,
        *,
        prompt_mode: str = "transcript",
        prompt_k: str | None = None,
        max_tokens: int = 60,
        temperature: float = 0.7,
        use_caller_name: bool = False,
    ):
        self.scenario = scenario
        # The caller's name sits in the first line of the agent's prompt header; leaving it out keeps
        # the header identical across calls, so llama.cpp reuses its cached prefix (much lower latency).
        self.use_caller_name = use_caller_name
        self.backend = backend
        self.asr = asr
        self.tts = tts
        self.voice = voice
        self.prompt_mode = prompt_mode
        self.prompt_k = prompt_k
        self.params = GenParams(temperature=temperature, max_tokens=max_tokens)

    def describe(self) -> dict[str, Any]:
        return {
            "arm": self.name,
            "llm": self.backend.describe(),
            "asr": self.asr.name,
            "tts": self.voice.model_dump(),
            "prompt_mode": self.prompt_mode,
            "max_tokens": self.params.max_tokens,
        }

    async def load(self) -> None:
        await self.backend.check()
        # one tiny synthesis loads the TTS engine before the first caller waits on it
        await asyncio.to_thread(self.tts.synthesize, "Hello.", self.voice)
        # one opening fills the LLM's prompt cache with the agent header, shared by every call
        warm = CallContext(call_id="warm-up", scenario=self.scenario, caller={}, arm=self.name)
        await self._agent(warm).next_turn([])

    def _agent(self, ctx: CallContext) -> DialogAgent:
        agent = ctx.state.get("dialog_agent")
        if agent is None:
            agent = DialogAgent(
                self.scenario, self.backend, mode=self.prompt_mode, prompt_k=self.prompt_k,
                user_name=ctx.caller_name if self.use_caller_name else "Customer", params=self.params, seed=derive_seed(ctx.call_id, ctx.seed),
            )  # fmt: skip
            ctx.state["dialog_agent"] = agent
        return agent

    async def _speak(self, ctx: CallContext, timings: dict[str, float]) -> AsyncIterator[Frame]:
        t0 = time.perf_counter()
        reply = await self._agent(ctx).next_turn(ctx.history)
        timings["llm_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        text = reply.text.strip() or FALLBACK_LINE
        yield TranscriptFrame("agent", text, -1)
        for i, sentence in enumerate(split_sentences(text)):
            async for f in speak_sentence(self.tts, self.voice, sentence, timings, first=i == 0):
                yield f

    async def opening(self, ctx: CallContext) -> AsyncIterator[Frame]:
        async for f in self._speak(ctx, {}):
            yield f

    async def respond(self, ctx: CallContext, utterance: np.ndarray) -> AsyncIterator[Frame]:
        t0 = time.perf_counter()
        tr = await asyncio.to_thread(self.asr.transcribe, utterance)
        timings = {"asr_ms": round((time.perf_counter() - t0) * 1000, 1)}
        yield EventFrame("timing", dict(timings))
        yield TranscriptFrame("user", tr.text, -1)
        if not tr.text.strip():
            return
        async for f in self._speak(ctx, timings):
            yield f
