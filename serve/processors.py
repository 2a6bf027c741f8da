"""The output side every call runs, whatever the arm (the input side is ``listen.py``).

``OutputPacer``: agent audio out at the pace it plays. Audio is sent at most
``lead_ms`` ahead of the caller's playback, so the caller never buffers more
than that; an ``Interruption`` overtakes everything queued: queued audio is
dropped, the interruption goes out at once, and the caller flushes its small
buffer (native ``clear`` / Twilio ``clear``).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from mads_audio.vad import SAMPLE_RATE

from .frames import EventFrame, Frame, Interruption, MarkFrame, OutputAudio


@dataclass
class TurnDone(Frame):
    """Internal: the arm produced everything for agent turn ``turn``."""

    turn: int


Send = Callable[[Frame], Awaitable[None]]


class OutputPacer:
    """Paced writer of one call's outgoing frames; ``interrupt`` is the system lane."""

    def __init__(
        self,
        send: Send,
        *,
        chunk_ms: int = 40,
        lead_ms: int = 200,
        realtime_factor: float = 1.0,
        on_audio: Callable[[np.ndarray], None] | None = None,
        on_turn_done: Callable[[int, float, float], None] | None = None,
        on_first_audio: Callable[[int, float], None] | None = None,
    ):
        self.send = send
        self.chunk = chunk_ms * SAMPLE_RATE // 1000
        self.lead = lead_ms / 1000
        self.rtf = realtime_factor
        self.on_audio = on_audio
        self.on_turn_done = on_turn_done
        self.on_first_audio = on_first_audio
        self._queue: collections.deque[tuple[int, Frame]] = collections.deque()
        self._wake = asyncio.Event()
        self._gen = 0
        self.play_end = 0.0  # monotonic time the caller finishes playing what was sent
        self.turn_audio: dict[int, float] = {}  # seconds of audio sent per agent turn
        self.turn_first_audio: dict[int, float] = {}
        self.current_turn: int | None = None
        self.underruns = 0  # chunks sent after the previous one had finished playing, mid-turn
        self._task: asyncio.Task | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="output-pacer")

    def put(self, frame: Frame) -> None:
        self._queue.append((self._gen, frame))
        self._wake.set()

    @property
    def audio_pending(self) -> bool:
        return any(isinstance(f, OutputAudio) for _, f in self._queue)

    @property
    def playing(self) -> bool:
        return self.audio_pending or time.monotonic() < self.play_end

    def played_s(self, turn: int) -> float:
        """Seconds of ``turn`` the caller has heard by now: what was sent, less what is still in its buffer."""
        sent = self.turn_audio.get(turn, 0.0)
        if turn != self.current_turn:
            return sent
        unplayed = max(0.0, self.play_end - time.monotonic()) * self.rtf
        return max(0.0, sent - unplayed)

    async def interrupt(self, turn: int) -> float:
        """Drop queued audio and tell the caller to flush; returns seconds of the turn that had played."""
        played = self.played_s(turn)
        self._gen += 1
        kept = collections.deque((g, f) for g, f in self._queue if not isinstance(f, (OutputAudio, MarkFrame)))
        self._queue = kept
        self.play_end = time.monotonic()
        await self.send(Interruption(turn))
        return played

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until everything queued is sent and has played."""
        t_end = None if timeout is None else time.monotonic() + timeout
        while self._queue and not self._closed:
            if t_end is not None and time.monotonic() > t_end:
                return
            await asyncio.sleep(0.02)
        wait = self.play_end - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait if t_end is None else min(wait, max(0.0, t_end - time.monotonic())))

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while not self._closed:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            gen, frame = self._queue.popleft()
            if gen != self._gen and isinstance(frame, (OutputAudio, MarkFrame, TurnDone)):
                continue
            if isinstance(frame, OutputAudio):
                await self._send_audio(gen, frame)
            elif isinstance(frame, TurnDone):
                if self.on_turn_done:
                    self.on_turn_done(frame.turn, self.turn_audio.get(frame.turn, 0.0), self.play_end)
                await self.send(EventFrame("agent_turn_end", {"turn": frame.turn, "audio_ms": round(1000 * self.turn_audio.get(frame.turn, 0.0))}))
            else:
                await self.send(frame)

    async def _send_audio(self, gen: int, frame: OutputAudio) -> None:
        pcm = frame.pcm
        if self.current_turn != frame.turn:
            self.current_turn = frame.turn
            self.turn_audio.setdefault(frame.turn, 0.0)
        for i in range(0, len(pcm), self.chunk):
            if gen != self._gen:
                return  # interrupted while we waited
            now = time.monotonic()
            ahead = self.play_end - now
            if ahead > self.lead:
                await asyncio.sleep(ahead - self.lead)
                if gen != self._gen:
                    return
                now = time.monotonic()
            piece = pcm[i : i + self.chunk]
            dur = len(piece) / SAMPLE_RATE
            if frame.turn in self.turn_first_audio and self.play_end < now - 0.02 and self.turn_audio.get(frame.turn, 0) > 0:
                self.underruns += 1
            if frame.turn not in self.turn_first_audio:
                self.turn_first_audio[frame.turn] = now
                if self.on_first_audio:
                    self.on_first_audio(frame.turn, now)
            await self.send(OutputAudio(piece, frame.turn))
            if self.on_audio:
                self.on_audio(piece)
            self.play_end = max(self.play_end, now) + dur / self.rtf
            self.turn_audio[frame.turn] = self.turn_audio.get(frame.turn, 0.0) + dur
