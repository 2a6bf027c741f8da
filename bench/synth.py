"""Real-time factor of the synth stage against the raw TTS engine on the same text, and peak memory.

    python bench/synth.py [--run RUN] [--engine kokoro] [--dialogues 4] [--threads 2]

Phases, each in its own process so peak RSS is per phase (engine and models
are loaded before the clock starts):
  raw     engine.synthesize on every speakable turn with the voice the stage assigns
  stage   the stage with the gates off (clips, stereo mix, transcripts, manifest): the overhead goal is <= 10 %
  gated   the full default stage: + Whisper round trip with retakes, speaker vectors, telephony, HF export
  raw2    raw again, to show how much the machine's load moved the numbers
RTF = wall seconds / audio seconds (lower is faster). Without --run, hand-written dialogues are used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIALOGUES = [
    [
        ("agent", "Good afternoon, this is Li Wei from Harbour Life. Do you have two minutes to talk about critical illness cover?"),
        ("user", "Two minutes, sure. What is this about exactly?"),
        ("agent", "Our plan pays five hundred thousand as a lump sum when a covered illness is diagnosed, for 288 a month."),
        ("user", "That sounds like a lot every month. I already have some insurance through work."),
        ("agent", "Work cover usually ends when you change jobs, and it rarely pays cash you can use for lost income."),
        ("user", "Hmm, I had not thought about that. Can you send me the details by message?"),
    ],
    [
        ("agent", "Hello, I am calling about the health protection plan you asked about on our website last week."),
        ("user", "Oh right, I remember. I was mostly curious about the waiting period."),
        ("agent", "The waiting period is ninety days for illness and none at all for accidents."),
        ("user", "And if I cancel after a week, do I get my money back?"),
        ("agent", "Yes, there is a fifteen day cooling off period with a full refund, no questions asked."),
        ("user", "Okay, that makes me feel better. I think I will go ahead with the starter plan."),
    ],
    [
        ("agent", "Hi, this is Li Wei again. Last time you said you wanted to talk it over with your family."),
        ("user", "Yes, my husband thinks we should wait until the end of the year."),
        ("agent", "I understand. Would it help if I prepared a quote for both of you, so you can compare?"),
        ("user", "Maybe, but honestly the budget is tight right now with the new apartment."),
        ("agent", "The starter plan is 178 a month and covers the same seventy major illnesses."),
        ("user", "Let me think about it. Please call me again in December."),
    ],
    [
        ("agent", "Good morning, do you have a moment to hear about a plan that protects your income if you fall ill?"),
        ("user", "Not really, I am on my way to a meeting."),
        ("agent", "No problem at all. When would be a better time to call you back?"),
        ("user", "Tomorrow after six would be fine, I suppose."),
        ("agent", "Great, I will call you tomorrow at half past six. Have a good meeting."),
        ("user", "Thanks, talk to you then. Bye."),
    ],
]


def make_run(path: Path, n: int) -> Path:
    from mads_text.common.records import DialogueRecord, Turn

    path.mkdir(parents=True, exist_ok=True)
    with open(path / "dialogues.jsonl", "w") as f:
        for k in range(n):
            turns = DIALOGUES[k % len(DIALOGUES)]
            rec = DialogueRecord(
                id=f"bench-d{k:02d}", scenario="insurance", group="sign", persona_id=f"bench-p{k % 3}",
                persona={"gender": "Female" if k % 3 != 1 else "Male", "age": 30 + 11 * k},
                persona_prompt="", agent_prompt="", turns=[Turn(role=r, text=t) for r, t in turns],
                outcome="max_rounds", rounds=len(turns) // 2,
            )  # fmt: skip
            f.write(rec.model_dump_json() + "\n")
    return path


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase(name: str, run: Path, engine: str, threads: int, work: Path) -> dict:
    from synth.dialogue import SynthConfig, Worker
    from synth.quality import QAConfig
    from synth.stage import synth_run

    gated = name == "gated"
    qa = QAConfig() if gated else QAConfig(asr=None, speaker=False)
    cfg = SynthConfig(engine=engine, qa=qa, telephony=gated, hf=gated, threads=threads)
    t0 = time.perf_counter()
    w = Worker(cfg, threads)  # loads the engine (and, for gated, nothing yet: models load lazily)
    if gated:
        import numpy as np

        w.qa.transcribe(np.zeros(16000, np.float32), 16000)
        w.qa.dvector(np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1, 24000)
    w.engine.synthesize("Warm up.", __import__("synth.voice", fromlist=["Voice"]).Voice(engine=engine, preset="agent_female"))
    load_s = time.perf_counter() - t0
    if name.startswith("raw"):
        from mads_text.common.runstore import read_dialogues
        from synth.stage import load_voicebook, persona_key
        from synth.textnorm import speakable

        book = load_voicebook(work / "voices_src", engine)
        recs = read_dialogues(run)
        texts = [(speakable(t.text), book.agents["insurance"] if t.role == "agent" else book.personas[persona_key(r)])
                 for r in recs for t in r.turns]  # fmt: skip
        audio = 0.0
        t0 = time.perf_counter()
        for text, spk in texts:
            if text:
                pcm, sr = w.engine.synthesize(text, spk.voice)
                audio += len(pcm) / sr
        wall = time.perf_counter() - t0
        return {"phase": name, "audio_s": round(audio, 2), "wall_s": round(wall, 2), "rtf": round(wall / audio, 4),
                "load_s": round(load_s, 1), "peak_rss_mb": round(peak_mb())}  # fmt: skip
    out = work / f"aud_{name}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = synth_run(run, out, cfg, progress=False)
    wall = time.perf_counter() - t0
    return {"phase": name, "audio_s": round(res.audio_s, 2), "wall_s": round(wall, 2), "rtf": round(wall / res.audio_s, 4),
            "load_s": round(load_s, 1), "peak_rss_mb": round(peak_mb()), "timings": res.timings,
            "quality": {k: res.quality.get(k) for k in ("wer_mean", "same_speaker_cos_mean", "diff_speaker_cos_mean",
                                                        "retaken_clips", "flagged_clips")}}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="run folder (default: hand-written dialogues)")
    ap.add_argument("--engine", default="kokoro")
    ap.add_argument("--dialogues", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--phases", default="raw,stage,gated,raw2")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.phase:
        print(json.dumps(phase(a.phase, a.run, a.engine, a.threads, a.work)))
        return
    work = Path(tempfile.mkdtemp(prefix="mads-bench-synth-"))
    try:
        run = a.run or make_run(work / "run", a.dialogues)
        # the voices every phase uses: assigned once, as the stage would
        from synth.dialogue import SynthConfig
        from synth.quality import QAConfig
        from synth.stage import synth_run

        synth_run(run, work / "voices_src", SynthConfig(engine=a.engine, qa=QAConfig(asr=None, speaker=False), hf=False),
                  progress=False, limit=0)  # fmt: skip
        rows = []
        for name in a.phases.split(","):
            cmd = [sys.executable, __file__, "--phase", name, "--run", str(run), "--engine", a.engine,
                   "--threads", str(a.threads), "--work", str(work)]  # fmt: skip
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"phase {name} failed:\n{r.stderr[-3000:]}")
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            row = rows[-1]
            print(f"{row['phase']:6s} audio {row['audio_s']:7.1f} s  wall {row['wall_s']:7.1f} s  RTF {row['rtf']:.3f}  "
                  f"peak RSS {row['peak_rss_mb']} MB  (load {row['load_s']} s)", flush=True)  # fmt: skip
            if "timings" in row:
                print(f"       timings {row['timings']}  quality {row['quality']}", flush=True)
        by = {r["phase"]: r for r in rows}
        raws = [by[k]["rtf"] for k in ("raw", "raw2") if k in by]
        if raws and "stage" in by:
            base = sum(raws) / len(raws)
            print(f"stage overhead over the raw engine: {100 * (by['stage']['rtf'] / base - 1):+.1f} % "
                  f"(raw RTF {', '.join(f'{x:.3f}' for x in raws)}; goal <= 10 %)")
        if raws and "gated" in by:
            base = sum(raws) / len(raws)
            print(f"with quality gates, telephony and HF export: {100 * (by['gated']['rtf'] / base - 1):+.1f} %")
        print(json.dumps({"engine": a.engine, "threads": a.threads, "phases": rows}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
