"""The websocket server's gatekeeping over real sockets, with a scripted arm (no models)."""

import asyncio
import json

import httpx
import numpy as np
import pytest
from serve_helpers import ScriptedArm, needs_flite
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mads_text.scenario import load_scenario
from serve.call import CallConfig
from serve.client import NativeClient
from serve.protocol.native import start_message
from serve.protocol.twilio import start_event
from serve.server import ServerConfig, VoiceServer
from serve.store import CallStore

pytestmark = needs_flite
TOKEN = "s3cret-token"
START = start_message({"id": "t"})
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def make_server(tmp_path, tts, **kw):
    call_cfg = kw.pop("call", CallConfig(realtime_factor=4.0))
    cfg = ServerConfig(port=0, token=TOKEN, call=call_cfg, recordings=tmp_path / "rec", **kw)
    srv = VoiceServer(cfg, load_scenario("insurance"), {"pipeline": ScriptedArm(tts)}, CallStore(tmp_path / "calls.sqlite"),
                      unavailable={"audio": "the audio arm needs mads_audio.infer"})  # fmt: skip
    await srv.start()
    return srv


def url(srv, path="/v1/call"):
    return f"ws://127.0.0.1:{srv.port}{path}"


async def raw_session(srv, messages, headers=None, path="/v1/call"):
    """Send messages on a fresh connection; return (server messages, close code, reason)."""
    got = []
    auth = {"Authorization": f"Bearer {TOKEN}"} if headers is None else headers
    async with connect(url(srv, path), additional_headers=auth) as ws:
        try:
            for m in messages:
                await ws.send(m)
        except ConnectionClosed:
            pass  # the server may close before it reads what we send (server full)
        try:
            async for msg in ws:
                got.append(json.loads(msg) if isinstance(msg, str) else msg)
        except Exception:  # noqa: BLE001, S110
            pass
        return got, ws.close_code, ws.close_reason


def test_auth_before_upgrade_and_in_first_message(tmp_path, tts):
    async def run():
        srv = await make_server(tmp_path, tts)
        try:
            with pytest.raises(InvalidStatus) as e:
                async with connect(url(srv), additional_headers={"Authorization": "Bearer wrong"}):
                    pass
            assert e.value.response.status_code == 401
            # browsers: no header, token in the first message
            c = NativeClient(url(srv), TOKEN, token_in_message=True, realtime_factor=4.0)
            s = await c.connect()
            assert s["arm"] == "pipeline"
            await c.hangup()
            got, code, _ = await raw_session(srv, [json.dumps(START)], headers={})
            assert got[0]["type"] == "error" and got[0]["code"] == "unauthorized" and code == 1008
            got, code, _ = await raw_session(srv, [json.dumps({**START, "token": "nope"})], headers={})
            assert got[0]["code"] == "unauthorized" and code == 1008
        finally:
            await srv.close()

    asyncio.run(run())


def test_origin_allow_list(tmp_path, tts):
    """Listed origins and the server's own page on a loopback address; a page that forges Host is neither."""
    import socket

    async def refused(srv, origin, host="127.0.0.1"):
        sock = socket.create_connection(("127.0.0.1", srv.port))  # the URL's host only goes into the Host header
        with pytest.raises(InvalidStatus) as e:
            async with connect(f"ws://{host}:{srv.port}/v1/call", sock=sock, additional_headers=AUTH, origin=origin):
                pass
        return e.value.response.status_code == 403

    async def run():
        srv = await make_server(tmp_path, tts, allow_origins=["https://app.example.com"])
        try:
            assert await refused(srv, "https://evil.example.net")
            assert await refused(srv, f"http://evil.example:{srv.port}", host="evil.example")
            assert await refused(srv, "http://127.0.0.1:1")  # another local page
            for origin in ("https://app.example.com", f"http://127.0.0.1:{srv.port}", f"http://localhost:{srv.port}",
                           f"http://[::1]:{srv.port}"):  # fmt: skip
                async with connect(url(srv), additional_headers=AUTH, origin=origin) as ws:
                    await ws.send(json.dumps(START))
                    assert json.loads(await ws.recv())["type"] == "session"
        finally:
            await srv.close()

    asyncio.run(run())


