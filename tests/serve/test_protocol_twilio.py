import base64
import json

import numpy as np
import pytest

from serve.audio import ulaw_encode
from serve.frames import (
    Dtmf,
    Hangup,
    InputAudio,
    Interruption,
    MarkFrame,
    OutputAudio,
    PlaybackMark,
    StartFrame,
    TranscriptFrame,
)
from serve.protocol import ProtocolError, TwilioProtocol
from serve.protocol.twilio import media_event, start_event, stop_event


def start_msg(**params):
    return start_event("MZ1", "CA1", params)


def media(payload: bytes, track="inbound"):
    return media_event("MZ1", payload, track)


def test_session_flow():
    p = TwilioProtocol()
    assert p.receive(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})) == []
    [s] = p.receive(start_msg(arm="pipeline", **{"from": "+15550100"}))
    assert isinstance(s, StartFrame) and s.protocol == "twilio" and s.stream_id == "MZ1"
    assert s.caller == {"from": "+15550100", "id": "CA1"} and s.arm == "pipeline"
    [a] = p.receive(media(ulaw_encode(np.zeros(160, np.float32))))
    assert isinstance(a, InputAudio) and len(a.pcm) == 320  # 20 ms at 16 kHz
    assert p.receive(media(b"\xff" * 160, track="outbound")) == []
    assert p.receive(json.dumps({"event": "mark", "streamSid": "MZ1", "mark": {"name": "agent-0"}})) == [PlaybackMark("agent-0")]
    assert p.receive(json.dumps({"event": "dtmf", "dtmf": {"digit": "5"}})) == [Dtmf("5")]
    assert isinstance(p.receive(stop_event("MZ1"))[0], Hangup)


def test_outgoing_media_is_20ms_chunks_and_clear_overtakes():
    p = TwilioProtocol()
    p.receive(start_msg())
    out = p.send(OutputAudio(np.zeros(16000, np.float32), 0))  # 1 s
    assert len(out) == 50
    m = json.loads(out[0])
    assert m["event"] == "media" and m["streamSid"] == "MZ1" and len(base64.b64decode(m["media"]["payload"])) == 160
    assert json.loads(p.send(Interruption(0))[0]) == {"event": "clear", "streamSid": "MZ1"}
    assert json.loads(p.send(MarkFrame("agent-0"))[0]) == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "agent-0"}}
    assert p.send(TranscriptFrame("agent", "hi", 0)) == []  # Twilio has no transcript message


@pytest.mark.parametrize(
    "msgs, code",
    [
        (["nope"], "bad_json"),
        ([b"\x00\x01"], "bad_message"),
        ([json.dumps({"event": "media"})], "expected_start"),
        ([json.dumps({"event": "start", "start": {"streamSid": "MZ1", "mediaFormat": {"encoding": "audio/l16", "sampleRate": 8000, "channels": 1}}})], "bad_format"),
        ([json.dumps({"event": "start", "start": {"streamSid": "MZ1", "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 16000, "channels": 1}}})], "bad_format"),
        ([json.dumps({"event": "start", "start": {}})], "bad_message"),
        ([start_msg(), json.dumps({"event": "media", "media": {"payload": "!!!"}})], "bad_audio"),
        ([start_msg(), json.dumps({"event": "media", "media": {}})], "bad_message"),
        ([start_msg(), json.dumps({"event": "wave"})], "unknown_type"),
        ([start_msg(), start_msg()], "duplicate_start"),
    ],
)
def test_bad_input(msgs, code):
    p = TwilioProtocol()
    with pytest.raises(ProtocolError) as e:
        for m in msgs:
            p.receive(m)
    assert e.value.code == code and e.value.close_code == 1008


def test_token_as_stream_parameter():
    with pytest.raises(ProtocolError, match="token"):
        TwilioProtocol(expected_token="s").receive(start_msg())
    [s] = TwilioProtocol(expected_token="s").receive(start_msg(token="s"))
    assert "token" not in s.caller  # never stored with the call


@pytest.mark.parametrize("token", [123, None, ["s"], {"v": "s"}, False])
def test_a_token_parameter_that_is_not_a_string_is_unauthorized(token):
    with pytest.raises(ProtocolError) as e:
        TwilioProtocol(expected_token="s").receive(start_msg(token=token))
    assert (e.value.code, e.value.close_code) == ("unauthorized", 1008)


def test_custom_parameters_are_capped_like_native_caller_data():
    with pytest.raises(ProtocolError) as e:
        TwilioProtocol().receive(start_msg(note="x" * 60_000))
    assert e.value.code == "bad_message" and "4096" in e.value.message
    [s] = TwilioProtocol().receive(start_msg(note="x" * 3000))
    assert len(s.caller["note"]) == 3000


@pytest.mark.parametrize("params", [{"arm": 3}, {"scenario": ["insurance"]}])
def test_arm_and_scenario_parameters_must_be_strings(params):
    with pytest.raises(ProtocolError) as e:
        TwilioProtocol().receive(start_msg(**params))
    assert e.value.code == "bad_message"


def test_deep_nesting_is_bad_json_before_and_after_start():
    for p in (TwilioProtocol(expected_token="s"), TwilioProtocol()):
        if p.expected_token is None:
            p.receive(start_msg())
        with pytest.raises(ProtocolError) as e:
            p.receive("[" * 60_000)
        assert (e.value.code, e.value.close_code) == ("bad_json", 1008)
