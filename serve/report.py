"""The A/B report: per-arm conversion, intention, turns and latency, with intervals and a test.

Definitions (docs/serve.md repeats them):
- ``calls``: ended calls of the arm (a call still in progress is not counted); calls whose arm the caller
  requested are left out unless ``include_requested`` (the split did not assign them: they are not part
  of the randomised comparison), and ``requested_left_out`` says how many were;
- ``conversion_rate``: share of calls with outcome ``accepted``;
- ``intention_rate``: share of calls where the caller showed interest (accepted ones included);
- ``avg_turns``: mean number of caller turns (transcribed utterances) per call;
- ``latency_p50_ms`` / ``latency_p95_ms``: from the end of the caller's speech (last voiced audio
  received) to the first agent audio sent, over every agent reply (the opening is excluded);
- ``stages``: the same replies' latency cut into the stages on its path (``STAGES``), p50/p95 each;
- ``failed_turns`` / ``failed_share``: agent turns (openings included) that were the fallback line because
  the model produced nothing speakable, and their share of the arm's agent turns;
- ``parity``: whether the arms of the counted calls differ in backbone, prompt or decoding (from the arm
  description stored with each call), and how;
- intervals: Wilson score 95 %; test: two-sided pooled two-proportion z-test between the two
  arms (``p_value`` is the one for conversion), plus Fisher's exact test for small counts.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from typing import Any

import numpy as np
from scipy import stats

from mads_text.metrics import wilson_interval

from .arms import ARMS
from .arms.parity import differences, signature
from .store import CallStore

Z95 = 1.959963984540054


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> dict[str, Any] | None:
    """Pooled z-test of p1 == p2 (two-sided) and Fisher's exact test on the same 2x2 table."""
    if n1 == 0 or n2 == 0:
        return None
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        z, p = 0.0, 1.0
    else:
        z = (p1 - p2) / se
        p = 2 * stats.norm.sf(abs(z))
    fisher = stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue
    return {"difference": p1 - p2, "z": z, "p_value": float(p), "fisher_p_value": float(fisher)}


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


# the stages between the end of the caller's speech and the first agent audio, in the order they run:
# the silence the endpointer waited for, the transcription left after it (the tail pass) or, on the audio arm, its
# ear's pass over the turn, the LLM until its first speakable clause, the first clause's synthesis; ``latency_ms`` is
# the whole, measured apart
STAGES = ("endpoint_ms", "asr_ms", "ear_ms", "llm_first_ms", "tts_ms")
# also shown: the whole reply's LLM time, and the prompt tokens the LLM had to evaluate (not cached)
EXTRA = ("llm_ms", "prompt_new_tokens")


def turn_timings(t: dict[str, Any]) -> dict[str, float]:
    """A turn's stored timings: the columns plus the ``timings`` JSON (which wins where both have a value)."""
    out = {k: float(t[k]) for k in ("latency_ms", "asr_ms", "llm_ms", "tts_ms") if t.get(k) is not None}
    if t.get("timings"):
        try:
            out.update({k: float(v) for k, v in json.loads(t["timings"]).items() if isinstance(v, (int, float))})
        except (ValueError, TypeError):
            pass
    return out


