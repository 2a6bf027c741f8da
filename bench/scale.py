"""Self-play scaling: one process vs Ray workers on this machine.

Prints dialogues/min for (a) one process using every core, (b) one Ray worker on
one CPU, (c) N Ray workers on one CPU each, and the parallel efficiency
(c) / (N x b), i.e. the ratio to ideal linear scaling. Each configuration runs the
same personas and seed into a fresh folder.

    python bench/scale.py --model smollm2 --personas 8 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from mads_text.distributed import connect, simulate_ray
from mads_text.orchestrator import SimulationConfig, simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--personas", type=int, default=8)
    ap.add_argument("--per-persona", type=int, default=1)
    ap.add_argument("--max-rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=2, help="dialogues in flight per engine")
    a = ap.parse_args()
    cfg = SimulationConfig(scenario="insurance", group="sign", personas=a.personas, per_persona=a.per_persona,
                           max_rounds=a.max_rounds, seed=11, model=a.model, concurrency=a.concurrency)
    n = a.personas * a.per_persona
    rows = []
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        asyncio.run(simulate(cfg, Path(d) / "single", progress=False))
        rows.append(("1 process, all cores", time.perf_counter() - t0))
        connect("local", num_cpus=os.cpu_count())
        for w in (1, a.workers):
            t0 = time.perf_counter()
            simulate_ray(cfg, Path(d) / f"ray{w}", address="local", workers=w, cpus_per_worker=1)
            rows.append((f"Ray, {w} worker(s) x 1 CPU", time.perf_counter() - t0))
    print(f"model {a.model}: {n} dialogues x up to {a.max_rounds} rounds, {a.concurrency} in flight per engine, "
          f"{os.cpu_count()} cores")
    for name, wall in rows:
        print(f"{name:28s} {60 * n / wall:7.2f} dialogues/min  ({wall:.1f} s)")
    one, many = 60 * n / rows[1][1], 60 * n / rows[2][1]
    print(f"parallel efficiency ({a.workers} workers vs ideal {a.workers} x 1 worker): {many / (a.workers * one):.2f}")
    print(f"Ray {a.workers} workers vs one process: {many / (60 * n / rows[0][1]):.2f}x")


if __name__ == "__main__":
    main()
