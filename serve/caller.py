"""Simulated callers: MADS personas phoning the server, so an A/B experiment runs without people.

Each caller is a persona from ``mads_text.personas`` driven by the text core's
``UserAgent``. It hears the agent only through Whisper (what the server's
speech sounds like, not the agent's text), answers in its own voice (one stable
voice per persona: gender picks the speaker, the persona id picks pitch and
pace), waits for the agent to finish speaking before it talks, and hangs up
after the project's decision module (``mads_text.decision``, the same as in
self-play) says its words accepted or withdrew and it heard the agent's answer,
or after ``max_turns`` turns. A reply that stays a bare end marker is not
spoken: the caller hangs up, and the call row says so.

Results append to a JSON Lines file, one call per line; a rerun skips the
personas already there.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mads_audio.asr import WhisperASR
from mads_text.agents import UserAgent, derive_seed
from mads_text.common.records import Decision, Turn
from mads_text.decision import Decider, no_words
from mads_text.llm import GenParams, LLMBackend, make_backend
from mads_text.personas import Persona, sample_personas
from mads_text.scenario import Scenario, load_scenario

from .client import NativeClient
from .tts import TTS, Voice, agent_voice, persona_voices


@dataclass
class CallerOptions:
    url: str = "ws://127.0.0.1:8765/v1/call"
    token: str | None = None
    calls: int = 20
    concurrency: int = 2
    scenario: str = "insurance"
    group: str = "sign"
    seed: int = 7
    backend: str = "embedded"
    model: str | None = None
    base_url: str | None = None
    asr: str = "tiny.en"
    tts: str = "flite"
    max_turns: int = 3
    realtime_factor: float = 1.0
    out: Path | None = None
    db: Path | None = None
    json_out: Path | None = None
    include_requested: bool = False  # the report counts calls whose arm the caller chose (left out by default)
    turn_timeout_s: float = 120.0
    max_tokens: int = 40


def _caller_meta(p: Persona, voice: Voice) -> dict[str, Any]:
    keep = {k: p.fields[k] for k in ("gender", "age", "age_range", "zodiac", "mbti") if k in p.fields}
    label = voice.name or voice.preset or "blend"
    return {"id": p.id, "name": p.name, "group": p.group, "voice": f"{voice.engine}:{label}@{voice.pitch:g}", **keep}


async def simulated_call(
    persona: Persona,
    scenario: Scenario,
    backend: LLMBackend,
    asr: WhisperASR,
    tts: TTS,
    opts: CallerOptions,
    voice: Voice,
    mode: str = "transcript",
) -> dict[str, Any]:
    agent = UserAgent(
        persona, scenario, backend, mode=mode,
        params=GenParams(temperature=0.9, max_tokens=opts.max_tokens), seed=derive_seed(opts.seed, persona.id),
    )  # fmt: skip
    decider = Decider(scenario, backend)
    client = NativeClient(opts.url, opts.token, caller=_caller_meta(persona, voice), realtime_factor=opts.realtime_factor)
    rec: dict[str, Any] = {"persona_id": persona.id, "persona": persona.fields, "voice": voice.model_dump(), "turns": []}
    t0 = time.time()
    try:
        session = await client.connect()
        rec.update(call_id=session.get("call_id"), arm=session.get("arm"))
        history: list[Turn] = []
        decision: Decision | None = None
        said = 0
        latencies: list[float] = []
        while True:
            turn = await client.next_turn_end(opts.turn_timeout_s)
            if turn is None:
                break
            if said and client.speech_end_times and turn.first_audio_at is not None:
                latencies.append(round((turn.first_audio_at - client.speech_end_times[-1]) * 1000, 1))
            # the agent is heard through ASR, while its audio plays out
            pcm = turn.pcm
            heard = await asyncio.to_thread(asr.transcribe, pcm) if len(pcm) else None
            if turn.first_audio_at is not None:
                wait = turn.first_audio_at + len(pcm) / 16000 / opts.realtime_factor - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            text = heard.text if heard and heard.text else "..."
            history.append(Turn(role="agent", text=text))
            rec["turns"].append({"role": "agent", "heard": text, "sent_text": turn.text, "turn": turn.turn})
            if decision is not None or said >= opts.max_turns:
                break
            reply = await agent.next_turn(history)
            if not reply.text:  # only ever a bare end marker or stage directions: nothing to say, the caller hangs up
                decision = no_words(said + 1, reply.marker)
                break
            audio = await asyncio.to_thread(tts.synthesize, reply.text, voice)
            client.say(np.concatenate([audio, np.zeros(1600, dtype=np.float32)]))
            history.append(Turn(role="user", text=reply.text, marker=reply.marker))
            rec["turns"].append({"role": "user", "text": reply.text, "marker": reply.marker})
            said += 1
            step = await decider.decide(history, reply.marker)
            if step.verdict != "continue":  # hear the agent's answer, then hang up
                decision = Decision(outcome=step.verdict, round=said, source=step.source, evidence=step.evidence,
                                    marker=reply.marker)
        rec["decision"] = (decision or Decision(outcome="undecided", source="max_turns")).model_dump()
        rec["client_latency_ms"] = latencies
        if not client.closed.is_set():
            await client.hangup()
            rec["ended_by"] = "caller"
        else:
            rec["ended_by"] = "server"
        await client.close()
        rec["close_code"] = client.close_code
        rec["end"] = (client.end or {}).get("reason")
        rec["server_user_transcripts"] = [m["text"] for m in client.user_transcripts]
    except Exception as e:  # noqa: BLE001
        rec["error"] = f"{type(e).__name__}: {e}"
        await client.close()
    rec["wall_s"] = round(time.time() - t0, 2)
    return rec


def _append_line(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")  # one write per finished call: a crash leaves at most a torn last line


def _done_ids(path: Path | None) -> set[str]:
    done: set[str] = set()
    if path and path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from an interrupted run
            if obj.get("persona_id") and not obj.get("error"):
                done.add(obj["persona_id"])
    return done


def _report_url(ws_url: str, include_requested: bool = False) -> str:
    u = urllib.parse.urlsplit(ws_url)
    scheme = "https" if u.scheme == "wss" else "http"
    return urllib.parse.urlunsplit((scheme, u.netloc, "/v1/report", "include_requested=1" if include_requested else "", ""))


def fetch_report(opts: CallerOptions) -> dict[str, Any] | None:
    if opts.db is not None:
        from .report import ab_report
        from .store import CallStore

        return ab_report(CallStore(opts.db, readonly=True), include_requested=opts.include_requested)
    import httpx

    url = _report_url(opts.url, opts.include_requested)
    headers = {"Authorization": f"Bearer {opts.token}"} if opts.token else {}
    r = httpx.get(url, headers=headers, timeout=30)
    if r.status_code != 200:
        raise ValueError(f"{url} answered {r.status_code}: {r.text.strip()[:200]}")
    return r.json()


async def run_callers(opts: CallerOptions) -> tuple[str, dict[str, Any] | None]:
    scenario = load_scenario(opts.scenario)
    personas = sample_personas(scenario, opts.group, opts.calls, opts.seed)
    done = _done_ids(opts.out)
    todo = [p for p in personas if p.id not in done]
    extra = {"threads": 1} if opts.backend == "embedded" else {}
    backend = make_backend(opts.backend, opts.model, base_url=opts.base_url, parallel=max(1, opts.concurrency), **extra)
    mode = "transcript" if opts.backend in ("embedded", "transformers") else "chat"
    asr = WhisperASR.shared(opts.asr, threads=1)
    tts = TTS(opts.tts, threads=1)
    # voices for the whole persona set at once: as far apart as the engine allows, the agent's voice excluded
    voices = persona_voices([(p.id, p.fields) for p in personas], opts.tts, agent_voice(scenario.name, scenario.agent.voice, opts.tts))
    sem = asyncio.Semaphore(opts.concurrency)
    results: list[dict[str, Any]] = []
    if opts.out:
        opts.out.parent.mkdir(parents=True, exist_ok=True)

    async def one(p: Persona) -> None:
        async with sem:
            rec = await simulated_call(p, scenario, backend, asr, tts, opts, voices[p.id], mode)
        results.append(rec)
        if opts.out:
            await asyncio.to_thread(_append_line, opts.out, json.dumps(rec, default=str))
        decided = (rec.get("decision") or {}).get("outcome")
        status = rec.get("error") or f"{rec.get('arm')} arm, {sum(t['role'] == 'user' for t in rec['turns'])} turns, decision {decided}"
        print(f"[{len(results)}/{len(todo)}] {p.id}: {status} ({rec['wall_s']} s)", flush=True)

    await asyncio.gather(*(one(p) for p in todo))
    errors = [r for r in results if r.get("error")]
    lat = [x for r in results for x in r.get("client_latency_ms", [])]
    decisions = {m: sum((r.get("decision") or {}).get("outcome") == m for r in results) for m in ("accept", "withdraw", "undecided")}
    summary = f"{len(results)} calls placed ({len(done)} already in {opts.out}), {len(errors)} failed; caller decisions {decisions}"
    if lat:
        summary += f"; caller-side response latency p50 {np.percentile(lat, 50):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms"
    if errors:
        summary += "\nfirst error: " + str(errors[0]["error"])
    # the server closes a call a moment after its caller hung up: give the last ones time to end
    report = await asyncio.to_thread(fetch_report, opts)
    for _ in range(40):
        if report is None or not report.get("active_calls"):
            break
        await asyncio.sleep(0.25)
        report = await asyncio.to_thread(fetch_report, opts)
    if report is not None and opts.json_out:
        opts.json_out.parent.mkdir(parents=True, exist_ok=True)
        opts.json_out.write_text(json.dumps(report, indent=2) + "\n")
    return summary, report
