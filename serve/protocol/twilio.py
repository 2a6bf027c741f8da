"""Twilio Media Streams (bidirectional ``<Connect><Stream>``): JSON text frames with base64 μ-law 8 kHz audio.

Sans-I/O like the native core. Twilio sends ``connected``, ``start``,
``media`` (about every 20 ms), ``dtmf``, ``mark`` (our marks echoed once
played) and ``stop``. We send ``media``, ``mark`` and ``clear`` (flush Twilio's
playback buffer: the barge-in). Twilio has no message for transcripts, events
or errors, so those frames produce nothing here; an error closes the socket
with the code and reason only.

Auth: Twilio cannot add an Authorization header, so the token may come as the
stream parameter ``token`` (``<Parameter name="token" value="..."/>``), which
arrives in ``start.customParameters``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ..audio import RATE, TWILIO_RATE, StreamResampler, internal_to_twilio, twilio_to_internal
from ..frames import (
    Dtmf,
    EndFrame,
    Frame,
    Hangup,
    InputAudio,
    Interruption,
    MarkFrame,
    OutputAudio,
    PlaybackMark,
    StartFrame,
)
from .errors import ProtocolError
from .native import _parse_json, tokens_equal

TWILIO_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": TWILIO_RATE, "channels": 1}
CHUNK_BYTES = 160  # 20 ms of 8 kHz μ-law, the size Twilio itself sends


def _field(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    v = obj.get(key)
    if not isinstance(v, kind):
        raise ProtocolError("bad_message", f"field '{where}{key}' is missing or not a {kind.__name__}")
    return v


class TwilioProtocol:
    def __init__(self, expected_token: str | None = None):
        self.expected_token = expected_token
        self.state = "await_start"
        self.stream_sid: str | None = None
        self.samples_in = 0
        self._up = StreamResampler(TWILIO_RATE, RATE)
        self._down = StreamResampler(RATE, TWILIO_RATE)

    def receive(self, msg: str | bytes) -> list[Frame]:
        if self.state == "closed":
            return []
        if not isinstance(msg, str):
            raise ProtocolError("bad_message", "Twilio media streams send JSON text frames, got a binary frame")
        obj = _parse_json(msg)
        event = obj.get("event")
        if not isinstance(event, str):
            raise ProtocolError("bad_message", "field 'event' is missing or not a string")
        if event == "connected":
            return []
        if self.state == "await_start":
            if event != "start":
                raise ProtocolError("expected_start", f"expected the 'start' event, got '{event}'")
            return [self._start(obj)]
        if event == "media":
            media = _field(obj, "media", dict, "")
            if media.get("track", "inbound") not in ("inbound", "inbound_track"):
                return []  # an outbound track echo carries our own audio
            payload = _field(media, "payload", str, "media.")
            try:
                raw = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise ProtocolError("bad_audio", "media.payload is not valid base64") from None
            if not raw:
                return []
            pcm = twilio_to_internal(raw, self._up)
            self.samples_in += len(pcm)
            return [InputAudio(pcm)]
        if event == "mark":
            mark = _field(obj, "mark", dict, "")
            return [PlaybackMark(str(mark.get("name", "")))]
        if event == "dtmf":
            d = _field(obj, "dtmf", dict, "")
            return [Dtmf(str(d.get("digit", "")))]
        if event == "stop":
            self.state = "closed"
            return [Hangup("caller")]
        if event == "start":
            raise ProtocolError("duplicate_start", "the stream has already started")
        raise ProtocolError("unknown_type", f"unknown event '{event}'")

    def _start(self, obj: dict[str, Any]) -> StartFrame:
        start = _field(obj, "start", dict, "")
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            raise ProtocolError("bad_message", "field 'start.customParameters' must be an object")
        if self.expected_token is not None and not tokens_equal(params.get("token"), self.expected_token):
            raise ProtocolError("unauthorized", "missing or wrong token (Authorization header or stream parameter 'token')")
        fmt = start.get("mediaFormat") or TWILIO_FORMAT
        if not isinstance(fmt, dict):
            raise ProtocolError("bad_format", "field 'start.mediaFormat' must be an object")
        for key, want in TWILIO_FORMAT.items():
            got = fmt.get(key, want)
            if got != want:
                raise ProtocolError("bad_format", f"start.mediaFormat.{key} = {got!r} is not supported; expected {want!r}")
        self.stream_sid = str(start.get("streamSid") or obj.get("streamSid") or "")
        if not self.stream_sid:
            raise ProtocolError("bad_message", "field 'start.streamSid' is missing")
        self.state = "open"
        self.expected_token = None
        caller = {k: v for k, v in params.items() if k not in ("token", "arm", "scenario")}
        call_sid = start.get("callSid")
        if call_sid:
            caller.setdefault("id", str(call_sid))
        return StartFrame(
            protocol="twilio",
            caller=caller,
            scenario=params.get("scenario"),
            arm=params.get("arm"),
            stream_id=self.stream_sid,
            call_sid=str(call_sid) if call_sid else None,
        )

    def send(self, frame: Frame) -> list[str | bytes]:
        if self.stream_sid is None:
            return []
        if isinstance(frame, OutputAudio):
            raw = internal_to_twilio(frame.pcm, self._down)
            return [
                _dump({"event": "media", "streamSid": self.stream_sid, "media": {"payload": base64.b64encode(raw[i : i + CHUNK_BYTES]).decode()}})
                for i in range(0, len(raw), CHUNK_BYTES)
            ]
        if isinstance(frame, Interruption):
            return [_dump({"event": "clear", "streamSid": self.stream_sid})]
        if isinstance(frame, MarkFrame):
            return [_dump({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": frame.name}})]
        if isinstance(frame, EndFrame):
            self.state = "closed"
        return []


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))
