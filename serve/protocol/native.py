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

import hmac
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
from .errors import ProtocolError

NATIVE_FORMAT = {"encoding": "pcm16", "sample_rate": RATE, "channels": 1}
MAX_CALLER_JSON = 4096


def tokens_equal(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _parse_json(msg: str) -> dict[str, Any]:
    try:
        obj = json.loads(msg)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProtocolError("bad_json", f"message is not valid JSON: {e.msg} at position {e.pos}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_json", f"message must be a JSON object, got {type(obj).__name__}")
    return obj


class NativeProtocol:
    """One call's native protocol state: ``await_start`` -> ``open`` -> ``closed``."""

    def __init__(self, expected_token: str | None = None):
        # expected_token is set only when the upgrade request carried no valid Authorization header
        self.expected_token = expected_token
        self.state = "await_start"
        self.samples_in = 0

    # --- incoming ---------------------------------------------------------------

    def receive(self, msg: str | bytes) -> list[Frame]:
        if self.state == "closed":
            return []
        if isinstance(msg, (bytes, bytearray, memoryview)):
            return self._audio(bytes(msg))
        obj = _parse_json(msg)
        kind = obj.get("type")
        if not isinstance(kind, str):
            raise ProtocolError("bad_message", "field 'type' is missing or not a string")
        if self.state == "await_start":
            if kind != "start":
                raise ProtocolError("expected_start", f"the first message must be {{\"type\": \"start\"}}, got type '{kind}'")
            return [self._start(obj)]
        if kind == "start":
            raise ProtocolError("duplicate_start", "the session has already started")
        if kind == "hangup":
            self.state = "closed"
            return [Hangup("caller")]
        if kind == "mark":
            name = obj.get("name")
            if not isinstance(name, str):
                raise ProtocolError("bad_message", "field 'name' of a mark must be a string")
            return [PlaybackMark(name)]
        if kind == "ping":
            return []
        raise ProtocolError("unknown_type", f"unknown message type '{kind}'")

    def _start(self, obj: dict[str, Any]) -> StartFrame:
        if self.expected_token is not None and not tokens_equal(obj.get("token"), self.expected_token):
            raise ProtocolError("unauthorized", "missing or wrong token (send 'Authorization: Bearer <token>' or 'token' in start)")
        fmt = obj.get("format", NATIVE_FORMAT)
        if not isinstance(fmt, dict):
            raise ProtocolError("bad_format", "field 'format' must be an object")
        for key, want in NATIVE_FORMAT.items():
            got = fmt.get(key, want)
            if got != want:
                raise ProtocolError(
                    "bad_format", f"format.{key} = {got!r} is not supported; this endpoint takes {NATIVE_FORMAT}"
                )
        caller = obj.get("caller", {})
        if not isinstance(caller, dict):
            raise ProtocolError("bad_message", "field 'caller' must be an object")
        if len(json.dumps(caller, default=str)) > MAX_CALLER_JSON:
            raise ProtocolError("bad_message", f"field 'caller' is larger than {MAX_CALLER_JSON} bytes of JSON")
        for key in ("scenario", "arm"):
            if obj.get(key) is not None and not isinstance(obj.get(key), str):
                raise ProtocolError("bad_message", f"field '{key}' must be a string")
        self.state = "open"
        self.expected_token = None
        return StartFrame(protocol="native", caller=caller, scenario=obj.get("scenario"), arm=obj.get("arm"))

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
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
