"""What the simulated customers did: outcomes per run, and acceptance by whether the offer fits the budget.

    python bench/customers.py RUN [RUN ...] [--outcomes OUT.jsonl ...]

For each run (a `mads simulate` folder): calls, acceptance with its Wilson interval, withdrawals, undecided calls,
mean rounds, the decision's sources, and the share of dialogue wall time spent deciding. Over all runs together:
acceptance of customers whose budget is under the price against those whose budget covers it (the stance's
``budget_fits``), each with its Wilson interval and Fisher's exact test, and acceptance by leaning.
``--outcomes``: read each call's outcome from `mads outcome` files (or any JSONL with ``id`` and ``outcome``, such as a
reader's labels) instead of the recorded one, for runs generated with ``--decision off``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from scipy.stats import fisher_exact

from mads_text.common.runstore import read_dialogues
from mads_text.metrics import wilson_interval


def rate(k: int, n: int) -> str:
    ci = wilson_interval(k, n)
    return f"{k}/{n} = {100 * k / n:.0f} % [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if ci else "0/0"


def main(runs: list[str], outcomes: list[str] | None = None) -> None:
    given = {}
    for f in outcomes or []:
        for n, line in enumerate(Path(f).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise SystemExit(f"{f}:{n}: not JSON ({e})") from None
                if row.get("outcome") not in ("accept", "withdraw", "undecided"):
                    raise SystemExit(f"{f}:{n}: outcome must be accept, withdraw or undecided, not {row.get('outcome')!r}")
                given[row["id"]] = row
    every = []
    for run in runs:
        recs = read_dialogues(Path(run))
        if outcomes:
            missing = [r.id for r in recs if r.id not in given]
            if missing:
                raise SystemExit(f"{run}: no outcome given for {len(missing)} calls, e.g. {missing[0]}")
            recs = [r.model_copy(update={"outcome": given[r.id]["outcome"], "rounds": given[r.id].get("round") or r.rounds})
                    for r in recs]
        every += recs
        out = Counter(r.outcome for r in recs)
        wall = sum(r.stats.wall_s for r in recs)
        dec = sum(r.stats.decision_s for r in recs)
        print(f"{run}: {len(recs)} calls; accept {rate(out['accept'], len(recs))}; withdraw {out['withdraw']}; "
              f"undecided {out['max_rounds'] + out['undecided']}; mean rounds {sum(r.rounds for r in recs) / len(recs):.1f}; "
              f"deciding {100 * dec / wall:.1f} % of dialogue wall time")
        print("   decided by:", dict(Counter((r.decision.source if r.decision else "none") for r in recs)))
    by_fit: dict[bool, list[bool]] = {True: [], False: []}
    by_lean: dict[str, list[bool]] = {}
    for r in every:
        if r.stance and r.stance.get("budget_fits") is not None:
            by_fit[r.stance["budget_fits"]].append(r.outcome == "accept")
        if r.stance:
            by_lean.setdefault(r.stance["leaning"], []).append(r.outcome == "accept")
    under, over = by_fit[False], by_fit[True]
    print(f"budget under the price: accept {rate(sum(under), len(under))}")
    print(f"budget covers the price: accept {rate(sum(over), len(over))}")
    if under and over:
        _, p = fisher_exact([[sum(under), len(under) - sum(under)], [sum(over), len(over) - sum(over)]])
        print(f"Fisher's exact test, two-sided: p = {p:.3f}")
    for lean in ("open", "guarded", "resistant"):
        xs = by_lean.get(lean, [])
        if xs:
            print(f"leaning {lean}: accept {rate(sum(xs), len(xs))}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN")
    ap.add_argument("--outcomes", action="append", metavar="OUT.jsonl")
    args = ap.parse_args()
    main(args.runs, args.outcomes)
