"""The operators' dashboard: the A/B report plus what a person wants to look at, from the call store alone.

``dashboard`` is what ``GET /v1/dashboard`` returns (bearer token required) and the web page draws:
the report of ``report.ab_report`` (calls, conversion and intention with Wilson intervals per arm,
the two-proportion tests), the response-latency distribution of each arm on shared bins with its
stages, and the most recent calls with their transcripts and whether a recording can be played
(``GET /v1/calls/<id>/recording``, same token).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .arms import ARMS
from .report import ab_report, replies, turn_timings
from .store import CallStore

NICE_BINS_MS = (50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000)
MAX_BINS = 24


def histogram(samples: dict[str, list[float]]) -> dict[str, Any]:
    """Counts per arm on one set of bins; the last bin also holds everything above the 99th percentile."""
    every = [v for vs in samples.values() for v in vs]
    if not every:
        return {"width_ms": None, "edges_ms": [], "counts": {a: [] for a in samples}}
    top = float(np.percentile(every, 99))
    width = next((w for w in NICE_BINS_MS if top / w <= MAX_BINS), NICE_BINS_MS[-1])
    n = max(1, min(MAX_BINS, math.ceil(top / width) or 1))
    edges = [i * width for i in range(n + 1)]
    counts = {}
    for arm, vs in samples.items():
        c = [0] * n
        for v in vs:
            c[min(n - 1, max(0, int(v // width)))] += 1
        counts[arm] = c
    return {"width_ms": width, "edges_ms": edges, "counts": counts, "last_bin_open": max(every) >= edges[-1]}


def _turn_view(t: dict[str, Any]) -> dict[str, Any]:
    tm = turn_timings(t)
    return {"idx": t["idx"], "role": t["role"], "text": t["text"], "interrupted": bool(t["interrupted"]), "failed": bool(t.get("failed")),
            "audio_ms": t["audio_ms"], "latency_ms": tm.get("latency_ms"),
            "stages": {k: v for k, v in tm.items() if k != "latency_ms"}}  # fmt: skip


def recent_calls(store: CallStore, limit: int) -> list[dict[str, Any]]:
    out = []
    for c in store.recent_calls(limit):
        turns = store.turns(c["id"])
        out.append({
            "id": c["id"], "arm": c["arm"], "assignment": c["assignment"], "protocol": c["protocol"],
            "caller_id": c["caller_id"], "started_at": c["started_at"], "ended_at": c["ended_at"],
            "duration_s": round(c["ended_at"] - c["started_at"], 1) if c["ended_at"] else None,
            "status": c["status"], "end_reason": c["end_reason"], "outcome": c["outcome"],
            "intention": bool(c["intention"]), "user_turns": c["user_turns"], "agent_turns": c["agent_turns"],
            "recording": bool(c["recording"]) and Path(c["recording"]).is_file(),
            "turns": [_turn_view(t) for t in turns],
        })  # fmt: skip
    return out


def dashboard(store: CallStore, *, recent: int = 20, include_requested: bool = False) -> dict[str, Any]:
    report = ab_report(store, include_requested=include_requested)
    # the histogram counts the calls the report counts
    ended = {c["id"]: c["arm"] for c in store.calls()
             if c["status"] == "ended" and (include_requested or c["assignment"] != "requested")}  # fmt: skip
    answers = replies([t for t in store.all_turns() if t["call_id"] in ended])
    samples: dict[str, list[float]] = {a: [] for a in ARMS}
    for t in answers:
        if t["latency_ms"] is not None:
            samples[ended[t["call_id"]]].append(float(t["latency_ms"]))
    return {"report": report, "latency": histogram(samples), "recent": recent_calls(store, recent)}


def recording_path(store: CallStore, call_id: str) -> Path | None:
    """The stored recording of a call, found through its row (never a path built from the request)."""
    call = store.call(call_id)
    if not call or not call["recording"]:
        return None
    p = Path(call["recording"])
    return p if p.is_file() else None
