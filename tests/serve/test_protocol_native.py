import json

import numpy as np
import pytest

from serve.frames import (
    EndFrame,
    ErrorFrame,
    EventFrame,
    Hangup,
    InputAudio,
    Interruption,
    MarkFrame,
    OutputAudio,
    PlaybackMark,
    StartFrame,
    TranscriptFrame,
)
from serve.protocol import NativeProtocol, ProtocolError

START = {"type": "start", "format": {"encoding": "pcm16", "sample_rate": 16000, "channels": 1}, "caller": {"id": "c1"}}


def started(**kw) -> NativeProtocol:
    p = NativeProtocol(**kw)
    [f] = p.receive(json.dumps(START))
    assert isinstance(f, StartFrame)
    return p


def test_start_then_audio_then_hangup():
    p = NativeProtocol()
    [s] = p.receive(json.dumps({**START, "arm": "pipeline", "scenario": "insurance"}))
    assert (s.protocol, s.caller, s.arm, s.scenario) == ("native", {"id": "c1"}, "pipeline", "insurance")
    pcm = (np.arange(320, dtype="<i2") * 50).tobytes()
    [a] = p.receive(pcm)
    assert isinstance(a, InputAudio) and a.pcm.dtype == np.float32 and len(a.pcm) == 320
    assert p.receive(json.dumps({"type": "mark", "name": "agent-0"})) == [PlaybackMark("agent-0")]
    assert p.receive(json.dumps({"type": "ping"})) == []
    assert isinstance(p.receive(json.dumps({"type": "hangup"}))[0], Hangup)
    assert p.receive(pcm) == []  # closed: late audio is ignored


@pytest.mark.parametrize(
    "msg, code",
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        (json.dumps({"kind": "start"}), "bad_message"),
        (json.dumps({"type": "media"}), "expected_start"),
        (json.dumps({**START, "format": {"encoding": "opus"}}), "bad_format"),
        (json.dumps({**START, "format": {"sample_rate": 8000}}), "bad_format"),
        (json.dumps({**START, "format": {"channels": 2}}), "bad_format"),
        (json.dumps({**START, "format": "pcm"}), "bad_format"),
        (json.dumps({**START, "caller": "me"}), "bad_message"),
        (json.dumps({**START, "caller": {"x": "y" * 5000}}), "bad_message"),
        (json.dumps({**START, "arm": 3}), "bad_message"),
        (b"\x00\x00", "expected_start"),
    ],
)
def test_bad_first_messages(msg, code):
    with pytest.raises(ProtocolError) as e:
        NativeProtocol().receive(msg)
    assert e.value.code == code and e.value.close_code == 1008


def test_bad_messages_after_start():
    for msg, code in [(b"\x00", "bad_audio"), (json.dumps(START), "duplicate_start"),
                      (json.dumps({"type": "dance"}), "unknown_type"), (json.dumps({"type": "mark"}), "bad_message")]:  # fmt: skip
        with pytest.raises(ProtocolError) as e:
            started().receive(msg)
        assert e.value.code == code


def test_token_in_first_message():
    with pytest.raises(ProtocolError) as e:
        NativeProtocol(expected_token="secret").receive(json.dumps(START))
    assert e.value.code == "unauthorized"
    with pytest.raises(ProtocolError):
        NativeProtocol(expected_token="secret").receive(json.dumps({**START, "token": "wrong"}))
    [s] = NativeProtocol(expected_token="secret").receive(json.dumps({**START, "token": "secret"}))
    assert isinstance(s, StartFrame)


def test_outgoing_messages():
    p = started()
    [b] = p.send(OutputAudio(np.array([0.5, -0.5], np.float32), 2))
    assert np.frombuffer(b, "<i2").tolist() == [16384, -16384]
    assert json.loads(p.send(TranscriptFrame("agent", "Hi", 0))[0]) == {"type": "transcript", "role": "agent", "text": "Hi", "turn": 0, "final": True}
    assert json.loads(p.send(Interruption(4))[0]) == {"type": "clear", "turn": 4}
    assert json.loads(p.send(MarkFrame("agent-4"))[0]) == {"type": "mark", "name": "agent-4"}
    assert json.loads(p.send(EventFrame("session", {"call_id": "x"}))[0]) == {"type": "session", "call_id": "x"}
    assert json.loads(p.send(EventFrame("agent_turn_end", {"turn": 0}))[0])["name"] == "agent_turn_end"
    assert json.loads(p.send(ErrorFrame("bad_json", "nope"))[0]) == {"type": "error", "code": "bad_json", "message": "nope"}
    assert json.loads(p.send(EndFrame("decision"))[0]) == {"type": "end", "reason": "decision"}
