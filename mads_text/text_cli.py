"""CLI for the text core: simulate, show, scenarios, personas."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .common.cli import fail
from .llm import BACKENDS, LLMError, LLMUnavailable


def _read_text_arg(value: Optional[str]) -> Optional[str]:
    """A literal string, or @path to read it from a file."""
    if value and value.startswith("@"):
        p = Path(value[1:])
        if not p.exists():
            fail(f"{p}: file not found")
        return p.read_text(encoding="utf-8")
    return value


def simulate_cmd(
    scenario: str = typer.Option("insurance", help="Built-in scenario name (insurance, automotive, finance) or a YAML path."),
    group: str = typer.Option("sign", help="Persona group: base (demographics), sign (+Zodiac), mbti (+MBTI), busi (sign + business attributes)."),
    personas: Optional[int] = typer.Option(None, min=1, help="Number of User Agent personas (default 20 sampled; with --personas-file, all of them)."),
    personas_file: Optional[Path] = typer.Option(None, help="JSONL of imported personas (mads import-personas) instead of sampling."),
    per_persona: int = typer.Option(2, min=1, help="Independent dialogues per persona (N)."),
    max_rounds: int = typer.Option(8, min=1, help="Rounds T (agent turn + user turn) before a dialogue ends as max_rounds."),
    seed: int = typer.Option(7, help="Seed for persona sampling and generation; same seed, same personas."),
    out: Path = typer.Option(..., help="Run folder; rerunning the same command resumes into it."),
    backend: str = typer.Option("embedded", help=f"LLM backend: {', '.join(BACKENDS)}."),
    model: Optional[str] = typer.Option(None, help="Embedded: preset qwen1.5b (default) or smollm2, or a .gguf path. openai: served model name. vllm/transformers: checkpoint folder."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (openai backend)."),
    prompt_mode: str = typer.Option("auto", help="auto (transcript for embedded/transformers, chat otherwise), chat or transcript."),
    prompt: Optional[str] = typer.Option(None, help="Dialog Agent instruction/SOP replacing the scenario's meta instruction; @file reads a file."),
    prompt_version: str = typer.Option("p0", help="Label stored with every record for this instruction."),
    concurrency: Optional[int] = typer.Option(None, help="Dialogues in flight (default: the backend's parallel slots, 4 for embedded)."),
    decision: str = typer.Option("auto", help="How calls end: auto/hybrid (cue rules checked by the LLM), rules (no LLM), off (run every call to --max-rounds)."),
    chat_stance: bool = typer.Option(False, "--chat-stance", help="Chat mode: add the customer's inner stance to the paper's User Agent prompt (transcript mode always has it)."),
    agent_note: bool = typer.Option(True, "--agent-note/--no-agent-note", help="Transcript mode: a private reminder before each agent line (from round 2) to answer the customer and ask for the scenario's next step."),
    cache: Optional[Path] = typer.Option(None, help="SQLite request cache; reruns of identical requests are free and exact."),
    retry_errors: bool = typer.Option(False, help="Redo dialogues recorded with outcome 'error'."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Shard over a Ray cluster: 'auto' (running cluster), 'local' (start one here) or an address."),
    workers: int = typer.Option(2, min=1, help="With --ray: engine actors (one LLM engine each)."),
    cpus_per_worker: float = typer.Option(1.0, help="With --ray: CPUs per actor (llama.cpp threads)."),
    gpus_per_worker: float = typer.Option(0.0, help="With --ray: GPUs per actor (vllm backend)."),
) -> None:
    """Run persona-driven self-play and write RUN/dialogues.jsonl (resumable)."""
    from .common.runstore import RunStoreError
    from .llm import make_backend
    from .orchestrator import SimulationConfig, simulate
    from .scenario import ScenarioError, load_scenario

    try:
        load_scenario(scenario)
        cfg = SimulationConfig(
            scenario=scenario, group=group, personas=personas, per_persona=per_persona, max_rounds=max_rounds,
            personas_file=str(personas_file) if personas_file else None,
            seed=seed, backend=backend, model=model, base_url=base_url, prompt_mode=prompt_mode,
            prompt_k=_read_text_arg(prompt), prompt_version=prompt_version, concurrency=concurrency,
            decision=decision, stance_in_chat=chat_stance, agent_note=agent_note,
        )
    except ScenarioError as e:
        fail(str(e))
    except ValueError as e:
        fail(str(e))
    try:
        if ray:
            from .distributed import RayUnavailable, simulate_ray

            try:
                res = simulate_ray(cfg, out, ray, workers, cpus_per_worker, gpus_per_worker, retry_errors)
            except RayUnavailable as e:
                fail(str(e))
        else:
            be = make_backend(backend, model, base_url=base_url, cache=cache, parallel=concurrency)
            res = asyncio.run(simulate(cfg, out, backend=be, retry_errors=retry_errors))
    except LLMUnavailable as e:
        fail(f"LLM backend unavailable: {e}")
    except (RunStoreError, LLMError) as e:
        fail(str(e))
    typer.echo(
        f"{out}: {res.produced} new dialogues, {res.skipped} already there, {res.total} expected; "
        f"outcomes {dict(res.outcomes)}; {res.dialogues_per_min:.2f} dialogues/min, "
        f"{res.tokens_per_s:.1f} generated tokens/s; role slips handled: {res.role_slips}"
    )


def show_cmd(
    run: Path = typer.Argument(..., help="Run folder."),
    limit: int = typer.Option(3, help="Number of dialogues to print."),
    dialogue_id: Optional[str] = typer.Option(None, "--id", help="Print this dialogue only."),
) -> None:
    """Print dialogues of a run as readable transcripts."""
    from .common.runstore import RunStoreError, read_dialogues, read_manifest

    try:
        recs = read_dialogues(run)
        man = read_manifest(run)
    except RunStoreError as e:
        fail(str(e))
    if dialogue_id:
        recs = [r for r in recs if r.id == dialogue_id]
        if not recs:
            fail(f"no dialogue '{dialogue_id}' in {run}")
    agent_name = "Agent"
    if man is not None:
        from .scenario import ScenarioError, load_scenario

        try:
            agent_name = load_scenario(man.scenario_file or man.scenario).agent.name
        except ScenarioError:
            pass
    for r in recs[:limit]:
        p = r.persona
        sig = " ".join(str(p[k]) for k in ("zodiac", "mbti") if k in p)
        typer.secho(
            f"\n== {r.id}  [{r.outcome}, {r.rounds} rounds]  {p.get('name')}, {p.get('gender')}, {p.get('age')} {sig}",
            bold=True,
        )
        if r.stance:
            st = r.stance
            typer.echo(f"   stance: {st.get('leaning')}; need {st.get('need')}; budget {st.get('budget')} vs price "
                       f"{st.get('price')}; objections: {' | '.join(st.get('objections', []))}")
        for t in r.turns:
            who = agent_name if t.role == "agent" else p.get("name", "User")
            typer.echo(f"{who}: {t.text}" + (f"   [{t.marker.upper()}]" if t.marker else ""))
        if r.decision:
            d = r.decision
            where = f" after round {d.round}" if d.round else ""
            typer.secho(f"-> {d.outcome}{where} ({d.source})" + (f': "{d.evidence}"' if d.evidence else ""), dim=True)


def outcome_cmd(
    source: Path = typer.Argument(..., help="A run folder, a folder holding dialogues.jsonl, or any .jsonl of dialogue records."),
    out: Path = typer.Option(..., help="JSON Lines output, one line per dialogue; a rerun skips ids already there."),
    decision: str = typer.Option("hybrid", help="hybrid (cue rules checked by the LLM) or rules (no LLM)."),
    scenario: Optional[str] = typer.Option(None, help="Scenario (name or YAML) for every dialogue; default: each record's own, else generic acceptance criteria."),
    backend: str = typer.Option("embedded", help=f"LLM backend of the check: {', '.join(BACKENDS)}."),
    model: Optional[str] = typer.Option(None, help="Model of the check (embedded default: qwen1.5b)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint (openai backend)."),
    concurrency: int = typer.Option(4, min=1, help="Dialogues decided at once."),
) -> None:
    """Decide stored dialogues again (accept / withdraw / undecided, the round, the customer's words)."""
    from .common.runstore import RunStoreError, open_dialogues
    from .decision import CallFrame
    from .llm import make_backend
    from .redecide import redecide
    from .scenario import ScenarioError, load_scenario

    if decision not in ("hybrid", "rules"):
        fail(f"--decision must be hybrid or rules, not {decision!r}")
    try:
        src = open_dialogues(source)
        frame = CallFrame.of(load_scenario(scenario)) if scenario else None
    except (RunStoreError, ScenarioError) as e:
        fail(str(e))
    if out.resolve() == src.path.resolve():
        fail(f"--out {out} is the input file; write the decisions elsewhere")
    for n, why in src.bad_lines:
        typer.secho(f"warning: {src.path}:{n}: skipped, {why}", fg=typer.colors.YELLOW, err=True)
    try:
        be = make_backend(backend, model, base_url=base_url, parallel=concurrency) if decision == "hybrid" else None
        res = asyncio.run(redecide(src, out, be, frame, concurrency))
    except LLMUnavailable as e:
        fail(f"LLM backend unavailable: {e} (or use --decision rules)")
    except (RunStoreError, LLMError) as e:
        fail(str(e))
    typer.echo(f"{out}: {res['decided']} dialogues decided, {res['skipped']} already there; outcomes "
               f"{res['outcomes']}; {res['llm_calls']} LLM calls; {len(res['bad_lines'])} bad input lines")


def scenarios_cmd(validate: Optional[Path] = typer.Option(None, help="Validate this scenario file and exit.")) -> None:
    """List built-in scenarios, or validate a scenario file."""
    from .scenario import ScenarioError, builtin_scenarios, load_scenario

    if validate is not None:
        try:
            sc = load_scenario(str(validate))
        except ScenarioError as e:
            fail(str(e))
        typer.echo(f"{validate}: ok ({sc.name}: {len(sc.user_profile)} profile fields, {len(sc.business_attributes)} business attributes)")
        return
    for name in builtin_scenarios():
        sc = load_scenario(name)
        typer.echo(f"{name:12s} {sc.description}")


def personas_cmd(
    scenario: str = typer.Option("insurance", help="Scenario name or YAML path."),
    group: str = typer.Option("sign", help="base, sign, mbti or busi."),
    n: int = typer.Option(3, min=1, help="How many personas."),
    seed: int = typer.Option(7, help="Sampling seed."),
    prompt: bool = typer.Option(False, help="Print the rendered User Agent prompt instead of the fields."),
) -> None:
    """Sample personas and print their fields (JSON lines) or prompts."""
    from .personas import render_user_prompt, sample_personas
    from .scenario import ScenarioError, load_scenario

    try:
        sc = load_scenario(scenario)
        ps = sample_personas(sc, group, n, seed)
    except (ScenarioError, ValueError) as e:
        fail(str(e))
    for p in ps:
        if prompt:
            typer.echo(f"# {p.id}\n{render_user_prompt(p, sc)}\n")
        else:
            sys.stdout.write(json.dumps({"id": p.id, **p.fields}, ensure_ascii=False) + "\n")


def import_personas_cmd(
    mapping: Path = typer.Option(..., help="Field-mapping YAML (source columns -> persona fields); see docs/personas.md."),
    table: Path = typer.Option(..., help="Source table (CSV) with one profile per row."),
    scenario: str = typer.Option(..., help="Scenario the personas will face (name or YAML path)."),
    out: Path = typer.Option(..., help="Output JSONL of personas, for mads simulate --personas-file."),
    limit: Optional[int] = typer.Option(None, min=1, help="Keep the first N kept rows."),
) -> None:
    """Turn external profile records (CRM, survey panel) into personas through a validated mapping."""
    from .common.runstore import JsonlWriter
    from .persona_import import MappingError, import_personas, load_mapping
    from .scenario import ScenarioError, load_scenario

    try:
        sc = load_scenario(scenario)
        ps = import_personas(load_mapping(mapping), table, sc.name, limit=limit)
    except (MappingError, ScenarioError) as e:
        fail(str(e))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    with JsonlWriter(tmp) as w:
        for p in ps:
            w.append(p)
    tmp.replace(out)
    typer.echo(f"{out}: {len(ps)} personas")


def fidelity_cmd(
    data: Path = typer.Option(Path("../shared/data/p4g"), help="P4G data folder (full_info.csv, full_dialog.csv)."),
    personas: int = typer.Option(40, min=1, help="How many real persuadees to simulate (random sample by --seed)."),
    per_person: int = typer.Option(2, min=1, help="Simulated dialogues per person."),
    max_rounds: int = typer.Option(10, min=1, help="Rounds per dialogue (P4G's median is about 10 turns)."),
    seed: int = typer.Option(7, help="Sampling and generation seed."),
    out: Path = typer.Option(..., help="Output folder (resumable): personas.jsonl, run/, fidelity.json, report.md."),
    backend: str = typer.Option("embedded", help=f"LLM backend: {', '.join(BACKENDS)}."),
    model: Optional[str] = typer.Option(None, help="Model for the backend (see mads simulate --help)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint."),
    mapping: Optional[Path] = typer.Option(None, help="Persona mapping file (default: the shipped P4G mapping)."),
    concurrency: Optional[int] = typer.Option(None, help="Dialogues in flight."),
    coa: bool = typer.Option(True, help="Also compare Chain-of-Attitude entropy with the same people's real dialogues."),
) -> None:
    """Simulate real P4G persuadees from their profiles and compare with what they actually did."""
    from .common.runstore import RunStoreError
    from .fidelity import run_fidelity
    from .persona_import import MappingError

    if not (data / "full_info.csv").exists():
        fail(f"{data}/full_info.csv not found: pass --data pointing at the P4G folder")
    try:
        res = run_fidelity(str(data), str(out), personas, per_person, max_rounds, seed, backend, model, base_url,
                           str(mapping) if mapping else None, concurrency, coa)
    except LLMUnavailable as e:
        fail(f"LLM backend unavailable: {e}")
    except (MappingError, RunStoreError, ValueError) as e:
        fail(str(e))
    r, s, g = res["real_donation_rate"], res["sim_donation_rate"], res["gap_sim_minus_real"]
    typer.echo(
        f"real donation rate {100 * r['rate']:.1f} % [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}], simulated "
        f"{100 * s['rate']:.1f} % [{100 * s['lo']:.1f}, {100 * s['hi']:.1f}], gap {100 * g['value']:+.1f} pts "
        f"[{100 * g['lo']:+.1f}, {100 * g['hi']:+.1f}]; report: {out / 'report.md'}"
    )


def reproduce_cmd(
    out: Path = typer.Option(..., help="Output folder (resumable): table1/, table4/, reproduction.json, report.md."),
    scale: str = typer.Option("small", help="small: about an hour on 2 CPU cores with the embedded 1.5B model; "
                              "paper: 200 dialogues per persona group and 40 users per scenario (use a GPU backend)."),
    backend: str = typer.Option("embedded", help=f"LLM backend: {', '.join(BACKENDS)}."),
    model: Optional[str] = typer.Option(None, help="Model for the backend (see mads simulate --help)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint."),
    concurrency: Optional[int] = typer.Option(None, help="Dialogues in flight."),
    labeler: str = typer.Option("embedded", help="embedded (MiniLM + trained heads) or llm (the paper's prompts)."),
    seed: int = typer.Option(7, help="Sampling and generation seed."),
) -> None:
    """Reproduce the paper's Tables 1, 2 and 4 at a chosen scale and write one report beside the paper's numbers."""
    import asyncio

    from .analysis import AnalysisError
    from .common.runstore import RunStoreError
    from .optimize import OptimizeError
    from .reproduce import SCALES, ReproduceConfig, ReproduceError, reproduce

    if scale not in SCALES:
        fail(f"--scale must be one of {', '.join(SCALES)}")
    if labeler not in ("embedded", "llm"):
        fail("--labeler must be embedded or llm")
    cfg = ReproduceConfig(scale=scale, backend=backend, model=model, base_url=base_url, concurrency=concurrency,
                          labeler=labeler, seed=seed)
    try:
        res = asyncio.run(reproduce(cfg, out, log=lambda s: typer.echo(s, err=True)))
    except LLMUnavailable as e:
        fail(f"LLM backend unavailable: {e}")
    except (ReproduceError, OptimizeError, AnalysisError, RunStoreError, ValueError) as e:
        fail(str(e))
    typer.echo((out / "report.md").read_text())
    typer.echo(f"wrote {out / 'report.md'} ({res['settings']['wall_s'] / 60:.1f} min)")


def register(app: typer.Typer, train: typer.Typer, eval_: typer.Typer) -> None:
    app.command("simulate")(simulate_cmd)
    app.command("show")(show_cmd)
    app.command("outcome")(outcome_cmd)
    app.command("scenarios")(scenarios_cmd)
    app.command("personas")(personas_cmd)
    app.command("import-personas")(import_personas_cmd)
    app.command("fidelity")(fidelity_cmd)
    app.command("reproduce")(reproduce_cmd)
