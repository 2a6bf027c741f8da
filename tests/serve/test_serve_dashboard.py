"""The operators' dashboard: its data from the store, its endpoints behind the token, and the page in headless Chromium."""

import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_cdp import Browser, find_chromium
from serve_helpers import ScriptedArm, needs_flite

from mads_text.scenario import load_scenario
from serve.call import CallConfig
from serve.dashboard import dashboard, histogram
from serve.recording import StereoRecorder
from serve.server import ServerConfig, VoiceServer
from serve.store import CallStore

TOKEN = "dash-token"
SHOT = Path(os.environ["MADS_DASHBOARD_PNG"]) if os.environ.get("MADS_DASHBOARD_PNG") else None  # keep the screenshot
LINES = [("agent", "Hello, this is Li Wei from Anxin Insurance. Do you have a minute?"),
         ("user", "Yes, how much does it cost per month?"),
         ("agent", "It is two hundred and eighty eight a month for half a million of cover."),
         ("user", "Okay, sign me up, please send me the link."),
         ("agent", "Wonderful, I will send it right away.")]  # fmt: skip


def fill(store: CallStore, rec_dir, n_pipeline=6, n_audio=3):
    """Ended calls on both arms, with per-turn timings and a real stereo recording for each."""
    rng = np.random.default_rng(5)
    t0 = time.time() - 3600
    for i in range(n_pipeline + n_audio):
        arm = "pipeline" if i < n_pipeline else "audio"
        cid = f"20240101-1200{i:02d}-{arm[:2]}{i:02d}"
        rec = rec_dir / f"{cid}.wav"
        r = StereoRecorder(rec)
        r.user(np.zeros(16000, np.float32))
        r.agent((0.1 * np.sin(np.arange(8000) / 8)).astype(np.float32))
        r.user(0.05 * rng.standard_normal(16000).astype(np.float32))
        r.close()
        start = t0 + 60 * i
        store.create_call(cid, arm=arm, assignment="split", protocol="native", scenario="insurance",
                          caller={"id": f"+1555{i:04d}"}, recording=str(rec), started_at=start)  # fmt: skip
        decided = i % 3 == 0
        for k, (role, text) in enumerate(LINES if decided else LINES[:3]):
            fields = {"ended_at": start + 5 * k}
            if role == "agent" and k:
                lat = float(rng.uniform(600, 1400) if arm == "pipeline" else rng.uniform(1500, 3500))
                fields.update(latency_ms=lat, asr_ms=lat * 0.2, llm_ms=lat * 1.5, tts_ms=40.0,
                              timings=json.dumps({"endpoint_ms": 200.0, "llm_first_ms": lat * 0.5, "prompt_new_tokens": 31}))
            store.add_turn(cid, k, role, text, **fields)
        if i == 1:
            store.update_turn(cid, 2, interrupted=1, audio_ms=900)
        store.update_call(cid, status="ended", ended_at=start + 30, end_reason="decision" if decided else "caller_hangup",
                          outcome="accepted" if decided else "intention", intention=1)  # fmt: skip
    store.create_call("live-1", arm="pipeline", assignment="split", protocol="native", scenario="insurance", caller={}, recording=None)


def test_dashboard_data_from_the_store(tmp_path):
    st = CallStore(tmp_path / "calls.sqlite")
    fill(st, tmp_path / "rec", n_audio=0)
    d = dashboard(st, recent=5)
    arms = d["report"]["arms"]
    assert arms["pipeline"]["calls"] == 6 and arms["pipeline"]["conversions"] == 2
    assert arms["pipeline"]["conversion_ci95"][0] < 2 / 6 < arms["pipeline"]["conversion_ci95"][1]
    assert arms["audio"]["calls"] == 0 and arms["audio"]["conversion_ci95"] is None  # no sample: no interval
    st_p = arms["pipeline"]["stages"]
    assert st_p["endpoint_ms"]["p50"] == 200.0 and st_p["llm_first_ms"]["n"] == 8 and st_p["prompt_new_tokens"]["p50"] == 31
    lat = d["latency"]
    assert sum(lat["counts"]["pipeline"]) == 8 and sum(lat["counts"]["audio"]) == 0
    assert len(lat["edges_ms"]) == len(lat["counts"]["pipeline"]) + 1 and lat["edges_ms"][-1] >= 1300
    recent = d["recent"]
    assert [c["id"] for c in recent][0] == "live-1" and len(recent) == 5
    assert recent[1]["recording"] and recent[1]["turns"][1]["role"] == "user"


