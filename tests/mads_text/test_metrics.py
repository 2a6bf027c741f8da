"""Metric functions against hand-computed values."""

import math

import numpy as np
import pytest

from mads_text import metrics as M
from mads_text.attitude import STATES

S = STATES  # Refusal, Resistance, Disinterest, Doubt, Indifference, ...


def test_transition_counts_and_breaks():
    chains = [
        ["Refusal", "Refusal", "Doubt"],
        ["Doubt", None, "Refusal"],  # the unlabelled round breaks Doubt -> Refusal
        ["Interested"],  # one round: no transition
    ]
    n = M.transition_counts(chains)
    assert n.shape == (16, 16)
    assert n.sum() == 2
    assert n[S.index("Refusal"), S.index("Refusal")] == 1
    assert n[S.index("Refusal"), S.index("Doubt")] == 1
    assert n[S.index("Doubt"), S.index("Refusal")] == 0


def test_transition_counts_rejects_unknown_state():
    with pytest.raises(ValueError, match="Maybe"):
        M.transition_counts([["Refusal", "Maybe"]])


def test_matrix_rows_and_unvisited_rows():
    n = np.zeros((16, 16))
    n[0, 0], n[0, 1] = 1, 3
    t = M.transition_matrix(n)
    assert t[0, 0] == pytest.approx(0.25) and t[0, 1] == pytest.approx(0.75)
    assert np.all(t[1:] == 0)  # unvisited rows stay zero, no NaN
    h = M.row_entropies(t)
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))  # 0.562335
    assert h[0] == pytest.approx(expected)
    assert h[0] == pytest.approx(0.5623351446)
    assert np.all(h[1:] == 0)
    # H_avg divides by all 16 rows, the 15 unvisited count as 0
    assert M.h_avg(t) == pytest.approx(expected / 16)


def test_h_avg_uniform_and_norms():
    t = np.full((16, 16), 1 / 16)
    assert M.h_avg(t) == pytest.approx(math.log(16))
    assert M.h_norm(M.h_avg(t)) == pytest.approx(1.0)
    assert M.h_norm_paper(M.h_avg(t)) == pytest.approx(math.log(16) / 2.77)
    # deterministic chain: every row has one successor
    chains = [["Refusal", "Doubt", "Refusal", "Doubt"]]
    assert M.chain_entropy(chains) == 0.0
    # a row split 50/50 gives ln 2, averaged over 16 rows
    chains = [["Refusal", "Doubt"], ["Refusal", "Hesitant"]]
    assert M.chain_entropy(chains) == pytest.approx(math.log(2) / 16)
    assert M.h_norm(math.log(2)) == pytest.approx(0.25)  # ln2 / ln16 = 1/4


def test_js_identical_disjoint_and_hand_case():
    p = np.array([0.2, 0.3, 0.5])
    assert M.js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert M.js_divergence([1, 0, 0, 0], [0, 0, 1, 1]) == pytest.approx(math.log(2))
    # P=(1,0), Q=(.5,.5): M=(.75,.25); KL(P||M)=ln(4/3); KL(Q||M)=.5 ln(2/3)+.5 ln 2
    expected = 0.5 * math.log(4 / 3) + 0.5 * (0.5 * math.log(2 / 3) + 0.5 * math.log(2))
    assert M.js_divergence([1, 0], [0.5, 0.5]) == pytest.approx(expected)
    assert expected == pytest.approx(0.2157615544)
    # inputs are normalised (counts work)
    assert M.js_divergence([2, 0], [3, 3]) == pytest.approx(expected)
    with pytest.raises(ValueError):
        M.js_divergence([0, 0], [1, 0])


def test_js_transitions_groups():
    a = M.transition_counts([["Refusal", "Doubt", "Refusal"]])
    assert M.js_transitions(a, a * 5) == pytest.approx(0.0, abs=1e-12)  # same distribution, other sample size
    b = M.transition_counts([["Interested", "Acceptance"]])
    assert M.js_transitions(a, b) == pytest.approx(math.log(2))  # no shared transition: the maximum
    # rows variant: only states left in both groups count
    c = M.transition_counts([["Refusal", "Hesitant"]])
    # row Refusal: A goes to Doubt, C to Hesitant -> disjoint -> ln 2; row Doubt only in A -> ignored
    assert M.js_rows(a, c) == pytest.approx(math.log(2))
    assert math.isnan(M.js_rows(a, b))


def test_strategy_stats():
    per = [["logical-appeal", "non-strategy", "logical-appeal"], ["emotion-appeal", "logical-appeal"], []]
    assert M.distinct_strategies(per) == [1, 2, 0]
    mean, sd = M.mean_sd([1, 2, 3])
    assert mean == 2 and sd == pytest.approx(1.0)  # sample sd (n-1)
    assert M.mean_sd([4]) == (4.0, 0.0)
    counts = M.strategy_type_counts(per, ["logical-appeal", "emotion-appeal", "self-modeling"])
    assert counts.tolist() == [2, 1, 0]  # dialogues using each type
    assert M.coefficient_of_variation([5, 5, 5]) == 0.0
    assert M.coefficient_of_variation([3, 0, 0]) == pytest.approx(math.sqrt(2))  # sd sqrt(2), mean 1
    assert M.coefficient_of_variation([1] + [0] * 9) == pytest.approx(3.0)  # sqrt(K-1)
    assert math.isnan(M.coefficient_of_variation([0, 0]))


def test_acceptance_and_bootstrap():
    assert M.acceptance_rate(["accept", "withdraw", "max_rounds", "accept"]) == 0.5
    assert math.isnan(M.acceptance_rate([]))
    lo, hi = M.bootstrap_ci([1.0] * 10, lambda v: float(np.mean(v)))
    assert lo == hi == 1.0
    vals = list(range(100))
    lo, hi = M.bootstrap_ci(vals, lambda v: float(np.mean(v)), n_boot=300, seed=1)
    assert lo < 49.5 < hi and hi - lo < 25
    # same seed, same interval
    assert M.bootstrap_ci(vals, lambda v: float(np.mean(v)), n_boot=300, seed=1) == (lo, hi)
    lo, hi = M.bootstrap_ci_two([["Refusal", "Doubt"]] * 5, [["Refusal", "Doubt"]] * 5,
                                lambda a, b: M.js_transitions(M.transition_counts(a), M.transition_counts(b)), n_boot=50)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.0, abs=1e-12)


def test_basic_interval_covers_a_biased_plugin_entropy():
    # resampled dialogues repeat, so the plug-in entropy of a resample is lower than the sample's:
    # the percentile interval can miss the estimate; the re-centred one is built around it
    rng = np.random.default_rng(3)
    states = STATES
    chains = [[states[i] for i in rng.integers(0, 16, size=4)] for _ in range(40)]
    h = M.chain_entropy(chains)
    lo_p, hi_p = M.bootstrap_ci(chains, M.chain_entropy, n_boot=300, seed=0)
    lo_b, hi_b = M.bootstrap_ci(chains, M.chain_entropy, n_boot=300, seed=0, method="centered")
    assert hi_p < h  # the bias this guards against
    assert lo_b <= h <= hi_b
    assert (hi_b - lo_b) == pytest.approx(hi_p - lo_p)
