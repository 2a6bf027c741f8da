"""SUMMARY and EVALUATE of Algorithm 1: one iteration's dialogues through the analysis stage, and the feedback DF.

``analysis.analyze_records`` labels the run (attitude per round, strategies), computes metrics.json (H_avg,
acceptance, ...), draws the figures and, with the judge, writes judge.jsonl, all in ``RUN/analysis/`` as
``mads analyze`` would. The loop reads back H_avg, the per-dialogue attitude chains and the judge scores, and
hands the failed (and a few successful) calls to the evolution.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .common import runstore
from .common.records import DialogueRecord
from .evolve import DialogueFeedback, Feedback, pick_cases
from .llm import make_backend
from .scenario import load_scenario

if TYPE_CHECKING:
    from .optimize import OptimizeConfig


class IterationAnalysis(BaseModel):
    n_dialogues: int
    acceptance_rate: float
    h_avg: float
    h_norm: float
    h_norm_paper: float
    labeler: str
    labelled_ok: int
    chains: dict[str, list[str | None]]
    judge: dict[str, dict[str, Any]] = Field(default_factory=dict)
    judge_summary: dict[str, Any] | None = None


class RunAnalyzer:
    """SUMMARY and EVALUATE of one run through the analysis stage; reruns reuse what is on disk."""

    def __init__(self, cfg: OptimizeConfig, llm_spec: tuple[str, str | None, str | None]):
        from .analysis import LabelingConfig

        self.scenario = load_scenario(cfg.scenario)
        self.llm_spec = llm_spec  # (backend, model, base_url) of the LLM labeler and the judge
        self.judge_on = cfg.judge
        backend, model, base_url = llm_spec
        self.lcfg = LabelingConfig(labeler=cfg.labeler, backend=backend, model=model, base_url=base_url,
                                   acceptance_criteria=self.scenario.acceptance_criteria)

    def _fresh_backend(self):
        # the analysis stage drives LLM calls with its own event loop on a worker thread; a backend object is
        # bound to one loop, so each analysis gets its own (embedded models share the loaded weights)
        backend, model, base_url = self.llm_spec
        return make_backend(backend, model, base_url=base_url)

    def _analyze(self, recs: list[DialogueRecord], out: Path) -> dict[str, Any]:
        from . import analysis

        metrics_path = out / analysis.METRICS
        if metrics_path.exists():
            m = json.loads(metrics_path.read_text())
            same = m.get("labelers", {}).get("config") == self.lcfg.key() and m.get("n_dialogues") == len(recs)
            if same and (not self.judge_on or "judge" in m):
                return m
        needs_llm = self.lcfg.labeler == "llm" or self.judge_on
        backend = self._fresh_backend() if needs_llm else None
        judge = None
        if self.judge_on:
            from .judge import Judge

            judge = Judge(backend, task=f"get the customer to commit: {self.scenario.acceptance_criteria}")
        title = f"{out.parent.parent.name} ({recs[0].group if recs else ''})"
        return analysis.analyze_records(recs, out, self.lcfg, title, backend=backend, n_boot=200, progress=False,
                                        judge=judge)

    async def __call__(self, recs: list[DialogueRecord], out: Path) -> IterationAnalysis:
        from .analysis import LABELS
        from .labelers import DialogueLabels

        m = await asyncio.to_thread(self._analyze, recs, out)
        labels = {x.dialogue_id: x for x in runstore.iter_jsonl(out / LABELS, DialogueLabels)}
        chains = {r.id: labels[r.id].chain() for r in recs if r.id in labels and labels[r.id].attitude_ok}
        judge: dict[str, dict[str, Any]] = {}
        if (out / "judge.jsonl").exists():
            from .judge import JudgeResult

            for x in runstore.iter_jsonl(out / "judge.jsonl", JudgeResult):
                if x.ok and x.scores is not None:
                    judge[x.dialogue_id] = {**x.scores.model_dump(exclude={"reason"}), "mean": x.mean}
        return IterationAnalysis(
            n_dialogues=len(recs), acceptance_rate=m.get("acceptance_rate") or 0.0, h_avg=m["h_avg"],
            h_norm=m["h_norm"], h_norm_paper=m["h_norm_paper"],
            labeler=m.get("labelers", {}).get("attitude", self.lcfg.labeler), labelled_ok=len(chains), chains=chains,
            judge=judge, judge_summary=m.get("judge") if isinstance(m.get("judge"), dict) else None,
        )


def customer_line(persona: dict[str, Any]) -> str:
    keys = ("gender", "age", "marital_status", "occupation", "income_level", "zodiac", "mbti", "health_status",
            "purchased_insurance_before", "monthly_insurance_budget")
    parts = []
    for k in keys:
        if k in persona:
            v = persona[k]
            if isinstance(v, bool):
                v = f"{k.replace('_', ' ')}: {'yes' if v else 'no'}"
            elif k == "monthly_insurance_budget":
                v = f"budget {v}/month"
            parts.append(str(v))
    return ", ".join(parts)


def build_feedback(recs: list[DialogueRecord], ana: IterationAnalysis, cfg: OptimizeConfig, seed: int,
                   notes: list[str] | None = None) -> Feedback:
    """DF: failed dialogues (and a few successful ones) with attitude chains and judge scores."""

    def item(r: DialogueRecord) -> DialogueFeedback:
        return DialogueFeedback(
            id=r.id, outcome=r.outcome, rounds=r.rounds, customer=customer_line(r.persona), turns=r.turns,
            attitudes=[s or "?" for s in ana.chains.get(r.id, [])] or None, judge=ana.judge.get(r.id),
            success=r.outcome == "accept",
        )

    failed = [item(r) for r in recs if r.outcome in ("withdraw", "max_rounds", "undecided")]
    ok = [item(r) for r in recs if r.outcome == "accept"]
    return Feedback(
        n_dialogues=len(recs), acceptance_rate=ana.acceptance_rate, h_avg=ana.h_avg,
        failed=pick_cases(failed, cfg.feedback_failed, seed), succeeded=pick_cases(ok, cfg.feedback_success, seed),
        notes=notes or [],
    )


# --- the loop ------------------------------------------------------------------------------------
