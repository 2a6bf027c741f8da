import math
import time

import pytest
from scipy import stats

from mads_text.metrics import wilson_interval
from serve.ab import SplitError, assign, parse_split
from serve.report import ab_report, format_report, two_proportion_test
from serve.store import SCHEMA, CallStore


def test_parse_split():
    assert parse_split("audio=0.5") == {"audio": 0.5, "pipeline": 0.5}
    assert parse_split("audio=0.2,pipeline=0.8") == {"audio": 0.2, "pipeline": 0.8}
    assert parse_split("audio=1") == {"audio": 1.0}
    assert parse_split(None) == {"pipeline": 1.0}
    for bad, msg in [("video=0.5", "unknown arm"), ("audio", "ARM=SHARE"), ("audio=x", "not a number"),
                     ("audio=1.5", "within"), ("audio=0.7,pipeline=0.7", "more than 1"), ("audio=0.2,pipeline=0.2", "expected 1")]:  # fmt: skip
        with pytest.raises(SplitError, match=msg):
            parse_split(bad)


def test_assignment_is_sticky_and_follows_the_split():
    split = parse_split("audio=0.3")
    keys = [f"caller-{i}" for i in range(4000)]
    first = [assign(split, "exp1", k) for k in keys]
    assert first == [assign(split, "exp1", k) for k in keys]
    share = first.count("audio") / len(keys)
    assert abs(share - 0.3) < 0.03
    other = [assign(split, "exp2", k) for k in keys]
    assert first != other  # the experiment name reshuffles


def test_wilson_known_values():
    lo, hi = wilson_interval(1, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.0179, 0.4042)
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.15 < hi < 0.17


