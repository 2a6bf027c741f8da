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
from serve.protocol.native import start_message

START = start_message({"id": "c1"})
NESTED = "[" * 60_000  # 60 KB of nesting, under the message size limit


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


@pytest.mark.parametrize("token", [123, None, ["secret"], {"t": "secret"}, True, 1.5])
def test_a_token_that_is_not_a_string_is_unauthorized(token):
    with pytest.raises(ProtocolError) as e:
        NativeProtocol(expected_token="secret").receive(json.dumps({**START, "token": token}))
    assert (e.value.code, e.value.close_code) == ("unauthorized", 1008)


@pytest.mark.parametrize("msg", [NESTED, "{\"a\":" * 20_000, json.dumps({**START, "caller": {"x": [[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}}),
                                 '{"type": "start", "n": ' + "9" * 5000 + "}"])
def test_deep_nesting_and_huge_numbers_are_bad_json_before_and_after_start(msg):
    for proto in (NativeProtocol(expected_token="secret"), started()):
        with pytest.raises(ProtocolError) as e:
            proto.receive(msg)
        assert (e.value.code, e.value.close_code) == ("bad_json", 1008)


def test_brackets_inside_strings_do_not_count_as_nesting():
    [s] = NativeProtocol().receive(json.dumps({**START, "caller": {"note": "[" * 3000 + '\\"{' * 100}}))
    assert isinstance(s, StartFrame) and s.caller["note"].startswith("[[[")


def test_caller_data_is_capped_at_4_kib():
    with pytest.raises(ProtocolError) as e:
        NativeProtocol().receive(json.dumps({**START, "caller": {"x": "y" * 4100}}))
    assert e.value.code == "bad_message" and "4096" in e.value.message


def test_mutated_messages_only_ever_raise_protocol_errors():
    """Every malformed input must map to a documented error code, never to an exception the server reports as 1011."""
    import copy
    import random

    rng = random.Random(3)
    base = json.dumps({**START, "arm": "pipeline", "scenario": "insurance", "token": "secret"})
    values = [None, 0, -1, 1e308, "", "x" * 50, [], {}, [[]], {"a": {}}, True, "\ud800"]
    for _ in range(3000):
        obj = json.loads(base)
        for _ in range(rng.randint(1, 3)):
            target = obj
            if rng.random() < 0.4 and isinstance(obj.get("format"), dict):
                target = obj["format"]
            key = rng.choice([*target.keys(), "extra"])
            target[key] = copy.deepcopy(rng.choice(values))
        text = json.dumps(obj)
        if rng.random() < 0.3:  # and byte-level damage
            i = rng.randrange(len(text))
            text = text[:i] + rng.choice(['"', "[", "}", "\\", "\x00", ""]) + text[i + 1 :]
        for proto in (NativeProtocol(expected_token="secret"), NativeProtocol(), started()):
            try:
                proto.receive(text)
            except ProtocolError as e:
                assert e.close_code == 1008 and e.code and e.message