def test_histogram_bins_are_shared_and_bounded():
    h = histogram({"pipeline": [100.0, 900.0, 950.0], "audio": [3000.0] + [1000.0] * 200})
    assert h["width_ms"] == 50 and len(h["edges_ms"]) - 1 == 20  # the 99th percentile (1000 ms) sets the range
    assert sum(h["counts"]["audio"]) == 201 and h["counts"]["audio"][-1] >= 1  # the outlier lands in the last bin
    assert histogram({"pipeline": [], "audio": []})["edges_ms"] == []


async def _server(tmp_path, tts):
    store = CallStore(tmp_path / "calls.sqlite")
    fill(store, tmp_path / "rec")
    cfg = ServerConfig(port=0, token=TOKEN, call=CallConfig(realtime_factor=4.0), recordings=tmp_path / "rec")
    srv = VoiceServer(cfg, load_scenario("insurance"), {"pipeline": ScriptedArm(tts)}, store)
    await srv.start()
    return srv


@needs_flite
def test_report_and_dashboard_leave_requested_calls_out_unless_asked(tmp_path, tts):
    async def run():
        srv = await _server(tmp_path, tts)
        srv.store.create_call("asked", arm="audio", assignment="requested", protocol="native", scenario="insurance",
                              caller={}, recording=None)  # fmt: skip
        srv.store.add_turn("asked", 0, "agent", "Hello.")
        srv.store.add_turn("asked", 1, "user", "Sign me up.")
        srv.store.add_turn("asked", 2, "agent", "Great.", latency_ms=90000.0)
        srv.store.update_call("asked", status="ended", ended_at=time.time(), outcome="accepted", intention=1)
        base = f"http://127.0.0.1:{srv.port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with httpx.AsyncClient() as h:
                return [(await h.get(base + path, headers=auth)).json() for path in
                        ("/v1/report", "/v1/report?include_requested=1", "/v1/dashboard", "/v1/dashboard?include_requested=1")]  # fmt: skip
        finally:
            await srv.close()

    rep, rep_all, dash, dash_all = asyncio.run(run())
    assert (rep["arms"]["audio"]["calls"], rep["requested_left_out"]) == (3, 1)
    assert (rep_all["arms"]["audio"]["calls"], rep_all["requested_left_out"]) == (4, 0)
    assert dash["report"]["requested_left_out"] == 1 and dash_all["report"]["arms"]["audio"]["calls"] == 4
    # the latency histogram counts the replies of the calls the report counts
    assert sum(dash_all["latency"]["counts"]["audio"]) == sum(dash["latency"]["counts"]["audio"]) + 1


@needs_flite
def test_dashboard_endpoints_need_the_token(tmp_path, tts):
    async def run():
        srv = await _server(tmp_path, tts)
        base = f"http://127.0.0.1:{srv.port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with httpx.AsyncClient() as h:
                assert (await h.get(base + "/v1/dashboard")).status_code == 401
                assert (await h.get(base + "/v1/dashboard", headers={"Authorization": "Bearer nope"})).status_code == 401
                d = (await h.get(base + "/v1/dashboard", headers=auth)).json()
                cid = d["recent"][1]["id"]
                assert (await h.get(f"{base}/v1/calls/{cid}/recording")).status_code == 401
                wav = await h.get(f"{base}/v1/calls/{cid}/recording", headers=auth)
                assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav" and wav.content[:4] == b"RIFF"
                for bad in ("live-1", "nope", "..%2F..%2Fcalls.sqlite", "x/../../calls.sqlite"):
                    assert (await h.get(f"{base}/v1/calls/{bad}/recording", headers=auth)).status_code == 404
                assert "renderDashboard" not in (await h.get(base + "/dashboard.js")).text
        finally:
            await srv.close()

    asyncio.run(run())


