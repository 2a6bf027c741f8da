"""Self-play: User Agents talk to the Dialog Agent; the orchestrator owns the loop, end markers and records.

A round is one agent turn followed by one user turn; the agent opens the call.
A dialogue ends on the user's ``[ACCEPT]`` or ``[WITHDRAW]`` or after
``max_rounds`` rounds. Many dialogues are in flight at once (as many as the
backend serves concurrently); each finished one is appended to
``RUN/dialogues.jsonl``, so rerunning the same command resumes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, Field, model_validator

from .agents import DialogAgent, UserAgent, derive_seed
from .common import runstore
from .common.records import Decision, DialogueRecord, DialogueStats, RunManifest, Turn, Usage
from .decision import NO_WORDS, Decider, no_words
from .llm import GenParams, LLMBackend, LLMError, LLMUnavailable, make_backend
from .personas import GROUPS, Persona, render_agent_prompt, sample_personas
from .scenario import Scenario, load_scenario


class SimulationConfig(BaseModel):
    scenario: str = "insurance"
    group: str = Field("sign", description="base, sign, mbti or busi; the personas' own group with personas_file")
    personas_file: str | None = Field(None, description="JSONL of imported personas (mads import-personas) instead of sampling")
    personas: int | None = Field(None, ge=1, description="How many personas (default 20 sampled, or all of personas_file)")
    per_persona: int = Field(2, ge=1)
    max_rounds: int = Field(8, ge=1)
    seed: int = 7
    backend: str = "embedded"
    model: str | None = None
    base_url: str | None = None
    prompt_mode: Literal["auto", "chat", "transcript"] = "auto"
    prompt_k: str | None = Field(None, description="Dialog Agent instruction/SOP; the scenario's meta instruction when absent")
    prompt_version: str = "p0"
    concurrency: int | None = Field(None, description="Dialogues in flight; the backend's slot count when absent")
    decision: Literal["auto", "hybrid", "rules", "off"] = Field(
        "auto", description="How a call ends: the decision module with the LLM as a check (auto/hybrid), rules "
        "only, or off (every call runs max_rounds; for building evaluation sets)")
    stance_in_chat: bool = Field(False, description="Add the customer's stance to the paper's chat-mode prompt")
    agent_note: bool = Field(True, description="Transcript mode: remind the agent before each line from the second "
                             "round on to answer and ask for the scenario's next step")
    user_params: GenParams = Field(default_factory=lambda: GenParams(temperature=0.9, max_tokens=80))
    agent_params: GenParams = Field(default_factory=lambda: GenParams(temperature=0.7, max_tokens=90))

    @model_validator(mode="after")
    def _group_known(self):
        if self.personas_file is None and self.group not in GROUPS:
            raise ValueError(f"unknown group '{self.group}'; choose one of {', '.join(GROUPS)}")
        return self


def load_personas_file(path: str, limit: int | None = None) -> list[Persona]:
    recs = list(runstore.iter_jsonl(path, Persona, strict=True))
    if not recs:
        raise runstore.RunStoreError(f"{path}: no personas")
    ids = [p.id for p in recs]
    if len(set(ids)) != len(ids):
        raise runstore.RunStoreError(f"{path}: duplicate persona ids")
    return recs[:limit] if limit else recs


def resolve_mode(cfg: SimulationConfig, backend: LLMBackend) -> str:
    if cfg.prompt_mode != "auto":
        return cfg.prompt_mode
    return "transcript" if backend.name in ("embedded", "transformers", "scripted") else "chat"


async def run_dialogue(
    persona: Persona,
    sample_index: int,
    scenario: Scenario,
    backend: LLMBackend,
    cfg: SimulationConfig,
    mode: str,
) -> DialogueRecord:
    did = dialogue_id(persona, sample_index)
    dseed = derive_seed(cfg.seed, persona.id, sample_index, cfg.prompt_version)
    user = UserAgent(persona, scenario, backend, mode, params=cfg.user_params, seed=dseed,  # type: ignore[arg-type]
                     stance_in_chat=cfg.stance_in_chat)
    agent = DialogAgent(
        scenario, backend, mode, prompt_k=cfg.prompt_k, user_name=persona.name,  # type: ignore[arg-type]
        params=cfg.agent_params, seed=dseed, note=cfg.agent_note,
    )
    decider = None if cfg.decision == "off" else Decider(scenario, backend, "rules" if cfg.decision == "rules" else "hybrid")
    turns: list[Turn] = []
    usage = Usage()
    stats = DialogueStats()
    decision = Decision(outcome="undecided", source="max_rounds" if decider else "decision off")
    error = None
    rounds = 0
    t0 = time.perf_counter()
    try:
        while rounds < cfg.max_rounds and decision.outcome == "undecided" and decision.source not in NO_WORDS:
            for participant in (agent, user):
                r = await participant.next_turn(turns)
                usage.add(r.prompt_tokens, r.completion_tokens)
                for k in ("slips_cleaned", "slips_retried", "slips_kept"):
                    setattr(stats, f"role_{k}", getattr(stats, f"role_{k}") + getattr(r, k))
                for k in ("empty_retries", "marker_only_retries", "repeats_removed", "repeat_retries", "repeats_kept",
                          "stance_retries"):
                    setattr(stats, k, getattr(stats, k) + getattr(r, k))
                stats.llm_calls += r.calls
                if participant.role == "agent":
                    turns.append(Turn(role="agent", text=r.text))
                    continue
                if not r.text:  # the customer only ever wrote an end marker or stage directions: no words to judge
                    decision = no_words(rounds + 1, r.marker)
                    break
                rounds += 1
                turns.append(Turn(role="user", text=r.text, marker=r.marker))
                if decider is not None:
                    step = await decider.decide(turns, r.marker)
                    stats.decision_s += step.seconds
                    stats.decision_llm_calls += step.llm_calls
                    if step.verdict != "continue":
                        decision = Decision(outcome=step.verdict, round=rounds, source=step.source,
                                            evidence=step.evidence, marker=r.marker)
    except LLMUnavailable:
        raise
    except LLMError as e:
        error = str(e)
    outcome = ("error" if error else decision.outcome if decision.outcome != "undecided"
               else "undecided" if decision.source in NO_WORDS else "max_rounds")
    stats.wall_s = round(time.perf_counter() - t0, 3)
    stats.decision_s = round(stats.decision_s, 3)
    return DialogueRecord(
        id=did,
        scenario=scenario.name,
        group=persona.group,
        persona=persona.fields,
        persona_id=persona.id,
        sample_index=sample_index,
        seed=dseed,
        persona_prompt=user.system_prompt,
        agent_prompt=render_agent_prompt(scenario, cfg.prompt_k),
        prompt_version=cfg.prompt_version,
        turns=turns,
        outcome=outcome,  # type: ignore[arg-type]
        rounds=rounds,
        usage=usage,
        error=error,
        stats=stats,
        decision=decision,
        stance=user.stance.model_dump() if user.stance else None,
    )


@dataclass
class SimulationResult:
    run_dir: Path
    produced: int
    skipped: int
    total: int
    outcomes: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    completion_tokens: int = 0
    prompt_tokens: int = 0
    role_slips: int = 0

    @property
    def dialogues_per_min(self) -> float:
        return 60 * self.produced / self.wall_s if self.wall_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s else 0.0


class ResumeMismatch(runstore.RunStoreError):
    pass


def _check_resume(existing: RunManifest, cfg: SimulationConfig, scenario: Scenario, model: str) -> None:
    problems = []
    if existing.scenario != scenario.name:
        problems.append(f"scenario {existing.scenario!r} vs {scenario.name!r}")
    if existing.scenario_sha256 != scenario.sha256:
        problems.append("the scenario file changed since the run started")
    for key in ("group", "max_rounds", "seed", "backend", "prompt_version", "decision", "stance_in_chat", "agent_note"):
        old, new = getattr(existing, key), getattr(cfg, key)
        if old != new:
            problems.append(f"{key} {old!r} vs {new!r}")
    if existing.model != model:
        problems.append(f"model {existing.model!r} vs {model!r}")
    if existing.agent_instruction != (cfg.prompt_k or scenario.agent.meta_instruction):
        problems.append("the Dialog Agent instruction differs")
    if problems:
        raise ResumeMismatch(
            "the output folder holds a different run (" + "; ".join(problems) + "); use another --out or delete it"
        )


def write_stats(run_dir: Path) -> dict:
    recs = runstore.read_dialogues(run_dir, strict=False)
    outcomes = Counter(r.outcome for r in recs)
    n = len(recs)
    stats = {
        "n_dialogues": n,
        "outcomes": dict(outcomes),
        "acceptance_rate": outcomes.get("accept", 0) / n if n else 0.0,
        "mean_rounds": sum(r.rounds for r in recs) / n if n else 0.0,
        "prompt_tokens": sum(r.usage.prompt_tokens for r in recs),
        "completion_tokens": sum(r.usage.completion_tokens for r in recs),
        "llm_calls": sum(r.stats.llm_calls for r in recs),
        "role_slips_cleaned": sum(r.stats.role_slips_cleaned for r in recs),
        "role_slips_retried": sum(r.stats.role_slips_retried for r in recs),
        "empty_retries": sum(r.stats.empty_retries for r in recs),
        "dialogues_with_slips": sum(1 for r in recs if r.stats.role_slips_cleaned or r.stats.role_slips_retried),
        "marker_only_retries": sum(r.stats.marker_only_retries for r in recs),
        "repeats_removed": sum(r.stats.repeats_removed for r in recs),
        "repeat_retries": sum(r.stats.repeat_retries for r in recs),
        "repeats_kept": sum(r.stats.repeats_kept for r in recs),
        "role_slips_kept": sum(r.stats.role_slips_kept for r in recs),
        "stance_retries": sum(r.stats.stance_retries for r in recs),
        "decision_sources": dict(Counter(r.decision.source for r in recs if r.decision)),
        "decision_llm_calls": sum(r.stats.decision_llm_calls for r in recs),
        "decision_share_of_wall": (sum(r.stats.decision_s for r in recs) / wall) if (wall := sum(r.stats.wall_s for r in recs)) else None,
    }
    runstore.write_json_atomic(run_dir / "stats.json", stats)
    return stats


ProgressFn = Callable[[DialogueRecord, int, int], None]


@dataclass
class RunPlan:
    cfg: SimulationConfig
    scenario: Scenario
    mode: str
    out: Path
    path: Path
    personas: list[Persona]
    todo: list[tuple[Persona, int]]
    done_ids: set[str]
    total: int


def dialogue_id(persona: Persona, k: int) -> str:
    return f"{persona.id}-d{k:02d}"


def plan_run(cfg: SimulationConfig, out_dir: str | Path, backend: LLMBackend, retry_errors: bool = False,
             personas: list[Persona] | None = None) -> RunPlan:
    """Check or write the manifest and list the dialogues still to produce (no model is loaded).

    ``personas`` runs a given subset of users (one cluster of a stratified loop) instead of sampling them."""
    scenario = load_scenario(cfg.scenario)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mode = resolve_mode(cfg, backend)
    model_name = backend.model

    existing = runstore.read_manifest(out)
    subset = personas is not None
    if personas is not None:
        cfg = cfg.model_copy(update={"personas": len(personas)})
    elif cfg.personas_file:
        personas = load_personas_file(cfg.personas_file, cfg.personas)
        cfg = cfg.model_copy(update={"group": personas[0].group, "personas": len(personas)})
    else:
        personas = sample_personas(scenario, cfg.group, cfg.personas or 20, cfg.seed)
        cfg = cfg.model_copy(update={"personas": len(personas)})
    if existing is not None:
        _check_resume(existing, cfg, scenario, model_name)
    total = len(personas) * cfg.per_persona
    manifest = RunManifest(
        created=(existing.created if existing else datetime.now(timezone.utc).isoformat(timespec="seconds")),
        scenario=scenario.name,
        scenario_file=scenario.source_file,
        scenario_sha256=scenario.sha256,
        group=cfg.group,
        personas=max(len(personas), existing.personas if existing else 0),
        per_persona=max(cfg.per_persona, existing.per_persona if existing else 0),
        max_rounds=cfg.max_rounds,
        seed=cfg.seed,
        backend=cfg.backend,
        model=model_name,
        prompt_mode=mode,
        agent_instruction=cfg.prompt_k or scenario.agent.meta_instruction,
        prompt_version=cfg.prompt_version,
        decision=cfg.decision,
        stance_in_chat=cfg.stance_in_chat,
        agent_note=cfg.agent_note,
        generation={
            "user": cfg.user_params.model_dump(),
            "agent": cfg.agent_params.model_dump(),
            "backend": backend.describe(),
        },
        packages=runstore.package_versions(),
        git_revision=runstore.git_revision(),
        expected_dialogues=max(total, existing.expected_dialogues if existing else 0),
        personas_file=cfg.personas_file,
    )
    if subset:
        manifest = manifest.model_copy(update={"persona_ids": [p.id for p in personas]})
    path = out / runstore.DIALOGUES
    runstore.repair_tail(path)
    done: dict[str, DialogueRecord] = {}
    if path.exists():
        for rec in runstore.iter_jsonl(path, DialogueRecord):
            done[rec.id] = rec
    if retry_errors and any(r.outcome == "error" for r in done.values()):
        kept = [r for r in done.values() if r.outcome != "error"]
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(r.model_dump_json() + "\n" for r in kept), encoding="utf-8")
        tmp.replace(path)
        done = {r.id: r for r in kept}
    runstore.write_json_atomic(out / runstore.MANIFEST, manifest)
    todo = [(p, k) for p in personas for k in range(cfg.per_persona) if dialogue_id(p, k) not in done]
    return RunPlan(cfg, scenario, mode, out, path, personas, todo, set(done), total)


async def gather_or_cancel(tasks: list[asyncio.Task]) -> None:
    """Wait for every task; on the first failure (or our own cancellation) cancel the rest and re-raise."""
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def simulate(
    cfg: SimulationConfig,
    out_dir: str | Path,
    backend: LLMBackend | None = None,
    progress: bool | ProgressFn = True,
    retry_errors: bool = False,
    limit: int | None = None,
    personas: list[Persona] | None = None,
) -> SimulationResult:
    """Run (or resume) a simulation into ``out_dir``. ``limit`` stops after that many new dialogues;
    ``personas`` replaces the sampled users by a given list."""
    own_backend = backend is None
    if backend is None:
        backend = make_backend(cfg.backend, cfg.model, base_url=cfg.base_url, parallel=cfg.concurrency)
    plan = plan_run(cfg, out_dir, backend, retry_errors, personas)
    cfg, scenario, mode, path, total = plan.cfg, plan.scenario, plan.mode, plan.path, plan.total
    out = plan.out
    todo = plan.todo if limit is None else plan.todo[:limit]
    skipped = total - len(plan.todo)
    result = SimulationResult(run_dir=out, produced=0, skipped=skipped, total=total)
    if not todo:
        write_stats(out)
        return result

    await backend.check()
    concurrency = cfg.concurrency or max(1, backend.concurrency)
    sem = asyncio.Semaphore(concurrency)
    writer = runstore.JsonlWriter(path)
    bar = _Progress(len(todo), total - len(todo), enabled=progress is True)
    t0 = time.perf_counter()

    async def one(p: Persona, k: int) -> None:
        async with sem:
            rec = await run_dialogue(p, k, scenario, backend, cfg, mode)
        writer.append(rec)  # single writer: the event loop serialises appends
        result.produced += 1
        result.outcomes[rec.outcome] += 1
        result.completion_tokens += rec.usage.completion_tokens
        result.prompt_tokens += rec.usage.prompt_tokens
        result.role_slips += rec.stats.role_slips_cleaned + rec.stats.role_slips_retried
        bar.update(rec, result.completion_tokens, time.perf_counter() - t0)
        if callable(progress):
            progress(rec, result.produced, len(todo))

    tasks = [asyncio.create_task(one(p, k), name=dialogue_id(p, k)) for p, k in todo]
    try:
        await gather_or_cancel(tasks)
    finally:
        result.wall_s = time.perf_counter() - t0
        writer.close()
        bar.close()
        write_stats(out)
        if own_backend:
            await backend.aclose()
    return result


class _Progress:
    """A rich progress bar with dialogues/s and generated tokens/s."""

    def __init__(self, todo: int, already: int, enabled: bool):
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(
            TextColumn("[bold]self-play"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            transient=False,
        )
        self.p.start()
        self.task = self.p.add_task("dialogues", total=todo, rate="", completed=0)
        if already:
            self.p.console.print(f"resuming: {already} dialogues already in the run")

    def update(self, rec: DialogueRecord, tokens: int, elapsed: float) -> None:
        if not self.enabled:
            return
        done = self.p.tasks[0].completed + 1
        rate = f"{done / elapsed:.2f} dlg/s  {tokens / elapsed:.1f} tok/s  last: {rec.outcome}"
        self.p.update(self.task, advance=1, rate=rate)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()


__all__ = ["GROUPS", "SimulationConfig", "SimulationResult", "run_dialogue", "simulate", "write_stats"]
