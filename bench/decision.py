"""How well the decision module agrees with a careful reader, beside its controls, and what it costs.

Reads hand-labelled calls (``tests/data/sales_calls_labelled.jsonl``, see docs/labelling.md: every customer
round labelled continue / accept / withdraw) and decides every round with:

- ``majority``: always "continue" (the majority class);
- ``rules``: the cue rules alone;
- ``llm``: one multiple-choice question per round to the LLM, no rules (A = accept, D = withdraw);
- ``hybrid``: the module as self-play runs it (rules; the LLM confirms or vetoes candidates).

Prints per-round accuracy and macro-F1, call-level agreement (the first decisive round's outcome, or
undecided), the accept/withdraw confusion, and LLM calls and seconds per round. With ``--run RUN`` it also
prints the share of a self-play run's wall time spent deciding (``stats.decision_s / stats.wall_s``).

    python bench/decision.py --data tests/data/sales_calls_labelled.jsonl [--split test] [--model qwen1.5b]
    python bench/decision.py --data tests/data/decision_calls_seed1919.jsonl --variants rules,hybrid
    python bench/decision.py --run RUN
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

from mads_text.common.records import DialogueRecord, Turn
from mads_text.decision import CallFrame, Decider, LLMAnswer, Step
from mads_text.llm import make_backend
from mads_text.scenario import load_scenario

LABELS = ("continue", "accept", "withdraw")


def load(path: Path, split: str | None) -> list[DialogueRecord]:
    recs = [DialogueRecord.model_validate_json(x) for x in path.read_text().splitlines() if x.strip()]
    return [r for r in recs if split in (None, "all") or getattr(r, "split", None) == split]


def rounds(rec: DialogueRecord):
    """(history up to and including the customer turn, gold decision) per labelled round."""
    gold = {lab["round"]: lab["decision"] for lab in rec.labels}  # type: ignore[attr-defined]
    k = 0
    for i, t in enumerate(rec.turns):
        if t.role == "user":
            k += 1
            if k in gold:
                yield rec.turns[: i + 1], gold[k]


class LLMOnly:
    """The control: ask the LLM the module's question on every round and take its answer as the decision."""

    def __init__(self, decider: Decider):
        self.d = decider

    async def decide(self, turns: list[Turn], marker: str | None) -> Step:
        t0 = time.perf_counter()
        ans, calls = await self.d._ask(turns)
        verdict = {"A": "accept", "D": "withdraw"}.get(ans.choice if isinstance(ans, LLMAnswer) else "", "continue")
        return Step(verdict, "llm", "", calls, time.perf_counter() - t0)


class Majority:
    async def decide(self, turns: list[Turn], marker: str | None) -> Step:
        return Step("continue", "majority", "")


def macro_f1(gold: list[str], pred: list[str]) -> float:
    f1s = []
    for c in LABELS:
        tp = sum(g == p == c for g, p in zip(gold, pred))
        fp = sum(p == c != g for g, p in zip(gold, pred))
        fn = sum(g == c != p for g, p in zip(gold, pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


async def evaluate(name: str, make, recs: list[DialogueRecord]) -> dict:
    gold_r, pred_r, gold_c, pred_c = [], [], [], []
    calls, secs = 0, 0.0
    for rec in recs:
        decider = make(rec)
        first_gold = first_pred = "undecided"
        for turns, gold in rounds(rec):
            step = await decider.decide(turns, turns[-1].marker)
            gold_r.append(gold)
            pred_r.append(step.verdict)
            calls, secs = calls + step.llm_calls, secs + step.seconds
            if first_gold == "undecided" and gold != "continue":
                first_gold = gold
            if first_pred == "undecided" and step.verdict != "continue":
                first_pred = step.verdict
        gold_c.append(first_gold)
        pred_c.append(first_pred)
    n = len(gold_r)
    return {
        "variant": name, "rounds": n, "calls": len(gold_c),
        "round_accuracy": sum(g == p for g, p in zip(gold_r, pred_r)) / n, "round_macro_f1": macro_f1(gold_r, pred_r),
        "call_agreement": sum(g == p for g, p in zip(gold_c, pred_c)) / len(gold_c),
        "confusion": dict(Counter(f"{g}->{p}" for g, p in zip(gold_r, pred_r) if g != p)),
        "llm_calls_per_round": calls / n, "seconds_per_round": secs / n,
    }


def frame_of(rec: DialogueRecord) -> CallFrame:
    return CallFrame.of(load_scenario(rec.scenario))


async def main_eval(args) -> None:
    recs = load(Path(args.data), args.split)
    backend = make_backend("embedded", args.model, parallel=1) if args.model != "none" else None
    variants = {"majority": lambda r: Majority(), "rules": lambda r: Decider(frame_of(r), mode="rules")}
    if backend is not None:
        variants["llm"] = lambda r: LLMOnly(Decider(frame_of(r), backend))
        variants["hybrid"] = lambda r: Decider(frame_of(r), backend)
    gold = Counter(g for r in recs for _, g in rounds(r))
    print(f"{len(recs)} calls, {sum(gold.values())} labelled rounds ({dict(gold)}), split={args.split}")
    for name, make in variants.items():
        if args.variants and name not in args.variants.split(","):
            continue
        res = await evaluate(name, make, recs)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()}))


def main_run(run: Path) -> None:
    recs = [DialogueRecord.model_validate_json(x) for x in (run / "dialogues.jsonl").read_text().splitlines() if x.strip()]
    wall = sum(r.stats.wall_s for r in recs)
    dec = sum(r.stats.decision_s for r in recs)
    calls = sum(r.stats.decision_llm_calls for r in recs)
    turns = sum(r.rounds for r in recs)
    print(f"{run}: {len(recs)} dialogues, {turns} customer turns; deciding took {dec:.1f} s of {wall:.1f} s "
          f"dialogue wall time ({100 * dec / wall:.1f} %), {calls} LLM checks ({calls / max(1, turns):.2f} per turn)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="tests/data/sales_calls_labelled.jsonl")
    ap.add_argument("--split", default="all", help="train, test or all")
    ap.add_argument("--model", default="qwen1.5b", help="embedded model of the LLM check; 'none' for rules only")
    ap.add_argument("--variants", help="comma-separated subset of majority,rules,llm,hybrid (default: all); 'llm' asks "
                    "the model on every round and is the slow one")
    ap.add_argument("--run", help="report the decision's share of this run's wall time instead")
    a = ap.parse_args()
    if a.run:
        main_run(Path(a.run))
    else:
        asyncio.run(main_eval(a))
