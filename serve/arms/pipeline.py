"""The cascaded baseline arm: ASR -> Dialog Agent LLM -> TTS (VAD and the transcription made while the
caller speaks run in the shared call code, ``listen.py``).

The Dialog Agent is the text core's ``DialogAgent`` (transcript mode on the
embedded backend), one per call so its seed and prompt stay with the call.
The reply is streamed: its first clause is voiced as soon as it is speakable
and each later sentence as soon as it is complete, while the LLM keeps
writing, so the caller waits for the first clause, not for the whole reply.
The streamed text passes the same checks as the text core's replies
(``clean_reply``: speaker prefixes, role slips, echoes; ``drop_repeats``); a
stream that goes wrong before anything was voiced is redone by the Dialog
Agent itself, with its bounded retries. A reply with nothing speakable in it
("(speaking)") is handled like an empty one: the caller hears the fallback
line, never silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import numpy as np

from mads_audio.asr import WhisperASR
from mads_text.agents import RETRY_HEAT, DialogAgent, derive_seed
from mads_text.common.records import Turn
from mads_text.llm import GenParams, LLMBackend
from mads_text.personas import agent_transcript_header, render_agent_prompt
from mads_text.replies import clean_reply, drop_repeats, extract_marker, norm_words, sentences
from mads_text.scenario import Scenario

from ..frames import EventFrame, Frame, OutputAudio, TranscriptFrame
from ..tts import TTS, Voice, first_sentence_end, next_chunk, open_sentence, speakable
from .base import Arm, CallContext
from .llm_stream import StreamingLLM
from .parity import BACKEND_DEFAULT, backbone, decoding, llama_sampler_defaults, sha256_text

# what an arm says when its model produced nothing speakable; such a turn is stored as failed
FALLBACK_LINE = "Sorry, could you say that again?"
log = logging.getLogger("mads.serve")


def stop_strings(mode: str, own: str, other: str) -> list[str]:
    """Where a Dialog Agent reply ends: at a new line, or where the model starts writing either speaker's line."""
    return ["\n", f"{other}:", f"{own}:", "Transcript:"] if mode == "transcript" else [f"\n{other}:", f"\n{own}:"]


