"""Export good self-play dialogues as a fine-tuning dataset.

Each kept dialogue becomes one chat example: the system message is the Dialog
Agent prompt the dialogue was generated with (Appendix A.4 template with its
``{prompt_k}``), the agent's turns are assistant targets and the customer's turns
are user messages. When the agent opens the call, the chat-mode "call connected"
cue stands in as the first user message, exactly as ``DialogAgent`` sees it in
chat mode, so a fine-tuned model can be dropped into self-play unchanged.

Filters (each dropped dialogue is counted under its first failing reason):
outcome, LLM errors, role slips left in the final text, too few agent turns,
duplicates, and, when the run has judge scores (``RUN/analysis/``), a minimum
judge mean, a quantile of the judge mean and task success.

Writes ``DS/train.jsonl`` and ``DS/test.jsonl`` (held-out personas), a Hugging
Face ``datasets`` folder ``DS/hf`` and ``DS/export.json`` (settings and counts).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, Field

from . import prompts
from .common import runstore
from .common.records import DialogueRecord, RunManifest
from .replies import GENERIC_PREFIXES

# the judge's five 0-3 scores (mads_text.judge.SCORE_FIELDS); its mean is over all five
JUDGE_DIMS = ("authenticity", "relevance", "consistency", "efficiency", "human_likeness")


class ExportConfig(BaseModel):
    outcomes: list[str] = Field(default_factory=lambda: ["accept"], description="Outcomes kept")
    min_agent_turns: int = Field(2, ge=1)
    min_judge_mean: float | None = Field(None, description="Keep dialogues whose judge mean is at least this (0-3)")
    judge_quantile: float | None = Field(None, ge=0, le=1, description="Keep dialogues at or above this quantile of the judge mean")
    require_task_success: bool = False
    max_recorded_slips: int | None = Field(None, description="Also drop dialogues whose self-play guard counted more slips")
    keep_unrepaired_slips: bool = Field(False, description="Keep dialogues holding a reply the guard could not repair "
                                        "(stats.role_slips_kept: every sample slipped and one was kept as written)")
    test_fraction: float = Field(0.1, ge=0, lt=1)
    seed: int = 0
    opt_best: bool = Field(False, description="From an optimize folder, take only the best iteration's run")


class ExportError(ValueError):
    pass


# --- finding runs ------------------------------------------------------------------------


def expand_inputs(paths: Iterable[str | Path], opt_best: bool = False) -> list[tuple[Path, int | None]]:
    """Run folders with their optimize iteration (None for a plain run).

    An optimize folder (``OPT/iter_k/run``, or per-cluster ``OPT/cluster_c/iter_k/run``) expands to its
    iteration runs, or to the best one with ``opt_best``.
    """
    out: list[tuple[Path, int | None]] = []
    for raw in paths:
        p = Path(raw)
        if (p / runstore.DIALOGUES).exists():
            m = re.fullmatch(r"iter_(\d+)", p.parent.name)
            out.append((p, int(m.group(1)) if m else None))
            continue
        if opt_best and (p / "result.json").exists():
            res = json.loads((p / "result.json").read_text())
            runs = res.get("best_runs") or ([res["best_run"]] if res.get("best_run") else [])
            if not runs:
                raise ExportError(f"{p / 'result.json'}: no best run recorded yet")
            for r in runs:
                rp = Path(r) if Path(r).is_absolute() else p / r
                m = re.fullmatch(r"iter_(\d+)", rp.parent.name)
                out.append((rp, int(m.group(1)) if m else None))
            continue
        iters = sorted(p.glob("**/iter_*/run/" + runstore.DIALOGUES))
        if not iters:
            raise ExportError(f"{p}: neither a run folder (no {runstore.DIALOGUES}) nor an optimize folder")
        for d in iters:
            out.append((d.parent, int(d.parent.parent.name.split("_")[1])))
    return out


# --- judge scores (written by the analysis stage) ------------------------------------------


def load_judge(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Judge scores per dialogue id from ``RUN/analysis/judge.jsonl`` (empty when the run was not judged).

    Lines are ``mads_text.judge.JudgeResult``; dialogues the judge could not score (``ok`` false) are
    left out. Each entry has the raw scores, ``mean`` (over the five 0-3 scores) and ``task_success``.
    """
    path = run_dir / "analysis" / "judge.jsonl"
    if not path.exists():
        return {}
    out: dict[str, dict[str, Any]] = {}
    for obj in runstore.iter_jsonl(path):
        did = obj.get("dialogue_id")
        scores = obj.get("scores")
        if not did or not obj.get("ok", True) or not isinstance(scores, dict):
            continue
        mean = obj.get("mean")
        if not isinstance(mean, (int, float)):
            vals = [float(scores[k]) for k in JUDGE_DIMS if isinstance(scores.get(k), (int, float))]
            mean = sum(vals) / len(vals) if vals else None
        out[did] = {"scores": scores, "mean": mean, "task_success": scores.get("task_success")}
    return out


