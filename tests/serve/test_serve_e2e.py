"""Full calls over real sockets with the embedded models (SmolLM2, Whisper tiny.en, Silero VAD, flite)."""

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import wave

import numpy as np
import pytest
from serve_helpers import needs_flite, wait_ended
from websockets.asyncio.client import connect

from serve.arms.parity import differences
from serve.arms.pipeline import FALLBACK_LINE
from serve.audio import StreamResampler, internal_to_twilio, ulaw_decode
from serve.client import NativeClient
from serve.protocol.twilio import media_event, start_event, stop_event
from serve.store import CallStore

pytestmark = [pytest.mark.slow, needs_flite]
TOKEN = "e2e-token"


def assert_spoken(turns):
    """Every agent turn came from the model: the fallback line would pass every other check of these calls."""
    agent = [t for t in turns if t["role"] == "agent"]
    assert agent and not [t for t in agent if t["failed"] or t["text"] == FALLBACK_LINE], turns


def test_full_pipeline_call_over_a_socket(pipeline_server, speech):
    srv = pipeline_server

    async def run():
        c = NativeClient(f"ws://127.0.0.1:{srv.port}/v1/call", TOKEN, caller={"id": "e2e-1", "name": "James"},
                         arm="pipeline", realtime_factor=3.0)  # fmt: skip
        s = await c.connect()
        opening = await c.next_turn_end(120)
        assert opening is not None and opening.turn == 0 and len(opening.pcm) > 1600
        await asyncio.sleep(len(opening.pcm) / 16000 / 3)
        c.say(np.concatenate([speech["price"], np.zeros(4000, np.float32)]))
        reply = await c.next_turn_end(120)
        assert reply is not None and reply.turn == 2 and len(reply.pcm) > 1600 and reply.text
        assert reply.text != FALLBACK_LINE
        await asyncio.sleep(len(reply.pcm) / 16000 / 3)
        c.say(np.concatenate([speech["no"], np.zeros(4000, np.float32)]))
        closing = await c.next_turn_end(120)
        assert closing is not None and closing.turn == 4
        assert await c.wait_closed(60)  # the caller said no: the agent answers, then ends the call
        await c.close()
        return s, c

    s, c = asyncio.run(run())
    assert c.close_code == 1000 and c.end["reason"] == "decision"
    assert c.user_transcripts[0]["text"].lower().startswith("hi")
    st = CallStore(srv.store.path, readonly=True)
    call = st.call(s["call_id"])
    assert (call["arm"], call["status"], call["outcome"], call["user_turns"]) == ("pipeline", "ended", "withdrawn", 2)
    assert call["intention"] == 1  # the caller asked for the price first
    turns = st.turns(s["call_id"])
    assert [t["role"] for t in turns] == ["agent", "user", "agent", "user", "agent"]
    assert "cost" in turns[1]["text"].lower() and "interested" in turns[3]["text"].lower()
    assert_spoken(turns)
    for t in (turns[2], turns[4]):
        assert t["latency_ms"] > 0 and t["asr_ms"] >= 0 and t["llm_ms"] > 0 and t["tts_ms"] >= 0 and t["audio_ms"] > 0
        stages = json.loads(t["timings"])
        # transcribed while the caller spoke, the turn ended by its words, the reply streamed from a cached prompt
        assert stages["endpoint_ms"] < 1000 and 0 < stages["llm_first_ms"] <= stages["llm_ms"]
        assert stages["prompt_new_tokens"] < 80 < stages["prompt_tokens"], stages
    with wave.open(call["recording"]) as w:
        assert w.getnchannels() == 2 and w.getnframes() > 16000 * 3
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert np.abs(x[:, 0]).max() > 1000 and np.abs(x[:, 1]).max() > 1000  # agent left, caller right