@needs_flite
@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed")
def test_dashboard_page_in_headless_chromium(tmp_path, tts):
    async def run():
        srv = await _server(tmp_path, tts)
        try:
            async with Browser(find_chromium(), tmp_path / "none.wav") as b:
                await b.navigate(f"http://127.0.0.1:{srv.port}/#token=wrong&dashboard=1")
                await _wait(b, "window.madsDash && window.madsDash.error")
                assert "token" in await b.eval("document.getElementById('dash-status').textContent")
                await b.navigate(f"http://127.0.0.1:{srv.port}/#token={TOKEN}&dashboard=1")
                await b.eval("location.reload()")
                await _wait(b, "window.madsDash && window.madsDash.loads > 0")
                page = await b.eval("""(() => ({
                    cards: [...document.querySelectorAll('.card')].map((c) => c.textContent),
                    dots: document.querySelectorAll('#rates circle').length,
                    whiskers: document.querySelectorAll('#rates .whisker').length,
                    tests: document.getElementById('tests').textContent,
                    bars: document.querySelectorAll('#latency rect.bar').length,
                    stages: [...document.querySelectorAll('#stages tr')].map((r) => r.textContent),
                    rows: document.querySelectorAll('#calls tr.call').length }))()""")
                await b.eval("document.querySelector('tr.call[data-call$=\"pi01\"]').click()")
                detail = await b.eval("document.querySelector('tr.detail').textContent")
                await b.eval("document.querySelector('tr.detail button').click()")
                await _wait(b, "document.querySelector('tr.detail audio') && document.querySelector('tr.detail audio').duration > 0")
                duration = await b.eval("document.querySelector('tr.detail audio').duration")
                await b.eval("window.scrollTo(0, 0)")
                await b.screenshot(SHOT if SHOT else tmp_path / "dashboard.png")
                return page, detail, duration
        finally:
            await srv.close()

    page, detail, duration = asyncio.run(run())
    pipeline_card = next(c for c in page["cards"] if c.startswith("pipeline"))
    # the call left active is closed by the server on start-up (server_lost), so it counts as ended
    assert "ended calls7" in pipeline_card and "28.6 % [8.2, 64.1]" in pipeline_card
    assert page["dots"] == 4 and page["whiskers"] == 4  # two metrics x two arms, each with its interval
    assert "conversion audio − pipeline" in page["tests"] and "Fisher" in page["tests"]
    assert page["bars"] >= 4
    assert any(s.startswith("LLM to first clause") for s in page["stages"]) and page["stages"][0].startswith("stage")
    assert page["rows"] == 10
    assert "Caller: Yes, how much does it cost per month?" in detail and "[cut after 900 ms]" in detail
    assert abs(duration - 2.0) < 0.1
    assert (SHOT or tmp_path / "dashboard.png").stat().st_size > 10_000


async def _wait(b, cond, timeout=30):
    t_end = time.monotonic() + timeout
    while not await b.eval(f"Boolean({cond})"):
        if time.monotonic() > t_end:
            raise TimeoutError(cond)
        await asyncio.sleep(0.1)


def test_the_audio_arms_ear_is_a_stage_of_its_latency():
    from serve.report import replies, stage_breakdown

    turns = [{"call_id": "a", "idx": 0, "role": "agent"}, {"call_id": "a", "idx": 1, "role": "user"},
             {"call_id": "a", "idx": 2, "role": "agent", "latency_ms": 900.0,
              "timings": json.dumps({"endpoint_ms": 250.0, "ear_ms": 120.0, "llm_first_ms": 500.0})}]  # fmt: skip
    st = stage_breakdown(replies(turns))
    assert st["ear_ms"] == {"p50": 120.0, "p95": 120.0, "n": 1} and st["asr_ms"]["n"] == 0
