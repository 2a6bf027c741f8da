"""Agreement between readers, and between each reader and the decision module, on call outcomes.

Each input is a JSONL file of call outcomes: either ``mads outcome`` output / a reader's file
(``{"id", "outcome", "round"}``) or labelled records (``tests/data/decision_calls_*.jsonl``, whose call
outcome is the first round label that is not ``continue``). Only calls present in every input are compared.

    python bench/readers.py tests/data/decision_calls_seed2929.jsonl tests/data/decision_calls_seed3030.jsonl \
        --vs tests/data/decision_reader2_seed2929_3030.jsonl [--vs OUTCOMES.jsonl ...]

Prints, for each pair, outcome agreement with a Wilson interval, agreement on outcome and round, and Cohen's kappa
(agreement beyond what the two label distributions give by chance).
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from pathlib import Path

from mads_text.metrics import wilson_interval


def read_outcomes(paths: list[str]) -> dict[str, tuple[str, int | None]]:
    out: dict[str, tuple[str, int | None]] = {}
    for p in paths:
        for n, line in enumerate(Path(p).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{p}:{n}: not a JSON line ({e})") from None
            if "labels" in r:  # a labelled record: the call's outcome is its first deciding round
                first = next((lab for lab in r["labels"] if lab["decision"] != "continue"), None)
                out[r["id"]] = (first["decision"], first["round"]) if first else ("undecided", None)
            elif "outcome" in r:
                out[r["id"]] = (r["outcome"], r.get("round") or None)
            else:
                raise SystemExit(f"{p}:{n}: neither 'labels' nor 'outcome'")
    return out


def kappa(a: list[str], b: list[str]) -> float:
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    return (po - pe) / (1 - pe) if pe < 1 else 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("first", nargs="+", help="the first reader's files")
    ap.add_argument("--vs", action="append", required=True, help="another reader's or the module's files (repeat)")
    ap.add_argument("--name", action="append", default=[], help="names for first and each --vs, in order")
    args = ap.parse_args()
    sets = [read_outcomes(args.first), *(read_outcomes([p]) for p in args.vs)]
    names = args.name + [f"input{i}" for i in range(len(args.name), len(sets))]
    ids = sorted(set.intersection(*(set(s) for s in sets)))
    if not ids:
        raise SystemExit("no call is in every input")
    print(f"{len(ids)} calls in every input")
    for name, s in zip(names, sets):
        print(f"  {name}: {dict(Counter(s[i][0] for i in ids))}")
    for (na, a), (nb, b) in itertools.combinations(zip(names, sets), 2):
        xa, xb = [a[i][0] for i in ids], [b[i][0] for i in ids]
        k = sum(x == y for x, y in zip(xa, xb))
        both = sum(a[i] == b[i] for i in ids)
        lo, hi = wilson_interval(k, len(ids))
        print(f"{na} ~ {nb}: outcome {k}/{len(ids)} = {k / len(ids):.2f} [{lo:.2f}, {hi:.2f}], "
              f"outcome and round {both}/{len(ids)}, kappa {kappa(xa, xb):.2f}")


if __name__ == "__main__":
    main()
