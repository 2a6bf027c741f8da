"""Voice-server benchmark: response latency per arm and concurrent calls held in real time.

Starts ``mads serve`` in a subprocess (real time, embedded models), then places
scripted calls at rising concurrency: each caller streams real-time audio (its
lines pre-made with flite, so the callers cost the CPU almost nothing), waits
for the agent to finish, speaks, and hangs up after ``--turns`` turns.

Per level it prints the server-side latency (end of caller speech -> first agent
audio, from the call store) p50/p95, its breakdown into the stages stored with
every reply (end-of-turn wait, ASR left after the turn, LLM to the first
clause, TTS of the first clause; plus the whole reply's LLM time and the prompt
tokens the LLM had to evaluate), the caller-side latency, and how much of the
agent's speech stalled (audio that arrived after the previous part had played).
A level is "held" when every call completed and the stalls stay under 2 % of the
agent's speech; the largest held level is the number of concurrent calls this
machine carries without falling behind real time.

    python bench/serve.py --model smollm2 --asr tiny.en --levels 1,2,4 [--audio-model SCKPT]
    python bench/serve.py --model qwen1.5b --asr base --levels 1,2 --turns 3 --speculative ngram-simple
    python bench/serve.py --from-db /tmp/mads-bench-serve-XXXX/calls.sqlite     # the breakdown of a kept store

``--serve-arg`` passes any other ``mads serve`` option through (e.g. ``--serve-arg=--no-stream``), so the
same callers can be timed against a server without one of the latency features.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serve.client import NativeClient  # noqa: E402
from serve.report import STAGES, replies, stage_breakdown  # noqa: E402
from serve.store import CallStore  # noqa: E402
from serve.tts import TTS, Voice  # noqa: E402

LINES = [
    "Hi. Yes, I have a minute. What is this about?",
    "How much does it cost per month?",
    "Does it cover cancer and heart attacks?",
    "Hmm, let me think about it. Can you call me back tomorrow?",
]
VOICES = [Voice(engine="flite", name=n, pitch=p) for n, p in (("rms", 1.0), ("slt", 1.2), ("awb", 1.0), ("slt", 1.0), ("kal16", 1.0))]
TOKEN = "bench-token"


def start_server(args, db: Path) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "mads_text.cli", "serve", "--port", "0", "--token", TOKEN, "--db", str(db),
           "--model", args.model, "--asr", args.asr, "--max-tokens", str(args.max_tokens), "--tts", args.tts,
           "--max-calls", str(max(args.levels) + 1), "--log-level", "WARNING", "--idle-timeout", "120",
           "--llm-threads", str(args.llm_threads)]  # fmt: skip
    if args.speculative:
        cmd += ["--speculative", args.speculative]
    cmd += args.serve_arg
    if args.split:
        cmd += ["--split", args.split]
    if args.audio_model:
        # latency per arm, not an A/B: the arms may differ in backbone, prompt or decoding (the store records how)
        cmd += ["--audio-model", args.audio_model, "--allow-mismatch"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    port, out = wait_for_port(proc, timeout_s=600)
    if port is None:
        proc.kill()
        rc = proc.wait()
        said = "".join(out[-30:]).strip() or "(it printed nothing)"
        raise SystemExit(f"server did not start (exit code {rc}):\n{said}")
    return proc, port


def wait_for_port(proc: subprocess.Popen, timeout_s: float) -> tuple[int | None, list[str]]:
    """The port from the server's start-up line, or None when it exits or stays silent; and what it printed."""
    t_end = time.monotonic() + timeout_s
    out: list[str] = []
    while (left := t_end - time.monotonic()) > 0:
        ready, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:  # end of output: the server exited, and everything it said is in `out`
            return None, out
        out.append(line)
        m = re.search(r"ws://[^:]+:(\d+)/v1/call", line)
        if m:
            return int(m.group(1)), out
    return None, out


