"""The numbers of ``metrics.json``: entropy of the attitude transitions, strategy use, acceptance, with CIs."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import metrics as M
from ..attitude import COARSE, STATE_GROUP, STATES
from ..common.records import DialogueRecord
from ..labelers.base import DialogueLabels
from ..strategies import NON_STRATEGY, STRATEGIES

METRICS_VERSION = 1
# outcomes that say nothing about acceptance: the dialogue failed, or its file did not record how it ended
NO_OUTCOME = ("error", "unknown")


def nan_to_none(x: Any) -> Any:
    """JSON has no NaN: undefined numbers are written as null."""
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {k: nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [nan_to_none(v) for v in x]
    return x


def ci95(pair: tuple[float, float]) -> list[float | None]:
    return [None if math.isnan(v) else round(v, 6) for v in pair]


def _r(x: float | None, nd: int = 6) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return round(float(x), nd)


def coarse_chain(chain: Sequence[str | None]) -> list[str | None]:
    return [STATE_GROUP[s] if s else None for s in chain]


def _acceptance_definition(records: Sequence[DialogueRecord]) -> str:
    # runs of `mads simulate` never hold "unknown": their metrics.json keeps the wording it always had
    if any(r.outcome == "unknown" for r in records):
        return "dialogues with outcome accept / dialogues whose outcome is known (neither error nor unknown)"
    return "dialogues with outcome accept / dialogues without outcome error"


def compute_metrics(
    records: Sequence[DialogueRecord],
    labels: Sequence[DialogueLabels],
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything ``metrics.json`` holds, from the records (outcomes) and their labels."""
    by_id = {d.dialogue_id: d for d in labels}
    att = [by_id[r.id] for r in records if r.id in by_id and by_id[r.id].attitude_ok]
    chains = [d.chain() for d in att]
    counts = M.transition_counts(chains)
    t = M.transition_matrix(counts)
    h = M.h_avg(t)
    h_ci = M.bootstrap_ci(chains, M.chain_entropy, n_boot=n_boot, seed=seed, method="centered") if chains else (math.nan, math.nan)
    cchains = [coarse_chain(c) for c in chains]
    ccounts = M.transition_counts(cchains, COARSE)
    ct = M.transition_matrix(ccounts)
    visits = Counter(s for c in chains for s in c if s)

    strat = [by_id[r.id] for r in records if r.id in by_id and by_id[r.id].strategy_ok]
    sets = [d.strategy_set for d in strat]
    c_str = M.distinct_strategies(sets)
    c_mean, c_sd = M.mean_sd(c_str)
    c_ci = M.bootstrap_ci(c_str, lambda v: float(np.mean(v)), n_boot=n_boot, seed=seed) if c_str else (math.nan, math.nan)
    type_counts = M.strategy_type_counts(sets, STRATEGIES)
    sent_counts = Counter(s.label for d in strat for s in d.strategies)
    n_sent = sum(sent_counts.values())
    cv = M.coefficient_of_variation(type_counts)
    cv_ci = M.bootstrap_ci(sets, lambda v: M.coefficient_of_variation(M.strategy_type_counts(v, STRATEGIES)),
                           n_boot=n_boot, seed=seed) if sets else (math.nan, math.nan)

    outcomes = [r.outcome for r in records if r.outcome not in NO_OUTCOME]
    acc = M.acceptance_rate(outcomes)
    acc_ci = M.bootstrap_ci(outcomes, M.acceptance_rate, n_boot=n_boot, seed=seed) if outcomes else (math.nan, math.nan)
    pred_acc = [d.accepted for d in att if d.accepted is not None]

    unl = [r.id for r in records if r.id not in by_id or not by_id[r.id].attitude_ok]
    sources = Counter(rl.source for d in att for rl in d.rounds)
    out = {
        "version": METRICS_VERSION,
        "n_dialogues": len(records),
        "n_labelled": len(att),
        "n_unlabelled": len(unl),
        "unlabelled_ids": unl[:200],
        "n_rounds": int(sum(len(c) for c in chains)),
        "n_transitions": int(counts.sum()),
        "states": list(STATES),
        "h_avg": round(h, 6),
        "h_avg_ci95": ci95(h_ci),
        "h_norm": round(M.h_norm(h), 6),
        "h_norm_paper": round(M.h_norm_paper(h), 6),
        "row_entropy": [round(x, 6) for x in M.row_entropies(t)],
        "rows_visited": int((counts.sum(axis=1) > 0).sum()),
        "transition_counts": counts.tolist(),
        "transition_matrix": [[round(x, 6) for x in row] for row in t],
        "state_frequency": {s: visits.get(s, 0) for s in STATES},
        "round_label_sources": dict(sources),
        "coarse": {
            "states": list(COARSE),
            "transition_counts": ccounts.tolist(),
            "transition_matrix": [[round(x, 6) for x in row] for row in ct],
            "h_avg": round(M.h_avg(ct), 6),
            "h_norm": round(M.h_norm(M.h_avg(ct), len(COARSE)), 6),
        },
        "strategies": list(STRATEGIES),
        "strategies_per_dialogue": {"mean": _r(c_mean), "sd": _r(c_sd), "ci95": ci95(c_ci), "n": len(c_str)},
        "strategy_dialogue_counts": {s: int(n) for s, n in zip(STRATEGIES, type_counts)},
        "strategy_sentence_counts": {s: int(sent_counts.get(s, 0)) for s in (*STRATEGIES, NON_STRATEGY)},
        "non_strategy_share": _r(sent_counts.get(NON_STRATEGY, 0) / n_sent) if n_sent else None,
        "strategy_cv": _r(cv),
        "strategy_cv_ci95": ci95(cv_ci),
        "acceptance_rate": _r(acc),
        "acceptance_rate_ci95": ci95(acc_ci),
        "outcomes": dict(Counter(r.outcome for r in records)),
        "labeler_accept_rate": _r(float(np.mean(pred_acc))) if pred_acc else None,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "unit": "dialogue",
                      "interval": "95%: percentile, re-centred on the estimate for H_avg and JS (plug-in bias)"},
        "definitions": {
            "h_avg": "mean over all 16 rows of H(T_i) = -sum_j T_ij ln T_ij (nats); unvisited rows count 0",
            "h_norm": "h_avg / ln 16",
            "h_norm_paper": "h_avg / 2.77 (the paper's rounding of ln 16)",
            "strategies_per_dialogue": "C_str: distinct strategies (non-strategy excluded) per dialogue; sd is the sample sd",
            "strategy_cv": "population sd / mean of the number of dialogues using each of the ten strategies",
            "acceptance_rate": _acceptance_definition(records),
        },
    }
    return nan_to_none(out)
