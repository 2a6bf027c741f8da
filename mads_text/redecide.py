"""``mads outcome``: decide stored dialogues again with the decision module, one line per dialogue.

Input is anything ``runstore.open_dialogues`` reads (a run folder, a folder holding a dialogues.jsonl, any
.jsonl of records with ``id``, ``scenario``, ``persona`` and ``turns``). Each dialogue is walked round by
round exactly as self-play decides, so the first decisive customer turn gives outcome, round and evidence.
Output lines are appended as they are decided; a rerun into the same file skips ids already there.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .common import runstore
from .common.records import DialogueRecord
from .decision import GENERIC, CallFrame, Decider, turns_of
from .llm import LLMBackend
from .scenario import ScenarioError, load_scenario


class OutcomeLine(BaseModel):
    id: str
    outcome: str  # accept | withdraw | undecided
    round: int | None
    evidence: str
    source: str
    recorded: str  # the outcome the input record held, for comparison


def frame_for(rec: DialogueRecord, given: CallFrame | None, cache: dict[str, CallFrame]) -> CallFrame:
    """The call frame of a record: the one given, else its scenario's when that loads, else a generic one."""
    if given is not None:
        return given
    if rec.scenario not in cache:
        try:
            cache[rec.scenario] = CallFrame.of(load_scenario(rec.scenario))
        except ScenarioError:
            cache[rec.scenario] = GENERIC
    return cache[rec.scenario]


async def redecide(
    src: runstore.DialogueSource,
    out: Path,
    backend: LLMBackend | None,
    frame: CallFrame | None = None,
    concurrency: int = 4,
    on_line: Callable[[OutcomeLine], None] | None = None,
) -> dict[str, Any]:
    done: set[str] = set()
    if out.exists():
        runstore.repair_tail(out)
        done = {json.loads(x)["id"] for x in out.read_text(encoding="utf-8").splitlines() if x.strip()}
    frames: dict[str, CallFrame] = {}
    deciders: dict[CallFrame, Decider] = {}
    sem = asyncio.Semaphore(max(1, concurrency))
    counts: Counter = Counter()
    calls = 0
    todo = [r for r in src.records if r.id not in done]

    async def one(rec: DialogueRecord, writer: runstore.JsonlWriter) -> None:
        nonlocal calls
        f = frame_for(rec, frame, frames)
        decider = deciders.setdefault(f, Decider(f, backend, "hybrid" if backend else "rules"))
        async with sem:
            decision, n_calls, _ = await decider.redecide(turns_of(rec.turns))
        line = OutcomeLine(id=rec.id, outcome=decision.outcome, round=decision.round, evidence=decision.evidence,
                           source=decision.source, recorded=rec.outcome)
        writer.append(line)
        counts[line.outcome] += 1
        calls += n_calls
        if on_line:
            on_line(line)

    out.parent.mkdir(parents=True, exist_ok=True)
    with runstore.JsonlWriter(out) as w:
        await asyncio.gather(*(one(r, w) for r in todo))
    return {"decided": len(todo), "skipped": len(src.records) - len(todo), "outcomes": dict(counts),
            "bad_lines": src.bad_lines, "llm_calls": calls}
