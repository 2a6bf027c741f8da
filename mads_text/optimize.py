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

The control flow is ``algorithm1.self_optimize``; this module supplies its stages with their files.
SUMMARY and EVALUATE read the analysis stage back (``evaluation.py``); ``stratify`` runs one loop per
user segment (``stratify.py``).
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from .algorithm1 import Iteration, self_optimize
from .common import runstore
from .common.records import DialogueRecord
from .evaluation import IterationAnalysis, RunAnalyzer, build_feedback
from .evolve import EvolutionResult, Feedback, evolve
from .llm import GenParams, LLMBackend, make_backend
from .metrics import wilson_interval
from .orchestrator import SimulationConfig, simulate
from .personas import Persona
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

    # -- one loop (all users, or one cluster): the stages of Algorithm 1, each persisted and resumable --
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
        analyses: dict[int, IterationAnalysis] = {}
        timings: dict[int, dict[str, float]] = {}
        evolved_ok: dict[int, bool] = {}

        def clock(k: int, stage: str, t0: float) -> None:
            timings.setdefault(k, {})[stage] = round(time.perf_counter() - t0, 1)

        async def gen_dialogue(k: int, prompt: str) -> list[DialogueRecord]:
            it = base / f"iter_{k}"
            it.mkdir(parents=True, exist_ok=True)
            if not (it / "prompt.txt").exists():
                (it / "prompt.txt").write_text(prompt + "\n", encoding="utf-8")
            self.log(f"{base.name}/iter_{k}: GENDIALOGUE with {version_prefix}{k}")
            t0 = time.perf_counter()
            if k == 0 and first_run is not None:
                await first_run(it / "run")
            else:
                await simulate(cfg.sim(prompt, f"{version_prefix}{k}"), it / "run", backend=self.backend,
                               progress=self.progress, personas=personas)
            clock(k, "sim_s", t0)
            return runstore.read_dialogues(it / "run")

        async def summary(k: int, recs: list[DialogueRecord]) -> float:
            self.log(f"{base.name}/iter_{k}: SUMMARY and EVALUATE on {len(recs)} dialogues")
            t0 = time.perf_counter()
            analyses[k] = await self.analyzer(recs, base / f"iter_{k}" / "run" / "analysis")
            clock(k, "analysis_s", t0)
            return analyses[k].h_avg

        async def evaluate(k: int, recs: list[DialogueRecord]) -> tuple[float, Feedback]:
            fb = build_feedback(recs, analyses[k], cfg, seed=cfg.seed + k, notes=notes)
            runstore.write_json_atomic(base / f"iter_{k}" / "feedback.json", fb)
            return analyses[k].acceptance_rate, fb

        async def evolution(k: int, prompt: str, fb: Feedback) -> str:
            it, nxt = base / f"iter_{k}", base / f"iter_{k + 1}" / "prompt.txt"
            if nxt.exists() and (it / "evolution.json").exists():  # evolved before a restart
                evolved_ok[k] = json.loads((it / "evolution.json").read_text()).get("ok")
                return nxt.read_text(encoding="utf-8").strip()
            self.log(f"{base.name}/iter_{k}: EVOLUTION with {self.evolve_backend.model}")
            t0 = time.perf_counter()
            res: EvolutionResult = await evolve(
                prompt, fb, self.scenario, self.evolve_backend, attempts=cfg.evolve_attempts,
                params=GenParams(temperature=0.7, max_tokens=cfg.evolve_max_tokens),
                history_chars=cfg.history_chars, seed=cfg.seed + k,
            )
            clock(k, "evolution_s", t0)
            evolved_ok[k] = res.ok
            runstore.write_json_atomic(it / "evolution.json", res)
            nxt.parent.mkdir(parents=True, exist_ok=True)
            tmp = nxt.with_suffix(".tmp")
            tmp.write_text(res.prompt + "\n", encoding="utf-8")
            tmp.replace(nxt)  # the next prompt exists whole or not at all
            return res.prompt.strip()

        def row(it: Iteration) -> IterationRow:
            recs, ana = it.dialogues, analyses[it.k]
            return IterationRow(
                k=it.k, prompt_version=f"{version_prefix}{it.k}", run=str((base / f"iter_{it.k}" / "run").relative_to(self.out)),
                n_dialogues=len(recs), tau=it.tau,
                tau_ci95=wilson_interval(sum(r.outcome == "accept" for r in recs), len(recs)), h_avg=it.h,
                h_norm=ana.h_norm, h_basic=h_basic, theta=cfg.theta, meets_theta=it.tau >= cfg.theta,
                meets_h=it.h >= h_basic, stop=it.stop, overwhelming=it.tau > cfg.theta + cfg.overwhelm_margin,
                judge_mean=(ana.judge_summary or {}).get("mean"), evolution_ok=evolved_ok.get(it.k),
                prompt_chars=len(it.prompt), **timings.get(it.k, {}),
            )

        def pick_best(its: list[Iteration]) -> Iteration:
            return next(i for i in its if i.k == best_row([row(i) for i in its]).k)

        p0_file = base / "iter_0" / "prompt.txt"
        p0 = p0_file.read_text(encoding="utf-8").strip() if p0_file.exists() else self.p0
        _, done = await self_optimize(p0, cfg.iterations, cfg.theta, h_basic, gen_dialogue, summary, evaluate,
                                      evolution, pick_best, score_last_prompt=not cfg.literal)
        rows = [row(it) for it in done]
        for r in rows:
            runstore.write_json_atomic(base / f"iter_{r.k}" / "evaluation.json", r)
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
            from .stratify import stratified

            result["stratified"] = await stratified(self, hb, rows)
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        runstore.write_json_atomic(self.out / "result.json", result)
        (self.out / "best_prompt.txt").write_text(result["best_prompt"] + "\n", encoding="utf-8")
        text = result["table"]
        if "stratified" in result:
            text += "\n\n" + result["stratified"]["table"]
        (self.out / "table.md").write_text(text + "\n", encoding="utf-8")
        return result


async def optimize(cfg: OptimizeConfig, out: str | Path, **kw) -> dict[str, Any]:
    opt = Optimizer(cfg, out, **kw)
    try:
        return await opt.run()
    finally:
        await opt.backend.aclose()
