"""The calls the shipped ear is trained on, as two run folders for `mads synth` (see `make ear`).

Every simulated call kept in tests/data/decision_calls_seed*.jsonl goes into OUT/all (voiced by flite, fast); 20 calls
per scenario, drawn with a fixed seed, also go into OUT/kokoro (voiced by Kokoro, about 2.5 audio s per wall s on 2
cores), so the ear hears natural voices beside flite's. A call voiced twice keeps one id, so both voicings fall in
the same train/held-out split.

    python train/ear_runs.py --out build/ear
"""

from __future__ import annotations

import argparse
import glob
import json
import random
from pathlib import Path

SCENARIOS = ("insurance", "finance", "automotive")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--calls", default="tests/data/decision_calls_seed*.jsonl")
    ap.add_argument("--kokoro-per-scenario", type=int, default=20)
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args()
    lines = [line for f in sorted(glob.glob(a.calls)) for line in Path(f).read_text().splitlines() if line.strip()]
    if not lines:
        raise SystemExit(f"no calls match {a.calls}")
    by_scenario: dict[str, list[str]] = {}
    for line in lines:
        by_scenario.setdefault(json.loads(line)["scenario"], []).append(line)
    # grouped by scenario, the built-in three first (the order the shipped ear's calls were drawn in)
    order = sorted(by_scenario, key=lambda s: (SCENARIOS.index(s) if s in SCENARIOS else len(SCENARIOS), s))
    lines = [x for s in order for x in by_scenario[s]]
    shuffled = lines[:]
    random.Random(a.seed).shuffle(shuffled)
    picked: dict[str, list[str]] = {}
    for line in shuffled:
        s = json.loads(line)["scenario"]
        if len(picked.setdefault(s, [])) < a.kokoro_per_scenario:
            picked[s].append(line)
    for name, chosen in (("all", lines), ("kokoro", [x for s in picked.values() for x in s])):
        run = Path(a.out) / name
        run.mkdir(parents=True, exist_ok=True)
        (run / "dialogues.jsonl").write_text("\n".join(chosen) + "\n")
        print(f"{run}: {len(chosen)} calls")


if __name__ == "__main__":
    main()
