"""Diversity and outcome metrics of the MADS paper, as pure functions.

Conventions used throughout:

* States are indexed in the order of :data:`mads_text.attitude.STATES` (Appendix A.1), |S| = 16.
* All logarithms are natural, so entropies and divergences are in nats.
* A *chain* is the sequence of per-round attitude states of one dialogue (one state per user turn);
  ``None`` marks a round whose label could not be obtained. A transition is counted only between two
  consecutive labelled rounds of the same dialogue.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from .attitude import STATES

LN16 = math.log(16)
#: the paper's rounded ln(16), used for its H_norm column
PAPER_LN16 = 2.77

U = TypeVar("U")


# --- attitude transitions -----------------------------------------------------------------


def transition_counts(chains: Iterable[Sequence[str | None]], states: Sequence[str] = STATES) -> np.ndarray:
    """Count matrix N with N[i, j] = number of times state s_i in round t-1 is followed by s_j in round t.

    Rounds labelled ``None`` break the chain (no transition into or out of them).
    Raises ValueError for a state outside ``states``.
    """
    index = {s: i for i, s in enumerate(states)}
    n = np.zeros((len(states), len(states)), dtype=np.int64)
    for chain in chains:
        prev = None
        for s in chain:
            if s is None:
                prev = None
                continue
            if s not in index:
                raise ValueError(f"state {s!r} is not one of the {len(states)} states")
            cur = index[s]
            if prev is not None:
                n[prev, cur] += 1
            prev = cur
    return n


def transition_matrix(counts: np.ndarray) -> np.ndarray:
    """Row-stochastic T with T[i, j] = N[i, j] / sum_k N[i, k]; a row with no outgoing transitions stays all zero."""
    counts = np.asarray(counts, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(rows > 0, counts / np.where(rows > 0, rows, 1.0), 0.0)
    return t


def entropy(p: np.ndarray) -> float:
    """Shannon entropy H(p) = -sum_{j: p_j > 0} p_j ln p_j (nats); 0 for an all-zero vector."""
    p = np.asarray(p, dtype=float)
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum()) if nz.size else 0.0


def row_entropies(t: np.ndarray) -> np.ndarray:
    """H(T_i) = -sum_{j: T_ij > 0} T_ij ln T_ij for every row i; unvisited rows give 0."""
    return np.array([entropy(row) for row in np.asarray(t, dtype=float)])


def h_avg(t: np.ndarray) -> float:
    """H_avg = (1/|S|) sum_{i=1}^{|S|} H(T_i), averaged over *all* rows: an unvisited row counts as 0."""
    t = np.asarray(t, dtype=float)
    return float(row_entropies(t).sum() / t.shape[0])


def h_norm(h: float, n_states: int = 16) -> float:
    """H_norm = H_avg / ln|S| (exact), in [0, 1]."""
    return h / math.log(n_states)


def h_norm_paper(h: float) -> float:
    """The paper's Table 1 convention: H_avg / 2.77 (ln 16 rounded to two decimals)."""
    return h / PAPER_LN16


def chain_entropy(chains: Iterable[Sequence[str | None]], states: Sequence[str] = STATES) -> float:
    """H_avg of the transition matrix estimated from ``chains``."""
    return h_avg(transition_matrix(transition_counts(chains, states)))


# --- divergences ------------------------------------------------------------------------


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """D_KL(P || Q) = sum_{i: p_i > 0} p_i ln(p_i / q_i); infinite when some p_i > 0 has q_i = 0."""
    p = np.asarray(p, dtype=float).ravel()
    q = np.asarray(q, dtype=float).ravel()
    m = p > 0
    if np.any(q[m] <= 0):
        return math.inf
    return float((p[m] * np.log(p[m] / q[m])).sum())


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """JS(P, Q) = 1/2 D_KL(P || M) + 1/2 D_KL(Q || M) with M = (P + Q) / 2, natural log.

    Inputs are normalised to sum 1 first. Range [0, ln 2]: 0 for identical distributions,
    ln 2 ≈ 0.693 for distributions with disjoint support.
    """
    p = np.asarray(p, dtype=float).ravel()
    q = np.asarray(q, dtype=float).ravel()
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("JS divergence needs two non-empty distributions")
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)
    return max(0.0, 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m))