# --- quality checks ----------------------------------------------------------------------

def _overlap(a: str, b: str) -> float:
    wa, wb = set(re.findall(r"[a-z0-9']+", a.lower())), set(re.findall(r"[a-z0-9']+", b.lower()))
    return len(wa & wb) / len(wa | wb) if wa and wb else 0.0


MARKER_TEXT_RE = re.compile(r"\[\s*(ACCEPT|WITHDRAW)\w*\s*\]", re.IGNORECASE)


def slip_reasons(rec: DialogueRecord, agent_name: str, agent_company: str) -> list[str]:
    """Role slips left in the final text (the self-play guard repairs most; these got through)."""
    user_name = str(rec.persona.get("name", "Customer"))
    names = [agent_name, user_name, *GENERIC_PREFIXES]
    prefix = re.compile(r"(?:^|\s)\**(" + "|".join(re.escape(n) for n in names) + r")\**\s*:", re.IGNORECASE)
    reasons = []
    prev_user = None
    seen_agent: set[str] = set()
    for t in rec.turns:
        text = t.text.strip()
        if not text:
            reasons.append(f"empty {t.role} turn")
            continue
        if prefix.search(text):
            reasons.append(f"speaker prefix inside a {t.role} turn")
        if t.role == "agent":
            if MARKER_TEXT_RE.search(text):
                reasons.append("end marker in an agent turn")
            if prev_user and len(text.split()) >= 4 and _overlap(text, prev_user) >= 0.8:
                reasons.append("agent echoed the customer")
            key = " ".join(text.lower().split())
            if key in seen_agent:
                reasons.append("agent repeated itself")
            seen_agent.add(key)
        else:
            low = text.lower()
            if any(p.lower() in low for p in (f"I'm {agent_name}", f"I am {agent_name}", f"calling from {agent_company}")):
                reasons.append("customer spoke as the salesperson")
            prev_user = text
    return reasons


def to_messages(rec: DialogueRecord) -> list[dict[str, str]]:
    """Chat messages with the agent's turns as assistant targets; a trailing customer turn is dropped."""
    msgs = [{"role": "system", "content": rec.agent_prompt}]
    turns = list(rec.turns)
    while turns and turns[-1].role == "user":
        turns.pop()
    if turns and turns[0].role == "agent":
        msgs.append({"role": "user", "content": prompts.CALL_CONNECTED})
    for t in turns:
        msgs.append({"role": "assistant" if t.role == "agent" else "user", "content": t.text.strip()})
    return msgs


