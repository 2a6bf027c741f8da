"""A tiny real synthesized dataset for speech-LLM tests.

Hand-written insurance calls are stored as a self-play run (``RUN/dialogues.jsonl``)
and voiced by the synthesis stage (``mads synth RUN --out AUD --engine flite``)
when that command is installed; otherwise the same layout (``manifest.jsonl`` +
WAV clips, the synth stage's contract) is written here with flite directly.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CALLS = [
    [
        ("agent", "Hello, this is Li Wei from Anxin Insurance. Do you have a minute?"),
        ("user", "Sure, what is this about?"),
        ("agent", "It is about our critical illness plan, which pays a lump sum on diagnosis."),
        ("user", "How much does it cost each month?"),
        ("agent", "It costs two hundred eighty eight per month."),
    ],
    [
        ("agent", "Hello, this is Li Wei from Anxin Insurance. Do you have a minute?"),
        ("user", "I am busy right now, please call me later."),
        ("agent", "Of course, when would be a good time to call you back?"),
        ("user", "Tomorrow morning would be fine."),
        ("agent", "Great, I will call you tomorrow morning."),
    ],
    [
        ("agent", "Hello, this is Li Wei from Anxin Insurance. Do you have a minute?"),
        ("user", "Does the policy cover cancer?"),
        ("agent", "Yes, malignant tumours are among the seventy covered illnesses."),
        ("user", "Is there a waiting period?"),
        ("agent", "Yes, there is a ninety day waiting period for illness."),
    ],
    [
        ("agent", "Hello, this is Li Wei from Anxin Insurance. Do you have a minute?"),
        ("user", "No thanks, I am not interested."),
        ("agent", "I understand. May I ask what protection you have today?"),
        ("user", "I already have insurance from my employer."),
        ("agent", "That is good. Our plan pays cash on top of your employer cover."),
    ],
    [
        ("agent", "Hello, this is Li Wei from Anxin Insurance. Do you have a minute?"),
        ("user", "Can I cancel if I change my mind?"),
        ("agent", "Yes, you have fifteen days to cancel with a full refund."),
        ("user", "How do I apply?"),
        ("agent", "You can apply online in about ten minutes."),
    ],
    [
        ("agent", "Hello, this is Li Wei from Anxin Insurance. Do you have a minute?"),
        ("user", "What is the age limit?"),
        ("agent", "You can buy it between eighteen and sixty years old."),
        ("user", "Okay, send me the application link."),
        ("agent", "Thank you, I will send the link right away."),
    ],
]

# the cheapest real configuration: tiny encoder, no system prompt, one context turn
SPEED_CONFIG_KW = dict(whisper="tiny.en", system="none", max_context_turns=1, projector_hidden=256)
FLITE_VOICES = {"agent": "slt", "user": ["rms", "awb", "kal16"]}


def write_run(run: Path, calls=CALLS) -> Path:
    """A self-play run folder holding the scripted calls as DialogueRecords."""
    from mads_text.common.records import DialogueRecord, Turn

    run.mkdir(parents=True, exist_ok=True)
    with open(run / "dialogues.jsonl", "w") as f:
        for i, call in enumerate(calls):
            rec = DialogueRecord(
                id=f"d{i:03d}", scenario="insurance", group="base",
                persona={"name": f"Customer {i}", "gender": "Male" if i % 2 else "Female", "age": 30 + i},
                persona_id=f"p{i:03d}", persona_prompt="", agent_prompt="",
                turns=[Turn(role=r, text=t) for r, t in call], outcome="max_rounds", rounds=len(call) // 2,
            )
            f.write(rec.model_dump_json() + "\n")
    (run / "manifest.json").write_text(json.dumps({
        "version": 1, "created": "2026-01-01T00:00:00", "scenario": "insurance", "scenario_file": "",
        "scenario_sha256": "", "group": "base", "personas": len(calls), "per_persona": 1, "max_rounds": 3,
        "seed": 0, "backend": "scripted", "model": "none", "prompt_mode": "chat",
        "agent_instruction": "", "expected_dialogues": len(calls),
    }))
    return run


def synth_available() -> bool:
    try:
        import synth.cli  # noqa: F401
    except ImportError:
        return False
    return True


def _flite(text: str, voice: str, out: Path) -> float:
    import soundfile as sf

    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(out)], check=True, capture_output=True)
    info = sf.info(str(out))
    return info.frames / info.samplerate


def write_flite_dataset(run: Path, aud: Path) -> Path:
    """The synth stage's manifest layout, voiced with flite (used when `mads synth` is not installed)."""
    aud.mkdir(parents=True, exist_ok=True)
    (aud / "clips").mkdir(exist_ok=True)
    lines = []
    for n, raw in enumerate((run / "dialogues.jsonl").read_text().splitlines()):
        d = json.loads(raw)
        user_voice = FLITE_VOICES["user"][n % len(FLITE_VOICES["user"])]
        for t, turn in enumerate(d["turns"]):
            voice = FLITE_VOICES["agent"] if turn["role"] == "agent" else user_voice
            rel = f"clips/{d['id']}_{t:02d}_{turn['role']}.wav"
            dur = _flite(turn["text"], voice, aud / rel)
            lines.append({"dialogue_id": d["id"], "turn": t, "role": turn["role"], "text": turn["text"],
                          "audio": rel, "sample_rate": 16000, "duration": round(dur, 3), "speaker_id": voice,
                          "speaker_embedding": None, "scenario": d["scenario"]})
    (aud / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return aud


@functools.lru_cache(maxsize=1)
def tiny_dataset() -> Path:
    """Built once per test process into a temporary folder."""
    return make_dataset(Path(tempfile.mkdtemp(prefix="mads_speech_")))


@functools.lru_cache(maxsize=1)
def tiny_model():
    """SpeechLLM with Whisper tiny.en and SmolLM2, short prompts: the cheapest real model."""
    import torch

    from mads_audio.config import SpeechLLMConfig
    from mads_audio.model import SpeechLLM

    torch.set_num_threads(2)
    return SpeechLLM(SpeechLLMConfig(**SPEED_CONFIG_KW), device="cpu")


def make_dataset(root: Path, calls=CALLS) -> Path:
    run = write_run(root / "run", calls)
    aud = root / "aud"
    if synth_available():
        # flite and no quality gates: seconds instead of minutes, same files and manifest
        cmd = [sys.executable, "-m", "mads_text.cli", "synth", str(run), "--out", str(aud), "--engine", "flite",
               "--asr", "none", "--no-speaker-check", "--no-hf"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0 and (aud / "manifest.jsonl").exists():
            return aud
        shutil.rmtree(aud, ignore_errors=True)
        raise RuntimeError(f"mads synth failed: {r.stderr[-2000:]}")
    return write_flite_dataset(run, aud)
