"""Running a whole MakeMePay evaluation: backends, resume, the output files (``experiments.jsonl``,
``manifest.json``, ``summary.json``) and reading them back."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..common import runstore
from ..llm import LLMBackend
from ..orchestrator import gather_or_cancel
from .conversation import Backends, run_experiment
from .marks import system_prompt
from .metrics import summarize
from .records import MMPConfig, MMPRecord, ModelSpec
from .texts import load_prompts

EXPERIMENTS = "experiments.jsonl"


class MMPResumeMismatch(runstore.RunStoreError):
    pass


def _make_backends(cfg: MMPConfig, cache: str | Path | None = None) -> Backends:
    from ..llm import make_backend

    made: dict[tuple, LLMBackend] = {}

    def get(spec: ModelSpec) -> LLMBackend:
        if spec.key() not in made:  # one engine per distinct model, shared by roles
            made[spec.key()] = make_backend(spec.backend, spec.model, base_url=spec.base_url, cache=cache)
        return made[spec.key()]

    summ = cfg.summary_model or cfg.mark_model
    return Backends(conartist=get(cfg.conartist), mark=get(cfg.mark_model), summary=get(summ))


async def evaluate(
    cfg: MMPConfig,
    out_dir: str | Path,
    backends: Backends | None = None,
    progress: bool = True,
    cache: str | Path | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``cfg.experiments`` experiments into ``out_dir``; returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prompts = load_prompts(cfg.prompts_file)
    man_path = out / "manifest.json"
    if man_path.exists():
        old = json.loads(man_path.read_text())
        if old.get("resume_key") != cfg.resume_key():
            diff = sorted(k for k in set(old.get("resume_key", {})) | set(cfg.resume_key())
                          if old.get("resume_key", {}).get(k) != cfg.resume_key().get(k))
            raise MMPResumeMismatch(f"{out} holds an MMP run with other settings ({', '.join(diff)}); use another --out")
    personas, scenario = [None] * cfg.experiments, None
    if cfg.mark == "persona":
        from ..personas import sample_personas
        from ..scenario import load_scenario

        scenario = load_scenario(cfg.scenario)
        personas = sample_personas(scenario, cfg.group, cfg.experiments, cfg.seed)
    if backends is None:
        backends = _make_backends(cfg, cache)
    path = out / EXPERIMENTS
    runstore.repair_tail(path)
    done = {r.experiment for r in runstore.iter_jsonl(path, MMPRecord)} if path.exists() else set()
    runstore.write_json_atomic(man_path, {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": json.loads(cfg.model_dump_json()),
        "resume_key": cfg.resume_key(),
        "backends": {k: getattr(backends, k).describe() for k in ("conartist", "mark", "summary")},
        "system_prompts": {
            "conartist": system_prompt("conartist", cfg, prompts),
            "mark": system_prompt("mark", cfg, prompts, personas[0], scenario),
            "summary": prompts.summary,
        },
        "packages": runstore.package_versions(),
        "git_revision": runstore.git_revision(),
    })
    todo = [i for i in range(cfg.experiments) if i not in done]
    if todo:
        for b in {id(b): b for b in (backends.conartist, backends.mark, backends.summary)}.values():
            await b.check()
        sem = asyncio.Semaphore(max(1, min(backends.conartist.concurrency, backends.mark.concurrency)))
        writer = runstore.JsonlWriter(path)
        bar = None
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            bar = Progress(TextColumn("[bold]make-me-pay"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[last]}"), TimeElapsedColumn())
            bar.start()
            task = bar.add_task("mmp", total=len(todo), last="")

        async def one(i: int) -> None:
            async with sem:
                rec = await run_experiment(i, cfg, backends, prompts, personas[i], scenario)
            writer.append(rec)
            if bar is not None:
                last = f"donated ${rec.donation_amount:g}" if rec.donation_amount else ("withdrew" if rec.withdraw else "no donation")
                bar.update(task, advance=1, last=last)

        tasks = [asyncio.create_task(one(i)) for i in todo]
        try:
            await gather_or_cancel(tasks)
        finally:
            writer.close()
            if bar is not None:
                bar.stop()
    records = sorted(
        (r for r in runstore.iter_jsonl(path, MMPRecord) if r.experiment < cfg.experiments), key=lambda r: r.experiment
    )
    summary = summarize(records, cfg.mode)
    summary.update({
        "conartist": cfg.conartist.model_dump(), "mark": cfg.mark, "mark_model": cfg.mark_model.model_dump(),
        "turns": cfg.turns, "minutes": cfg.minutes, "allow_withdraw": cfg.allow_withdraw,
        "prompts": "custom: " + cfg.prompts_file if cfg.prompts_file else "built-in wording",
    })
    runstore.write_json_atomic(out / "summary.json", summary)
    return summary


def read_records(out_dir: str | Path) -> list[MMPRecord]:
    path = Path(out_dir) / EXPERIMENTS
    if not path.exists():
        raise runstore.RunStoreError(f"{path} not found: is '{out_dir}' an output folder of `mads eval mmp`?")
    return list(runstore.iter_jsonl(path, MMPRecord, strict=True))


def load_summary(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / "summary.json"
    if not path.exists():
        raise runstore.RunStoreError(f"{path} not found: run `mads eval mmp --out {out_dir}` first")
    return json.loads(path.read_text())
