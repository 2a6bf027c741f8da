import math

import pytest
from scipy import stats

from mads_text.metrics import wilson_interval
from serve.ab import SplitError, assign, parse_split
from serve.report import ab_report, format_report, two_proportion_test
from serve.store import CallStore


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
