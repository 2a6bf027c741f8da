"""Test helpers of the voice-server tests: a scripted arm and a server on its own thread."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import numpy as np
import pytest

from serve.arms.base import Arm, CallContext
from serve.frames import EventFrame, Frame, OutputAudio, TranscriptFrame

needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (apt-get install flite)")


class ScriptedArm(Arm):
    """Control-flow arm: fixed agent lines spoken by flite; the caller's words are not recognised."""

    name = "pipeline"

    def __init__(self, tts, lines: list[str] | None = None, delay_s: float = 0.0):
        from serve.tts import Voice

        self.tts = tts
        self.voice = Voice(engine="flite", name="slt")
        self.lines = lines or ["Hello, this is Li Wei from Anxin Insurance.", "Thank you. Anything else?"]
        self.delay_s = delay_s
        self.heard: list[float] = []

    async def _say(self, text: str) -> AsyncIterator[Frame]:
        yield TranscriptFrame("agent", text, -1)
        pcm = await asyncio.to_thread(self.tts.synthesize, text, self.voice)
        yield EventFrame("timing", {"llm_ms": 0.0, "tts_ms": 1.0})
        yield OutputAudio(pcm, -1)

    async def opening(self, ctx: CallContext) -> AsyncIterator[Frame]:
        async for f in self._say(self.lines[0]):
            yield f

    async def respond(self, ctx: CallContext, utterance: np.ndarray) -> AsyncIterator[Frame]:
        self.heard.append(len(utterance) / 16000)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        yield TranscriptFrame("user", f"caller spoke {len(utterance) / 16000:.1f} seconds", -1)
        n = sum(1 for t in ctx.history if t.role == "agent")
        async for f in self._say(self.lines[min(n, len(self.lines) - 1)]):
            yield f


class ServerThread:
    """A VoiceServer running in its own event loop on a thread, so tests can drive it with asyncio.run."""

    def __init__(self, build):
        import threading

        self._build = build
        self.server = None
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self):
        asyncio.set_event_loop(self.loop)

        async def boot():
            self.server = self._build()
            await self.server.start()

        try:
            self.loop.run_until_complete(boot())
        except BaseException as e:  # noqa: BLE001 - surface start-up errors in the test
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self, timeout=300):
        self._thread.start()
        self._ready.wait(timeout)
        if self._error:
            raise self._error
        return self.server

    def stop(self):
        fut = asyncio.run_coroutine_threadsafe(self.server.close(), self.loop)
        try:
            fut.result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)


def wait_ended(db_path, call_id: str, timeout: float = 30.0) -> dict:
    """The call row once the server has closed it (a hang-up is handled after the client has gone)."""
    import time

    from serve.store import CallStore

    st = CallStore(db_path, readonly=True)
    t_end = time.monotonic() + timeout
    while True:
        call = st.call(call_id)
        if call and call["status"] == "ended":
            return call
        if time.monotonic() > t_end:
            raise TimeoutError(f"call {call_id} still {call and call['status']} after {timeout} s")
        time.sleep(0.1)
