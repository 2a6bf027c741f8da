"""Speech-LLM examples from the synthesis stage's dataset (``mads synth RUN --out AUD``).

``AUD/manifest.jsonl`` has one line per clip: ``dialogue_id``, ``turn``, ``role``,
``text`` (as spoken), ``source_text`` (as written, when normalisation changed it),
``audio`` (a path relative to AUD), ``audio_telephony`` (the 8 kHz variant, with
``--telephony``), ``scenario``, ``flagged`` (failed the ASR round-trip gate)...
Every agent turn that directly follows a customer turn with audio becomes one
example: the turns before the customer's are the text context, the customer's
clip is the audio, the agent's written text is the target (the LLM writes
"288 RMB"; the TTS front end speaks it).
Held-out examples are whole dialogues chosen by a hash of their id, so a
dialogue never lends turns to both sides of the split.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from mads_text.common.records import Turn

SAMPLE_RATE = 16000
MANIFEST = "manifest.jsonl"
Split = Literal["train", "test", "all"]


class DataError(ValueError):
    """A dataset that cannot be read; the message names file, line and field."""


class SpeechExample(BaseModel):
    id: str
    dialogue_id: str
    turn: int = Field(description="index of the agent's reply turn in the dialogue")
    scenario: str | None = None
    context: list[Turn] = Field(default_factory=list, description="turns before the customer's audio turn")
    user_text: str = Field(description="the customer's words as written (the text model's input)")
    user_spoken: str = Field("", description="the words as the TTS spoke them (reference for ASR error)")
    user_audio: str = Field(description="absolute path of the customer's clip")
    reply: str
    reply_audio: str | None = None
    split: Literal["train", "test"] = "train"


def split_of(dialogue_id: str, test_fraction: float) -> Literal["train", "test"]:
    h = int.from_bytes(hashlib.sha256(dialogue_id.encode()).digest()[:4], "big") / 2**32
    return "test" if h < test_fraction else "train"


def _read_manifest(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                # a torn last line from an interrupted writer is skipped, anything else is an error
                if f.read().strip() == "":
                    break
                raise DataError(f"{path}:{n}: not valid JSON") from None
            for key in ("dialogue_id", "turn", "role", "text"):
                if key not in row:
                    raise DataError(f"{path}:{n}: field '{key}' missing")
            if row["role"] not in ("agent", "user"):
                raise DataError(f"{path}:{n}: field 'role' is {row['role']!r}, expected agent or user")
            rows.append(row)
    return rows


def _written(row: dict) -> str:
    return row.get("source_text") or row["text"]


def _scenario_hint(aud: Path) -> str | None:
    """The scenario of the run the dataset was made from, where the dataset says so."""
    for name in ("synth.json", "info.json"):
        p = aud / name
        if p.exists():
            try:
                meta = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            for key in ("scenario", "run_scenario"):
                if isinstance(meta.get(key), str):
                    return meta[key]
            run = meta.get("run") or meta.get("source")
            if isinstance(run, dict) and isinstance(run.get("scenario"), str):
                return run["scenario"]
    return None


def load_examples(
    aud: str | Path,
    split: Split = "all",
    test_fraction: float = 0.1,
    scenario: str | None = None,
    limit: int | None = None,
    audio_key: str = "audio",
    skip_flagged: bool = True,
) -> list[SpeechExample]:
    """Examples of an audio dataset folder, in manifest order.

    ``audio_key`` picks which clip column to hear (``audio_telephony`` for the phone-line variant);
    ``skip_flagged`` drops customer clips that failed the synthesis stage's ASR gate.
    """
    aud = Path(aud)
    manifest = aud / MANIFEST
    if not manifest.exists():
        raise DataError(f"{aud}: no {MANIFEST}; point --data at the output folder of `mads synth`")
    rows = _read_manifest(manifest)
    scenario = scenario or _scenario_hint(aud)
    by_dialogue: dict[str, dict[int, dict]] = defaultdict(dict)
    order: list[str] = []
    for r in rows:
        did = str(r["dialogue_id"])
        if did not in by_dialogue:
            order.append(did)
        by_dialogue[did][int(r["turn"])] = r  # a re-synthesised clip replaces the earlier line
    out: list[SpeechExample] = []
    for did in order:
        turns = by_dialogue[did]
        sp = split_of(did, test_fraction)
        if split != "all" and sp != split:
            continue
        idx = sorted(turns)
        for t in idx:
            r = turns[t]
            prev = turns.get(t - 1)
            if r["role"] != "agent" or prev is None or prev["role"] != "user":
                continue
            clip = prev.get(audio_key)
            if not clip or (skip_flagged and prev.get("flagged")):
                continue
            clip_path = Path(clip) if Path(clip).is_absolute() else aud / clip
            context = [Turn(role=turns[k]["role"], text=_written(turns[k])) for k in idx if k < t - 1]
            reply_audio = r.get(audio_key) or r.get("audio")
            out.append(
                SpeechExample(
                    id=f"{did}:{t}",
                    dialogue_id=did,
                    turn=t,
                    scenario=r.get("scenario") or prev.get("scenario") or scenario,
                    context=context,
                    user_text=_written(prev),
                    user_spoken=prev["text"],
                    user_audio=str(clip_path),
                    reply=_written(r),
                    reply_audio=str(aud / reply_audio) if reply_audio and not Path(reply_audio).is_absolute() else reply_audio,
                    split=sp,
                )
            )
            if limit and len(out) >= limit:
                return out
    return out


def load_clips(aud: str | Path, split: Split = "all", test_fraction: float = 0.1, role: str = "agent",
               skip_flagged: bool = True) -> list[SpeechExample]:  # fmt: skip
    """Every voiced clip of ``role`` with the words it says, as examples without a reply: speech for the alignment
    stage, which learns to spell any voiced line (the agent's lines hold the product's words and most questions)."""
    aud = Path(aud)
    manifest = aud / MANIFEST
    if not manifest.exists():
        raise DataError(f"{aud}: no {MANIFEST}; point --data at the output folder of `mads synth`")
    out: list[SpeechExample] = []
    for r in _read_manifest(manifest):
        did = str(r["dialogue_id"])
        sp = split_of(did, test_fraction)
        if r["role"] != role or not r.get("audio") or (skip_flagged and r.get("flagged")):
            continue
        if split != "all" and sp != split:
            continue
        clip = Path(r["audio"]) if Path(r["audio"]).is_absolute() else aud / r["audio"]
        out.append(SpeechExample(id=f"{did}:{r['turn']}:{role}", dialogue_id=did, turn=int(r["turn"]),
                                 scenario=r.get("scenario"), user_text=_written(r), user_spoken=r["text"],
                                 user_audio=str(clip), reply="", split=sp))  # fmt: skip
    return out


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 PCM at ``sample_rate`` from a WAV/FLAC file."""
    import soundfile as sf

    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as e:
        raise DataError(f"{path}: cannot read audio: {e}") from e
    return resample(audio.mean(axis=1), sr, sample_rate)


def resample(audio: np.ndarray, rate: int, to: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` at ``rate`` Hz brought to ``to`` Hz (polyphase, exact for integer rates); as is when equal."""
    if rate == to:
        return audio
    from scipy.signal import resample_poly

    g = np.gcd(int(rate), to)
    return resample_poly(audio, to // g, int(rate) // g).astype(np.float32)
