"""The native call protocol: JSON control messages plus binary PCM16 16 kHz mono audio.

Sans-I/O: ``receive`` takes one websocket message (``str`` or ``bytes``) and
returns frames, or raises ``ProtocolError``; ``send`` turns one frame into the
messages to write. The full message reference is in docs/serve.md.

Client -> server
  {"type": "start", "format": {"encoding": "pcm16", "sample_rate": 16000, "channels": 1},
   "scenario": "insurance", "caller": {...}, "arm": "pipeline", "token": "..."}   first message
  <binary>  PCM16 little-endian, 16 kHz, mono; any whole number of samples
  {"type": "mark", "name": "..."}   optional echo of a server mark once played
  {"type": "hangup"}
Server -> client
  {"type": "session", ...}  {"type": "transcript", ...}  {"type": "event", ...}
  {"type": "clear", "turn": n}  {"type": "mark", "name": ...}  {"type": "error", ...}  {"type": "end", ...}
  <binary>  agent audio, same format as the input
"""

from __future__ import annotations

import json
from typing import Any

from ..audio import RATE, float_to_pcm16, pcm16_to_float
from ..frames import (
    EndFrame,
    ErrorFrame,
    EventFrame,
    Frame,
    Hangup,
    InputAudio,
    Interruption,
    MarkFrame,
    OutputAudio,
    PlaybackMark,
    StartFrame,
    TranscriptFrame,
)
from .core import ProtocolCore, ProtocolError, caller_data, field, parse_object, shown

NATIVE_FORMAT = {"encoding": "pcm16", "sample_rate": RATE, "channels": 1}


def start_message(caller: dict[str, Any] | None = None, *, arm: str | None = None, scenario: str | None = None,
                  token: str | None = None) -> dict[str, Any]:
    """The client's first message; what ``NativeProtocol`` accepts as ``start``."""
    msg: dict[str, Any] = {"type": "start", "format": dict(NATIVE_FORMAT), "caller": dict(caller or {})}
    for key, value in (("arm", arm), ("scenario", scenario), ("token", token)):
        if value is not None:
            msg[key] = value
    return msg


class NativeProtocol(ProtocolCore):
    """One call's native protocol state: ``await_start`` -> ``open`` -> ``closed``."""

    # --- incoming ---------------------------------------------------------------

    def receive(self, msg: str | bytes) -> list[Frame]:
        if self.state == "closed":
            return []
        if isinstance(msg, (bytes, bytearray, memoryview)):
            return self._audio(bytes(msg))
        obj = parse_object(msg)
        kind = field(obj, "type", str)
        if self.state == "await_start":
            if kind != "start":
                raise ProtocolError("expected_start", f"the first message must be {{\"type\": \"start\"}}, got type '{shown(kind)}'")
            return [self._start(obj)]
        if kind == "start":
            raise ProtocolError("duplicate_start", "the session has already started")
        if kind == "hangup":
            self.state = "closed"
            return [Hangup("caller")]
        if kind == "mark":
            return [PlaybackMark(field(obj, "name", str))]
        if kind == "ping":
            return []
        raise ProtocolError("unknown_type", f"unknown message type '{shown(kind)}'")

    def _start(self, obj: dict[str, Any]) -> StartFrame:
        self._authenticate(obj.get("token"), "send 'Authorization: Bearer <token>' or 'token' in start")
        fmt = obj.get("format", NATIVE_FORMAT)
        if not isinstance(fmt, dict):
            raise ProtocolError("bad_format", "field 'format' must be an object")
        for key, want in NATIVE_FORMAT.items():
            got = fmt.get(key, want)
            if got != want:
                raise ProtocolError(
                    "bad_format", f"format.{key} = {shown(got)} is not supported; this endpoint takes {NATIVE_FORMAT}"
                )
        caller = caller_data(obj.get("caller"), "caller")
        scenario = field(obj, "scenario", str, required=False)
        arm = field(obj, "arm", str, required=False)
        self._opened()
        return StartFrame(protocol="native", caller=caller, scenario=scenario, arm=arm)

    def _audio(self, data: bytes) -> list[Frame]:
        if self.state != "open":
            raise ProtocolError("expected_start", "audio arrived before the start message")
        if len(data) % 2:
            raise ProtocolError("bad_audio", f"binary frames are PCM16: an even number of bytes, got {len(data)}")
        if not data:
            return []
        pcm = pcm16_to_float(data)
        self.samples_in += len(pcm)
        return [InputAudio(pcm)]

    # --- outgoing ---------------------------------------------------------------

    def send(self, frame: Frame) -> list[str | bytes]:
        if isinstance(frame, OutputAudio):
            return [float_to_pcm16(frame.pcm)]
        if isinstance(frame, TranscriptFrame):
            return [_dump({"type": "transcript", "role": frame.role, "text": frame.text, "turn": frame.turn, "final": frame.final})]
        if isinstance(frame, EventFrame):
            if frame.name == "session":
                return [_dump({"type": "session", **frame.data})]
            return [_dump({"type": "event", "name": frame.name, "data": frame.data})]
        if isinstance(frame, Interruption):
            return [_dump({"type": "clear", "turn": frame.turn})]
        if isinstance(frame, MarkFrame):
            return [_dump({"type": "mark", "name": frame.name})]
        if isinstance(frame, ErrorFrame):
            return [_dump({"type": "error", "code": frame.code, "message": frame.message})]
        if isinstance(frame, EndFrame):
            self.state = "closed"
            return [_dump({"type": "end", "reason": frame.reason})]
        return []


def _dump(obj: dict[str, Any]) -> str:
    # ASCII escapes: text from the caller may hold lone surrogates, which UTF-8 cannot carry
    return json.dumps(obj, separators=(",", ":"))
