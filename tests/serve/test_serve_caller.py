"""Simulated callers (personas + UserAgent + persona voices + ASR) against a running server, then the A/B report."""

import asyncio
import json

import pytest
from serve_helpers import needs_flite

from serve.caller import CallerOptions, run_callers
from serve.tts import persona_voices

pytestmark = [pytest.mark.slow, needs_flite]


def test_persona_voices_are_stable_and_differ():
    from mads_text.personas import sample_personas
    from mads_text.scenario import load_scenario

    ps = sample_personas(load_scenario("insurance"), "sign", 6, 7)
    pairs = [(p.id, p.fields) for p in ps]
    a, b = persona_voices(pairs, "flite"), persona_voices(pairs, "flite")
    assert a == b  # deterministic
    for p in ps:
        v = a[p.id]
        assert v.engine == "flite" and (v.name == "slt") == (p.fields["gender"] == "Female")
    assert len({(v.name, v.pitch, v.speed) for v in a.values()}) == len(ps)


def test_two_simulated_calls_produce_an_ab_report(pipeline_server, tmp_path):
    srv = pipeline_server
    out = tmp_path / "callers.jsonl"
    rep_path = tmp_path / "ab.json"
    opts = CallerOptions(url=f"ws://127.0.0.1:{srv.port}/v1/call", token="e2e-token", calls=2, concurrency=2,
                         model="smollm2", asr="tiny.en", max_turns=1, realtime_factor=3.0, out=out, json_out=rep_path)  # fmt: skip
    summary, report = asyncio.run(run_callers(opts))
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 2 and not any(r.get("error") for r in recs), summary
    for r in recs:
        assert r["call_id"] and r["arm"] == "pipeline"
        said = [t for t in r["turns"] if t["role"] == "user"]
        heard = [t for t in r["turns"] if t["role"] == "agent"]
        assert heard and heard[0]["heard"] != "..."
        # one turn spoken, unless the model only ever wrote a bare end marker (then nothing is said)
        assert len(said) == 1 or (not said and r["decision"]["source"] == "marker_only")
        assert r["decision"]["outcome"] in ("accept", "withdraw", "undecided")
    assert recs[0]["voice"] != recs[1]["voice"]
    pipe = report["arms"]["pipeline"]
    assert pipe["calls"] >= 2 and pipe["latency_p50_ms"] > 0 and "p_value" in report
    assert pipe["failed_turns"] == 0, "an agent turn was the fallback line: the model said nothing speakable"
    assert json.loads(rep_path.read_text())["arms"]["pipeline"]["calls"] == pipe["calls"]
    # a rerun resumes: both personas are done
    opts2 = CallerOptions(**{**opts.__dict__, "json_out": None})
    summary2, _ = asyncio.run(run_callers(opts2))
    assert summary2.startswith("0 calls placed (2 already")
