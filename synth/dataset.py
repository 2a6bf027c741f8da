"""Hugging Face ``datasets`` export: one row per customer turn that the agent answers.

Columns: the customer turn (text and audio), the dialogue context before it
(text turns, plus where it starts in the stereo call so audio context can be
cut from there), the agent's reply (text and audio), and provenance (run,
scenario, persona id and fields, voices, outcome). Audio bytes are embedded
in the Arrow files, so the folder is self-contained.

Reading needs no audio decoder: ``load_from_disk(AUD/hf).cast_column("user_audio",
Audio(decode=False))`` gives the WAV bytes (datasets 4+ decodes through
torchcodec, which is not part of the CPU install).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mads_text.common.records import DialogueRecord

from .assign import VoiceBook


def rows(out: Path, recs: list[DialogueRecord], book: VoiceBook, telephony: bool) -> list[dict]:
    from .stage import MANIFEST, _read_lines, persona_key

    clips = {(x["dialogue_id"], x["turn"]): x for x in _read_lines(out / MANIFEST)}
    table = []
    for r in recs:
        pid = persona_key(r)
        for i, t in enumerate(r.turns):
            if t.role != "user" or not clips.get((r.id, i), {}).get("audio"):
                continue
            nxt = next((j for j in range(i + 1, len(r.turns)) if r.turns[j].role == "agent"), None)
            if nxt is None or (r.id, nxt) not in clips:
                continue  # no spoken reply to learn from
            u, a = clips[(r.id, i)], clips[(r.id, nxt)]
            row = {
                "id": f"{r.id}/{i:02d}",
                "dialogue_id": r.id,
                "turn": i,
                "context": [{"role": c.role, "text": c.text} for c in r.turns[:i]],
                "user_text": u["text"],
                "user_audio": str(out / u["audio"]),
                "agent_text": a["text"],
                "agent_audio": str(out / a["audio"]) if a.get("audio") else None,  # --roles user: text only
                "call": u["call"],
                "user_start": u["start"],
                "sample_rate": u["sample_rate"],
                "speaker_id": u["speaker_id"],
                "persona_id": pid,
                "persona": json.dumps(r.persona, ensure_ascii=False),
                "user_voice": book.personas[pid].voice.model_dump_json(),
                "scenario": r.scenario,
                "group": r.group,
                "outcome": r.outcome,
                "run": u["run"],
                "user_wer": u.get("wer"),
                "agent_wer": a.get("wer"),
            }
            if telephony:
                row["user_audio_8k"] = str(out / u["audio_telephony"]) if u.get("audio_telephony") else None
                row["agent_audio_8k"] = str(out / a["audio_telephony"]) if a.get("audio_telephony") else None
            table.append(row)
    return table


def export_hf(out: Path, recs: list[DialogueRecord], book: VoiceBook, telephony: bool) -> Path | None:
    import datasets
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    table = rows(out, recs, book, telephony)
    dest = out / "hf"
    tmp = out / "hf.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if not table:
        return None
    ds = datasets.Dataset.from_list(table)
    audio_cols = ["user_audio", "agent_audio"] + (["user_audio_8k", "agent_audio_8k"] if telephony else [])
    for col in audio_cols:
        ds = ds.cast_column(col, datasets.Audio())
    ds.save_to_disk(str(tmp))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
