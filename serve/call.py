"""One call: the handling both arms share.

Frames from the transport go to ``on_frame``. Caller audio is recorded and fed
to the turn detector; when the arm has an ASR model, each utterance is
transcribed while it is spoken (``listen.Hearing``) and its end is decided from
the silence and the words (``listen.Endpointing``). A finished utterance starts
a responder task that drives the arm and commits turns to the store as they
become known, with their per-stage timings; agent audio goes out through the
pacer. When the caller takes the floor while the agent talks
(or thinks), the responder is cancelled and an ``Interruption`` overtakes the
queued audio. The call ends when the caller hangs up, the caller decided and
the agent answered, the turn cap or a time limit is reached, or on bad input;
``done`` is then set and ``end_frame`` says how the transport should close.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mads_audio.vad import SileroVAD, VADConfig
from mads_text.common.records import Turn

from .arms.base import Arm, CallContext
from .frames import (
    Dtmf,
    EndFrame,
    ErrorFrame,
    EventFrame,
    Frame,
    Hangup,
    InputAudio,
    MarkFrame,
    OutputAudio,
    PlaybackMark,
    TranscriptFrame,
)
from .listen import BargeIn, Endpointing, Listener, Utterance
from .outcome import OutcomeDetector
from .processors import OutputPacer, Send, TurnDone
from .recording import StereoRecorder
from .store import CallStore

log = logging.getLogger("mads.serve")


@dataclass
class CallConfig:
    realtime_factor: float = 1.0  # >1 plays agent audio faster than real time (tests, benchmarks)
    lead_ms: int = 200
    chunk_ms: int = 40
    barge_in: bool = True
    barge_in_ms: int = 300
    max_agent_turns: int = 8
    end_on_decision: bool = True
    idle_timeout_s: float = 20.0
    max_call_s: float = 600.0
    vad: VADConfig = field(default_factory=VADConfig)
    endpointing: Endpointing = field(default_factory=Endpointing)
    listen_while_speaking: bool = True  # transcribe during the caller's speech, when the arm has an ASR model


class Call:
    def __init__(
        self,
        ctx: CallContext,
        arm: Arm,
        store: CallStore,
        send: Send,
        *,
        config: CallConfig | None = None,
        recorder: StereoRecorder | None = None,
        vad: SileroVAD | None = None,
        outcome: OutcomeDetector | None = None,
    ):
        self.ctx = ctx
        self.arm = arm
        self.store = store
        self.cfg = config or CallConfig()
        self.recorder = recorder
        self.outcome = outcome or OutcomeDetector("rules")
        self._send_raw = send
        asr = getattr(arm, "asr", None) if self.cfg.listen_while_speaking else None
        self.listener = Listener(asr, vad, self.cfg.vad, self.cfg.barge_in_ms, self.cfg.endpointing, self._heard_so_far)
        self._preparing: asyncio.Task | None = None
        self.pacer = OutputPacer(
            self._send,
            chunk_ms=self.cfg.chunk_ms,
            lead_ms=self.cfg.lead_ms,
            realtime_factor=self.cfg.realtime_factor,
            on_audio=self._record_agent,
            on_turn_done=self._turn_done,
            on_first_audio=self._first_audio,
        )
        self._wall0 = time.time() - time.monotonic()
        self.started = time.monotonic()
        self.last_input = self.started
        self.done = asyncio.Event()
        self.end_frame: EndFrame | None = None
        self.ended_by: str | None = None
        self._turn_idx = 0
        self._responder: asyncio.Task | None = None
        self._watchdog: asyncio.Task | None = None
        self._agent_turn_live: int | None = None  # agent turn being generated or played
        self._response_t_end: dict[int, float] = {}  # agent turn -> end of the caller speech it answers
        self._timings: dict[int, dict[str, float]] = {}
        self._turns_done: set[int] = set()
        self._history_pos: dict[int, int] = {}  # turn index -> position in ctx.history
        self._closing: str | None = None  # reason to end once the agent's current turn has played
        self._finishing = False
        self._send_ok = True

    # --- helpers --------------------------------------------------------------------

    def _wall(self, mono: float) -> float:
        return self._wall0 + mono

    def _next_idx(self) -> int:
        i = self._turn_idx
        self._turn_idx += 1
        return i

    async def _send(self, frame: Frame) -> None:
        if not self._send_ok:
            return
        try:
            await self._send_raw(frame)
        except Exception as e:  # noqa: BLE001 - the socket is gone: the caller hung up
            self._send_ok = False
            log.info("call %s: send failed (%s); treating as hang-up", self.ctx.call_id, e)
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.finish("caller_gone", "caller")))

    def _record_agent(self, pcm: np.ndarray) -> None:
        if self.recorder:
            self.recorder.agent(pcm)

    def _event(self, name: str, data: dict[str, Any] | None = None) -> None:
        try:
            self.store.event(self.ctx.call_id, name, data)
        except Exception as e:  # noqa: BLE001 - the store must never take a call down
            log.warning("call %s: event %s not stored: %s", self.ctx.call_id, name, e)

    @property
    def agent_turns(self) -> int:
        return sum(1 for t in self.ctx.history if t.role == "agent")

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        self.pacer.start()
        self._watchdog = asyncio.create_task(self._watch(), name=f"watchdog-{self.ctx.call_id}")
        agent = self.ctx.scenario.agent
        await self._send(EventFrame("session", {
            "call_id": self.ctx.call_id, "arm": self.ctx.arm, "scenario": self.ctx.scenario.name,
            "agent": {"name": agent.name, "company": agent.company},
            "format": {"encoding": "pcm16", "sample_rate": 16000, "channels": 1}}))  # fmt: skip
        self._event("call_started", {"arm": self.ctx.arm})
        # the agent opens the call, as in the paper's example calls
        self._responder = asyncio.create_task(self._run_arm(None, self.started), name=f"opening-{self.ctx.call_id}")

    async def on_frame(self, frame: Frame) -> None:
        if self._finishing:
            return
        self.last_input = time.monotonic()
        if isinstance(frame, InputAudio):
            await self._on_audio(frame.pcm)
        elif isinstance(frame, Hangup):
            await self.finish("caller_hangup", "caller")
        elif isinstance(frame, PlaybackMark):
            self._event("mark_played", {"name": frame.name})
        elif isinstance(frame, Dtmf):
            self._event("dtmf", {"digit": frame.digit})

    async def _on_audio(self, pcm: np.ndarray) -> None:
        if self.recorder:
            self.recorder.user(pcm)
        for ev in self.listener.feed(pcm):
            if isinstance(ev, BargeIn):
                await self._maybe_barge_in()
            elif isinstance(ev, Utterance):
                await self._on_utterance(ev)
            else:
                await self._send(EventFrame("user_speech_start", {}))

    def _heard_so_far(self, text: str, audio: np.ndarray | None = None) -> None:
        """A pause in the caller's speech was transcribed: the arm may get ready for its reply."""
        if text and (self._preparing is None or self._preparing.done()):
            self._preparing = asyncio.ensure_future(self._prepare(text, audio))

    async def _prepare(self, text: str, audio: np.ndarray | None = None) -> None:
        try:
            await self.arm.prepare(self.ctx, text, audio)
        except Exception as e:  # noqa: BLE001 - getting ready is an optimisation, never a failure of the call
            log.info("call %s: prepare failed: %s", self.ctx.call_id, e)

    async def _maybe_barge_in(self) -> None:
        thinking = self._responder is not None and not self._responder.done()
        if not (self.pacer.playing or thinking) or not self.cfg.barge_in:
            return
        await self._cancel_responder()
        cut = await self._cut_agent_turn(clear=True)
        if cut is not None:
            self._event("barge_in", {"turn": cut[0], "played_ms": cut[1]})
            if self._closing == "decision":
                self._closing = None  # the caller is still talking: keep listening

    async def _cut_agent_turn(self, *, clear: bool) -> tuple[int, int] | None:
        """The agent turn in progress stops here (barge-in, a new utterance, hang-up, a limit).

        Its row gets what the caller heard and ``interrupted = 1``; ``clear`` also drops the queued
        audio and tells the caller to flush (a call that is ending sends nothing more).
        Returns (turn, milliseconds played), or None when no turn was cut.
        """
        turn = self._agent_turn_live
        if turn is None or (turn in self._turns_done and not self.pacer.playing):
            return None
        self._agent_turn_live = None
        played = await self.pacer.interrupt(turn) if clear else self.pacer.played_s(turn)
        if self.recorder:
            self.recorder.cut_agent()
        played_ms = round(played * 1000)
        try:
            self.store.update_turn(self.ctx.call_id, turn, interrupted=1, audio_ms=played_ms, ended_at=time.time())
        except Exception as e:  # noqa: BLE001
            log.warning("call %s: turn update failed: %s", self.ctx.call_id, e)
        return turn, played_ms

    async def _on_utterance(self, utt: Utterance) -> None:
        generating = self._responder is not None and not self._responder.done()
        await self._cancel_responder()
        if generating:  # the reply being made is dropped for one that hears this utterance too
            await self._cut_agent_turn(clear=True)
        audio, heard = self.listener.take(utt)
        await self._send(EventFrame("user_speech_end", {"duration_ms": round(len(utt.audio) / 16)}))
        timings = {"endpoint_ms": round((utt.decided_at - utt.end_time) * 1000, 1)} if utt.decided_at else {}
        self._responder = asyncio.create_task(self._run_arm(audio, utt.end_time, heard, timings), name=f"reply-{self.ctx.call_id}")

    async def _cancel_responder(self) -> None:
        task = self._responder
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001, S110
                pass
        self._responder = None

    # --- the arm --------------------------------------------------------------------

    async def _run_arm(self, audio: np.ndarray | None, t_end: float, heard=None, timings: dict[str, float] | None = None) -> None:
        agent_idx: int | None = None
        user_idx: int | None = None  # a user turn reserved before its text is known (audio arm)
        timings = dict(timings or {})
        try:
            if audio is None:
                it = self.arm.opening(self.ctx)
            else:
                it = self.arm.respond(self.ctx, audio, heard) if heard is not None else self.arm.respond(self.ctx, audio)
            async for f in it:
                if isinstance(f, TranscriptFrame) and f.role == "user":
                    if user_idx is None:
                        self.listener.committed()
                        if f.final and not f.text.strip():
                            self._event("no_speech", {})
                            return
                        user_idx = await self._add_user(f.text, t_end, timings)
                    else:
                        self._set_text(user_idx, f.text)
                    if f.final:
                        await self._user_final(user_idx, f.text)
                elif isinstance(f, TranscriptFrame) and f.role == "agent":
                    if agent_idx is None:
                        agent_idx = self._next_idx()
                        self._agent_turn_live = agent_idx
                        self._response_t_end[agent_idx] = t_end
                        self.ctx.history.append(Turn(role="agent", text=f.text))
                        self._history_pos[agent_idx] = len(self.ctx.history) - 1
                        self.store.add_turn(
                            self.ctx.call_id, agent_idx, "agent", f.text, started_at=time.time(), failed=int(f.failed),
                            llm_ms=timings.get("llm_ms"), asr_ms=timings.get("asr_ms"), timings=json.dumps(timings),
                        )  # fmt: skip
                        # the caller learns the turn index before its audio arrives
                        self.pacer.put(TranscriptFrame("agent", f.text, agent_idx, f.final))
                    else:
                        self._set_text(agent_idx, f.text)
                        if f.failed:
                            self.store.update_turn(self.ctx.call_id, agent_idx, failed=1)
                        if f.final:
                            self.pacer.put(TranscriptFrame("agent", f.text, agent_idx))
                elif isinstance(f, EventFrame) and f.name == "timing":
                    timings.update({k: float(v) for k, v in f.data.items()})
                    if agent_idx is not None:
                        self._timings[agent_idx] = dict(timings)
                        known = {k: v for k, v in timings.items() if k in ("asr_ms", "llm_ms", "tts_ms")}
                        self.store.update_turn(self.ctx.call_id, agent_idx, **known, timings=json.dumps(timings))
                elif isinstance(f, OutputAudio):
                    if agent_idx is None:
                        continue
                    self.pacer.put(OutputAudio(f.pcm, agent_idx))
                elif isinstance(f, EventFrame):
                    self.pacer.put(f)
            if agent_idx is not None:
                self._timings[agent_idx] = dict(timings)
                self.pacer.put(MarkFrame(f"agent-{agent_idx}"))
                self.pacer.put(TurnDone(agent_idx))
                self._preparing = asyncio.ensure_future(self._prepare(""))  # the caller's turn comes next
                if self.agent_turns >= self.cfg.max_agent_turns and not self._closing:
                    self._closing = "max_turns"
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("call %s: arm %s failed", self.ctx.call_id, self.arm.name)
            self._event("arm_error", {"error": f"{type(e).__name__}: {e}"})
            await self._send(ErrorFrame("arm_error", f"the {self.arm.name} arm failed: {type(e).__name__}: {e}"))
            asyncio.ensure_future(self.finish("arm_error", "server", close_code=1011, outcome_override="error"))

    def _set_text(self, idx: int, text: str) -> None:
        """A turn's text grew or was corrected (streamed agent replies, late transcripts)."""
        pos = self._history_pos.get(idx)
        if pos is not None:
            self.ctx.history[pos].text = text
        self.store.update_turn(self.ctx.call_id, idx, text=text)

    async def _add_user(self, text: str, t_end: float, timings: dict[str, float]) -> int:
        idx = self._next_idx()
        self.ctx.history.append(Turn(role="user", text=text))
        self._history_pos[idx] = len(self.ctx.history) - 1
        self.store.add_turn(
            self.ctx.call_id, idx, "user", text, ended_at=self._wall(t_end), asr_ms=timings.get("asr_ms")
        )
        return idx

    async def _user_final(self, idx: int, text: str) -> None:
        await self._send(TranscriptFrame("user", text, idx))
        # off the reply's path: the agent answers while the outcome is worked out (a labeler takes its time)
        asyncio.ensure_future(self._judge([t.model_copy() for t in self.ctx.history]))

    async def _judge(self, history: list[Turn]) -> None:
        try:
            res = await asyncio.to_thread(self.outcome.detect, history)
        except Exception as e:  # noqa: BLE001 - the outcome is worked out again when the call ends
            log.warning("call %s: outcome detection failed: %s", self.ctx.call_id, e)
            return
        if self._finishing:
            return  # the call's end has its own, final outcome
        self.store.update_call(self.ctx.call_id, outcome=res.outcome, outcome_source=res.source, intention=int(res.intention))
        if res.final and self.cfg.end_on_decision and not self._closing:
            self._closing = "decision"
            self._event("decision", {"outcome": res.outcome, "evidence": res.evidence})
            answered = self._responder is None or self._responder.done()
            if answered and self._agent_turn_live in self._turns_done:
                # the agent's answer was out before the decision was known: end once it has played
                asyncio.ensure_future(self._end_after_playback(self._agent_turn_live, "decision"))

    def _first_audio(self, turn: int, t: float) -> None:
        t_end = self._response_t_end.get(turn)
        fields: dict[str, Any] = {}
        if t_end is not None:
            fields["latency_ms"] = round((t - t_end) * 1000, 1)
        tm = self._timings.get(turn, {})
        if "tts_ms" in tm:
            fields["tts_ms"] = tm["tts_ms"]
        if fields:
            try:
                self.store.update_turn(self.ctx.call_id, turn, **fields)
            except Exception as e:  # noqa: BLE001
                log.warning("call %s: latency not stored: %s", self.ctx.call_id, e)

    def _turn_done(self, turn: int, audio_s: float, play_end: float) -> None:
        self._turns_done.add(turn)
        try:
            self.store.update_turn(self.ctx.call_id, turn, audio_ms=round(audio_s * 1000), ended_at=self._wall(play_end))
        except Exception as e:  # noqa: BLE001
            log.warning("call %s: turn end not stored: %s", self.ctx.call_id, e)
        if self._closing:
            reason = "decision" if self._closing == "decision" else self._closing
            asyncio.ensure_future(self._end_after_playback(turn, reason))

    async def _end_after_playback(self, turn: int, reason: str) -> None:
        await self.pacer.drain(timeout=30)
        busy = (self._responder is not None and not self._responder.done()) or self.listener.speaking
        if self._closing and not busy:
            await self.finish(reason, "server")

    # --- timers and the end -------------------------------------------------------------

    async def _watch(self) -> None:
        while not self.done.is_set():
            await asyncio.sleep(0.25)
            now = time.monotonic()
            if now - self.last_input > self.cfg.idle_timeout_s:
                await self._send(ErrorFrame("idle_timeout", f"no message from the caller for {self.cfg.idle_timeout_s:g} s"))
                await self.finish("idle_timeout", "server", close_code=1008)
                return
            if now - self.started > self.cfg.max_call_s:
                await self.finish("max_duration", "server")
                return

    async def fail(self, code: str, message: str, close_code: int) -> None:
        """Bad input from the caller: error event, then a policy close."""
        self._event("protocol_error", {"code": code, "message": message})
        await self._send(ErrorFrame(code, message, close_code))
        await self.finish(f"protocol_error:{code}", "server", close_code=close_code)

    async def finish(
        self, reason: str, ended_by: str, close_code: int = 1000, outcome_override: str | None = None
    ) -> None:
        if self._finishing:
            return
        self._finishing = True
        self.ended_by = ended_by
        if asyncio.current_task() is not self._responder:
            await self._cancel_responder()
        if self._watchdog and asyncio.current_task() is not self._watchdog:
            self._watchdog.cancel()
        await self._cut_agent_turn(clear=False)
        await self.pacer.close()
        self.listener.close()
        try:
            await self.arm.release(self.ctx)
        except Exception as e:  # noqa: BLE001
            log.warning("call %s: arm release failed: %s", self.ctx.call_id, e)
        if self.recorder:
            try:
                self.recorder.close()
            except Exception as e:  # noqa: BLE001
                log.warning("call %s: recording not closed: %s", self.ctx.call_id, e)
        ended = "caller" if ended_by == "caller" else "server"
        res = await asyncio.to_thread(self.outcome.detect, [t.model_copy() for t in self.ctx.history], ended)
        outcome = outcome_override or res.outcome
        try:
            self.store.update_call(
                self.ctx.call_id, status="ended", ended_at=time.time(), end_reason=reason,
                outcome=outcome, outcome_source=res.source, intention=int(res.intention),
            )  # fmt: skip
            self._event("call_ended", {"reason": reason, "outcome": outcome})
        except Exception as e:  # noqa: BLE001
            log.warning("call %s: end not stored: %s", self.ctx.call_id, e)
        if ended_by != "caller":
            await self._send(EventFrame("outcome", {"outcome": outcome, "intention": res.intention}))
        self.end_frame = EndFrame(reason, close_code)
        if self._send_ok and ended_by != "caller":
            await self._send(self.end_frame)
        self.done.set()
