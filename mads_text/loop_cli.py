"""CLI of the closed loop: ``mads optimize``, ``mads export``, ``mads eval mmp`` and ``mads eval mmp-report``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import List, Optional

import typer

from .common.cli import fail
from .llm import BACKENDS, LLMError, LLMUnavailable

# --- mads eval mmp ------------------------------------------------------------------


def mmp_cmd(
    out: Path = typer.Option(..., help="Output folder (experiments.jsonl, manifest.json, summary.json); rerun to resume."),
    backend: str = typer.Option("embedded", help=f"Backend of the model under test (the con-artist): {', '.join(BACKENDS)}."),
    model: Optional[str] = typer.Option(None, help="Model under test: embedded preset/.gguf, served name, or checkpoint folder."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint of the model under test."),
    mark: str = typer.Option("balanced", help="Mark: balanced, guarded, generous, or persona (MADS personas as marks)."),
    mark_base: str = typer.Option("balanced", help="With --mark persona: the instruction after the profile (balanced, guarded, generous)."),
    scenario: str = typer.Option("insurance", help="With --mark persona: scenario whose personas play the marks."),
    group: str = typer.Option("sign", help="With --mark persona: persona group (base, sign, mbti, busi)."),
    mark_backend: str = typer.Option("embedded", help="Backend of the mark (kept fixed across the models compared)."),
    mark_model: Optional[str] = typer.Option("qwen1.5b", help="Mark model."),
    mark_base_url: Optional[str] = typer.Option(None, help="Endpoint of the mark model."),
    summary_backend: Optional[str] = typer.Option(None, help="Backend of the summary fallback model (default: the mark's)."),
    summary_model: Optional[str] = typer.Option(None, help="Summary fallback model (default: the mark's)."),
    experiments: int = typer.Option(20, min=1, help="Number of conversations (the published default variant runs 20)."),
    turns: int = typer.Option(5, min=1, help="Turn cap (published variants: 5, 10, 15)."),
    minutes: float = typer.Option(0.0, min=0, help="Time cap in minutes instead of the turn cap (published: 1, 3, 5)."),
    mode: str = typer.Option("faithful", help="faithful (published behaviour and quirks) or fixed (quirks corrected)."),
    withdraw: bool = typer.Option(True, help="Allow the mark to end the conversation with [WITHDRAW]."),
    seed: int = typer.Option(7, help="Seed for sampling and persona marks."),
    conartist_max_tokens: int = typer.Option(512, help="Max tokens per con-artist reply."),
    mark_max_tokens: int = typer.Option(1000, help="Max tokens per mark reply (published: 1000)."),
    conartist_temperature: float = typer.Option(1.0, help="Con-artist sampling temperature."),
    mark_temperature: float = typer.Option(1.0, help="Mark temperature (published: 1.0)."),
    prompts: Optional[Path] = typer.Option(None, help="YAML/JSON replacing role texts (keys conartist, marks.{balanced,guarded,generous}, persona, summary, withdraw)."),
    cache: Optional[Path] = typer.Option(None, help="SQLite request cache."),
) -> None:
    """MakeMePay: how often does the model talk a mark out of (part of) $100? Prints the published metrics."""
    from .common.runstore import RunStoreError
    from .llm import GenParams
    from .mmp import MMPConfig, ModelSpec, details_table, evaluate

    try:
        cfg = MMPConfig(
            mode=mode, experiments=experiments, turns=turns, minutes=minutes, mark=mark, mark_base=mark_base,
            scenario=scenario, group=group, allow_withdraw=withdraw, seed=seed,
            conartist=ModelSpec(backend=backend, model=model, base_url=base_url),
            mark_model=ModelSpec(backend=mark_backend, model=mark_model, base_url=mark_base_url),
            summary_model=(ModelSpec(backend=summary_backend or mark_backend, model=summary_model or mark_model,
                                     base_url=mark_base_url) if (summary_backend or summary_model) else None),
            conartist_params=GenParams(temperature=conartist_temperature, max_tokens=conartist_max_tokens),
            mark_params=GenParams(temperature=mark_temperature, max_tokens=mark_max_tokens),
            prompts_file=str(prompts) if prompts else None,
        )
    except ValueError as e:
        fail(str(e))
    try:
        summary = asyncio.run(evaluate(cfg, out, cache=cache))
    except LLMUnavailable as e:
        fail(f"LLM backend unavailable: {e}")
    except (ValueError, RunStoreError, LLMError) as e:
        fail(str(e))
    typer.echo(details_table([(str(out), summary)]))
    typer.echo(f"mode: {cfg.mode}; turn cap {cfg.turns}" if not cfg.minutes else f"mode: {cfg.mode}; time cap {cfg.minutes} min")
    typer.echo(f"summary: {out / 'summary.json'}")


def mmp_report_cmd(
    runs: List[Path] = typer.Argument(..., help="Output folders of `mads eval mmp`; with --pairs: base1 tuned1 base2 tuned2 ..."),
    pairs: bool = typer.Option(True, help="Read the folders as (original, fine-tuned) pairs and print the paper's Table 3 shape."),
    names: Optional[str] = typer.Option(None, help="Comma-separated model names for the rows (one per pair)."),
    out: Optional[Path] = typer.Option(None, help="Also write the tables to this Markdown file."),
) -> None:
    """Compare MMP results: the Table 3 shape (donation / withdraw %, original vs MADS fine-tuned) plus details."""
    from .common.runstore import RunStoreError
    from .mmp import details_table, load_summary, table3

    try:
        sums = [load_summary(r) for r in runs]
    except RunStoreError as e:
        fail(str(e))
    modes = {s["mode"] for s in sums}
    if len(modes) > 1:
        typer.secho("warning: the runs mix faithful and fixed modes; their numbers are not comparable", err=True)
    text = ""
    if pairs:
        if len(runs) % 2:
            fail("--pairs needs an even number of folders: original and fine-tuned for each model")
        labels = names.split(",") if names else [str(runs[i]) for i in range(0, len(runs), 2)]
        if len(labels) != len(runs) // 2:
            fail(f"--names gives {len(labels)} names for {len(runs) // 2} pairs")
        rows = [(labels[i // 2], sums[i], sums[i + 1]) for i in range(0, len(runs), 2)]
        text += table3(rows) + "\n\n"
    text += details_table([(str(r), s) for r, s in zip(runs, sums)]) + "\n"
    text += f"\nmode: {', '.join(sorted(modes))}\n"
    typer.echo(text)
    if out:
        out.write_text(text, encoding="utf-8")


# --- mads optimize ------------------------------------------------------------------------


def optimize_cmd(
    out: Path = typer.Option(..., help="Optimize folder (config.json, iter_k/, result.json, table.md); rerun to resume."),
    scenario: str = typer.Option("insurance", help="Scenario name or YAML path."),
    group: str = typer.Option("sign", help="User Agents U: persona group base, sign, mbti or busi."),
    personas: int = typer.Option(20, min=1, help="Number of User Agents."),
    per_persona: int = typer.Option(2, min=1, help="Dialogues per User Agent and iteration."),
    max_rounds: int = typer.Option(8, min=1, help="Rounds T per dialogue."),
    iterations: int = typer.Option(2, min=0, help="K: evolution steps (rows K=0..K are scored unless --literal)."),
    theta: float = typer.Option(0.25, min=0, max=1, help="θ: target acceptance rate, also its upper bound."),
    overwhelm_margin: float = typer.Option(0.25, min=0, help="Flag iterations with acceptance above θ + this as overwhelming."),
    h_basic: Optional[float] = typer.Option(None, help="Baseline entropy H_basic (default: H_avg of a base-group run with P0)."),
    h_basic_run: Optional[Path] = typer.Option(None, help="Compute H_basic from this base-group run folder."),
    prompt: Optional[str] = typer.Option(None, help="P0 (default: the scenario's meta instruction); @file reads a file."),
    seed: int = typer.Option(7, help="Seed for personas and sampling."),
    backend: str = typer.Option("embedded", help=f"Self-play backend: {', '.join(BACKENDS)}."),
    model: Optional[str] = typer.Option(None, help="Self-play model (embedded default qwen1.5b)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint."),
    prompt_mode: str = typer.Option("auto", help="auto, chat or transcript."),
    concurrency: Optional[int] = typer.Option(None, help="Dialogues in flight."),
    labeler: str = typer.Option("embedded", help="Attitude labeler for SUMMARY: embedded (fast) or llm (the evolution model)."),
    judge: bool = typer.Option(False, help="Judge every dialogue (Table 7) with the evolution model and show scores in the feedback."),
    evolve_backend: Optional[str] = typer.Option(None, help="Backend of the Optimization Agent (default: the self-play one)."),
    evolve_model: Optional[str] = typer.Option(None, help="Model of the Optimization Agent (default: the self-play one)."),
    evolve_base_url: Optional[str] = typer.Option(None, help="Endpoint of the Optimization Agent."),
    evolve_attempts: int = typer.Option(3, min=1, help="Tries for a valid Business SOP before keeping the previous prompt."),
    evolve_max_tokens: int = typer.Option(1200, min=64, help="Token limit of the reflection answer."),
    feedback_failed: int = typer.Option(6, min=0, help="Failed dialogues shown to the reflection prompt."),
    feedback_success: int = typer.Option(2, min=0, help="Successful dialogues shown to the reflection prompt."),
    literal: bool = typer.Option(False, help="Algorithm 1 exactly as printed: the last evolved prompt is written, not scored."),
    stratify: bool = typer.Option(False, help="Cluster users by response/attitude patterns and evolve one prompt per cluster."),
    clusters: int = typer.Option(2, min=2, help="Number of user clusters with --stratify."),
    cache: Optional[Path] = typer.Option(None, help="SQLite request cache."),
) -> None:
    """Algorithm 1: simulate, summarise, evaluate and evolve the Dialog Agent prompt; prints the per-iteration table."""
    from .common.runstore import RunStoreError
    from .llm import make_backend
    from .optimize import OptimizeConfig, OptimizeError, optimize
    from .scenario import ScenarioError, load_scenario

    if prompt and prompt.startswith("@"):
        pf = Path(prompt[1:])
        if not pf.exists():
            fail(f"{pf}: file not found")
        prompt = pf.read_text(encoding="utf-8")
    try:
        load_scenario(scenario)
        cfg = OptimizeConfig(
            scenario=scenario, group=group, personas=personas, per_persona=per_persona, max_rounds=max_rounds,
            iterations=iterations, theta=theta, overwhelm_margin=overwhelm_margin, h_basic=h_basic,
            h_basic_run=str(h_basic_run) if h_basic_run else None, prompt0=prompt, seed=seed, backend=backend,
            model=model, base_url=base_url, prompt_mode=prompt_mode, concurrency=concurrency, labeler=labeler,
            judge=judge, evolve_backend=evolve_backend, evolve_model=evolve_model, evolve_base_url=evolve_base_url,
            evolve_attempts=evolve_attempts, evolve_max_tokens=evolve_max_tokens, feedback_failed=feedback_failed,
            feedback_success=feedback_success, literal=literal, stratify=stratify, clusters=clusters,
        )
    except (ScenarioError, ValueError) as e:
        fail(str(e))

    def log(msg: str) -> None:
        typer.secho(msg, fg=typer.colors.CYAN, err=True)

    try:
        be = make_backend(backend, model, base_url=base_url, cache=cache, parallel=concurrency)
        ev = None
        if evolve_backend or evolve_model:
            ev = make_backend(evolve_backend or backend, evolve_model or model,
                              base_url=evolve_base_url or base_url, cache=cache)
        res = asyncio.run(optimize(cfg, out, backend=be, evolve_backend=ev, log=log))
    except LLMUnavailable as e:
        fail(f"LLM backend unavailable: {e}")
    except (OptimizeError, RunStoreError, LLMError, ValueError) as e:
        fail(str(e))
    typer.echo(res["table"])
    if "stratified" in res:
        typer.echo("\n" + res["stratified"]["table"])
    typer.echo(f"\n{res['reason']}; best iteration K={res['best_iteration']} ({res['best_run']}); "
               f"best prompt in {out / 'best_prompt.txt'}; {res['wall_s']:.0f} s")


# --- mads export ------------------------------------------------------------------------


def export_cmd(
    runs: List[Path] = typer.Argument(..., help="Run folders, or optimize folders (every iteration's run)."),
    out: Path = typer.Option(..., help="Dataset folder: train.jsonl, test.jsonl, hf/ (datasets), export.json."),
    outcome: str = typer.Option("accept", help="Comma-separated outcomes to keep (accept, withdraw, max_rounds) or 'any'."),
    min_agent_turns: int = typer.Option(2, min=1, help="Drop dialogues with fewer Dialog Agent turns."),
    min_judge_mean: Optional[float] = typer.Option(None, help="Keep dialogues whose judge mean (0-3) is at least this; needs judge scores in RUN/analysis/."),
    judge_quantile: Optional[float] = typer.Option(None, min=0, max=1, help="Keep dialogues at or above this quantile of the judge mean (e.g. 0.5: the better half)."),
    require_task_success: bool = typer.Option(False, help="Keep only dialogues the judge marked as task success."),
    max_recorded_slips: Optional[int] = typer.Option(None, help="Also drop dialogues whose self-play guard repaired more role slips than this."),
    keep_unrepaired_slips: bool = typer.Option(False, help="Keep dialogues with a reply the self-play guard kept as written after every sample slipped (dropped by default)."),
    test_fraction: float = typer.Option(0.1, min=0, max=0.9, help="Share of personas held out as the test split."),
    opt_best: bool = typer.Option(False, help="From an optimize folder, export only the best iteration."),
    seed: int = typer.Option(0, help="Seed of the persona-level train/test split."),
) -> None:
    """Turn good dialogues into a chat fine-tuning dataset (system = Dialog Agent prompt, agent turns = targets)."""
    from .common.runstore import RunStoreError
    from .export import ExportConfig, ExportError, export

    known = ["accept", "withdraw", "max_rounds", "undecided"]
    outcomes = known if outcome == "any" else [o.strip() for o in outcome.split(",") if o.strip()]
    bad = [o for o in outcomes if o not in known]
    if bad:
        fail(f"--outcome: unknown outcome(s) {bad}; use accept, withdraw, max_rounds or any")
    cfg = ExportConfig(
        outcomes=outcomes, min_agent_turns=min_agent_turns, min_judge_mean=min_judge_mean, judge_quantile=judge_quantile,
        require_task_success=require_task_success, max_recorded_slips=max_recorded_slips,
        keep_unrepaired_slips=keep_unrepaired_slips, test_fraction=test_fraction, seed=seed, opt_best=opt_best,
    )
    try:
        info = export([str(r) for r in runs], out, cfg)
    except (ExportError, RunStoreError) as e:
        fail(str(e))
    typer.echo(
        f"{out}: kept {info['kept']} of {info['candidates']} dialogues ({info['train']} train, {info['test']} test, "
        f"{info['assistant_turns']} assistant turns); dropped {info['dropped']}"
    )


def register(app: typer.Typer, train: typer.Typer, eval_: typer.Typer) -> None:
    app.command("optimize")(optimize_cmd)
    app.command("export")(export_cmd)
    eval_.command("mmp")(mmp_cmd)
    eval_.command("mmp-report")(mmp_report_cmd)
