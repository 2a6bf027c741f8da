"""CLI of the analysis stage: ``mads analyze``, ``mads compare``, ``mads label``, ``mads analyze-p4g``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from .common.cli import fail


def analyze_cmd(
    run: Path = typer.Argument(..., help="Run folder (written by `mads simulate`), a folder holding only a "
                               "dialogues.jsonl, or any .jsonl file of dialogue records."),
    labeler: str = typer.Option("embedded", help="embedded (MiniLM + trained heads, fast), llm (the paper's prompts "
                                "through --backend/--model), or human (records carrying P4G human labels)."),
    labels: Optional[Path] = typer.Option(None, help="Use these per-round states instead of labelling: JSON lines "
                                          '{"dialogue_id", "round", "state"} (round = 1-based user turn).'),
    backend: str = typer.Option("embedded", help="LLM backend for --labeler llm and --judge."),
    model: Optional[str] = typer.Option(None, help="LLM model for --labeler llm / --judge (embedded: qwen1.5b, smollm2 or a .gguf)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint (openai backend)."),
    heads: Optional[Path] = typer.Option(None, help="Folder of trained labeler heads (default: the shipped ones)."),
    judge: bool = typer.Option(False, help="Also score every dialogue with the Table 7 LLM judge."),
    min_mean: Optional[float] = typer.Option(None, help="Judge filter: keep dialogues with mean score >= this."),
    quantile: Optional[float] = typer.Option(None, help="Judge filter: keep dialogues with mean score >= this quantile of the run."),
    require_success: bool = typer.Option(False, help="Judge filter: keep only dialogues the judge marks task_success."),
    bootstrap: int = typer.Option(1000, min=0, help="Bootstrap resamples for the confidence intervals."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Label on a Ray cluster: 'auto' (running cluster), 'local' "
                                      "(start one here) or an address."),
    workers: int = typer.Option(2, min=1, help="With --ray: labeling actors (one labeler, or LLM engine, each)."),
    cpus_per_worker: float = typer.Option(1.0, help="With --ray: CPUs per actor."),
    gpus_per_worker: float = typer.Option(0.0, help="With --ray: GPUs per actor (--labeler llm --backend vllm)."),
    out: Optional[Path] = typer.Option(None, help="Folder for the labels, metrics, figures and report (default: "
                                       "analysis/ beside the dialogues file)."),
) -> None:
    """Label a run (16 attitude states per user round, strategies per agent sentence), compute metrics, draw figures."""
    from .analysis import ANALYSIS_DIR, AnalysisError, LabelingConfig, analyze_run
    from .common.runstore import RunStoreError, open_dialogues
    from .distributed import RayUnavailable
    from .labelers.heads import HeadError
    from .llm import LLMError, LLMUnavailable

    cfg = LabelingConfig(labeler=labeler, labels_file=str(labels) if labels else None, backend=backend, model=model,
                         base_url=base_url, heads=str(heads) if heads else None)
    jd = None
    spec = None
    if ray:
        from .distributed import RaySpec

        spec = RaySpec(address=ray, workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
    try:
        src = open_dialogues(run)
        _warn_unreadable(src)
        if judge:
            from .judge import Judge
            from .llm import make_backend

            jd = Judge(make_backend(backend, model, base_url=base_url))
        t0 = time.perf_counter()
        m = analyze_run(src, cfg, n_boot=bootstrap, seed=seed, judge=jd,
                        judge_filter={"min_mean": min_mean, "quantile": quantile, "require_success": require_success},
                        ray=spec, out_dir=out)
    except RayUnavailable as e:
        fail(str(e))
    except (AnalysisError, RunStoreError, HeadError, LLMError, ValueError) as e:
        fail(str(e))
    except LLMUnavailable as e:
        fail(f"LLM backend unavailable: {e}")
    out = out or src.folder / ANALYSIS_DIR
    typer.echo(
        f"{out}: {m['n_labelled']}/{m['n_dialogues']} dialogues labelled ({m['labelers']['attitude']} / "
        f"{m['labelers']['strategy']}) in {time.perf_counter() - t0:.1f}s; H_avg {m['h_avg']:.4f} "
        f"(H_norm {m['h_norm']:.4f}, paper convention {m['h_norm_paper']:.4f}); C_str "
        f"{m['strategies_per_dialogue']['mean']}; acceptance {m['acceptance_rate']}; report {out / 'report.md'}"
    )


def _warn_unreadable(src, shown: int = 20) -> None:
    """Say what the analysis goes on without: lines that are not records, and provenance no manifest gives."""
    for n, why in src.bad_lines[:shown]:
        typer.echo(f"warning: {src.path}:{n}: skipped, {why}", err=True)
    if len(src.bad_lines) > shown:
        typer.echo(f"warning: {src.path}: {len(src.bad_lines) - shown} more lines skipped", err=True)
    if src.manifest is None:
        typer.echo(f"warning: {src.folder} has no manifest.json: model and settings are recorded as unknown", err=True)


def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="Analysed run folders (run `mads analyze` on each first, or use --analyze)."),
    baseline: Optional[Path] = typer.Option(None, help="Run the JS divergence is measured against (default: the first)."),
    out: Path = typer.Option(..., help="Folder for compare.json, compare.md and the figures."),
    names: Optional[str] = typer.Option(None, help="Comma-separated display names, in run order (baseline first if added)."),
    analyze: bool = typer.Option(False, "--analyze", help="Analyse runs that have no analysis yet (embedded labeler)."),
    bootstrap: int = typer.Option(500, min=0, help="Bootstrap resamples for the JS confidence intervals."),
    seed: int = typer.Option(0),
) -> None:
    """Put several runs side by side: entropy, JS divergence against a baseline, strategies, acceptance."""
    from .analysis import ANALYSIS_DIR, METRICS, AnalysisError, analyze_run, compare_runs
    from .common.runstore import RunStoreError

    try:
        if analyze:
            for r in [*(runs or []), *([baseline] if baseline else [])]:
                if not (r / ANALYSIS_DIR / METRICS).exists():
                    analyze_run(r)
        res = compare_runs(runs, out, baseline=baseline, names=names.split(",") if names else None,
                           n_boot=bootstrap, seed=seed)
    except (AnalysisError, RunStoreError) as e:
        fail(str(e))
    for r in res["runs"]:
        js = "baseline" if r["is_baseline"] else f"JS {r.get('js')}"
        typer.echo(f"{r['name']:>20}: H_avg {r['h_avg']:.4f}  H_norm {r['h_norm']:.4f}  {js}  "
                   f"C_str {r['c_str']}  acceptance {r['acceptance_rate']}")
    typer.echo(f"wrote {out / 'compare.md'}")


def label_cmd(
    task: str = typer.Option(..., help="strategy (P4G strategies + non-strategy) or attitude (coarse group + fine state)."),
    inp: Path = typer.Option(..., "--in", help='JSON lines {"id", "text", "context"} (context: preceding turns, a list '
                             "or one turn per line)."),
    out: Path = typer.Option(..., help='Output JSON lines {"id", "label"} (+ "state" for attitude).'),
    labeler: str = typer.Option("embedded", help="embedded or llm."),
    backend: str = typer.Option("embedded", help="LLM backend for --labeler llm."),
    model: Optional[str] = typer.Option(None, help="LLM model for --labeler llm."),
    base_url: Optional[str] = typer.Option(None),
    heads: Optional[Path] = typer.Option(None, help="Folder of trained labeler heads (default: the shipped ones)."),
    batch: int = typer.Option(512, min=1, help="Items per labelling batch (the output is appended per batch)."),
) -> None:
    """Label sentences or turns from a JSON lines file (resumes: ids already in --out are skipped)."""
    from .common.runstore import JsonlWriter, iter_jsonl
    from .labelers import LabelItem, make_labeler
    from .labelers.heads import HeadError
    from .llm import LLMError, LLMUnavailable

    if task not in ("strategy", "attitude"):
        fail("--task must be strategy or attitude")
    if not inp.exists():
        fail(f"{inp}: file not found")
    items: list[LabelItem] = []
    with open(inp, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if "context" in obj and not isinstance(obj["context"], (str, list, type(None))):
                    raise ValueError("'context' must be a string or a list of strings")
                items.append(LabelItem.model_validate({**obj, "id": str(obj.get("id", ""))}))
            except Exception as e:  # noqa: BLE001
                fail(f"{inp}:{n}: not a valid item ({e})")
            if not items[-1].id:
                fail(f"{inp}:{n}: missing 'id'")
    done = {o["id"] for o in iter_jsonl(out)} if out.exists() else set()
    todo = [it for it in items if it.id not in done]
    try:
        be = None
        if labeler == "llm":
            from .llm import make_backend

            be = make_backend(backend, model, base_url=base_url)
        lab = make_labeler(task, labeler, backend=be, heads=str(heads) if heads else None)
        t0 = time.perf_counter()
        with JsonlWriter(out) as w:
            for i in range(0, len(todo), batch):
                for res in lab.label(todo[i : i + batch]):
                    w.append(res.model_dump(exclude_none=True))
        dt = time.perf_counter() - t0
    except (HeadError, LLMError, ValueError) as e:
        fail(str(e))
    except LLMUnavailable as e:
        fail(f"LLM backend unavailable: {e}")
    rate = f", {len(todo) / dt:.1f} items/s" if todo and dt > 0 else ""
    typer.echo(f"{out}: {len(todo)} labelled, {len(done)} already there{rate}")


def analyze_p4g_cmd(
    data: Path = typer.Option(Path("/work/shared/data/p4g"), help="Folder with the P4G csv files."),
    out: Path = typer.Option(..., help="Output folder (run folders human/, human-embedded/, human-full/ and compare/)."),
    heads: Optional[Path] = typer.Option(None, help="Folder of trained labeler heads (default: the shipped ones)."),
    full: bool = typer.Option(True, help="Also label all 1,017 dialogues with the embedded labeler."),
    bootstrap: int = typer.Option(1000, min=0),
    seed: int = typer.Option(0),
) -> None:
    """The human rows: P4G dialogues as runs (persuader = agent, persuadee = user, donation > 0 = accept), analysed."""
    from .analysis import AnalysisError, analyze_p4g
    from .labelers.heads import HeadError
    from .p4g import P4GError

    try:
        s = analyze_p4g(data, out, heads=str(heads) if heads else None, n_boot=bootstrap, seed=seed, full=full)
    except (P4GError, AnalysisError, HeadError) as e:
        fail(str(e))
    for k, v in s.items():
        typer.echo(f"{k:>15}: {v['n_dialogues']} dialogues, H_avg {v['h_avg']:.4f} {v['h_avg_ci95']}, H_norm "
                   f"{v['h_norm']:.4f} (paper {v['h_norm_paper']:.4f}), C_str {v['c_str']}, acceptance {v['acceptance_rate']}")
    typer.echo(f"wrote {out / 'compare' / 'compare.md'}")


def register(app: typer.Typer, train: typer.Typer, eval_: typer.Typer) -> None:
    app.command("analyze")(analyze_cmd)
    app.command("compare")(compare_cmd)
    app.command("label")(label_cmd)
    app.command("analyze-p4g")(analyze_p4g_cmd)