def agent_instruction(scenario: Scenario, prompt_k: str | None, mode: str = "chat", user_name: str = "Customer") -> str:
    """The Dialog Agent's system/instruction text (product facts and instruction or SOP): the chat system
    prompt, or in transcript mode the transcript header that frames the same facts and instruction."""
    if mode == "transcript":
        return agent_transcript_header(scenario, user_name, prompt_k)
    return render_agent_prompt(scenario, prompt_k)


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


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


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
        top_p: float = 1.0,
        use_caller_name: bool = False,
        stream: bool = True,
        max_calls: int = 4,
    ):
        self.scenario = scenario
        # The caller's name sits in the first line of the agent's prompt header; leaving it out keeps
        # the header identical across calls, so llama.cpp reuses its cached prefix (much lower latency).
        self.use_caller_name = use_caller_name
        self.backend = backend
        self.llm = StreamingLLM(backend, pool=max_calls)
        self.stream = stream and self.llm.streams
        self.asr = asr
        self.tts = tts
        self.voice = voice
        self.prompt_mode = prompt_mode
        self.prompt_k = prompt_k
        self.params = GenParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens)

    def describe(self) -> dict[str, Any]:
        llm = self.backend.describe()
        # with the caller's name in the prompt, the header and stop strings change with every call
        user = "<caller's name>" if self.use_caller_name else "Customer"
        sampler = llama_sampler_defaults() if llm.get("backend") == "embedded" else {"top_k": BACKEND_DEFAULT, "min_p": BACKEND_DEFAULT}
        return {
            "arm": self.name,
            "backbone": backbone(str(llm.get("path") or llm.get("model") or "")),
            "prompt_sha256": sha256_text(agent_instruction(self.scenario, self.prompt_k, self.prompt_mode, user)),
            "decoding": decoding(
                temperature=self.params.temperature, top_p=self.params.top_p, max_tokens=self.params.max_tokens,
                stop=stop_strings(self.prompt_mode, self.scenario.agent.name, user), draws=DialogAgent.max_retries + 1,
                # a streamed reply is redrawn at the same temperature; the Dialog Agent's own retries run hotter
                redraw_heat=0.0 if self.stream else RETRY_HEAT, **sampler,
            ),  # fmt: skip
            "prompt_framing": self.prompt_mode,
            "runtime": llm.get("backend"),
            "llm": llm,
            "asr": self.asr.name if self.asr else None,
            "tts": self.voice.model_dump(),
            "streaming": self.stream,
        }

    async def load(self) -> None:
        await self.backend.check()
        # one tiny synthesis loads the TTS engine before the first caller waits on it
        await asyncio.to_thread(self.tts.synthesize, "Hello.", self.voice)
        warm = CallContext(call_id="warm-up", scenario=self.scenario, caller={}, arm=self.name)
        if self.stream:  # the agent's prompt header, evaluated once on each slot a call may get
            await self.llm.warm(self._prompt(self._agent(warm), []))
            self.llm.release(warm.state.pop("llm_slot", None))
        else:  # one opening fills the LLM's prompt cache with the agent header, shared by every call
            await self._agent(warm).next_turn([])

    def _agent(self, ctx: CallContext) -> DialogAgent:
        agent = ctx.state.get("dialog_agent")
        if agent is None:
            agent = DialogAgent(
                self.scenario, self.backend, mode=self.prompt_mode, prompt_k=self.prompt_k,
                user_name=ctx.caller_name if self.use_caller_name else "Customer", params=self.params, seed=derive_seed(ctx.call_id, ctx.seed),
            )  # fmt: skip
            ctx.state["dialog_agent"] = agent
            ctx.state["llm_slot"] = self.llm.acquire()
        return agent

    async def release(self, ctx: CallContext) -> None:
        self.llm.release(ctx.state.pop("llm_slot", None))

    def _prompt(self, agent: DialogAgent, history: list[Turn]):
        # the Dialog Agent's own framing, so a streamed reply sees exactly the prompt a self-play turn would
        return agent._prompt(self._as_heard(agent, history))

    def _as_heard(self, agent: DialogAgent, history: list[Turn]) -> list[Turn]:
        """The call as this arm's LLM reads it: the record (an arm with another ear reads its own words)."""
        return history

    async def prepare(self, ctx: CallContext, partial: str, audio: np.ndarray | None = None) -> None:
        """The caller is still speaking: evaluate the prompt with their words so far on the call's slot."""
        if not self.stream or not ctx.history:
            return
        agent = self._agent(ctx)
        await self.llm.prefill(self._prompt(agent, [*ctx.history, Turn(role="user", text=partial)]), ctx.state["llm_slot"])

    async def _speak(self, ctx: CallContext, timings: dict[str, float]) -> AsyncIterator[Frame]:
        agent = self._agent(ctx)
        t0 = time.perf_counter()
        voiced: list[str] = []
        streamed = self.stream and (ctx.history or not self.scenario.agent.opening)
        # a stream that went wrong before anything was said is drawn again with a new seed, as the Dialog
        # Agent redraws a bad reply
        for attempt in range(agent.max_retries + 1 if streamed else 0):
            async with aclosing(self._stream(ctx, agent, timings, t0, attempt)) as chunks:
                async for chunk in chunks:
                    if isinstance(chunk, str):
                        voiced.append(chunk)
                        yield TranscriptFrame("agent", " ".join(voiced), -1, final=False)
                        async for f in speak_sentence(self.tts, self.voice, chunk, timings, first=len(voiced) == 1):
                            yield f
                    else:
                        yield chunk
            if voiced:
                break
        failed = False
        if not voiced:
            text, failed = FALLBACK_LINE, True
            if not streamed:  # other backends answer whole, through the Dialog Agent and its retries
                reply = await agent.next_turn(self._as_heard(agent, ctx.history))
                timings["llm_ms"] = timings["llm_first_ms"] = _ms(t0)
                # a reply with nothing to say aloud ("(speaking)", "[END]") would reach the caller as silence
                if speakable(reply.text):
                    text, failed = reply.text.strip(), False
            yield TranscriptFrame("agent", text, -1, final=False, failed=failed)
            async for f in speak_sentence(self.tts, self.voice, text, timings, first=True):
                yield f
            voiced = [text]
        yield TranscriptFrame("agent", " ".join(voiced), -1, final=True, failed=failed)

    async def _stream(self, ctx: CallContext, agent: DialogAgent, timings: dict[str, float], t0: float, attempt: int):
        """Voiceable chunks (str) of a streamed reply, checked as they come, and a final timing event."""
        history = ctx.history
        own, other = agent.own_name, agent.other_name
        other_last = next((t.text for t in reversed(history) if t.role != "agent"), None)
        said = [s for t in history if t.role == "agent" for s in sentences(t.text)]
        # the checks a self-play reply passes: the customer's words in the agent's mouth, a narrator, the private
        # reminder read out
        checks = dict(impersonation=agent.impersonation(), instructions=agent.directions(history),
                      other_said=[x for t in history if t.role != "agent" for x in sentences(t.text)])
        stop = stop_strings(agent.mode, own, other)
        params = agent.params.model_copy(update={"seed": derive_seed(agent.seed, "agent", len(history), attempt), "stop": stop})
        raw, used, stats, cut = "", 0, {}, False
        async with aclosing(self.llm.stream(self._prompt(agent, history), params, ctx.state.get("llm_slot"))) as pieces:
            async for piece in pieces:
                raw += piece.text
                if piece.done:
                    stats = piece.stats
                res = clean_reply(raw, own_name=own, other_name=other, other_last=other_last, **checks)
                if res.retry and res.retry not in ("empty", "marker only"):
                    log.info("call %s: streamed reply dropped (%s): %r", ctx.call_id, res.retry, raw[:120])
                    break  # a role slip or an echo: what is unsaid stays unsaid
                text = extract_marker(res.text)[0] if not res.retry else ""
                cut = res.cleaned and len(res.text) < len(raw.strip())  # a speaker prefix started: the reply ends there
                finished = piece.done or cut
                while True:
                    rest = text[used:]
                    n = len(rest) if finished else next_chunk(rest, first=not timings.get("llm_first_ms"))
                    if piece.done and piece.finish_reason == "length" and n:
                        n = _last_sentence_end(rest)  # a reply cut by the token limit keeps its finished sentences
                    if n and not finished and _opens_said(open_sentence(text[: used + n]), said):
                        # a clause that opens a sentence said before waits for its sentence: whole, it may be a
                        # repeat, which a clause alone never matches
                        end = first_sentence_end(rest[n:])
                        n = n + end if end else 0
                    if not n:
                        break
                    chunk, used = rest[:n].strip(), used + n
                    kept, dropped = drop_repeats(chunk, said)
                    if dropped and not kept:
                        continue
                    if speakable(kept):
                        timings.setdefault("llm_first_ms", _ms(t0))
                        said += sentences(kept)
                        yield kept
                    if finished:
                        break
                if finished:
                    break
        timings["llm_ms"] = _ms(t0)
        timings.update({k: float(v) for k, v in stats.items() if isinstance(v, (int, float))})
        yield EventFrame("timing", dict(timings))

    async def opening(self, ctx: CallContext) -> AsyncIterator[Frame]:
        async for f in self._speak(ctx, {}):
            yield f

    async def respond(self, ctx: CallContext, utterance: np.ndarray, heard=None) -> AsyncIterator[Frame]:
        t0 = time.perf_counter()
        if heard is not None:  # transcribed while the caller spoke: only the tail is left to wait for
            text = await heard.text()
        else:
            text = (await asyncio.to_thread(self.asr.transcribe, utterance)).text
        timings = {"asr_ms": _ms(t0)}
        yield EventFrame("timing", dict(timings))
        yield TranscriptFrame("user", text, -1)
        if not text.strip():
            return
        async for f in self._speak(ctx, timings):
            yield f


def _opens_said(fragment: str, said: list[str]) -> bool:
    """The words of an unfinished sentence open a sentence of four words or more said before in the call."""
    w = norm_words(fragment)
    return len(w) >= 2 and any(len(ws) >= 4 and ws[: len(w)] == w for ws in map(norm_words, said))


def _last_sentence_end(text: str) -> int:
    ends = [i + 1 for i, ch in enumerate(text) if ch in ".!?"]
    return ends[-1] if ends else 0