async def one_call(port: int, idx: int, turns: int, speech: list[np.ndarray], arm: str | None) -> dict:
    c = NativeClient(f"ws://127.0.0.1:{port}/v1/call", TOKEN, caller={"id": f"bench-{idx}-{time.time_ns()}"}, arm=arm)
    res: dict = {"ok": False, "stall_s": 0.0, "agent_audio_s": 0.0, "client_latency_ms": []}
    try:
        s = await c.connect()
        res["call_id"], res["arm"] = s["call_id"], s["arm"]
        for k in range(turns + 1):
            turn = await c.next_turn_end(300)
            if turn is None:
                break
            res["stall_s"] += turn.stall_s()
            res["agent_audio_s"] += len(turn.pcm) / 16000
            if k and c.speech_end_times and turn.first_audio_at:
                res["client_latency_ms"].append((turn.first_audio_at - c.speech_end_times[-1]) * 1000)
            # listen to the end before answering
            wait = (turn.first_audio_at or time.monotonic()) + len(turn.pcm) / 16000 - time.monotonic()
            await asyncio.sleep(max(0.0, wait) + 0.3)
            if k == turns:
                res["ok"] = True
                break
            c.say(speech[(idx + k) % len(speech)])
        await c.hangup()
    except Exception as e:  # noqa: BLE001
        res["error"] = f"{type(e).__name__}: {e}"
        await c.close()
    return res


def pct(xs, q):
    return round(float(np.percentile(xs, q)), 1) if xs else None


async def level(port: int, n: int, turns: int, speech, arm, db: Path) -> dict:
    t0 = time.time()
    results = await asyncio.gather(*(one_call(port, i, turns, speech, arm) for i in range(n)))
    st = CallStore(db, readonly=True)
    ids = {r.get("call_id") for r in results}
    turns = [t for cid in ids if cid for t in st.turns(cid)]
    answers = replies(turns)
    server_lat = [t["latency_ms"] for t in answers if t["latency_ms"]]
    stall = sum(r["stall_s"] for r in results)
    audio = sum(r["agent_audio_s"] for r in results)
    client_lat = [x for r in results for x in r["client_latency_ms"]]
    ok = all(r["ok"] for r in results)
    return {
        "concurrent_calls": n,
        "completed": sum(r["ok"] for r in results),
        "errors": [r["error"] for r in results if "error" in r],
        "server_latency_p50_ms": pct(server_lat, 50),
        "server_latency_p95_ms": pct(server_lat, 95),
        "client_latency_p50_ms": pct(client_lat, 50),
        "client_latency_p95_ms": pct(client_lat, 95),
        "agent_audio_s": round(audio, 1),
        "stall_s": round(stall, 2),
        "stall_share": round(stall / audio, 4) if audio else None,
        "held_real_time": bool(ok and audio and stall / audio < 0.02),
        # the fallback line answers fast: a level whose agent turns failed says nothing about latency
        "failed_turns": sum(1 for t in turns if t["role"] == "agent" and t.get("failed")),
        "agent_turns": sum(1 for t in turns if t["role"] == "agent"),
        "stages": stage_breakdown(answers),
        "wall_s": round(time.time() - t0, 1),
    }


