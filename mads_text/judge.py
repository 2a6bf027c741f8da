"""Evaluation step: the LLM judge of Table 7 (Appendix A.2) and score-based filtering.

Scores, each an integer 0-3: ``authenticity`` of the User Agent; ``relevance``,
``consistency``, ``efficiency``, ``human_likeness`` of the Dialog Agent; plus the
binary ``task_success``. The judge answers JSON (schema-constrained where the
backend can) and is retried with the validation error a bounded number of times;
a dialogue it cannot score is returned with ``ok=False`` rather than dropped.

Filtering keeps a dialogue when its mean score (the five 0-3 scores averaged) is at
least ``min_mean`` and at least the ``quantile``-th quantile of the run's mean
scores, and, if asked, when the judge says the task succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from .common.records import DialogueRecord
from .labelers.llm import _ask_json, _short, extract_json, gather_limited, render_history
from .llm import GenParams, LLMBackend

SCORE_FIELDS = ("authenticity", "relevance", "consistency", "efficiency", "human_likeness")

JUDGE_PROMPT = """<task>
You are evaluating a simulated sales or persuasion conversation between an Assistant (the Dialog Agent) and a User (the User Agent). Score it with the metrics below.
</task>
<metrics>
  User Agent:
    authenticity (0-3): how realistic and human-like the user's behaviour is
  Dialog Agent:
    relevance (0-3): how well the assistant's responses match the user's input and the context
    consistency (0-3): how consistently the assistant keeps its persona and stays factually accurate
    efficiency (0-3): how concisely the assistant progresses toward the task goal
    human_likeness (0-3): how natural and human-like the assistant's conversation style is
    task_success (true/false): whether the assistant completed the main task ({task})
  Scale: 0 = very poor, 1 = poor, 2 = good, 3 = excellent.
</metrics>
<conversation>
{dialog_history}
</conversation>
<output_format>
One JSON object only: {{"authenticity": n, "relevance": n, "consistency": n, "efficiency": n, "human_likeness": n, "task_success": true|false, "reason": "<one short sentence>"}}
</output_format>"""


class JudgeScores(BaseModel):
    authenticity: int = Field(ge=0, le=3)
    relevance: int = Field(ge=0, le=3)
    consistency: int = Field(ge=0, le=3)
    efficiency: int = Field(ge=0, le=3)
    human_likeness: int = Field(ge=0, le=3)
    task_success: bool
    reason: str = ""

    @property
    def mean(self) -> float:
        return float(np.mean([getattr(self, f) for f in SCORE_FIELDS]))


class JudgeResult(BaseModel):
    """One line of ``RUN/analysis/judge.jsonl``."""

    dialogue_id: str
    ok: bool = True
    scores: JudgeScores | None = None
    mean: float | None = None
    error: str | None = None
    judge: dict[str, Any] = Field(default_factory=dict)


def judge_schema() -> dict[str, Any]:
    score = {"type": "integer", "enum": [0, 1, 2, 3]}
    return {
        "type": "object",
        "properties": {**{f: score for f in SCORE_FIELDS}, "task_success": {"type": "boolean"},
                       "reason": {"type": "string", "maxLength": 160}},
        "required": [*SCORE_FIELDS, "task_success", "reason"],
        "additionalProperties": False,
    }


def parse_judge(text: str) -> JudgeScores:
    try:
        return JudgeScores.model_validate(extract_json(text))
    except (ValueError, ValidationError) as e:
        raise ValueError(f"not the expected JSON object: {_short(e)}") from e


class Judge:
    def __init__(self, backend: LLMBackend, task: str = "persuade the user to accept the offer",
                 max_attempts: int = 3, temperature: float = 0.0, seed: int = 11, concurrency: int | None = None):
        self.backend = backend
        self.task = task
        self.max_attempts = max_attempts
        self.temperature = temperature
        self.seed = seed
        self.concurrency = concurrency or max(1, getattr(backend, "concurrency", 1))

    def prompt(self, record: DialogueRecord) -> str:
        return JUDGE_PROMPT.format(task=self.task, dialog_history=render_history(record))

    async def ajudge(self, record: DialogueRecord) -> JudgeResult:
        info = {"backend": self.backend.name, "model": self.backend.model}
        try:
            scores, _ = await _ask_json(self.backend, self.prompt(record), judge_schema(), parse_judge,
                                        GenParams(temperature=self.temperature, max_tokens=160, seed=self.seed),
                                        self.max_attempts)
        except ValueError as e:
            return JudgeResult(dialogue_id=record.id, ok=False, error=str(e), judge=info)
        return JudgeResult(dialogue_id=record.id, scores=scores, mean=round(scores.mean, 4), judge=info)

    async def ajudge_all(self, records: Sequence[DialogueRecord]) -> list[JudgeResult]:
        return await gather_limited(self.ajudge, records, self.concurrency)


def filter_by_scores(
    results: Sequence[JudgeResult],
    min_mean: float | None = None,
    quantile: float | None = None,
    require_success: bool = False,
) -> tuple[list[str], dict[str, Any]]:
    """Ids of the dialogues kept, and the thresholds that were applied.

    Kept: judged (``ok``), mean >= ``min_mean`` (if given), mean >= the ``quantile`` of all judged
    means (if given, e.g. 0.25 drops the bottom quarter), and ``task_success`` if ``require_success``.
    """
    if quantile is not None and not 0.0 <= quantile <= 1.0:
        raise ValueError("quantile must be between 0 and 1")
    judged = [r for r in results if r.ok and r.scores is not None]
    means = np.array([r.scores.mean for r in judged]) if judged else np.array([])
    q_thr = float(np.quantile(means, quantile)) if (quantile is not None and means.size) else None
    kept = []
    for r in judged:
        m = r.scores.mean
        if min_mean is not None and m < min_mean:
            continue
        if q_thr is not None and m < q_thr:
            continue
        if require_success and not r.scores.task_success:
            continue
        kept.append(r.dialogue_id)
    info = {"min_mean": min_mean, "quantile": quantile, "quantile_threshold": q_thr,
            "require_success": require_success, "judged": len(judged), "unjudged": len(results) - len(judged),
            "kept": len(kept)}
    return kept, info


def summarize(results: Sequence[JudgeResult]) -> dict[str, Any]:
    """Per-metric means and the task-success rate over judged dialogues (Table 7 columns)."""
    judged = [r.scores for r in results if r.ok and r.scores is not None]
    if not judged:
        return {"judged": 0, "unjudged": len(results)}
    out: dict[str, Any] = {f: float(np.mean([getattr(s, f) for s in judged])) for f in SCORE_FIELDS}
    out["mean"] = float(np.mean([s.mean for s in judged]))
    out["task_success_rate"] = float(np.mean([s.task_success for s in judged]))
    out["judged"] = len(judged)
    out["unjudged"] = len(results) - len(judged)
    return out
