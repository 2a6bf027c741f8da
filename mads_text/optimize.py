"""Algorithm 1 of the MADS paper: the self-optimizing Dialog Agent.

::

    P <- P0
    for k = 1..K:
        D <- GENDIALOGUE(U, T, P)        self-play of the User Agents U for T rounds with prompt P
        H <- SUMMARY(D, T)               attitude labels per round -> H_avg of the transition matrix
        tau, DF <- EVALUATE(D, T)        acceptance rate and feedback on the failed dialogues
        if tau >= theta and H >= H_basic: return D, P
        P <- EVOLUTION(P, DF)            the reflection prompt rewrites the Business SOP
    return D*, P*                        the best iteration seen

Iterations are numbered by the prompt they run: ``iter_k`` runs ``P_k`` (``iter_0``
is the scenario's meta instruction). By default the prompt produced by the last
evolution is scored as well (``--iterations 2`` gives the rows K=0, 1, 2, which
is what the paper's Table 4 compares); ``literal=True`` runs the loop exactly as
printed, where the last evolved prompt is written but never scored.

theta is also an upper bound: an iteration whose acceptance exceeds theta by more
than ``overwhelm_margin`` is flagged "overwhelming" (a Dialog Agent that
overwhelms its users derails the simulation) and is only chosen as the best
iteration when nothing else is left.

Layout (every step is skipped when its output exists, so a killed loop resumes)::

    OPT/config.json               the settings; a rerun with other settings is refused
    OPT/baseline/                 base-group run and analysis giving H_basic (when not given)
    OPT/iter_k/prompt.txt         P_k
    OPT/iter_k/run/               RUN folder of the self-play (dialogues.jsonl, manifest.json, stats.json)
    OPT/iter_k/run/analysis/      what `mads analyze` writes: labels, metrics.json, figures, report.md, judge.jsonl
    OPT/iter_k/evaluation.json    tau, H, the stop test, the overwhelming flag
    OPT/iter_k/feedback.json      DF handed to the evolution
    OPT/iter_k/evolution.json     reflection prompt, every try, validity; P_{k+1} goes to iter_{k+1}/prompt.txt
    OPT/result.json, table.md     per-iteration table and the best iteration (D*, P*)

``stratify`` (beyond the paper, its limitation 3): after ``iter_0`` the users are
clustered by their response and attitude patterns; each cluster runs its own loop
(``OPT/cluster_c/iter_k``) from the shared ``iter_0`` dialogues, and the report
compares per-cluster and overall success with the single-prompt loop, which
runs on all users as usual (``OPT/iter_k``).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from .common import runstore
from .common.records import DialogueRecord, RunManifest
from .evolve import DialogueFeedback, EvolutionResult, Feedback, evolve, pick_cases
from .llm import GenParams, LLMBackend, make_backend
from .metrics import wilson_interval
from .orchestrator import SimulationConfig, resolve_mode, run_dialogue, simulate, write_stats
from .personas import Persona, sample_personas
from .scenario import Scenario, load_scenario


class OptimizeConfig(BaseModel):
    scenario: str = "insurance"
    group: Literal["base", "sign", "mbti", "busi"] = Field("sign", description="User Agents U")
    personas: int = Field(20, ge=1)
    per_persona: int = Field(2, ge=1)
    max_rounds: int = Field(8, ge=1, description="Rounds T")
    seed: int = 7
    prompt0: str | None = Field(None, description="P0; the scenario's meta instruction when absent")
    iterations: int = Field(2, ge=0, description="K: evolution steps")
    theta: float = Field(0.25, ge=0, le=1, description="Target (and upper-bound) acceptance rate")
    overwhelm_margin: float = Field(0.25, ge=0, description="Flag acceptance above theta + this as overwhelming")
    h_basic: float | None = Field(None, description="Baseline entropy; computed from a base-group run when absent")
    h_basic_run: str | None = Field(None, description="A base-group run folder to compute H_basic from")
    backend: str = "embedded"
    model: str | None = None
    base_url: str | None = None
    prompt_mode: Literal["auto", "chat", "transcript"] = "auto"
    concurrency: int | None = None
    labeler: Literal["embedded", "llm"] = "embedded"
    judge: bool = Field(False, description="Score every dialogue with the LLM judge (Table 7) for the feedback")
    evolve_backend: str | None = None
    evolve_model: str | None = None
    evolve_base_url: str | None = None
    evolve_attempts: int = Field(3, ge=1)
    evolve_max_tokens: int = Field(1200, ge=64)
    feedback_failed: int = Field(6, ge=0, description="Failed dialogues shown to the reflection prompt")
    feedback_success: int = Field(2, ge=0, description="Successful dialogues shown to the reflection prompt")
    history_chars: int = Field(7000, ge=500, description="Budget of the reflection prompt's chat history")
    literal: bool = Field(False, description="Run Algorithm 1 exactly as printed: the last evolved prompt is not scored")
    stratify: bool = False
    clusters: int = Field(2, ge=2)

    def resume_key(self) -> dict:
        # settings that change what an existing iteration means; K and theta may grow or change on a rerun
        return self.model_dump(exclude={"iterations", "theta", "overwhelm_margin", "concurrency", "literal",
                                        "evolve_attempts", "h_basic"})

    def sim(self, prompt_k: str | None, version: str, group: str | None = None) -> SimulationConfig:
        return SimulationConfig(
            scenario=self.scenario, group=group or self.group, personas=self.personas, per_persona=self.per_persona,
            max_rounds=self.max_rounds, seed=self.seed, backend=self.backend, model=self.model,
            base_url=self.base_url, prompt_mode=self.prompt_mode, prompt_k=prompt_k, prompt_version=version,
            concurrency=self.concurrency,
        )


class OptimizeError(RuntimeError):
    pass


# --- SUMMARY and EVALUATE --------------------------------------------------------------------
# A thin adapter over the analysis stage: ``analysis.analyze_records`` labels the run (attitude per
# round, strategies), computes metrics.json (H_avg, acceptance, ...), draws the figures and, with the
# judge, writes judge.jsonl, all in ``RUN/analysis/`` as ``mads analyze`` would. The loop reads back
# H_avg, the per-dialogue attitude chains and the judge scores.


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

    failed = [item(r) for r in recs if r.outcome in ("withdraw", "max_rounds")]
    ok = [item(r) for r in recs if r.outcome == "accept"]
    return Feedback(
        n_dialogues=len(recs), acceptance_rate=ana.acceptance_rate, h_avg=ana.h_avg,
        failed=pick_cases(failed, cfg.feedback_failed, seed), succeeded=pick_cases(ok, cfg.feedback_success, seed),
        notes=notes or [],
    )


# --- GENDIALOGUE for a subset of users (cluster loops) -------------------------------------------


async def simulate_personas(cfg: SimulationConfig, personas: list[Persona], out: Path, backend: LLMBackend) -> None:
    """Like ``orchestrator.simulate`` but for a given list of personas (one cluster); resumable."""
    scenario = load_scenario(cfg.scenario)
    mode = resolve_mode(cfg, backend)
    out.mkdir(parents=True, exist_ok=True)
    instruction = cfg.prompt_k or scenario.agent.meta_instruction
    old = runstore.read_manifest(out)
    if old is not None and (old.agent_instruction != instruction or old.prompt_version != cfg.prompt_version):
        raise OptimizeError(f"{out} holds a run of another prompt; delete it or use another folder")
    man = RunManifest(
        created=old.created if old else datetime.now(timezone.utc).isoformat(timespec="seconds"),
        scenario=scenario.name, scenario_file=scenario.source_file, scenario_sha256=scenario.sha256, group=cfg.group,
        personas=len(personas), per_persona=cfg.per_persona, max_rounds=cfg.max_rounds, seed=cfg.seed,
        backend=cfg.backend, model=backend.model, prompt_mode=mode, agent_instruction=instruction,
        prompt_version=cfg.prompt_version, packages=runstore.package_versions(), git_revision=runstore.git_revision(),
        expected_dialogues=len(personas) * cfg.per_persona,
    )
    man_d = json.loads(man.model_dump_json())
    man_d["persona_ids"] = [p.id for p in personas]
    runstore.write_json_atomic(out / runstore.MANIFEST, man_d)
    path = out / runstore.DIALOGUES
    runstore.repair_tail(path)
    done = {r.id for r in runstore.iter_jsonl(path, DialogueRecord)} if path.exists() else set()
    todo = [(p, k) for p in personas for k in range(cfg.per_persona) if f"{p.id}-d{k:02d}" not in done]
    if todo:
        sem = asyncio.Semaphore(cfg.concurrency or max(1, backend.concurrency))
        with runstore.JsonlWriter(path) as w:
            async def one(p, k):
                async with sem:
                    w.append(await run_dialogue(p, k, scenario, backend, cfg, mode))

            await asyncio.gather(*(one(p, k) for p, k in todo))
    write_stats(out)


# --- the loop ------------------------------------------------------------------------------------


class IterationRow(BaseModel):
    k: int
    prompt_version: str
    run: str
    n_dialogues: int
    tau: float
    tau_ci95: tuple[float, float] | None
    h_avg: float
    h_norm: float
    h_basic: float
    theta: float
    meets_theta: bool
    meets_h: bool
    stop: bool
    overwhelming: bool
    judge_mean: float | None = None
    evolution_ok: bool | None = None
    prompt_chars: int = 0
    sim_s: float = 0.0
    analysis_s: float = 0.0
    evolution_s: float = 0.0


def best_row(rows: list[IterationRow]) -> IterationRow:
    """D*, P*: where the loop stopped (flagged if overwhelming), else the best acceptance, preferring
    non-overwhelming iterations with H >= H_basic."""
    return max(rows, key=lambda r: (r.stop and not r.overwhelming, r.stop, not r.overwhelming, r.meets_h, r.tau,
                                    r.h_avg, -r.k))


def render_table(rows: list[IterationRow], title: str = "") -> str:
    lines = [title] if title else []
    lines += [
        "| K | prompt | dialogues | acceptance τ (95% CI) | H_avg | H_norm | τ ≥ θ | H ≥ H_basic | flag | evolved |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lo, hi = r.tau_ci95 or (math.nan, math.nan)
        flag = "overwhelming" if r.overwhelming else ("stop" if r.stop else "")
        evo = {None: "", True: "yes", False: "kept P (invalid SOP)"}[r.evolution_ok]
        lines.append(
            f"| {r.k} | {r.prompt_version} ({r.prompt_chars} chars) | {r.n_dialogues} | {100 * r.tau:.1f}% "
            f"({100 * lo:.0f}–{100 * hi:.0f}) | {r.h_avg:.4f} | {r.h_norm:.4f} | {'yes' if r.meets_theta else 'no'} | "
            f"{'yes' if r.meets_h else 'no'} | {flag} | {evo} |"
        )
    if rows:
        lines.append(f"\nθ = {rows[0].theta:.3f}, H_basic = {rows[0].h_basic:.4f}")
    return "\n".join(lines)


ProgressFn = Callable[[str], None]


class Optimizer:
    """Runs Algorithm 1 into ``OPT``; every piece can be swapped for tests (backends, analyzer)."""

    def __init__(
        self,
        cfg: OptimizeConfig,
        out: str | Path,
        backend: LLMBackend | None = None,
        evolve_backend: LLMBackend | None = None,
        analyzer: Callable | None = None,
        log: ProgressFn | None = None,
        progress: bool = True,
    ):
        self.cfg = cfg
        self.out = Path(out)
        self.scenario: Scenario = load_scenario(cfg.scenario)
        self.backend = backend or make_backend(cfg.backend, cfg.model, base_url=cfg.base_url, parallel=cfg.concurrency)
        if evolve_backend is None:
            if cfg.evolve_backend or cfg.evolve_model:
                evolve_backend = make_backend(cfg.evolve_backend or cfg.backend, cfg.evolve_model or cfg.model,
                                              base_url=cfg.evolve_base_url or cfg.base_url)
            else:
                evolve_backend = self.backend
        self.evolve_backend = evolve_backend
        spec = (cfg.evolve_backend or cfg.backend, cfg.evolve_model or cfg.model, cfg.evolve_base_url or cfg.base_url)
        self.analyzer = analyzer or RunAnalyzer(cfg, spec)
        self.log = log or (lambda msg: None)
        self.progress = progress
        self.p0 = (cfg.prompt0 or self.scenario.agent.meta_instruction).strip()

    # -- bookkeeping --
    def _check_config(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "config.json"
        if path.exists():
            old = json.loads(path.read_text())
            old_key = OptimizeConfig.model_validate(old["config"]).resume_key()
            new_key = self.cfg.resume_key()
            diff = sorted(k for k in new_key if old_key.get(k) != new_key.get(k))
            if diff:
                raise OptimizeError(
                    f"{self.out} holds an optimize run with other settings ({', '.join(diff)}); use another --out"
                )
        runstore.write_json_atomic(path, {
            "config": json.loads(self.cfg.model_dump_json()),
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "backend": self.backend.describe(), "evolve_backend": self.evolve_backend.describe(),
            "packages": runstore.package_versions(), "git_revision": runstore.git_revision(),
        })

    async def h_basic(self) -> float:
        """H_basic: given, or the H_avg of a base-group run (given, or simulated with P0 into OPT/baseline)."""
        if self.cfg.h_basic is not None:
            return self.cfg.h_basic
        if self.cfg.h_basic_run:
            # the given run's own analysis is not touched: it is analysed again under OPT/baseline
            run = Path(self.cfg.h_basic_run)
            recs = runstore.read_dialogues(run)
            ana = await self.analyzer(recs, self.out / "baseline" / "analysis")
        else:
            run = self.out / "baseline" / "run"
            self.log(f"H_basic: simulating the base group with P0 into {run}")
            await simulate(self.cfg.sim(self.p0, "p0-base", group="base"), run, backend=self.backend,
                           progress=self.progress)
            ana = await self.analyzer(runstore.read_dialogues(run), run / "analysis")
        runstore.write_json_atomic(self.out / "baseline" / "h_basic.json",
                                   {"h_basic": ana.h_avg, "run": str(run), "labeler": ana.labeler,
                                    "acceptance_rate": ana.acceptance_rate, "n_dialogues": ana.n_dialogues})
        return ana.h_avg

    # -- one loop (all users, or one cluster) --
    async def loop(
        self,
        base: Path,
        h_basic: float,
        personas: list[Persona] | None = None,
        version_prefix: str = "p",
        notes: list[str] | None = None,
        first_run: Callable[[Path], Any] | None = None,
    ) -> list[IterationRow]:
        cfg = self.cfg
        rows: list[IterationRow] = []
        n_eval = cfg.iterations if cfg.literal else cfg.iterations + 1
        for k in range(max(1, n_eval)):
            it = base / f"iter_{k}"
            it.mkdir(parents=True, exist_ok=True)
            pfile = it / "prompt.txt"
            if not pfile.exists():
                if k != 0:
                    raise OptimizeError(f"{pfile} missing although iteration {k - 1} finished; delete {it} and rerun")
                pfile.write_text(self.p0 + "\n", encoding="utf-8")
            prompt = pfile.read_text(encoding="utf-8").strip()
            version = f"{version_prefix}{k}"
            run = it / "run"
            self.log(f"{base.name}/iter_{k}: GENDIALOGUE with {version}")
            t0 = time.perf_counter()
            if k == 0 and first_run is not None:
                await first_run(run)
            elif personas is None:
                await simulate(cfg.sim(prompt, version), run, backend=self.backend, progress=self.progress)
            else:
                await simulate_personas(cfg.sim(prompt, version), personas, run, self.backend)
            t1 = time.perf_counter()
            recs = runstore.read_dialogues(run)
            self.log(f"{base.name}/iter_{k}: SUMMARY and EVALUATE on {len(recs)} dialogues")
            ana = await self.analyzer(recs, run / "analysis")
            t2 = time.perf_counter()
            tau, h = ana.acceptance_rate, ana.h_avg
            meets_theta, meets_h = tau >= cfg.theta, h >= h_basic
            row = IterationRow(
                k=k, prompt_version=version, run=str(run.relative_to(self.out)), n_dialogues=len(recs), tau=tau,
                tau_ci95=wilson_interval(sum(r.outcome == "accept" for r in recs), len(recs)), h_avg=h,
                h_norm=ana.h_norm, h_basic=h_basic, theta=cfg.theta, meets_theta=meets_theta, meets_h=meets_h,
                stop=meets_theta and meets_h, overwhelming=tau > cfg.theta + cfg.overwhelm_margin,
                judge_mean=(ana.judge_summary or {}).get("mean"), prompt_chars=len(prompt),
                sim_s=round(t1 - t0, 1), analysis_s=round(t2 - t1, 1),
            )
            fb = build_feedback(recs, ana, cfg, seed=cfg.seed + k, notes=notes)
            runstore.write_json_atomic(it / "feedback.json", fb)
            rows.append(row)
            last = k == n_eval - 1
            if row.stop or (last and not cfg.literal):
                runstore.write_json_atomic(it / "evaluation.json", row)
                break
            # EVOLUTION(P, DF) -> P_{k+1}
            nxt = base / f"iter_{k + 1}" / "prompt.txt"
            evo_path = it / "evolution.json"
            if nxt.exists() and evo_path.exists():
                row.evolution_ok = json.loads(evo_path.read_text()).get("ok")
            else:
                self.log(f"{base.name}/iter_{k}: EVOLUTION with {self.evolve_backend.model}")
                t3 = time.perf_counter()
                res: EvolutionResult = await evolve(
                    prompt, fb, self.scenario, self.evolve_backend, attempts=cfg.evolve_attempts,
                    params=GenParams(temperature=0.7, max_tokens=cfg.evolve_max_tokens),
                    history_chars=cfg.history_chars, seed=cfg.seed + k,
                )
                row.evolution_s = round(time.perf_counter() - t3, 1)
                row.evolution_ok = res.ok
                runstore.write_json_atomic(evo_path, res)
                nxt.parent.mkdir(parents=True, exist_ok=True)
                tmp = nxt.with_suffix(".tmp")
                tmp.write_text(res.prompt + "\n", encoding="utf-8")
                tmp.replace(nxt)  # the next prompt exists whole or not at all
            runstore.write_json_atomic(it / "evaluation.json", row)
        return rows

    def _result(self, base: Path, rows: list[IterationRow]) -> dict[str, Any]:
        best = best_row(rows)
        stopped = next((r for r in rows if r.stop), None)
        res = {
            "rows": [r.model_dump() for r in rows],
            "stopped_at": stopped.k if stopped else None,
            "reason": "target met (τ ≥ θ and H ≥ H_basic)" if stopped else f"K = {self.cfg.iterations} iterations done",
            "best_iteration": best.k,
            "best_prompt": (base / f"iter_{best.k}" / "prompt.txt").read_text(encoding="utf-8").strip(),
            "best_run": best.run,
            "best_overwhelming": best.overwhelming,
        }
        return res

    async def run(self) -> dict[str, Any]:
        self._check_config()
        t0 = time.perf_counter()
        hb = await self.h_basic()
        self.log(f"H_basic = {hb:.4f}")
        rows = await self.loop(self.out, hb)
        result = self._result(self.out, rows)
        result["h_basic"] = hb
        result["table"] = render_table(rows)
        if self.cfg.stratify:
            result["stratified"] = await self.stratified(hb, rows)
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        runstore.write_json_atomic(self.out / "result.json", result)
        (self.out / "best_prompt.txt").write_text(result["best_prompt"] + "\n", encoding="utf-8")
        text = result["table"]
        if "stratified" in result:
            text += "\n\n" + result["stratified"]["table"]
        (self.out / "table.md").write_text(text + "\n", encoding="utf-8")
        return result

    # -- stratified evolution (beyond the paper) --
    async def stratified(self, h_basic: float, single_rows: list[IterationRow]) -> dict[str, Any]:
        cfg = self.cfg
        shared = self.out / "iter_0"
        recs0 = runstore.read_dialogues(shared / "run")
        chains0 = (await self.analyzer(recs0, shared / "run" / "analysis")).chains  # cached labels of iteration 0
        personas = sample_personas(self.scenario, cfg.group, cfg.personas, cfg.seed)
        cl_path = self.out / "clusters.json"
        if cl_path.exists():
            clusters = json.loads(cl_path.read_text())
        else:
            clusters = cluster_users(recs0, chains0, cfg.clusters, cfg.seed)
            runstore.write_json_atomic(cl_path, clusters)
        assign: dict[str, int] = clusters["assignment"]
        best_single = best_row(single_rows)
        single_best_recs = runstore.read_dialogues(self.out / best_single.run)
        out_rows = []
        overall = Counter()
        per_cluster: dict[str, Any] = {}
        for c in range(clusters["k"]):
            members = [p for p in personas if assign.get(p.id) == c]
            if not members:
                continue
            ids = {p.id for p in members}
            desc = clusters["descriptions"][str(c)]
            note = (f"These calls are with one customer segment (cluster {c + 1} of {clusters['k']}, "
                    f"{len(members)} customers): {desc}. Adapt the SOP to this segment.")
            base = self.out / f"cluster_{c}"

            async def first_run(run: Path, ids=ids) -> None:
                # iteration 0 of every cluster is its slice of the shared iter_0 dialogues
                if (run / runstore.DIALOGUES).exists():
                    return
                run.mkdir(parents=True, exist_ok=True)
                man = json.loads((shared / "run" / runstore.MANIFEST).read_text())
                man["persona_ids"] = sorted(ids)
                runstore.write_json_atomic(run / runstore.MANIFEST, man)
                sub = [r for r in recs0 if r.persona_id in ids]
                tmp = run / (runstore.DIALOGUES + ".tmp")
                tmp.write_text("".join(r.model_dump_json() + "\n" for r in sub), encoding="utf-8")
                tmp.replace(run / runstore.DIALOGUES)
                write_stats(run)

            rows = await self.loop(base, h_basic, personas=members, version_prefix=f"c{c}-p", notes=[note],
                                   first_run=first_run)
            res = self._result(base, rows)
            runstore.write_json_atomic(base / "result.json", res)
            best = best_row(rows)
            best_recs = runstore.read_dialogues(self.out / best.run)
            single_sub = [r for r in single_best_recs if r.persona_id in ids]
            p0_sub = [r for r in recs0 if r.persona_id in ids]
            acc = lambda rs: sum(r.outcome == "accept" for r in rs)
            per_cluster[str(c)] = {
                "users": len(members), "description": desc, "rows": [r.model_dump() for r in rows],
                "best_iteration": best.k, "tau_p0": acc(p0_sub) / max(1, len(p0_sub)),
                "tau_single_best": acc(single_sub) / max(1, len(single_sub)),
                "tau_cluster_best": acc(best_recs) / max(1, len(best_recs)),
                "dialogues": len(best_recs),
            }
            overall["cluster_accept"] += acc(best_recs)
            overall["cluster_n"] += len(best_recs)
            overall["single_accept"] += acc(single_sub)
            overall["single_n"] += len(single_sub)
            overall["p0_accept"] += acc(p0_sub)
            overall["p0_n"] += len(p0_sub)
            out_rows.append(render_table(rows, title=f"cluster {c} ({len(members)} users): {desc}"))
        summary = {
            "tau_p0": overall["p0_accept"] / max(1, overall["p0_n"]),
            "tau_single_best": overall["single_accept"] / max(1, overall["single_n"]),
            "tau_stratified": overall["cluster_accept"] / max(1, overall["cluster_n"]),
            "single_best_iteration": best_single.k,
        }
        lines = ["| cluster | users | τ with P0 | τ single-prompt loop (best) | τ cluster loop (best) |",
                 "| --- | --- | --- | --- | --- |"]
        for c, d in per_cluster.items():
            lines.append(f"| {c} | {d['users']} | {100 * d['tau_p0']:.1f}% | {100 * d['tau_single_best']:.1f}% | "
                         f"{100 * d['tau_cluster_best']:.1f}% (K={d['best_iteration']}) |")
        lines.append(f"| all | {sum(d['users'] for d in per_cluster.values())} | {100 * summary['tau_p0']:.1f}% | "
                     f"{100 * summary['tau_single_best']:.1f}% (K={best_single.k}) | "
                     f"{100 * summary['tau_stratified']:.1f}% |")
        table = "Stratified evolution vs the single-prompt loop\n\n" + "\n".join(lines) + "\n\n" + "\n\n".join(out_rows)
        return {"clusters": per_cluster, "summary": summary, "table": table}


# --- clustering users by response and attitude patterns --------------------------------------------


def persona_features(recs: list[DialogueRecord], chains: dict[str, list[str | None]]) -> tuple[list[str], Any, list[str]]:
    """Per persona: outcome shares, rounds, coarse attitude shares and last attitude, reply length and questions."""
    import numpy as np

    from .attitude import COARSE, STATE_GROUP

    by_p: dict[str, list[DialogueRecord]] = {}
    for r in recs:
        by_p.setdefault(r.persona_id, []).append(r)
    names = (["accept", "withdraw", "max_rounds", "rounds"] + [f"att_{c}" for c in COARSE]
             + [f"last_{c}" for c in COARSE] + ["log_words", "questions"])
    ids, rows = [], []
    for pid, rs in sorted(by_p.items()):
        n = len(rs)
        f = [sum(r.outcome == o for r in rs) / n for o in ("accept", "withdraw", "max_rounds")]
        f.append(sum(r.rounds for r in rs) / n)
        states = [s for r in rs for s in chains.get(r.id, []) if s]
        f += [sum(STATE_GROUP.get(s) == c for s in states) / max(1, len(states)) for c in COARSE]
        lasts = [next((s for s in reversed(chains.get(r.id, [])) if s), None) for r in rs]
        f += [sum(s is not None and STATE_GROUP.get(s) == c for s in lasts) / n for c in COARSE]
        users = [t for r in rs for t in r.user_turns()]
        f.append(math.log1p(sum(len(t.split()) for t in users) / max(1, len(users))))
        f.append(sum("?" in t for t in users) / max(1, len(users)))
        ids.append(pid)
        rows.append(f)
    return ids, np.array(rows, dtype=float), names


def cluster_users(recs: list[DialogueRecord], chains: dict[str, list[str | None]], k: int, seed: int) -> dict[str, Any]:
    """k-means over standardised persona features; returns the assignment and a readable description per cluster."""
    import numpy as np
    from sklearn.cluster import KMeans

    ids, x, names = persona_features(recs, chains)
    if len(ids) < k:
        raise OptimizeError(f"--stratify needs at least {k} users for {k} clusters, got {len(ids)}")
    sd = x.std(axis=0)
    keep = sd > 1e-9
    z = (x[:, keep] - x[:, keep].mean(axis=0)) / sd[keep] if keep.any() else np.zeros((len(ids), 1))
    k_requested = k
    k = min(k, len(np.unique(np.round(z, 9), axis=0)))  # identical users cannot be told apart
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
    labels = [int(v) for v in km.labels_]
    persona_of = {r.persona_id: r.persona for r in recs}
    desc = {}
    for c in range(k):
        rows = x[np.array(labels) == c]
        if len(rows) == 0:
            desc[str(c)] = "empty"
            continue
        m = dict(zip(names, rows.mean(axis=0)))
        att = ", ".join(f"{a} {100 * m[f'att_{a}']:.0f}%" for a in ("negative", "neutral", "positive", "acceptance"))
        members = [persona_of[i] for i, lab in zip(ids, labels) if lab == c]
        traits = []
        for key in ("gender", "age_range", "zodiac", "mbti"):
            vals = Counter(str(p[key]) for p in members if key in p)
            if vals:
                v, cnt = vals.most_common(1)[0]
                traits.append(f"{v} ({cnt}/{len(members)})")
        desc[str(c)] = (
            f"acceptance {100 * m['accept']:.0f}%, withdrawals {100 * m['withdraw']:.0f}%, "
            f"{m['rounds']:.1f} rounds on average; attitudes {att}; "
            f"about {math.expm1(m['log_words']):.0f} words per reply, questions in {100 * m['questions']:.0f}% of replies"
            + (f"; common traits: {', '.join(traits)}" if traits else "")
        )
    return {"k": k, "k_requested": k_requested, "assignment": dict(zip(ids, labels)), "features": names,
            "descriptions": desc,
            "sizes": {str(c): labels.count(c) for c in range(k)}}


async def optimize(cfg: OptimizeConfig, out: str | Path, **kw) -> dict[str, Any]:
    opt = Optimizer(cfg, out, **kw)
    try:
        return await opt.run()
    finally:
        await opt.backend.aclose()
