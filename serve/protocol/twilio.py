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
from .core import ProtocolCore, ProtocolError, caller_data, field, parse_object, shown

TWILIO_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": TWILIO_RATE, "channels": 1}
CHUNK_BYTES = 160  # 20 ms of 8 kHz μ-law, the size Twilio itself sends


class TwilioProtocol(ProtocolCore):
    def __init__(self, expected_token: str | None = None):
        super().__init__(expected_token)
        self.stream_sid: str | None = None
        self._up = StreamResampler(TWILIO_RATE, RATE)
        self._down = StreamResampler(RATE, TWILIO_RATE)

    def receive(self, msg: str | bytes) -> list[Frame]:
        if self.state == "closed":
            return []
        if not isinstance(msg, str):
            raise ProtocolError("bad_message", "Twilio media streams send JSON text frames, got a binary frame")
        obj = parse_object(msg)
        event = field(obj, "event", str)
        if event == "connected":
            return []
        if self.state == "await_start":
            if event != "start":
                raise ProtocolError("expected_start", f"expected the 'start' event, got '{shown(event)}'")
            return [self._start(obj)]
        if event == "media":
            media = field(obj, "media", dict)
            if media.get("track", "inbound") not in ("inbound", "inbound_track"):
                return []  # an outbound track echo carries our own audio
            payload = field(media, "payload", str, "media.")
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
            mark = field(obj, "mark", dict)
            return [PlaybackMark(str(mark.get("name", "")))]
        if event == "dtmf":
            d = field(obj, "dtmf", dict)
            return [Dtmf(str(d.get("digit", "")))]
        if event == "stop":
            self.state = "closed"
            return [Hangup("caller")]
        if event == "start":
            raise ProtocolError("duplicate_start", "the stream has already started")
        raise ProtocolError("unknown_type", f"unknown event '{shown(event)}'")

    def _start(self, obj: dict[str, Any]) -> StartFrame:
        start = field(obj, "start", dict)
        params = field(start, "customParameters", dict, "start.", required=False) or {}
        self._authenticate(params.get("token"), "Authorization header or stream parameter 'token'")
        params = caller_data(params, "start.customParameters")
        fmt = start.get("mediaFormat") or TWILIO_FORMAT
        if not isinstance(fmt, dict):
            raise ProtocolError("bad_format", "field 'start.mediaFormat' must be an object")
        for key, want in TWILIO_FORMAT.items():
            got = fmt.get(key, want)
            if got != want:
                raise ProtocolError("bad_format", f"start.mediaFormat.{key} = {shown(got)} is not supported; expected {want!r}")
        sid = start.get("streamSid") or obj.get("streamSid")
        if not isinstance(sid, str) or not sid:
            raise ProtocolError("bad_message", "field 'start.streamSid' is missing or not a string")
        call_sid = field(start, "callSid", str, "start.", required=False)
        scenario = field(params, "scenario", str, "start.customParameters.", required=False)
        arm = field(params, "arm", str, "start.customParameters.", required=False)
        self.stream_sid = sid
        self._opened()
        caller = {k: v for k, v in params.items() if k not in ("token", "arm", "scenario")}
        if call_sid:
            caller.setdefault("id", call_sid)
        return StartFrame(protocol="twilio", caller=caller, scenario=scenario, arm=arm, stream_id=sid, call_sid=call_sid)

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


# --- the Twilio side, for clients and tests that play Twilio ------------------------------


def start_event(stream_sid: str, call_sid: str | None = None, params: dict[str, Any] | None = None,
                media_format: dict[str, Any] | None = None) -> str:
    start: dict[str, Any] = {"streamSid": stream_sid, "accountSid": "AC0", "tracks": ["inbound"],
                             "customParameters": dict(params or {}), "mediaFormat": dict(media_format or TWILIO_FORMAT)}
    if call_sid:
        start["callSid"] = call_sid
    return _dump({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": start})


def media_event(stream_sid: str, mulaw: bytes, track: str = "inbound") -> str:
    return _dump({"event": "media", "streamSid": stream_sid,
                  "media": {"track": track, "chunk": "1", "timestamp": "0", "payload": base64.b64encode(mulaw).decode()}})


def stop_event(stream_sid: str) -> str:
    return _dump({"event": "stop", "streamSid": stream_sid, "stop": {}})

