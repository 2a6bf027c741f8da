"""The web page in headless Chromium, microphone replaced by a WAV file (DevTools protocol over websockets)."""

import asyncio
import json
import time

import numpy as np
import pytest
import soundfile as sf
from serve_cdp import Browser, find_chromium
from serve_helpers import needs_flite, wait_ended

from serve.store import CallStore

pytestmark = [pytest.mark.slow, needs_flite, pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed")]


def test_browser_call_to_the_pipeline_arm(pipeline_server, speech, tmp_path):
    srv = pipeline_server
    wav = tmp_path / "mic.wav"
    # Chromium loops the file: 2 s quiet, the question, then a long quiet stretch for the agent to answer
    sf.write(wav, np.concatenate([np.zeros(32000, np.float32), speech["price"], np.zeros(16000 * 25, np.float32)]), 16000, subtype="PCM_16")

    async def run():
        async with Browser(find_chromium(), wav) as b:
            await b.navigate(f"http://127.0.0.1:{srv.port}/#token=e2e-token&arm=pipeline&autostart=1")
            t_end = time.monotonic() + 180
            state = None
            while time.monotonic() < t_end:
                await asyncio.sleep(1.0)
                raw = await b.eval("JSON.stringify(window.madsState || null)")
                state = json.loads(raw) if raw else None
                if state and any(t["role"] == "user" for t in state["transcripts"]):
                    roles = [t["role"] for t in state["transcripts"]]
                    user_turn = next(t["turn"] for t in state["transcripts"] if t["role"] == "user")
                    answered = any(e["name"] == "agent_turn_end" and e["data"]["turn"] > user_turn for e in state["events"])
                    if "agent" in roles[roles.index("user"):] and answered:
                        break
            await asyncio.sleep(1.0)
            await b.eval("document.getElementById('hangup').click()")
            await asyncio.sleep(1.0)
            final = json.loads(await b.eval("JSON.stringify(window.madsState)"))
            return state, final

    state, final = asyncio.run(run())
    assert state and state["session"]["arm"] == "pipeline", state
    user = [t for t in state["transcripts"] if t["role"] == "user"]
    assert user and "cost" in user[0]["text"].lower(), state["transcripts"]
    assert state["audioBytes"] > 16000 and state["framesSent"] > 50 and not state["errors"]
    call = wait_ended(srv.store.path, state["session"]["call_id"])
    st = CallStore(srv.store.path, readonly=True)
    assert call["assignment"] == "requested" and call["user_turns"] >= 1
    turns = st.turns(call["id"])
    roles = [t["role"] for t in turns]
    assert "user" in roles and roles[roles.index("user") + 1] == "agent"
    assert not [t for t in turns if t["failed"]], turns  # the agent's turns came from the model, not the fallback line
    assert final["closed"] and final["closeCode"] == 1000
