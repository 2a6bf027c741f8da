"""The speech-LLM arm: the caller's audio goes straight into the speech LLM (Whisper encoder ->
projector -> LLM, ``mads_audio.infer.SpeechAgent``) with the call so far as text context.

The reply streams token by token; each sentence is voiced as soon as it is complete, by the
same TTS and agent voice as the pipeline arm, so the A/B compares the two ways of understanding
and answering, not two voices. The caller's words are still transcribed with Whisper, in
parallel and off the response path, because the call record, the next turn's text context and
the outcome detection need them.

Parity with the pipeline arm: the prompt is the Dialog Agent's system prompt, built from the same product
facts and instruction (or evolved SOP), over the whole call so far as the pipeline sees it; decoding takes the
same temperature, top_p, token limit, stop strings and redraws. What the speech model cannot match is listed
in ``describe()["unmatched"]``.

The arm refuses to start (``ArmUnavailable``) without the speech runtime or a checkpoint: it
never stands in with another model's answers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import numpy as np

from mads_audio.asr import WhisperASR
from mads_text.agents import DialogAgent, derive_seed
from mads_text.common.aio import iterate_in_thread
from mads_text.prompts import CALL_CONNECTED
from mads_text.scenario import Scenario
from synth.textnorm import sentence_complete, speakable

from ..frames import EventFrame, Frame, TranscriptFrame
from ..tts import TTS, Voice
from .base import Arm, ArmUnavailable, CallContext, speech_checkpoint
from .parity import backbone, decoding, sha256_text
from .pipeline import FALLBACK_LINE, agent_instruction, speak_sentence, stop_strings

# the pipeline keeps the whole call in its prompt; so does this arm, whatever window the checkpoint trained with
WHOLE_CALL = 10**6


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
        prompt_k: str | None = None,
        max_tokens: int = 60,
        temperature: float = 0.7,
        top_p: float = 1.0,
        threads: int | None = None,
    ):
        try:
            from mads_audio.infer import SpeechAgent  # noqa: F401 - fail here, not mid-call
        except ImportError as e:
            raise ArmUnavailable(f"the audio arm needs the speech LLM runtime (mads_audio.infer, torch): {e}") from None
        if not checkpoint:
            raise ArmUnavailable("the audio arm needs a speech-LLM checkpoint: pass --audio-model SCKPT (from `mads train speech`)")
        self.info = speech_checkpoint(checkpoint)
        self.scenario = scenario
        self.checkpoint = checkpoint
        self.tts = tts
        self.voice = voice
        self.asr = asr
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.threads = threads
        # the speech model frames the call as chat (audio in the last user message): the pipeline's chat prompt
        self.system = agent_instruction(scenario, prompt_k, "chat")
        self.stop = stop_strings("chat", scenario.agent.name, "Customer")
        self.draws = DialogAgent.max_retries + 1
        self.backbone = backbone(self.info.config.llm)
        self.agent: Any = None
        self._lock = asyncio.Lock()  # one generation at a time per speech model
        # a generation left by a barge-in ends after its current token, on its thread: the next one waits for it
        self._model_lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        cfg = self.info.config
        unmatched = [
            "runtime: torch (float32 on CPU, bfloat16 on a GPU) on the GGUF's dequantized weights; llama.cpp computes "
            "on the quantized weights, so even greedy replies can part at near-ties",
            "sampler: temperature and top_p only (no top_k, min_p or repetition penalties); its random draws are "
            "torch's, not llama.cpp's, so equal settings and seeds still give different samples",
            "reply checks: the pipeline's clean_reply (speaker prefixes, role slips, echoes) and drop_repeats are not "
            "applied to this arm's replies",
        ]
        if cfg.system != "full" or cfg.max_context_turns < WHOLE_CALL:
            unmatched.append(f"training: the checkpoint was trained with the '{cfg.system}' system prompt and "
                             f"{cfg.max_context_turns} context turns; it is served with the Dialog Agent's full prompt "
                             "and the whole call")  # fmt: skip
        return {
            "arm": self.name,
            "backbone": self.backbone,
            "prompt_sha256": sha256_text(self.system),
            "decoding": decoding(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                                 stop=self.stop, draws=self.draws, top_k=None, min_p=None),  # fmt: skip
            "prompt_framing": "chat",
            "runtime": "torch",
            "unmatched": unmatched,
            "checkpoint": self.checkpoint,
            "llm": cfg.llm,
            "whisper": cfg.whisper,
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
            agent = SpeechAgent(self.checkpoint, scenario=self.scenario.source_file or self.scenario.name, system=self.system)
            agent.model.config.max_context_turns = WHOLE_CALL
            return agent

        try:
            self.agent = await asyncio.to_thread(build)
        except SpeechModelError as e:
            raise ArmUnavailable(f"speech checkpoint {self.checkpoint}: {e}") from e

    def _generate(self, audio: np.ndarray | None, context: list, seed: int, user_text: str | None = None):
        model = self.agent.model

        def gen():
            with self._model_lock:
                yield from model.stream(audio, context, system=self.system, user_text=user_text, max_new_tokens=self.max_tokens,
                                        temperature=self.temperature, top_p=self.top_p, seed=seed)  # fmt: skip

        return iterate_in_thread(gen)

    async def _voice(self, events, t0: float, timings: dict[str, float], said: list[str]) -> AsyncIterator[Frame]:
        """Voice one drawn reply sentence by sentence, cut at the stop strings; what was said goes to ``said``."""
        text, voiced = "", 0
        # closed on any exit (barge-in, hang-up, a stop string), so the model stops generating a reply nobody hears
        async with aclosing(events):
            async for ev in events:
                text += ev.text
                hit = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
                done = ev.done or hit >= 0
                if hit >= 0:
                    text = text[:hit]
                pending = text[voiced:]
                if speakable(pending) and sentence_complete(pending, done):
                    voiced = len(text)
                    if not said:
                        timings["llm_ms"] = timings["llm_first_ms"] = round((time.perf_counter() - t0) * 1000, 1)
                    said.append(pending.strip())
                    yield TranscriptFrame("agent", " ".join(said), -1, final=False)
                    async for f in speak_sentence(self.tts, self.voice, pending.strip(), timings, first=len(said) == 1):
                        yield f
                if done:
                    break
        rest = text[voiced:].strip()
        if speakable(rest):
            if not said:
                timings["llm_ms"] = timings["llm_first_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            said.append(rest)
            yield TranscriptFrame("agent", " ".join(said), -1, final=False)
            async for f in speak_sentence(self.tts, self.voice, rest, timings, first=len(said) == 1):
                yield f

    async def _reply(self, draw, t0: float, timings: dict[str, float]) -> AsyncIterator[Frame]:
        """A reply drawn again while it has nothing speakable, as the pipeline redraws; else the fallback line."""
        said: list[str] = []
        # a redraw at the same temperature repeats a greedy reply: only sampling draws again
        for attempt in range(self.draws if self.temperature > 0 else 1):
            async with self._lock:
                async for f in self._voice(draw(attempt), t0, timings, said):
                    yield f
            if said:
                yield TranscriptFrame("agent", " ".join(said), -1, final=True)
                return
        yield TranscriptFrame("agent", FALLBACK_LINE, -1, final=False, failed=True)
        async for f in speak_sentence(self.tts, self.voice, FALLBACK_LINE, timings, first=True):
            yield f
        yield TranscriptFrame("agent", FALLBACK_LINE, -1, final=True, failed=True)

    async def opening(self, ctx: CallContext) -> AsyncIterator[Frame]:
        t0 = time.perf_counter()
        if self.scenario.agent.opening:
            async for f in self._voice(_once(self.scenario.agent.opening), t0, {}, []):
                yield f
            yield TranscriptFrame("agent", self.scenario.agent.opening.strip(), -1, final=True)
            return
        # the pipeline's chat framing: the agent opens, answering a "call connected" cue
        draw = lambda attempt: self._generate(None, [], derive_seed(ctx.call_id, "opening", attempt), CALL_CONNECTED)  # noqa: E731
        async for f in self._reply(draw, t0, {}):
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
            pcm = np.asarray(utterance, np.float32)
            draw = lambda attempt: self._generate(pcm, context, derive_seed(ctx.call_id, len(context), attempt))  # noqa: E731
            async for f in self._reply(draw, t0, timings):
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
