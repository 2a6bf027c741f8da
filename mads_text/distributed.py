"""Sharded runs on a Ray cluster (optional ``ray`` extra).

The driver plans the run exactly as a single-process run does (same manifest,
same list of missing units), cuts the missing units into deterministic chunks,
and hands them to a pool of Ray actors. Each actor builds its engine once (an
LLM backend, a labeler, a TTS engine) and turns one chunk into records. Ray
places the actors, restarts a dead one and retries its in-flight chunk
(``max_restarts``/``max_task_retries``), and the pool only submits as many
chunks as there are actors, which is the back-pressure. Only the driver
writes: it appends each record as its chunk arrives and skips ids it already
has, so a retried chunk can never duplicate a line, and a rerun after any
failure produces only what is missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import runstore
from .common.records import DialogueRecord
from .llm import make_backend
from .orchestrator import SimulationConfig, SimulationResult, dialogue_id, plan_run, write_stats
from .personas import Persona


class RayUnavailable(RuntimeError):
    pass


def _ray():
    try:
        import ray
    except ImportError as e:
        raise RayUnavailable("--ray needs the ray extra: pip install -e '.[ray]'") from e
    return ray


def connect(address: str, num_cpus: int | None = None) -> None:
    """``auto`` joins a running cluster (``ray start --head``), ``local`` starts one in-process, else an address."""
    ray = _ray()
    if ray.is_initialized():
        return
    kw: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False, "include_dashboard": False}
    env = {"env_vars": {k: v for k, v in os.environ.items() if k.startswith(("MADS_", "HF_", "TRANSFORMERS_"))}}
    if address == "local":
        ray.init(num_cpus=num_cpus or os.cpu_count(), runtime_env=env, **kw)
    else:
        ray.init(address=address, runtime_env=env, **kw)


def stable_shard(key: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % n


def chunked(units: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(units[i : i + size]) for i in range(0, len(units), size)]


class _Worker:
    """Hosts one engine; ``factory`` is ``module:function`` returning ``chunk -> list[result]``."""

    def __init__(self, factory: str, kwargs: dict[str, Any]):
        mod, fn = factory.split(":")
        self.fn = getattr(importlib.import_module(mod), fn)(**kwargs)

    def run(self, chunk: list[Any]) -> list[Any]:
        return self.fn(chunk)

    def pid(self) -> int:
        return os.getpid()


def make_pool(factory: str, kwargs: dict[str, Any], workers: int, cpus_per_worker: float = 1, gpus_per_worker: float = 0):
    ray = _ray()
    actor_cls = ray.remote(_Worker).options(
        num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=3, max_task_retries=3
    )
    return [actor_cls.remote(factory, kwargs) for _ in range(workers)]


def ray_map(actors: list, chunks: Iterable[list[Any]], on_result: Callable[[Any], None]) -> None:
    """Run every chunk on the pool, at most one in flight per actor, results in completion order."""
    from ray.util import ActorPool

    pool = ActorPool(actors)
    for results in pool.map_unordered(lambda a, c: a.run.remote(c), list(chunks)):
        for r in results:
            on_result(r)


# --- self-play -----------------------------------------------------------------------


def selfplay_worker(cfg_json: str, threads: int = 1) -> Callable[[list[tuple[dict, int]]], list[str]]:
    """Engine side of a sharded self-play run: one backend per actor, a chunk's dialogues in flight together."""
    from .orchestrator import resolve_mode, run_dialogue
    from .scenario import load_scenario

    cfg = SimulationConfig.model_validate_json(cfg_json)
    scenario = load_scenario(cfg.scenario)
    kwargs = {"threads": threads} if cfg.backend == "embedded" else {}
    backend = make_backend(cfg.backend, cfg.model, base_url=cfg.base_url, parallel=cfg.concurrency, **kwargs)
    mode = resolve_mode(cfg, backend)

    def run(chunk: list[tuple[dict, int]]) -> list[str]:
        async def go():
            recs = await asyncio.gather(
                *(run_dialogue(Persona.model_validate(p), k, scenario, backend, cfg, mode) for p, k in chunk)
            )
            return [r.model_dump_json() for r in recs]

        return asyncio.run(go())

    return run