def joint_transition_distribution(counts: np.ndarray) -> np.ndarray:
    """P_ij = N_ij / sum_kl N_kl: the distribution of a randomly drawn observed transition (i -> j)."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        raise ValueError("no transitions observed")
    return counts / total


def js_transitions(counts_a: np.ndarray, counts_b: np.ndarray) -> float:
    """JS divergence between two groups' joint transition distributions N^A/ΣN^A and N^B/ΣN^B (|S|² cells).

    This is the headline JS of ``mads compare``: it compares both where users go and how often each state is left.
    """
    return js_divergence(joint_transition_distribution(counts_a), joint_transition_distribution(counts_b))


def js_rows(counts_a: np.ndarray, counts_b: np.ndarray) -> float:
    """Row-averaged variant: mean over states i visited (with outgoing transitions) in *both* groups of
    JS(T^A_i, T^B_i). Compares where users go from a given state, ignoring how often states occur.

    Returns NaN when no state has outgoing transitions in both groups.
    """
    a = np.asarray(counts_a, dtype=float)
    b = np.asarray(counts_b, dtype=float)
    shared = [i for i in range(a.shape[0]) if a[i].sum() > 0 and b[i].sum() > 0]
    if not shared:
        return math.nan
    return float(np.mean([js_divergence(a[i], b[i]) for i in shared]))


# --- strategies -------------------------------------------------------------------------


def distinct_strategies(per_dialogue: Iterable[Iterable[str]], exclude: Iterable[str] = ("non-strategy",)) -> list[int]:
    """C_str of each dialogue: the number of distinct strategy labels it uses (``exclude`` not counted)."""
    ex = set(exclude)
    return [len({s for s in labels if s not in ex}) for labels in per_dialogue]


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation with n-1 in the denominator); sd is 0 for fewer than two values."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def strategy_type_counts(per_dialogue: Iterable[Iterable[str]], strategies: Sequence[str]) -> np.ndarray:
    """n_k = number of dialogues that use strategy k at least once, for k in ``strategies`` (in that order)."""
    idx = {s: i for i, s in enumerate(strategies)}
    n = np.zeros(len(strategies), dtype=np.int64)
    for labels in per_dialogue:
        for s in set(labels):
            if s in idx:
                n[idx[s]] += 1
    return n


def coefficient_of_variation(counts: Sequence[float]) -> float:
    """CV = σ / μ of the counts, σ the population standard deviation over the K types (ddof = 0).

    Applied to :func:`strategy_type_counts` over the ten strategies it measures how unevenly the
    strategy types are used: 0 when every type is used equally often, sqrt(K - 1) = 3 when one type
    takes everything. NaN when no strategy occurs.
    """
    c = np.asarray(counts, dtype=float)
    mu = c.mean() if c.size else 0.0
    if mu <= 0:
        return math.nan
    return float(c.std(ddof=0) / mu)


# --- outcomes ---------------------------------------------------------------------------


def acceptance_rate(outcomes: Iterable[str], accept: str = "accept") -> float:
    """Share of dialogues whose outcome is ``accept``: #accept / #dialogues (NaN for none)."""
    out = list(outcomes)
    return sum(1 for o in out if o == accept) / len(out) if out else math.nan


# --- uncertainty ------------------------------------------------------------------------


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson score interval of the proportion k/n, clipped to [0, 1]; None when there is no sample (n = 0)."""
    if n == 0:
        return None
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(k: int, n: int, z: float = 1.96) -> dict[str, float | None]:
    """``{"rate", "lo", "hi"}`` of k/n with its Wilson interval; all None when n = 0."""
    ci = wilson_interval(k, n, z)
    return {"rate": k / n if n else None, "lo": ci[0] if ci else None, "hi": ci[1] if ci else None}


def bootstrap_ci(
    units: Sequence[U],
    stat: Callable[[Sequence[U]], float],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    method: str = "percentile",
) -> tuple[float, float]:
    """Bootstrap CI of ``stat`` over ``units`` (dialogues), resampled with replacement.

    ``percentile``: the (alpha/2, 1 - alpha/2) quantiles of stat over ``n_boot`` resamples of the same size.
    ``centered``: those quantiles shifted by theta - mean(resamples), i.e. the spread of the resamples
    around the full-sample value theta. Use it for plug-in entropies and divergences: duplicated dialogues
    in a resample lower an entropy (raise a divergence), so the plain percentile interval can miss theta. Resamples where stat is NaN are dropped.
    (NaN, NaN) when there are no units.
    """
    units = list(units)
    if not units:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    vals = []
    n = len(units)
    for _ in range(n_boot):
        sample = [units[i] for i in rng.integers(0, n, size=n)]
        v = stat(sample)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            vals.append(v)
    if not vals:
        return math.nan, math.nan
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    if method == "centered":
        return _center(float(stat(units)), vals, float(lo), float(hi))
    return float(lo), float(hi)


def _center(theta: float, vals: list[float], lo: float, hi: float) -> tuple[float, float]:
    shift = theta - float(np.mean(vals))
    return max(0.0, lo + shift), max(0.0, hi + shift)


def bootstrap_ci_two(
    units_a: Sequence[Any],
    units_b: Sequence[Any],
    stat: Callable[[Sequence[Any], Sequence[Any]], float],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    method: str = "percentile",
) -> tuple[float, float]:
    """Bootstrap CI of a two-group statistic (e.g. JS), resampling dialogues within each group (see bootstrap_ci)."""
    a, b = list(units_a), list(units_b)
    if not a or not b:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        sa = [a[i] for i in rng.integers(0, len(a), size=len(a))]
        sb = [b[i] for i in rng.integers(0, len(b), size=len(b))]
        try:
            v = stat(sa, sb)
        except ValueError:
            continue
        if not math.isnan(v):
            vals.append(v)
    if not vals:
        return math.nan, math.nan
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    if method == "centered":
        return _center(float(stat(a, b)), vals, float(lo), float(hi))
    return float(lo), float(hi)
