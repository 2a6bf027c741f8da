"""The audio arm on the embedded runtime: a CTC speech checkpoint's ear, then the pipeline arm's own LLM.

The caller's audio goes through the checkpoint's Whisper encoder and projector, whose CTC head spells it in the
LLM's own tokens (``mads_audio.ear``); those tokens are the caller's line in the same prompt, on the same llama.cpp
slots, with the same decoding, reply checks and voice as the pipeline arm. The two arms differ only in the ear:
Whisper's decoder in one, the trained projector in the other, and ``describe()`` matches on backbone, prompt and
decoding by construction (this arm is built from the pipeline arm it runs beside).

What the ear heard is the caller's line in this turn's prompt. The call record and the outcome detection get the
Whisper transcript made while the caller spoke, as with the torch audio arm, so both arms are judged on the same
kind of transcript; the ear's text is logged with the turn's timings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from mads_text.common.records import Turn

from ..frames import EventFrame, Frame, TranscriptFrame
from .base import ArmUnavailable, CallContext, speech_checkpoint
from .pipeline import PipelineArm, _ms

log = logging.getLogger("mads.serve")


def default_audio_model() -> str | None:
    """The checkpoint shipped in the package for the default backbone, if this install has it."""
    from mads_audio.ear import packaged_checkpoint

    p = packaged_checkpoint()
    return str(p) if p else None


def is_ctc_checkpoint(path: str) -> bool:
    try:
        return speech_checkpoint(path).config.audio_tokens == "ctc"
    except ArmUnavailable:
        return False


class EarArm(PipelineArm):
    name = "audio"

    def __init__(self, pipeline: PipelineArm, checkpoint: str, threads: int | None = 1):
        self.__dict__.update(pipeline.__dict__)  # the same backend, slots, prompt, decoding, TTS and voice
        self.info = speech_checkpoint(checkpoint)
        self.checkpoint = checkpoint
        self.threads = threads
        self.ear: Any = None
        from .parity import backbone

        # the ear spells in one LLM's token ids: another LLM would read them as other words
        ours, theirs = backbone(self.info.config.llm), super().describe()["backbone"]
        if ours != theirs:
            raise ArmUnavailable(f"speech checkpoint {checkpoint} hears in the tokens of {ours}; the pipeline arm "
                                 f"runs {theirs}")  # fmt: skip

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        cfg = self.info.config
        d.update(arm=self.name, asr=None, ear={"checkpoint": self.checkpoint, "whisper": cfg.whisper, "stack": cfg.stack,
                                               "tokens": len(cfg.ctc_vocab or []), "step": self.info.step})  # fmt: skip
        return d

    async def load(self) -> None:
        from mads_audio.config import SpeechModelError
        from mads_audio.ear import CTCEar

        try:
            self.ear = await asyncio.to_thread(CTCEar, self.checkpoint, self.threads)
        except SpeechModelError as e:
            raise ArmUnavailable(f"speech checkpoint {self.checkpoint}: {e}") from e
        await super().load()

    def _as_heard(self, agent, history: list[Turn]) -> list[Turn]:
        # the caller's lines as this arm's ear heard them: the LLM reads no other ear's words, and the slot's cached
        # prompt stays a prefix of the next one (the record, corrected to Whisper's words, would break it)
        heard: dict[int, str] = getattr(agent, "ear_heard", {})
        return [
            Turn(role=t.role, text=heard[i]) if i in heard and t.role == "user" else t for i, t in enumerate(history)
        ]

    async def prepare(self, ctx: CallContext, partial: str, audio: np.ndarray | None = None) -> None:
        # the slot gets ready on what this ear hears so far: Whisper's partial words would share little of the
        # prompt this arm's reply is made from, and the LLM would evaluate the caller's whole line again
        if audio is not None and len(audio) and self.ear is not None:
            partial = (await asyncio.to_thread(self.ear.hear, np.asarray(audio, np.float32))).text
            if not partial.strip():
                return
        await super().prepare(ctx, partial)

    async def respond(self, ctx: CallContext, utterance: np.ndarray, heard=None) -> AsyncIterator[Frame]:
        t0 = time.perf_counter()
        h = await asyncio.to_thread(self.ear.hear, np.asarray(utterance, np.float32))
        timings = {"ear_ms": _ms(t0)}
        log.info("call %s: the ear heard %r (confidence %.2f)", ctx.call_id, h.text, h.confidence)
        yield EventFrame("timing", dict(timings))
        if not h.text.strip():
            yield TranscriptFrame("user", "", -1)  # nothing heard: no reply, as the pipeline on empty ASR
            return
        # this turn's prompt, and every later one, holds what the ear heard (the call records Whisper's words)
        agent = self._agent(ctx)
        agent.ear_heard = {**getattr(agent, "ear_heard", {}), len(ctx.history): h.text}
        yield TranscriptFrame("user", h.text, -1, final=False)
        async for f in self._speak(ctx, timings):
            yield f
        # Whisper's words for the record, asked for only now: its pass over the turn's tail would otherwise run beside
        # the LLM's first clause on the same cores
        if heard is not None:
            text = await heard.text()
        elif self.asr is not None:
            text = (await asyncio.to_thread(self.asr.transcribe, utterance)).text
        else:
            text = h.text
        yield TranscriptFrame("user", text.strip() or h.text, -1, final=True)