def replies(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Agent turns that answer a caller turn (the opening is not a reply), over any number of calls."""
    by_call: dict[str, list[dict[str, Any]]] = {}
    for t in turns:
        by_call.setdefault(t["call_id"], []).append(t)
    out = []
    for ts in by_call.values():
        ts.sort(key=lambda t: t["idx"])
        out += [t for prev, t in itertools.pairwise(ts) if t["role"] == "agent" and prev["role"] == "user"]
    return out


def stage_breakdown(reply_turns: list[dict[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    """p50, p95 and count of each stage of the response latency, and of the whole."""
    timings = [turn_timings(t) for t in reply_turns]
    out = {}
    for stage in ("latency_ms", *STAGES, *EXTRA):
        vals = [tm[stage] for tm in timings if stage in tm]
        out[stage] = {"p50": _r(percentile(vals, 50), 1), "p95": _r(percentile(vals, 95), 1), "n": len(vals)}
    return out


def arm_stats(calls: list[dict[str, Any]], turns: list[dict[str, Any]], barge_ins: dict[str, int] | None = None) -> dict[str, Any]:
    n = len(calls)
    conv = sum(1 for c in calls if c["outcome"] == "accepted")
    intent = sum(1 for c in calls if c["intention"])
    ids = {c["id"] for c in calls}
    mine = [t for t in turns if t["call_id"] in ids]
    answers = replies(mine)
    lat = [float(t["latency_ms"]) for t in answers if t["latency_ms"] is not None]
    agent = [t for t in mine if t["role"] == "agent"]
    failed = sum(1 for t in agent if t.get("failed"))  # a store older than schema 3 has no such column
    # a barge-in is the caller taking the floor; a turn cut by a hang-up is interrupted too, but is not one
    barge = sum((barge_ins or {}).get(i, 0) for i in ids)
    durations = [c["ended_at"] - c["started_at"] for c in calls if c["ended_at"]]
    ci_c, ci_i = wilson_interval(conv, n), wilson_interval(intent, n)
    return {
        "calls": n,
        "conversions": conv,
        "conversion_rate": _r(conv / n) if n else None,
        "conversion_ci95": [_r(v) for v in ci_c] if ci_c else None,
        "intentions": intent,
        "intention_rate": _r(intent / n) if n else None,
        "intention_ci95": [_r(v) for v in ci_i] if ci_i else None,
        "avg_turns": _r(sum(c["user_turns"] for c in calls) / n, 3) if n else None,
        "avg_agent_turns": _r(sum(c["agent_turns"] for c in calls) / n, 3) if n else None,
        "latency_p50_ms": _r(percentile(lat, 50), 1),
        "latency_p95_ms": _r(percentile(lat, 95), 1),
        "latency_n": len(lat),
        "stages": stage_breakdown(answers),
        "failed_turns": failed,
        "failed_share": _r(failed / len(agent)) if agent else None,
        "barge_ins": barge,
        "avg_call_s": _r(sum(durations) / len(durations), 2) if durations else None,
        "outcomes": dict(Counter(c["outcome"] or "unknown" for c in calls)),
        "end_reasons": dict(Counter(c["end_reason"] or "unknown" for c in calls)),
    }


def arm_parity(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """How the arms of these calls differ in backbone, prompt and decoding, from each call's stored arm description."""
    sigs: dict[str, list[dict[str, Any]]] = {a: [] for a in ARMS}
    for c in calls:
        try:
            desc = json.loads(c["server_json"] or "{}").get("arm")
        except (ValueError, AttributeError):
            desc = None
        sig = signature(desc if isinstance(desc, dict) else None)
        if sig not in sigs.setdefault(c["arm"], []):
            sigs[c["arm"]].append(sig)
    diffs = [f"{a}: its calls ran under {len(s)} different descriptions" for a, s in sigs.items() if len(s) > 1]
    for p in sigs["pipeline"]:
        for a in sigs["audio"]:
            diffs += [d for d in differences(p, a) if d not in diffs]
    both = bool(sigs["pipeline"] and sigs["audio"])
    return {"matched": (not diffs) if both else None, "differences": diffs, "descriptions": sigs}


def ab_report(store: CallStore, *, include_requested: bool = False, scenario: str | None = None) -> dict[str, Any]:
    ended = [c for c in store.calls() if c["status"] == "ended" and (not scenario or c["scenario"] == scenario)]
    requested = sum(1 for c in ended if c["assignment"] == "requested")
    calls = ended if include_requested else [c for c in ended if c["assignment"] != "requested"]
    turns = store.all_turns()
    barge_ins = store.event_counts("barge_in")
    arms = {a: arm_stats([c for c in calls if c["arm"] == a], turns, barge_ins) for a in ARMS}
    a, b = arms["audio"], arms["pipeline"]
    conv = two_proportion_test(a["conversions"], a["calls"], b["conversions"], b["calls"])
    intent = two_proportion_test(a["intentions"], a["calls"], b["intentions"], b["calls"])
    return {
        "db": str(store.path),
        "calls": len(calls),
        "active_calls": sum(1 for c in store.calls() if c["status"] == "active"),
        "include_requested": include_requested,
        "requested_calls": requested,
        "requested_left_out": 0 if include_requested else requested,
        "parity": arm_parity(calls),
        "arms": arms,
        "comparison": "audio vs pipeline",
        "tests": {"conversion": conv, "intention": intent},
        "p_value": conv["p_value"] if conv else None,
        "intention_p_value": intent["p_value"] if intent else None,
    }


def format_report(rep: dict[str, Any]) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    def ci(x):
        return "" if not x else f" [{100 * x[0]:.1f}, {100 * x[1]:.1f}]"

    def num(x, unit=""):
        return "-" if x is None else f"{x:g}{unit}"

    left = rep["requested_left_out"]
    lines = [f"{rep['db']}: {rep['calls']} ended calls ({rep['active_calls']} active)"
             + (f"; {left} calls whose arm the caller requested left out (--include-requested counts them)" if left else "")
             + ("; calls whose arm the caller requested included" if rep["include_requested"] else "")]  # fmt: skip
    par = rep["parity"]
    if par["differences"]:
        lines.append("the arms differ in more than the ear (backbone, prompt or decoding):")
        lines += [f"  {d}" for d in par["differences"]]
    elif par["matched"]:
        lines.append("arms: same backbone, prompt and decoding")
    lines.append(f"{'arm':9} {'calls':>5}  {'conversion':>22}  {'intention':>22}  {'turns':>5}  {'p50 ms':>7}  {'p95 ms':>7}  {'failed turns':>12}")
    for arm, s in rep["arms"].items():
        failed = f"{s['failed_turns']} ({pct(s['failed_share'])})"
        lines.append(
            f"{arm:9} {s['calls']:>5}  {pct(s['conversion_rate']) + ci(s['conversion_ci95']):>22}  "
            f"{pct(s['intention_rate']) + ci(s['intention_ci95']):>22}  {num(s['avg_turns']):>5}  "
            f"{num(s['latency_p50_ms']):>7}  {num(s['latency_p95_ms']):>7}  {failed:>12}"
        )
    t = rep["tests"]["conversion"]
    if t:
        lines.append(
            f"conversion audio - pipeline = {100 * t['difference']:+.1f} pts, z = {t['z']:.2f}, "
            f"p = {t['p_value']:.3g} (Fisher exact p = {t['fisher_p_value']:.3g})"
        )
    else:
        lines.append("conversion test: needs calls on both arms")
    ti = rep["tests"]["intention"]
    if ti:
        lines.append(f"intention audio - pipeline = {100 * ti['difference']:+.1f} pts, p = {ti['p_value']:.3g}")
    for arm, s in rep["arms"].items():
        if s["calls"]:
            lines.append(f"{arm} outcomes: {s['outcomes']}")
    return "\n".join(lines)