def simulate_ray(
    cfg: SimulationConfig,
    out_dir: str | Path,
    address: str = "local",
    workers: int = 2,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    retry_errors: bool = False,
    on_record: Callable[[DialogueRecord], None] | None = None,
) -> SimulationResult:
    """``mads simulate --ray``: same plan, records and resume semantics as ``orchestrator.simulate``."""
    ray = _ray()
    connect(address, num_cpus=int(workers * cpus_per_worker) if address == "local" else None)
    # the driver only needs the backend's name and settings for the manifest; it loads no model
    descriptor = make_backend(cfg.backend, cfg.model, base_url=cfg.base_url, parallel=cfg.concurrency)
    plan = plan_run(cfg, out_dir, descriptor, retry_errors)
    result = SimulationResult(run_dir=plan.out, produced=0, skipped=plan.total - len(plan.todo), total=plan.total)
    if not plan.todo:
        write_stats(plan.out)
        return result
    per_chunk = plan.cfg.concurrency or descriptor.concurrency
    # chunks follow persona order, so the same missing set always gives the same chunks
    units = [(p.model_dump(), k) for p, k in plan.todo]
    chunks = chunked(units, per_chunk)
    threads = max(1, int(cpus_per_worker))
    actors = make_pool("mads_text.distributed:selfplay_worker", {"cfg_json": plan.cfg.model_dump_json(), "threads": threads},
                       min(workers, len(chunks)), cpus_per_worker, gpus_per_worker)
    done = set(plan.done_ids)
    writer = runstore.JsonlWriter(plan.path)
    t0 = time.perf_counter()

    def take(line: str) -> None:
        rec = DialogueRecord.model_validate_json(line)
        if rec.id in done:
            return  # a retried chunk re-delivered it
        writer.append(rec)
        done.add(rec.id)
        result.produced += 1
        result.outcomes[rec.outcome] += 1
        result.completion_tokens += rec.usage.completion_tokens
        result.prompt_tokens += rec.usage.prompt_tokens
        result.role_slips += rec.stats.role_slips_cleaned + rec.stats.role_slips_retried
        if on_record:
            on_record(rec)

    try:
        ray_map(actors, chunks, take)
    finally:
        result.wall_s = time.perf_counter() - t0
        writer.close()
        write_stats(plan.out)
        for a in actors:
            ray.kill(a)
    missing = [dialogue_id(p, k) for p, k in plan.todo if dialogue_id(p, k) not in done]
    if missing:
        raise runstore.RunStoreError(f"{len(missing)} dialogues were not produced (e.g. {missing[0]}); rerun to resume")
    return result


# --- shared by the stages below ----------------------------------------------------------


@dataclass(frozen=True)
class RaySpec:
    """Where and how wide a stage runs on Ray: ``--ray ADDRESS --workers N --cpus-per-worker C --gpus-per-worker G``."""

    address: str = "local"
    workers: int = 2
    cpus_per_worker: float = 1
    gpus_per_worker: float = 0

    def threads(self) -> int:
        return max(1, int(self.cpus_per_worker))


def run_chunks(spec: RaySpec, factory: str, kwargs: dict[str, Any], chunks: list[list[Any]],
               on_result: Callable[[Any], None]) -> None:
    """Connect, start at most one actor per chunk, run every chunk through :func:`ray_map`, stop the actors."""
    ray = _ray()
    connect(spec.address, num_cpus=max(1, int(spec.workers * spec.cpus_per_worker)) if spec.address == "local" else None)
    if not chunks:
        return
    actors = make_pool(factory, kwargs, min(spec.workers, len(chunks)), spec.cpus_per_worker, spec.gpus_per_worker)
    try:
        ray_map(actors, chunks, on_result)
    finally:
        for a in actors:
            ray.kill(a)


# --- labelling (``mads analyze --ray``) ----------------------------------------------------


def labeling_worker(cfg_json: str, threads: int = 1) -> Callable[[list[str]], list[str]]:
    """Engine side of a sharded labelling: one labeler (and LLM backend for ``--labeler llm``) per actor."""
    from .analysis import LabelingConfig, RunLabeler

    cfg = LabelingConfig.model_validate_json(cfg_json)
    backend = None
    if cfg.labeler == "llm":
        kwargs = {"threads": threads} if cfg.backend == "embedded" else {}
        backend = make_backend(cfg.backend, cfg.model, base_url=cfg.base_url, **kwargs)
    labeler = RunLabeler(cfg, backend)

    def run(chunk: list[str]) -> list[str]:
        recs = [DialogueRecord.model_validate_json(x) for x in chunk]
        return [dl.model_dump_json() for dl in labeler.label_chunk(recs)]

    return run


def label_ray(records: Sequence[DialogueRecord], cfg_json: str, spec: RaySpec, chunk: int,
              on_label: Callable[[str], None]) -> None:
    """Label ``records`` on the pool in chunks of ``chunk`` dialogues sorted by id; ``on_label`` gets each
    :class:`~mads_text.labelers.base.DialogueLabels` as JSON, in completion order (the caller dedups and writes)."""
    units = [r.model_dump_json() for r in sorted(records, key=lambda r: r.id)]
    run_chunks(spec, "mads_text.distributed:labeling_worker", {"cfg_json": cfg_json, "threads": spec.threads()},
               chunked(units, max(1, chunk)), on_label)
