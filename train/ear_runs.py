"""The calls the shipped ear is trained on, as run folders for `mads synth` (see `make ear`).

Every simulated call kept in tests/data/decision_calls_seed*.jsonl up to seed 3131 (the 504 calls the shipped ear
heard; later batches are left out so that `make ear` rebuilds that ear) goes into OUT/all (voiced by flite, fast).
OUT/sentences holds single sentences of those calls, one per customer turn, for Kokoro (about 2.5 audio s per wall s
on 2 cores), so the ear hears natural voices beside flite's: every question, the agent's included, and about a third
of the customer's other sentences. A caller's question opens with its question word, where a whole customer line
mostly opens with a greeting ("Hi, Li Wei. How much ..."), and an ear trained on whole lines heard "How much" as "Hi
much". The sentences come from calls taken in a fixed shuffled order, after the first 20 per scenario: those are
OUT/kokoro, the whole customer lines the first shipped ear heard in Kokoro voices, which `make ear` no longer voices.
A call voiced twice keeps one id, so all its voicings fall in the same train/held-out split.

    python train/ear_runs.py --out build/ear
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import re
from pathlib import Path

from mads_text.replies import sentences

SCENARIOS = ("insurance", "finance", "automotive")


def seed_of(path: str) -> int:
    """The batch seed in a labelled file's name (decision_calls_seed2626_slot.jsonl: 2626); 0 when it has none."""
    m = re.search(r"seed(\d+)", Path(path).name)
    return int(m.group(1)) if m else 0


def sentences_of(call: dict, rng: random.Random, statements: float) -> list[str]:
    """The call's sentences an ear should hear alone: every question of three words or more, and a share of the
    customer's other sentences."""
    out = []
    for t in call["turns"]:
        for s in sentences(t["text"]):
            if len(s.split()) < 3 or "(" in s or "[" in s:
                continue
            if s.endswith("?") or (t["role"] == "user" and rng.random() < statements):
                out.append(s)
    return out


def sentence_call(call: dict, said: list[str]) -> dict:
    """The call again, its customer saying one sentence per turn (the agent's turns stay text and are not voiced)."""
    turns = [x for s in said for x in ({"role": "agent", "text": "Go on."}, {"role": "user", "text": s})]
    return {**call, "turns": turns}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--calls", default="tests/data/decision_calls_seed*.jsonl")
    ap.add_argument("--last-seed", type=int, default=3131, help="leave out files of a later seed (0: keep all)")
    ap.add_argument("--kokoro-per-scenario", type=int, default=20)
    ap.add_argument("--sentences-per-scenario", type=int, default=400)
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args()
    files = [f for f in sorted(glob.glob(a.calls)) if not a.last_seed or seed_of(f) <= a.last_seed]
    lines = [line for f in files for line in Path(f).read_text().splitlines() if line.strip()]
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
    rng, sent, count = random.Random(a.seed), [], dict.fromkeys(picked, 0)
    for line in shuffled:  # other calls than the Kokoro ones, in the same drawn order
        call = json.loads(line)
        s = call["scenario"]
        if line in picked[s] or count[s] >= a.sentences_per_scenario:
            continue
        said = sentences_of(call, rng, statements=0.3)[: a.sentences_per_scenario - count[s]]
        if said:
            sent.append(json.dumps(sentence_call(call, said)))
            count[s] += len(said)
    for name, chosen in (("all", lines), ("kokoro", [x for s in picked.values() for x in s]), ("sentences", sent)):
        run = Path(a.out) / name
        run.mkdir(parents=True, exist_ok=True)
        (run / "dialogues.jsonl").write_text("\n".join(chosen) + "\n")
        print(f"{run}: {len(chosen)} calls")


if __name__ == "__main__":
    main()