def test_bad_input_is_answered_while_another_call_keeps_working(tmp_path, tts, speech):
    async def run():
        srv = await make_server(tmp_path, tts, max_calls=8, start_timeout_s=1.0)
        try:
            good = NativeClient(url(srv), TOKEN, caller={"id": "good"}, realtime_factor=4.0)
            await good.connect()
            opening = await good.next_turn_end(20)
            assert opening is not None and len(opening.pcm) > 0
            big = b"\x00" * (64 * 1024 + 2)
            cases = [
                ([json.dumps(START), "{this is not json"], "bad_json", 1008),
                ([json.dumps({**START, "format": {"encoding": "pcm16", "sample_rate": 44100, "channels": 1}})], "bad_format", 1008),
                ([b"\x00\x00" * 160], "expected_start", 1008),
                ([json.dumps(START), b"\x00\x00\x00"], "bad_audio", 1008),
                ([json.dumps(START), json.dumps({"type": "explode"})], "unknown_type", 1008),
                ([json.dumps({**START, "scenario": "automotive"})], "bad_scenario", 1008),
                ([json.dumps({**START, "arm": "audio"})], "arm_unavailable", 1008),
                ([json.dumps({**START, "arm": "video"})], "unknown_arm", 1008),
                ([], "start_timeout", 1008),
                ([json.dumps(START), big], None, 1009),
            ]
            for msgs, code, close in cases:
                got, cc, reason = await raw_session(srv, msgs)
                errors = [m for m in got if isinstance(m, dict) and m.get("type") == "error"]
                assert cc == close, (code, cc, reason, got)
                if code:
                    assert errors and errors[-1]["code"] == code, (code, got)
                    assert errors[-1]["message"]
            # Twilio: the same bad input closes the stream with the policy code
            got, cc, _ = await raw_session(srv, ["not json at all"], path="/v1/twilio")
            assert cc == 1008
            # the good call was never disturbed: it still answers a caller turn
            assert not good.closed.is_set()
            good.say(np.concatenate([speech["price"], np.zeros(8000, np.float32)]))
            reply = await good.next_turn_end(30)
            assert reply is not None and reply.turn == 2 and len(reply.pcm) > 0
            await good.hangup()
        finally:
            await srv.close()
        st = CallStore(tmp_path / "calls.sqlite")
        ended = {c["caller_id"]: c for c in st.calls()}
        assert ended["good"]["user_turns"] == 1 and ended["good"]["end_reason"] == "caller_hangup"
        reasons = {c["end_reason"] for c in st.calls() if c["caller_id"] == "t"}
        assert {"protocol_error:bad_audio", "protocol_error:unknown_type", "message_too_big"} <= reasons

    asyncio.run(run())


def test_full_server_closes_with_1013(tmp_path, tts):
    async def run():
        srv = await make_server(tmp_path, tts, max_calls=1)
        try:
            first = NativeClient(url(srv), TOKEN, realtime_factor=4.0)
            await first.connect()
            got, code, _ = await raw_session(srv, [json.dumps(START)])
            assert code == 1013 and got[0]["code"] == "server_full"
            await first.hangup()
            await asyncio.sleep(0.3)
            again = NativeClient(url(srv), TOKEN, realtime_factor=4.0)
            await again.connect()  # a slot is free again
            await again.hangup()
        finally:
            await srv.close()

    asyncio.run(run())


def test_idle_and_total_timeouts(tmp_path, tts):
    async def run():
        srv = await make_server(tmp_path, tts, call=CallConfig(realtime_factor=4.0, idle_timeout_s=1.0, max_call_s=30))
        try:
            quiet = NativeClient(url(srv), TOKEN, stream_silence=False)
            await quiet.connect()
            assert await quiet.wait_closed(10)
            assert quiet.close_code == 1008 and quiet.errors[0]["code"] == "idle_timeout"
        finally:
            await srv.close()
        srv = await make_server(tmp_path, tts, call=CallConfig(realtime_factor=4.0, idle_timeout_s=10, max_call_s=1.5))
        try:
            c = NativeClient(url(srv), TOKEN, realtime_factor=4.0)
            await c.connect()
            assert await c.wait_closed(10)
            assert c.close_code == 1000 and c.end == {"type": "end", "reason": "max_duration", "_t": c.end["_t"]}
        finally:
            await srv.close()

    asyncio.run(run())


def test_http_endpoints(tmp_path, tts):
    async def run():
        srv = await make_server(tmp_path, tts)
        base = f"http://127.0.0.1:{srv.port}"
        try:
            async with httpx.AsyncClient() as h:
                page = await h.get(base + "/")
                assert page.status_code == 200 and "text/html" in page.headers["content-type"]
                assert "app.js" in page.text and "default-src 'self'" in page.headers["content-security-policy"]
                assert (await h.get(base + "/app.js")).status_code == 200
                assert "registerProcessor" in (await h.get(base + "/worklet.js")).text
                assert (await h.get(base + "/healthz")).json()["ok"] is True
                assert (await h.get(base + "/v1/report")).status_code == 401
                r = await h.get(base + "/v1/report", headers={"Authorization": f"Bearer {TOKEN}"})
                assert r.status_code == 200 and "arms" in r.json() and "p_value" in r.json()
                assert (await h.get(base + "/nope")).status_code == 404
        finally:
            await srv.close()

    asyncio.run(run())


