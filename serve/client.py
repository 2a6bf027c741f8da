"""A native-protocol client: what a phone gateway or the simulated callers do.

It streams caller audio continuously at the pace of real time (silence when
there is nothing to say, as a phone line does), collects the agent's audio per
turn, and records transcripts, events, clears and the end of the call.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .audio import RATE, float_to_pcm16, pcm16_to_float
from .protocol.native import start_message


@dataclass
class AgentTurn:
    turn: int
    text: str = ""
    audio: list[np.ndarray] = field(default_factory=list)
    first_audio_at: float | None = None
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (time, samples) of each audio message
    ended: bool = False
    cleared: bool = False

    @property
    def pcm(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, dtype=np.float32)

    def stall_s(self, realtime_factor: float = 1.0) -> float:
        """Silence a listener would hear inside this turn because audio arrived after the previous part had played."""
        stall, play_end = 0.0, None
        for t, n in self.arrivals:
            if play_end is not None and t > play_end + 0.02:
                stall += t - play_end
            play_end = max(play_end or t, t) + n / RATE / realtime_factor
        return stall


class NativeClient:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        caller: dict[str, Any] | None = None,
        arm: str | None = None,
        scenario: str | None = None,
        token_in_message: bool = False,
        realtime_factor: float = 1.0,
        frame_ms: int = 20,
        stream_silence: bool = True,
    ):
        self.url = url
        self.token = token
        self.caller = caller or {}
        self.arm = arm
        self.scenario = scenario
        self.token_in_message = token_in_message
        self.rtf = realtime_factor
        self.frame = frame_ms * RATE // 1000
        self.stream_silence = stream_silence
        self.ws: ClientConnection | None = None
        self.session: dict[str, Any] | None = None
        self.messages: list[dict[str, Any]] = []
        self.turns: dict[int, AgentTurn] = {}
        self.user_transcripts: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.end: dict[str, Any] | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._speech: collections.deque[np.ndarray] = collections.deque()
        self.speech_end_times: list[float] = []
        self._turn_ends: asyncio.Queue[int] = asyncio.Queue()
        self._current: int | None = None
        self._tasks: list[asyncio.Task] = []
        self.closed = asyncio.Event()
        self.bytes_out = 0

    # --- connection ------------------------------------------------------------------

    async def connect(self, timeout: float = 30.0) -> dict[str, Any]:
        headers = {}
        if self.token and not self.token_in_message:
            headers["Authorization"] = f"Bearer {self.token}"
        self.ws = await connect(self.url, additional_headers=headers, max_size=2**22, open_timeout=timeout)
        start = start_message(self.caller, arm=self.arm or None, scenario=self.scenario or None,
                              token=self.token if self.token and self.token_in_message else None)
        await self.ws.send(json.dumps(start))
        self._tasks.append(asyncio.create_task(self._receive()))
        t_end = time.monotonic() + timeout
        while self.session is None:
            if self.closed.is_set():
                raise ConnectionError(f"server closed the call: {self.close_code} {self.close_reason} {self.errors}")
            if time.monotonic() > t_end:
                raise TimeoutError("no session message from the server")
            await asyncio.sleep(0.01)
        if self.stream_silence:
            self._tasks.append(asyncio.create_task(self._stream()))
        return self.session

    async def _receive(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                now = time.monotonic()
                if isinstance(msg, bytes):
                    key = self._current if self._current is not None else -1
                    turn = self.turns.setdefault(key, AgentTurn(key))
                    if turn.first_audio_at is None:
                        turn.first_audio_at = now
                    pcm = pcm16_to_float(msg)
                    turn.audio.append(pcm)
                    turn.arrivals.append((now, len(pcm)))
                    continue
                obj = json.loads(msg)
                obj["_t"] = now
                self.messages.append(obj)
                kind = obj.get("type")
                if kind == "session":
                    self.session = obj
                elif kind == "transcript" and obj.get("role") == "agent":
                    self._current = int(obj["turn"])
                    self.turns.setdefault(self._current, AgentTurn(self._current)).text = obj["text"]
                elif kind == "transcript":
                    self.user_transcripts.append(obj)
                elif kind == "event" and obj.get("name") == "agent_turn_end":
                    t = int(obj["data"]["turn"])
                    self.turns.setdefault(t, AgentTurn(t)).ended = True
                    self._turn_ends.put_nowait(t)
                elif kind == "clear":
                    t = int(obj.get("turn", -1))
                    if t in self.turns:
                        self.turns[t].cleared = True
                elif kind == "error":
                    self.errors.append(obj)
                elif kind == "end":
                    self.end = obj
        except ConnectionClosed:
            pass
        finally:
            if self.ws is not None and self.ws.close_code is not None:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason or ""
            self.closed.set()
            self._turn_ends.put_nowait(-1)

    async def _stream(self) -> None:
        """Send one frame per frame period: queued speech first, silence otherwise."""
        assert self.ws is not None
        period = self.frame / RATE / self.rtf
        silence = np.zeros(self.frame, dtype=np.float32)
        buf = np.zeros(0, dtype=np.float32)
        t_next = time.monotonic()
        speaking = False
        try:
            while not self.closed.is_set():
                if len(buf) < self.frame and self._speech:
                    buf = np.concatenate([buf, self._speech.popleft()])
                    speaking = True
                if len(buf):
                    chunk, buf = buf[: self.frame], buf[self.frame :]
                    if len(chunk) < self.frame:
                        chunk = np.concatenate([chunk, silence[: self.frame - len(chunk)]])
                    if not len(buf) and not self._speech and speaking:
                        speaking = False
                        self.speech_end_times.append(time.monotonic())
                else:
                    chunk = silence
                await self.ws.send(float_to_pcm16(chunk))
                self.bytes_out += 2 * len(chunk)
                t_next += period
                await asyncio.sleep(max(0.0, t_next - time.monotonic()))
        except ConnectionClosed:
            pass

    # --- actions -----------------------------------------------------------------------

    def say(self, pcm: np.ndarray) -> None:
        self._speech.append(np.asarray(pcm, dtype=np.float32))

    @property
    def saying(self) -> bool:
        return bool(self._speech)

    async def send_raw(self, msg: str | bytes) -> None:
        assert self.ws is not None
        await self.ws.send(msg)

    async def next_turn_end(self, timeout: float = 60.0) -> AgentTurn | None:
        """The next agent turn whose audio has all arrived; None when the call ended first."""
        try:
            t = await asyncio.wait_for(self._turn_ends.get(), timeout)
        except TimeoutError:
            return None
        if t < 0:
            return None
        return self.turns.get(t)

    async def wait_closed(self, timeout: float = 30.0) -> bool:
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def hangup(self) -> None:
        if self.ws is not None and not self.closed.is_set():
            try:
                await self.ws.send(json.dumps({"type": "hangup"}))
            except ConnectionClosed:
                pass
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001, S110
                pass
        self._tasks.clear()
