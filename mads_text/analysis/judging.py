"""The Table 7 judge over a run: scores in ``judge.jsonl`` (resumable), a filter's kept ids in ``kept_ids.txt``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common import runstore
from ..common.records import DialogueRecord

JUDGE = "judge.jsonl"
KEPT_IDS = "kept_ids.txt"
CHUNK = 8  # dialogues judged concurrently; each finished chunk is on disk before the next starts


def run_judge(records: Sequence[DialogueRecord], out_dir: Path, judge, flt: dict[str, Any]) -> dict[str, Any]:
    """Judge the dialogues not yet in ``judge.jsonl``, filter all of them; returns the metrics.json entries."""
    from ..judge import JudgeResult, filter_by_scores, summarize

    path = out_dir / JUDGE
    done = {j.dialogue_id: j for j in runstore.iter_jsonl(path, JudgeResult)} if path.exists() else {}
    todo = [r for r in records if r.id not in done]
    with runstore.JsonlWriter(path) as w:
        for i in range(0, len(todo), CHUNK):
            for res in asyncio.run(judge.ajudge_all(todo[i : i + CHUNK])):
                w.append(res)
                done[res.dialogue_id] = res
    results = [done[r.id] for r in records if r.id in done]
    kept, info = filter_by_scores(results, flt.get("min_mean"), flt.get("quantile"), flt.get("require_success", False))
    (out_dir / KEPT_IDS).write_text("\n".join(kept) + ("\n" if kept else ""), encoding="utf-8")
    return {"judge": summarize(results), "filter": info}
