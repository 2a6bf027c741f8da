"""Stratified evolution (beyond the paper, its limitation 3): one prompt per user segment.

After ``iter_0`` the users are clustered by their response and attitude patterns; each cluster runs its own
Algorithm 1 loop (``OPT/cluster_c/iter_k``) from its slice of the shared ``iter_0`` dialogues, and the report
compares per-cluster and overall success with the single-prompt loop.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from .common import runstore
from .common.records import DialogueRecord
from .optimize import IterationRow, OptimizeError, Optimizer, best_row, render_table
from .orchestrator import write_stats
from .personas import sample_personas


async def stratified(opt: Optimizer, h_basic: float, single_rows: list[IterationRow]) -> dict[str, Any]:
    """One Algorithm 1 loop per user cluster, from the shared iteration 0, compared with the single-prompt loop."""
    cfg = opt.cfg
    shared = opt.out / "iter_0"
    recs0 = runstore.read_dialogues(shared / "run")
    chains0 = (await opt.analyzer(recs0, shared / "run" / "analysis")).chains  # cached labels of iteration 0
    personas = sample_personas(opt.scenario, cfg.group, cfg.personas, cfg.seed)
    cl_path = opt.out / "clusters.json"
    if cl_path.exists():
        clusters = json.loads(cl_path.read_text())
    else:
        clusters = cluster_users(recs0, chains0, cfg.clusters, cfg.seed)
        runstore.write_json_atomic(cl_path, clusters)
    assign: dict[str, int] = clusters["assignment"]
    best_single = best_row(single_rows)
    single_best_recs = runstore.read_dialogues(opt.out / best_single.run)
    out_rows = []
    overall = Counter()
    per_cluster: dict[str, Any] = {}
    for c in range(clusters["k"]):
        members = [p for p in personas if assign.get(p.id) == c]
        if not members:
            continue
        ids = {p.id for p in members}
        desc = clusters["descriptions"][str(c)]
        note = (f"These calls are with one customer segment (cluster {c + 1} of {clusters['k']}, "
                f"{len(members)} customers): {desc}. Adapt the SOP to this segment.")
        base = opt.out / f"cluster_{c}"

        async def first_run(run: Path, ids=ids) -> None:
            # iteration 0 of every cluster is its slice of the shared iter_0 dialogues
            if (run / runstore.DIALOGUES).exists():
                return
            run.mkdir(parents=True, exist_ok=True)
            man = json.loads((shared / "run" / runstore.MANIFEST).read_text())
            man["persona_ids"] = sorted(ids)
            runstore.write_json_atomic(run / runstore.MANIFEST, man)
            sub = [r for r in recs0 if r.persona_id in ids]
            tmp = run / (runstore.DIALOGUES + ".tmp")
            tmp.write_text("".join(r.model_dump_json() + "\n" for r in sub), encoding="utf-8")
            tmp.replace(run / runstore.DIALOGUES)
            write_stats(run)

        rows = await opt.loop(base, h_basic, personas=members, version_prefix=f"c{c}-p", notes=[note],
                               first_run=first_run)
        res = opt._result(base, rows)
        runstore.write_json_atomic(base / "result.json", res)
        best = best_row(rows)
        best_recs = runstore.read_dialogues(opt.out / best.run)
        single_sub = [r for r in single_best_recs if r.persona_id in ids]
        p0_sub = [r for r in recs0 if r.persona_id in ids]
        acc = lambda rs: sum(r.outcome == "accept" for r in rs)
        per_cluster[str(c)] = {
            "users": len(members), "description": desc, "rows": [r.model_dump() for r in rows],
            "best_iteration": best.k, "tau_p0": acc(p0_sub) / max(1, len(p0_sub)),
            "tau_single_best": acc(single_sub) / max(1, len(single_sub)),
            "tau_cluster_best": acc(best_recs) / max(1, len(best_recs)),
            "dialogues": len(best_recs),
        }
        overall["cluster_accept"] += acc(best_recs)
        overall["cluster_n"] += len(best_recs)
        overall["single_accept"] += acc(single_sub)
        overall["single_n"] += len(single_sub)
        overall["p0_accept"] += acc(p0_sub)
        overall["p0_n"] += len(p0_sub)
        out_rows.append(render_table(rows, title=f"cluster {c} ({len(members)} users): {desc}"))
    summary = {
        "tau_p0": overall["p0_accept"] / max(1, overall["p0_n"]),
        "tau_single_best": overall["single_accept"] / max(1, overall["single_n"]),
        "tau_stratified": overall["cluster_accept"] / max(1, overall["cluster_n"]),
        "single_best_iteration": best_single.k,
    }
    lines = ["| cluster | users | τ with P0 | τ single-prompt loop (best) | τ cluster loop (best) |",
             "| --- | --- | --- | --- | --- |"]
    for c, d in per_cluster.items():
        lines.append(f"| {c} | {d['users']} | {100 * d['tau_p0']:.1f}% | {100 * d['tau_single_best']:.1f}% | "
                     f"{100 * d['tau_cluster_best']:.1f}% (K={d['best_iteration']}) |")
    lines.append(f"| all | {sum(d['users'] for d in per_cluster.values())} | {100 * summary['tau_p0']:.1f}% | "
                 f"{100 * summary['tau_single_best']:.1f}% (K={best_single.k}) | "
                 f"{100 * summary['tau_stratified']:.1f}% |")
    table = "Stratified evolution vs the single-prompt loop\n\n" + "\n".join(lines) + "\n\n" + "\n\n".join(out_rows)
    return {"clusters": per_cluster, "summary": summary, "table": table}


# --- clustering users by response and attitude patterns --------------------------------------------


def persona_features(recs: list[DialogueRecord], chains: dict[str, list[str | None]]) -> tuple[list[str], Any, list[str]]:
    """Per persona: outcome shares, rounds, coarse attitude shares and last attitude, reply length and questions."""
    import numpy as np

    from .attitude import COARSE, STATE_GROUP

    by_p: dict[str, list[DialogueRecord]] = {}
    for r in recs:
        by_p.setdefault(r.persona_id, []).append(r)
    names = (["accept", "withdraw", "max_rounds", "rounds"] + [f"att_{c}" for c in COARSE]
             + [f"last_{c}" for c in COARSE] + ["log_words", "questions"])
    ids, rows = [], []
    for pid, rs in sorted(by_p.items()):
        n = len(rs)
        f = [sum(r.outcome in o for r in rs) / n for o in (("accept",), ("withdraw",), ("max_rounds", "undecided"))]
        f.append(sum(r.rounds for r in rs) / n)
        states = [s for r in rs for s in chains.get(r.id, []) if s]
        f += [sum(STATE_GROUP.get(s) == c for s in states) / max(1, len(states)) for c in COARSE]
        lasts = [next((s for s in reversed(chains.get(r.id, [])) if s), None) for r in rs]
        f += [sum(s is not None and STATE_GROUP.get(s) == c for s in lasts) / n for c in COARSE]
        users = [t for r in rs for t in r.user_turns()]
        f.append(math.log1p(sum(len(t.split()) for t in users) / max(1, len(users))))
        f.append(sum("?" in t for t in users) / max(1, len(users)))
        ids.append(pid)
        rows.append(f)
    return ids, np.array(rows, dtype=float), names


def cluster_users(recs: list[DialogueRecord], chains: dict[str, list[str | None]], k: int, seed: int) -> dict[str, Any]:
    """k-means over standardised persona features; returns the assignment and a readable description per cluster."""
    import numpy as np
    from sklearn.cluster import KMeans

    ids, x, names = persona_features(recs, chains)
    if len(ids) < k:
        raise OptimizeError(f"--stratify needs at least {k} users for {k} clusters, got {len(ids)}")
    sd = x.std(axis=0)
    keep = sd > 1e-9
    z = (x[:, keep] - x[:, keep].mean(axis=0)) / sd[keep] if keep.any() else np.zeros((len(ids), 1))
    k_requested = k
    k = min(k, len(np.unique(np.round(z, 9), axis=0)))  # identical users cannot be told apart
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
    labels = [int(v) for v in km.labels_]
    persona_of = {r.persona_id: r.persona for r in recs}
    desc = {}
    for c in range(k):
        rows = x[np.array(labels) == c]
        if len(rows) == 0:
            desc[str(c)] = "empty"
            continue
        m = dict(zip(names, rows.mean(axis=0)))
        att = ", ".join(f"{a} {100 * m[f'att_{a}']:.0f}%" for a in ("negative", "neutral", "positive", "acceptance"))
        members = [persona_of[i] for i, lab in zip(ids, labels) if lab == c]
        traits = []
        for key in ("gender", "age_range", "zodiac", "mbti"):
            vals = Counter(str(p[key]) for p in members if key in p)
            if vals:
                v, cnt = vals.most_common(1)[0]
                traits.append(f"{v} ({cnt}/{len(members)})")
        desc[str(c)] = (
            f"acceptance {100 * m['accept']:.0f}%, withdrawals {100 * m['withdraw']:.0f}%, "
            f"{m['rounds']:.1f} rounds on average; attitudes {att}; "
            f"about {math.expm1(m['log_words']):.0f} words per reply, questions in {100 * m['questions']:.0f}% of replies"
            + (f"; common traits: {', '.join(traits)}" if traits else "")
        )
    return {"k": k, "k_requested": k_requested, "assignment": dict(zip(ids, labels)), "features": names,
            "descriptions": desc,
            "sizes": {str(c): labels.count(c) for c in range(k)}}