def _split_key(persona_id: str, seed: int) -> float:
    h = hashlib.sha256(f"{seed}/{persona_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _quantile(values: list[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


# --- export ------------------------------------------------------------------------------


def export(inputs: list[str | Path], out_dir: str | Path, cfg: ExportConfig | None = None) -> dict[str, Any]:
    """Filter the dialogues of ``inputs`` into a dataset folder; returns the counts written to export.json."""
    from .scenario import ScenarioError, load_scenario

    cfg = cfg or ExportConfig()
    runs = expand_inputs(inputs, cfg.opt_best)
    judge_needed = cfg.min_judge_mean is not None or cfg.judge_quantile is not None or cfg.require_task_success
    examples: list[dict[str, Any]] = []
    dropped: Counter = Counter()
    per_run: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    candidates: list[tuple[DialogueRecord, dict | None, Path, int | None, RunManifest | None]] = []
    for run_dir, iteration in runs:
        recs = runstore.read_dialogues(run_dir, strict=False)
        man = runstore.read_manifest(run_dir)
        judge = load_judge(run_dir)
        if judge_needed and not judge:
            raise ExportError(
                f"{run_dir}: judge filters were asked for but {run_dir / 'analysis'} has no judge scores; "
                "run the analysis with the judge first or drop the judge options"
            )
        per_run[str(run_dir)] = {"dialogues": len(recs), "iteration": iteration, "judged": len(judge)}
        for r in recs:
            candidates.append((r, judge.get(r.id), run_dir, iteration, man))
    agents: dict[str, tuple[str, str]] = {}
    threshold = None
    if cfg.judge_quantile is not None:
        means = [j["mean"] for _, j, *_ in candidates if j and j.get("mean") is not None]
        threshold = _quantile(means, cfg.judge_quantile)
    for r, j, run_dir, iteration, man in candidates:
        if r.scenario not in agents:
            try:
                sc = load_scenario((man.scenario_file if man and man.scenario_file else None) or r.scenario)
            except ScenarioError:
                sc = load_scenario(r.scenario)
            agents[r.scenario] = (sc.agent.name, sc.agent.company)
        agent_name, company = agents[r.scenario]
        reason = None
        if r.outcome == "error":
            reason = "llm error"
        elif r.outcome not in cfg.outcomes:
            reason = f"outcome {r.outcome}"
        elif len(r.agent_turns()) < cfg.min_agent_turns:
            reason = "too few agent turns"
        elif r.stats.role_slips_kept and not cfg.keep_unrepaired_slips:
            reason = "role slip kept as written"
        elif cfg.max_recorded_slips is not None and (
            r.stats.role_slips_cleaned + r.stats.role_slips_retried > cfg.max_recorded_slips
        ):
            reason = "recorded role slips"
        elif slips := slip_reasons(r, agent_name, company):
            reason = "role slip: " + slips[0]
        elif judge_needed and (j is None or j.get("mean") is None):
            reason = "not judged"
        elif cfg.min_judge_mean is not None and j["mean"] < cfg.min_judge_mean:
            reason = "judge mean below minimum"
        elif threshold is not None and j["mean"] < threshold:
            reason = "judge mean below quantile"
        elif cfg.require_task_success and j.get("task_success") is not True:
            reason = "judge: no task success"
        msgs = to_messages(r) if reason is None else []
        if reason is None:
            key = hashlib.sha256(json.dumps(msgs).encode()).hexdigest()
            if key in seen:
                reason = "duplicate"
            seen.add(key)
        if reason is not None:
            dropped[reason] += 1
            continue
        examples.append({
            "messages": msgs,
            "provenance": {
                "run": str(run_dir),
                "dialogue_id": r.id,
                "iteration": iteration,
                "prompt_version": r.prompt_version or (man.prompt_version if man else ""),
                "scenario": r.scenario,
                "group": r.group,
                "persona_id": r.persona_id,
                "outcome": r.outcome,
                "rounds": r.rounds,
                "model": man.model if man else "",
                "backend": man.backend if man else "",
                "judge_mean": j.get("mean") if j else None,
                "judge": j.get("scores") if j else None,
            },
        })
    if not examples:
        raise ExportError(
            f"no dialogue passed the filters ({dict(dropped)}); loosen them, e.g. --outcome accept,max_rounds"
        )
    train, test = [], []
    for ex in examples:
        pid = ex["provenance"]["persona_id"] or ex["provenance"]["dialogue_id"]
        (test if _split_key(pid, cfg.seed) < cfg.test_fraction else train).append(ex)
    if cfg.test_fraction > 0 and not test and len(train) > 1:
        test.append(train.pop())  # a held-out set of at least one dialogue
    if not train:
        train.append(test.pop())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("test", test)):
        tmp = out / f"{name}.jsonl.tmp"
        tmp.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows), encoding="utf-8")
        tmp.replace(out / f"{name}.jsonl")
    _write_hf(out / "hf", train, test)
    info = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": [str(p) for p in inputs],
        "config": cfg.model_dump(),
        "runs": per_run,
        "candidates": len(candidates),
        "kept": len(examples),
        "train": len(train),
        "test": len(test),
        "dropped": dict(dropped),
        "judge_quantile_threshold": threshold,
        "assistant_turns": sum(sum(m["role"] == "assistant" for m in ex["messages"]) for ex in examples),
        "git_revision": runstore.git_revision(),
    }
    runstore.write_json_atomic(out / "export.json", info)
    return info


def _write_hf(path: Path, train: list[dict], test: list[dict]) -> None:
    """A ``datasets`` folder; judge scores travel as JSON text so every row has the same schema."""
    try:
        from datasets import Dataset, DatasetDict
    except ImportError:  # the ml extra is optional for the text core; JSONL is always written
        return

    def rows(xs):
        out = []
        for x in xs:
            p = dict(x["provenance"])
            p["iteration"] = -1 if p["iteration"] is None else p["iteration"]
            p["judge_mean"] = float("nan") if p["judge_mean"] is None else float(p["judge_mean"])
            p["judge"] = json.dumps(p["judge"]) if p["judge"] is not None else ""
            out.append({"messages": x["messages"], "provenance": p})
        return out

    dd = DatasetDict({"train": Dataset.from_list(rows(train))})
    if test:
        dd["test"] = Dataset.from_list(rows(test))
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    dd.save_to_disk(str(tmp))
    if path.exists():
        import shutil

        shutil.rmtree(path)
    tmp.rename(path)


def read_split(ds_dir: str | Path, split: str) -> list[dict[str, Any]]:
    """Examples of ``DS/{split}.jsonl`` (chat messages plus provenance)."""
    p = Path(ds_dir) / f"{split}.jsonl"
    if not p.exists():
        raise ExportError(f"{p} not found: is '{ds_dir}' a dataset folder written by `mads export`?")
    out = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            msgs = obj["messages"]
            assert isinstance(msgs, list) and all(m["role"] in ("system", "user", "assistant") for m in msgs)
        except (ValueError, KeyError, TypeError, AssertionError) as e:
            raise ExportError(f"{p}:{lineno}: not a chat example with 'messages': {e!r}") from e
        out.append(obj)
    return out
