import pytest

from serve.outcome import OutcomeDetector, detect_outcome, intention_phrase


def U(text):
    return {"role": "user", "text": text}


A = {"role": "agent", "text": "Would you like to sign up today? Not interested in paying more?"}


@pytest.mark.parametrize(
    "text, outcome",
    [
        ("Okay, sign me up.", "accepted"),
        ("Sure, send me the application link.", "accepted"),
        ("Alright, I'd like to buy it.", "accepted"),
        ("Yes, please.", "accepted"),  # a yes to the agent's proposal
        ("That sounds fine [ACCEPT]", "intention"),  # a marker without a commitment in words decides nothing
        ("No thanks, I'm not interested.", "withdrawn"),
        ("Please don't call me again. Bye.", "withdrawn"),
        ("I have to go [WITHDRAW]", "withdrawn"),
        ("How much does it cost per month?", "intention"),
        ("Hmm, tell me more about the coverage.", "intention"),
        ("What?", "open"),
    ],
)
def test_single_turn(text, outcome):
    assert detect_outcome([A, U(text)]).outcome == outcome


def test_negations_hedges_and_not_interested():
    assert intention_phrase("I'm not interested") is None
    assert detect_outcome([U("I would never sign me up for that")]).outcome == "open"
    assert detect_outcome([U("I don't want to buy anything right now.")]).outcome == "open"
    assert detect_outcome([U("If it were cheaper I'd take it.")]).outcome == "open"
    assert detect_outcome([U("I'll think about it and let you know. Bye.")]).outcome == "withdrawn"


def test_precedence_and_intention_flag():
    r = detect_outcome([U("How much is it?"), U("No thanks, goodbye.")])
    assert r.outcome == "withdrawn" and r.intention and r.final and r.evidence == "No thanks, goodbye."
    r = detect_outcome([U("Not now."), U("Actually, okay, sign me up.")])
    assert r.outcome == "accepted" and r.intention and r.evidence == "Actually, okay, sign me up."
    # the agent's words never count
    assert detect_outcome([A]).outcome == "open"


def test_end_of_call_outcomes():
    assert detect_outcome([U("Hello?")], "caller").outcome == "hung_up"
    assert detect_outcome([U("Hello?")], "server").outcome == "no_decision"
    assert detect_outcome([U("How much is it?")], "caller").outcome == "intention"
    assert detect_outcome([U("sign me up")], "caller").source == "rules"


class _FakeAttitude:
    """Stands in for the embedded attitude labeler (control flow only): a fixed coarse label per turn text."""

    def __init__(self, table):
        self.table = table

    def label(self, items):
        from mads_text.labelers import ItemLabel

        return [ItemLabel(id=it.id, label=self.table.get(it.text, "neutral")) for it in items]


def test_labeler_adds_intention_never_a_decision():
    det = OutcomeDetector("rules")
    assert det.labeler is None and det.source == "rules"
    det.labeler = _FakeAttitude({"Yes, that works for me, go ahead.": "acceptance", "Hmm, nice.": "positive",
                                 "No thanks, goodbye.": "acceptance", "Okay.": "acceptance"})  # fmt: skip
    # a positive attitude is intention even without a keyword
    r = det.detect([U("Hmm, nice.")], "caller")
    assert (r.outcome, r.intention, r.source) == ("intention", True, "labeler+rules")
    # an acceptance label alone is no conversion: the caller's words must commit
    r = det.detect([U("Okay.")], "caller")
    assert (r.outcome, r.final) == ("intention", False)
    ask = {"role": "agent", "text": "Shall I send you the application link now?"}
    r = det.detect([U("Hmm, nice."), ask, U("Yes, that works for me, go ahead.")], "caller")
    assert (r.outcome, r.source, r.final) == ("accepted", "rules", True)
    # a refusal wins over a wrong acceptance label
    assert det.detect([U("No thanks, goodbye.")], "caller").outcome == "withdrawn"


def test_auto_mode_falls_back_to_rules_when_heads_are_missing(monkeypatch):
    import mads_text.labelers

    def missing(*a, **k):
        raise FileNotFoundError("no trained heads")

    monkeypatch.setattr(mads_text.labelers, "make_labeler", missing)
    det = OutcomeDetector("auto")
    assert det.labeler is None and det.source == "rules"
    assert det.note.startswith("rules") and "no trained heads" in det.note
    with pytest.raises(ValueError, match="no trained heads"):
        OutcomeDetector("embedded")


def test_real_attitude_labeler_when_its_heads_are_installed():
    det = OutcomeDetector("auto")
    if det.labeler is None:
        pytest.skip(f"attitude labeler not installed: {det.note}")
    agent = {"role": "agent", "text": "Hello, this is Li Wei from Anxin Insurance about our critical illness plan."}
    r = det.detect([agent, U("How much is it per month?"), U("Great, sign me up, send me the application link.")], "caller")
    assert r.outcome == "accepted" and r.intention and r.evidence.startswith("Great, sign me up")
    r = det.detect([agent, U("No thanks, I'm not interested. Goodbye.")], "caller")
    assert r.outcome == "withdrawn"
