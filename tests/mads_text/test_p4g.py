"""P4G loader: real data from the shared folder (skipped with a reason when it is absent)."""

from pathlib import Path

import pytest

from mads_text.common.records import DialogueRecord
from mads_text.p4g import (
    DEFAULT_P4G,
    P4GError,
    aggregate_coarse,
    human_round_coarse,
    human_strategies,
    load_p4g,
    sentence_coarse,
)

needs_data = pytest.mark.skipif(not (DEFAULT_P4G / "annotated_dialog.csv").exists(),
                                reason=f"P4G data not found at {DEFAULT_P4G} (set MADS_P4G)")


def test_aggregate_rules():
    assert aggregate_coarse(["none", "none"]) is None
    assert aggregate_coarse(["positive", "none", "negative", "positive"]) == "positive"
    # tie: the attitude said last wins
    assert aggregate_coarse(["negative", "acceptance"]) == "acceptance"
    assert aggregate_coarse(["acceptance", "negative", "none"]) == "negative"
    assert sentence_coarse("agree-donation") == "acceptance"
    assert sentence_coarse("ask-donation-procedure") == "positive"
    assert sentence_coarse("greeting") == "none"
    assert sentence_coarse(None) == "none"


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(P4GError, match="annotated_dialog.csv"):
        load_p4g(tmp_path, "annotated")
    with pytest.raises(P4GError, match="subset"):
        load_p4g(tmp_path, "everything")


@needs_data
def test_annotated_records():
    recs = load_p4g(DEFAULT_P4G, "annotated")
    assert len(recs) == 240
    r = recs[0]
    assert r.turns[0].role == "agent"  # the persuader opens every P4G dialogue
    # roles alternate: consecutive sentences of one speaker are one turn
    assert all(a.role != b.role for a, b in zip(r.turns, r.turns[1:]))
    assert r.rounds == sum(1 for t in r.turns if t.role == "user")
    assert r.outcome in ("accept", "withdraw")
    assert (r.outcome == "accept") == ((r.donation or 0) > 0)
    # the records survive a JSON round trip with their sentence labels
    back = DialogueRecord.model_validate_json(r.model_dump_json())
    assert human_round_coarse(back) == human_round_coarse(r)
    chains = human_round_coarse(r)
    assert len(chains) == r.rounds
    assert set(chains) <= {None, "negative", "neutral", "positive", "acceptance"}
    strat = human_strategies(r)
    assert strat and all(k >= 1 for k, _, _ in strat)
    acc = sum(x.outcome == "accept" for x in recs) / len(recs)
    assert 0.45 < acc < 0.6  # README: 52 % of the annotated persuadees donated
    assert sum("extrovert" in x.persona for x in recs) >= 235  # traits joined from full_info.csv


@needs_data
def test_full_records():
    recs = load_p4g(DEFAULT_P4G, "full")
    assert len(recs) == 1017
    acc = sum(x.outcome == "accept" for x in recs) / len(recs)
    assert acc == pytest.approx(0.536, abs=0.002)  # README: 53.6 % donated
    assert sum(len(t.sentences) for r in recs for t in r.turns) == 20932
    assert Path(DEFAULT_P4G).exists()