def format_stages(stages: dict) -> str:
    """The per-stage breakdown of the replies' latency, one line per stage."""
    names = {"latency_ms": "whole latency", "endpoint_ms": "  end-of-turn wait", "asr_ms": "  ASR after the turn",
             "ear_ms": "  ear after the turn",
             "llm_first_ms": "  LLM to first clause", "tts_ms": "  TTS first clause", "llm_ms": "LLM whole reply",
             "prompt_new_tokens": "prompt tokens evaluated"}  # fmt: skip
    lines = []
    for key in ("latency_ms", *STAGES, "llm_ms", "prompt_new_tokens"):
        st = stages.get(key) or {}
        if st.get("n"):
            unit = "" if key.endswith("tokens") else " ms"
            lines.append(f"    {names[key]:26} p50 {st['p50']:>8}{unit}  p95 {st['p95']:>8}{unit}  (n={st['n']})")
    return "\n".join(lines) or "    (no stage timings stored)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--asr", default="tiny.en")
    ap.add_argument("--tts", default="flite")
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument("--levels", default="1,2,4", help="concurrency levels to try, in order")
    ap.add_argument("--turns", type=int, default=2, help="caller turns per call")
    ap.add_argument("--arms", default="pipeline,audio")
    ap.add_argument("--split", default="pipeline=1", help="the bench asks for each arm itself; the split only matters to calls that do not")
    ap.add_argument("--audio-model", default=None, help="speech-LLM checkpoint: benchmarks the audio arm too")
    ap.add_argument("--llm-threads", type=int, default=2)
    ap.add_argument("--speculative", default=None, help="llama.cpp n-gram speculative decoding, e.g. ngram-simple")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra `mads serve` option (repeatable)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--from-db", type=Path, default=None, help="only print the per-stage breakdown of the replies in this call store")
    args = ap.parse_args()
    if args.from_db:
        st = CallStore(args.from_db, readonly=True)
        for arm in ("pipeline", "audio"):
            ids = {c["id"] for c in st.calls(arm)}
            turns = [t for t in st.all_turns() if t["call_id"] in ids]
            answers = replies(turns)
            failed = sum(1 for t in turns if t["role"] == "agent" and t.get("failed"))
            if answers:
                print(f"{arm}: {len(ids)} calls, {len(answers)} replies, {failed} failed agent turns\n"
                      f"{format_stages(stage_breakdown(answers))}")
        return
    args.levels = [int(x) for x in args.levels.split(",")]
    tts = TTS("flite")
    speech = [np.concatenate([tts.synthesize(line, VOICES[i % len(VOICES)]), np.zeros(4800, np.float32)]) for i, line in enumerate(LINES)]
    tmp = Path(tempfile.mkdtemp(prefix="mads-bench-serve-"))
    db = tmp / "calls.sqlite"
    print(f"call store: {db}", flush=True)
    t0 = time.time()
    proc, port = start_server(args, db)
    print(f"server up in {time.time() - t0:.1f} s on port {port} (model {args.model}, asr {args.asr}, tts {args.tts}); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)  # fmt: skip
    import httpx

    health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
    report: dict = {"model": args.model, "asr": args.asr, "tts": args.tts, "turns": args.turns, "speculative": args.speculative,
                    "serve_args": args.serve_arg, "arms": {}}
    try:
        for arm in args.arms.split(","):
            if arm not in health["arms"]:
                print(f"{arm}: not available on this server (see `mads serve` start-up line)")
                report["arms"][arm] = {"available": False}
                continue
            rows = []
            for n in args.levels:
                row = asyncio.run(level(port, n, args.turns, speech, arm, db))
                row["load_avg"] = round(os.getloadavg()[0], 1)
                rows.append(row)
                print(f"{arm} x{n}: latency p50 {row['server_latency_p50_ms']} ms, p95 {row['server_latency_p95_ms']} ms "
                      f"(caller side p50 {row['client_latency_p50_ms']}, p95 {row['client_latency_p95_ms']}); "
                      f"stalls {row['stall_s']} s of {row['agent_audio_s']} s agent speech; "
                      f"{row['completed']}/{n} completed; held {row['held_real_time']}; "
                      f"{row['failed_turns']}/{row['agent_turns']} agent turns failed; load {row['load_avg']}", flush=True)  # fmt: skip
                print(format_stages(row["stages"]), flush=True)
                if not row["held_real_time"]:
                    break
            held = [r["concurrent_calls"] for r in rows if r["held_real_time"]]
            report["arms"][arm] = {"available": True, "levels": rows, "max_concurrent_held": max(held) if held else 0}
            print(f"{arm}: {max(held) if held else 0} concurrent calls held in real time (levels tried {[r['concurrent_calls'] for r in rows]})")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written {args.json}")


if __name__ == "__main__":
    main()