def test_sockets_that_never_start_hold_no_call_slot(tmp_path, tts):
    """Two sockets that never send start, re-opened in a loop, must not keep an authenticated caller out."""

    async def run():
        srv = await make_server(tmp_path, tts, max_calls=1)
        stop = asyncio.Event()

        async def squat():
            while not stop.is_set():
                try:
                    async with connect(url(srv)) as ws:  # no header, no start: owes its token forever
                        await asyncio.wait_for(ws.wait_closed(), 15)
                except Exception:  # noqa: BLE001, S110 - refused or closed: open the next one
                    pass

        squatters = [asyncio.create_task(squat()) for _ in range(2)]
        try:
            await asyncio.sleep(0.3)
            sessions = 0
            for i in range(6):
                c = NativeClient(url(srv), TOKEN, caller={"id": f"real-{i}"}, realtime_factor=4.0)
                try:
                    await c.connect(timeout=5)
                    sessions += 1
                finally:
                    await c.hangup()
                await asyncio.sleep(0.2)
            return sessions
        finally:
            stop.set()
            for t in squatters:
                t.cancel()
            await asyncio.gather(*squatters, return_exceptions=True)
            await srv.close()

    assert asyncio.run(run()) == 6


def test_unauthenticated_sockets_have_their_own_small_limit_and_deadline(tmp_path, tts):
    async def run():
        srv = await make_server(tmp_path, tts, max_calls=1, max_unauthenticated=2, unauthenticated_timeout_s=0.5)
        try:
            t0 = asyncio.get_running_loop().time()
            waiting = [await connect(url(srv)) for _ in range(2)]
            got, code, _ = await raw_session(srv, [], headers={})
            assert code == 1013 and got[0]["code"] == "too_many_unauthenticated"
            async with httpx.AsyncClient() as h:
                health = (await h.get(f"http://127.0.0.1:{srv.port}/healthz")).json()
            assert (health["active_calls"], health["unauthenticated"]) == (0, 2)
            # a caller with the header is not held up by them
            c = NativeClient(url(srv), TOKEN, realtime_factor=4.0)
            await c.connect(timeout=5)
            await c.hangup()
            for ws in waiting:
                msg = json.loads(await ws.recv())
                assert msg["code"] == "start_timeout"
                await ws.wait_closed()
                assert ws.close_code == 1008
            assert asyncio.get_running_loop().time() - t0 < 3.0
        finally:
            await srv.close()

    asyncio.run(run())


def test_malformed_input_gets_its_documented_close_code_never_1011(tmp_path, tts):
    nested = "[" * 60_000
    native_cases = [
        ({}, [json.dumps({**START, "token": 12345})], "unauthorized"),
        ({}, [json.dumps({**START, "token": ["s3cret-token"]})], "unauthorized"),
        ({}, [nested], "bad_json"),
        (None, [nested], "bad_json"),
        (None, [json.dumps(START), nested], "bad_json"),
        (None, ['{"type": "start", "caller": {"n": ' + "7" * 5000 + "}}"], "bad_json"),
        (None, [json.dumps({**START, "caller": {"blob": "x" * 5000}})], "bad_message"),
    ]

    async def run():
        srv = await make_server(tmp_path, tts, max_calls=8)
        try:
            for headers, msgs, code in native_cases:
                got, cc, reason = await raw_session(srv, msgs, headers=headers)
                errors = [m for m in got if isinstance(m, dict) and m.get("type") == "error"]
                assert cc == 1008 and errors and errors[-1]["code"] == code, (code, cc, reason, got)
                assert "internal" not in reason
            twilio_cases = [
                ({}, [start_event("MZ9", "CA9", {"token": 42})], "unauthorized"),
                ({}, [nested], "bad_json"),
                (None, [start_event("MZ9", "CA9", {"from": "+1555", "note": "x" * 60_000})], "bad_message"),
                (None, [start_event("MZ9", "CA9", {"arm": ["audio"]})], "bad_message"),
                (None, [start_event("MZ9", "CA9"), nested], "bad_json"),
            ]
            for headers, msgs, code in twilio_cases:
                got, cc, reason = await raw_session(srv, msgs, headers=headers, path="/v1/twilio")
                assert cc == 1008 and code in reason and "internal" not in reason, (code, cc, reason)
        finally:
            await srv.close()
        st = CallStore(tmp_path / "calls.sqlite")
        reasons = [c["end_reason"] for c in st.calls()]
        assert reasons.count("protocol_error:bad_json") == 2 and not [r for r in reasons if r.startswith("internal")]

    asyncio.run(run())