def test_twilio_session_with_barge_in(pipeline_server, speech):
    srv = pipeline_server

    async def run():
        sent_events = []
        down = StreamResampler(16000, 8000)
        async with connect(f"ws://127.0.0.1:{srv.port}/v1/twilio", additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            await ws.send(start_event("MZ42", "CA42", {"from": "+15550100"}))

            async def stream(pcm, rtf=3.0):
                for i in range(0, len(pcm), 320):
                    await ws.send(media_event("MZ42", internal_to_twilio(pcm[i : i + 320], down)))
                    await asyncio.sleep(0.02 / rtf)

            async def receive():
                async for msg in ws:
                    m = json.loads(msg)
                    m["_t"] = time.monotonic()
                    sent_events.append(m)

            rx = asyncio.create_task(receive())
            # silence until the agent's opening audio arrives
            while not any(m["event"] == "media" for m in sent_events):
                await stream(np.zeros(320, np.float32))
            # the caller talks over the agent: Twilio must be told to clear its buffer
            await stream(np.concatenate([speech["long"], np.zeros(16000, np.float32)]), rtf=1.0)
            t_end = time.monotonic() + 120
            while not any(m["event"] == "mark" and m["mark"]["name"] != "agent-0" for m in sent_events):
                await stream(np.zeros(320, np.float32))
                assert time.monotonic() < t_end, "no agent reply after the barge-in"
            await ws.send(stop_event("MZ42"))
            await asyncio.wait_for(rx, 30)
            return sent_events, ws.close_code

    events, code = asyncio.run(run())
    kinds = [m["event"] for m in events]
    assert code == 1000
    assert all(m["streamSid"] == "MZ42" for m in events)
    first_clear = kinds.index("clear")
    assert kinds.index("media") < first_clear
    media = [m for m in events if m["event"] == "media"]
    assert all(len(base64.b64decode(m["media"]["payload"])) <= 160 for m in media)
    assert np.abs(ulaw_decode(base64.b64decode(media[len(media) // 2]["media"]["payload"]))).max() > 0
    st = CallStore(srv.store.path, readonly=True)
    call = next(c for c in st.calls() if c["caller_id"] == "CA42")
    assert call["protocol"] == "twilio" and call["end_reason"] == "caller_hangup" and call["outcome"] in ("intention", "hung_up")
    turns = st.turns(call["id"])
    assert turns[0]["interrupted"] == 1 and turns[1]["role"] == "user" and "question" in turns[1]["text"].lower()
    assert_spoken(turns)  # the reply after the barge-in too


def test_audio_arm_refuses_to_run_without_a_checkpoint(tmp_path):
    from serve.app import ServeOptions, build_server
    from serve.arms.base import ArmUnavailable

    with pytest.raises(ArmUnavailable, match="checkpoint"):
        build_server(ServeOptions(db=tmp_path / "c.sqlite", split="audio=0.5", model="smollm2", asr="tiny.en"))
    with pytest.raises(ArmUnavailable, match="not a speech checkpoint"):
        build_server(ServeOptions(db=tmp_path / "c.sqlite", split="audio=0.5", model="smollm2", asr="tiny.en",
                                  audio_model=str(tmp_path)))  # fmt: skip


def test_full_audio_arm_call(audio_server, speech):
    """Speech LLM end to end: the caller's audio goes into the model, its streamed reply is voiced."""
    srv = audio_server

    async def run():
        c = NativeClient(f"ws://127.0.0.1:{srv.port}/v1/call", TOKEN, caller={"id": "audio-1"}, realtime_factor=3.0)
        s = await c.connect()
        assert s["arm"] == "audio"
        opening = await c.next_turn_end(240)
        assert opening is not None and opening.turn == 0 and len(opening.pcm) > 1600
        await asyncio.sleep(len(opening.pcm) / 16000 / 3)
        c.say(np.concatenate([speech["price"], np.zeros(4000, np.float32)]))
        reply = await c.next_turn_end(240)
        assert reply is not None and reply.turn == 2 and len(reply.pcm) > 1600
        await asyncio.sleep(0.5)
        await c.hangup()
        return s, c

    s, _ = asyncio.run(run())
    call = wait_ended(srv.store.path, s["call_id"])
    st = CallStore(srv.store.path, readonly=True)
    assert (call["arm"], call["status"], call["end_reason"], call["user_turns"]) == ("audio", "ended", "caller_hangup", 1)
    assert call["outcome"] == "intention"  # from the Whisper transcript kept for the record
    turns = st.turns(s["call_id"])
    assert [t["role"] for t in turns] == ["agent", "user", "agent"]
    assert "cost" in turns[1]["text"].lower()
    assert turns[2]["text"] and turns[2]["latency_ms"] > 0 and turns[2]["llm_ms"] > 0 and turns[2]["audio_ms"] > 0
    assert_spoken(turns)
    described = json.loads(call["server_json"])["arm"]
    assert described["arm"] == "audio" and described["prompt_sha256"] and described["unmatched"]
    if not os.environ.get("MADS_AUDIO_CHECKPOINT"):  # SmolLM2 on both arms: they differ only in the ear
        assert differences(srv.arms["pipeline"].describe(), described) == []


def test_server_killed_mid_call_keeps_finished_turns(tmp_path, speech):
    db = tmp_path / "calls.sqlite"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mads_text.cli", "serve", "--port", "0", "--token", TOKEN, "--db", str(db),
         "--model", "smollm2", "--asr", "tiny.en", "--max-tokens", "24", "--realtime-factor", "3", "--log-level", "WARNING", "--outcome", "rules"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
    )  # fmt: skip
    try:
        port = None
        t_end = time.monotonic() + 240
        lines = []
        while port is None and time.monotonic() < t_end:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            m = re.search(r"ws://127\.0\.0\.1:(\d+)/v1/call", line)
            if m:
                port = int(m.group(1))
        assert port, "server did not start:\n" + "".join(lines[-20:])

        async def run():
            c = NativeClient(f"ws://127.0.0.1:{port}/v1/call", TOKEN, caller={"id": "crash"}, realtime_factor=3.0)
            s = await c.connect()
            assert await c.next_turn_end(120)
            c.say(np.concatenate([speech["price"], np.zeros(4000, np.float32)]))
            assert await c.next_turn_end(120)
            # the caller is mid-sentence when the server dies
            c.say(speech["long"])
            await asyncio.sleep(0.5)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            await c.wait_closed(10)
            await c.close()
            return s

        s = asyncio.run(run())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    st = CallStore(db)
    turns = st.turns(s["call_id"])
    assert [t["role"] for t in turns] == ["agent", "user", "agent"]
    assert st.call(s["call_id"])["status"] == "active"  # nobody closed it
    from serve.outcome import detect_outcome

    assert st.recover(detect_outcome) == 1  # what the next server does when it opens the store
    call = st.call(s["call_id"])
    assert "cost" in turns[1]["text"].lower() and turns[2]["text"]
    assert_spoken(turns)
    assert (call["status"], call["end_reason"], call["user_turns"]) == ("ended", "server_lost", 1)
    assert call["outcome"] == "intention"
    with wave.open(call["recording"]) as w:  # valid up to the last block written before the kill
        assert w.getnchannels() == 2 and w.getnframes() > 16000