def test_two_proportion_test_matches_the_formula():
    t = two_proportion_test(30, 100, 45, 100)
    p = 75 / 200
    z = (0.30 - 0.45) / math.sqrt(p * (1 - p) * (2 / 100))
    assert t["z"] == pytest.approx(z)
    assert t["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert 0.02 < t["p_value"] < 0.04
    assert two_proportion_test(0, 10, 0, 12)["p_value"] == 1.0
    assert two_proportion_test(1, 0, 1, 5) is None


def _call(store, cid, arm, outcome, intention, user_turns, latencies):
    store.create_call(cid, arm=arm, assignment="split", protocol="native", scenario="insurance", caller={"id": cid}, recording=None)
    idx = 0
    store.add_turn(cid, idx, "agent", "hello", latency_ms=2000)  # the opening: not a response latency
    for i in range(user_turns):
        idx += 1
        store.add_turn(cid, idx, "user", "something")
        idx += 1
        store.add_turn(cid, idx, "agent", "answer", latency_ms=latencies[i % len(latencies)])
    store.update_call(cid, status="ended", ended_at=store.call(cid)["started_at"] + 30, outcome=outcome, intention=int(intention), end_reason="caller_hangup")


def test_report_from_a_store(tmp_path):
    st = CallStore(tmp_path / "c.sqlite")
    for i in range(10):
        _call(st, f"a{i}", "audio", "accepted" if i < 4 else "hung_up", i < 6, 2, [800, 1200])
    for i in range(10):
        _call(st, f"p{i}", "pipeline", "accepted" if i < 1 else "withdrawn", i < 3, 1, [1500])
    st.create_call("live", arm="pipeline", assignment="split", protocol="native", scenario="insurance", caller={}, recording=None)
    rep = ab_report(st)
    a, p = rep["arms"]["audio"], rep["arms"]["pipeline"]
    assert (a["calls"], a["conversion_rate"], a["intention_rate"], a["avg_turns"]) == (10, 0.4, 0.6, 2.0)
    assert (p["calls"], p["conversion_rate"], p["intention_rate"], p["avg_turns"]) == (10, 0.1, 0.3, 1.0)
    assert a["latency_p50_ms"] == 1000.0 and a["latency_n"] == 20
    assert p["latency_p50_ms"] == p["latency_p95_ms"] == 1500.0
    assert rep["active_calls"] == 1 and rep["calls"] == 20
    assert rep["p_value"] == pytest.approx(two_proportion_test(4, 10, 1, 10)["p_value"])
    assert set(a) >= {"calls", "conversion_rate", "intention_rate", "avg_turns", "latency_p50_ms", "latency_p95_ms"}
    assert a["conversion_ci95"][0] < 0.4 < a["conversion_ci95"][1]
    text = format_report(rep)
    assert "audio" in text and "p = " in text


PIPE = {"arm": "pipeline", "backbone": "/m/smollm2.gguf", "prompt_sha256": "aa", "decoding": {"greedy": True, "max_tokens": 40}}
AUDIO = {**PIPE, "arm": "audio"}


def _store_with(tmp_path, audio_desc=AUDIO):
    """Split calls on both arms, one requested call that converted, and a failed (fallback) audio reply."""
    st = CallStore(tmp_path / "c.sqlite")
    for i, (arm, assignment, outcome) in enumerate([("pipeline", "split", "hung_up"), ("pipeline", "split", "hung_up"),
                                                    ("audio", "split", "hung_up"), ("audio", "requested", "accepted")]):  # fmt: skip
        cid = f"c{i}"
        st.create_call(cid, arm=arm, assignment=assignment, protocol="native", scenario="insurance", caller={}, recording=None,
                       server={"arm": PIPE if arm == "pipeline" else audio_desc})  # fmt: skip
        st.add_turn(cid, 0, "agent", "hello")
        st.add_turn(cid, 1, "user", "how much is it?")
        failed = arm == "audio" and assignment == "split"
        st.add_turn(cid, 2, "agent", "Sorry, could you say that again?" if failed else "Two hundred.", latency_ms=900, failed=int(failed))
        st.update_call(cid, status="ended", ended_at=time.time(), outcome=outcome, intention=int(outcome == "accepted"))
    return st


def test_requested_calls_are_left_out_unless_asked_for(tmp_path):
    st = _store_with(tmp_path)
    rep = ab_report(st)
    assert rep["calls"] == 3 and rep["requested_left_out"] == 1 and rep["requested_calls"] == 1
    assert rep["arms"]["audio"]["calls"] == 1 and rep["arms"]["audio"]["conversions"] == 0
    assert "1 calls whose arm the caller requested left out" in format_report(rep)
    rep = ab_report(st, include_requested=True)
    assert rep["calls"] == 4 and rep["requested_left_out"] == 0 and rep["arms"]["audio"]["conversions"] == 1


def test_failed_turns_are_counted_per_arm(tmp_path):
    rep = ab_report(_store_with(tmp_path))
    a, p = rep["arms"]["audio"], rep["arms"]["pipeline"]
    assert (a["failed_turns"], a["failed_share"]) == (1, 0.5)  # one of the audio call's two agent turns
    assert (p["failed_turns"], p["failed_share"]) == (0, 0.0)
    assert "1 (50.0%)" in format_report(rep)


def test_the_report_states_how_the_arms_differ(tmp_path):
    rep = ab_report(_store_with(tmp_path))
    assert rep["parity"]["matched"] is True and rep["parity"]["differences"] == []
    assert "same backbone, prompt and decoding" in format_report(rep)
    rep = ab_report(_store_with(tmp_path / "x", {**AUDIO, "backbone": "/m/qwen.gguf"}))
    assert rep["parity"]["matched"] is False
    assert rep["parity"]["differences"] == ["backbone: pipeline '/m/smollm2.gguf', audio '/m/qwen.gguf'"]
    assert "the arms differ in more than the ear" in format_report(rep) and "/m/qwen.gguf" in format_report(rep)


def test_a_store_of_the_previous_schema_gets_the_failed_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA.replace("  failed INTEGER NOT NULL DEFAULT 0,\n", ""))  # a store of schema 2
    db.execute("INSERT INTO calls(id, arm, assignment, protocol, scenario, started_at, ended_at, status, server_json) "
               "VALUES('old', 'pipeline', 'split', 'native', 'insurance', 1, 2, 'ended', '{}')")  # fmt: skip
    db.execute("INSERT INTO turns(call_id, idx, role, text) VALUES('old', 0, 'agent', 'hello')")
    db.commit()
    db.close()
    rep = ab_report(CallStore(path, readonly=True))  # read as it is: no column, nothing failed
    assert rep["arms"]["pipeline"]["failed_turns"] == 0 and rep["parity"]["descriptions"]["pipeline"][0]["backbone"] is None
    st = CallStore(path)
    assert st.turns("old")[0]["failed"] == 0
    assert st._query("SELECT value FROM meta WHERE key = 'schema_version'")[0][0] == "3"
    st.add_turn("old", 1, "agent", "Sorry, could you say that again?", failed=1)
    assert st.turns("old")[1]["failed"] == 1


def test_ab_report_command_counts_requested_calls_only_when_asked(tmp_path):
    import typer
    from typer.testing import CliRunner

    from serve.cli import ab_report_cmd

    _store_with(tmp_path).close()
    app = typer.Typer()
    app.command("ab-report")(ab_report_cmd)
    app.command("other")(lambda: None)
    out = CliRunner().invoke(app, ["ab-report", "--db", str(tmp_path / "c.sqlite")])
    assert out.exit_code == 0 and ": 3 ended calls" in out.output and "1 calls whose arm the caller requested left out" in out.output
    out = CliRunner().invoke(app, ["ab-report", "--db", str(tmp_path / "c.sqlite"), "--include-requested"])
    assert out.exit_code == 0 and ": 4 ended calls" in out.output and "requested included" in out.output
