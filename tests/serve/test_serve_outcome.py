import pytest

from serve.outcome import detect_outcome, rule_outcome, turn_signal


def U(text):
    return {"role": "user", "text": text}


A = {"role": "agent", "text": "Would you like to sign up today? Not interested in paying more?"}


@pytest.mark.parametrize(
    "text, outcome",
    [
        ("Okay, sign me up.", "accepted"),
        ("Sure, send me the application link.", "accepted"),
        ("Alright, I'd like to buy it.", "accepted"),
        ("That sounds fine [ACCEPT]", "accepted"),
        ("No thanks, I'm not interested.", "withdrawn"),
        ("Please don't call me again. Bye.", "withdrawn"),
        ("I have to go [WITHDRAW]", "withdrawn"),
        ("How much does it cost per month?", "intention"),
        ("Hmm, tell me more about the coverage.", "intention"),
        ("What?", "open"),
    ],
)
def test_single_turn(text, outcome):
    assert rule_outcome([A, U(text)]).outcome == outcome


def test_negations_and_not_interested():
    assert turn_signal("I don't want to buy anything").accept == []
    assert turn_signal("I'm not interested").intention == []
    assert rule_outcome([U("I would never sign me up for that")]).outcome == "open"


def test_precedence_and_intention_flag():
    r = rule_outcome([U("How much is it?"), U("No thanks, goodbye.")])
    assert r.outcome == "withdrawn" and r.intention and r.final
    r = rule_outcome([U("Not now."), U("Actually, okay, sign me up.")])
    assert r.outcome == "accepted" and r.intention
    # the agent's words never count
    assert rule_outcome([A]).outcome == "open"


def test_end_of_call_outcomes():
    assert rule_outcome([U("Hello?")], "caller").outcome == "hung_up"
    assert rule_outcome([U("Hello?")], "server").outcome == "no_decision"
    assert rule_outcome([U("How much is it?")], "caller").outcome == "intention"
    assert detect_outcome([U("sign me up")], "caller").source == "rules"


class _FakeAttitude:
    """Stands in for the embedded attitude labeler (control flow only): a fixed coarse label per turn text."""

    def __init__(self, table):
        self.table = table

    def label(self, items):
        from mads_text.labelers import ItemLabel

        return [ItemLabel(id=it.id, label=self.table.get(it.text, "neutral")) for it in items]


def test_labeler_adds_attitude_to_the_rules():
    from serve.outcome import OutcomeDetector

    det = OutcomeDetector("rules")
    assert det.labeler is None and det.source == "rules"
    det.labeler = _FakeAttitude({"Yes, that works for me, go ahead.": "acceptance", "Hmm, nice.": "positive",
                                 "No thanks, goodbye.": "acceptance"})  # fmt: skip
    # the labeler finds a conversion the phrase rules miss
    r = det.detect([U("Hmm, nice."), U("Yes, that works for me, go ahead.")], "caller")
    assert (r.outcome, r.intention, r.source, r.final) == ("accepted", True, "labeler", True)
    # positive attitude is intention even without a keyword
    r = det.detect([U("Hmm, nice.")], "caller")
    assert (r.outcome, r.intention) == ("intention", True)
    # an explicit refusal in the last turn beats a wrong acceptance label
    r = det.detect([U("No thanks, goodbye.")], "caller")
    assert r.outcome == "withdrawn"
    # a failing labeler leaves the rules' answer
    det.labeler = None
    assert det.detect([U("sign me up")]).outcome == "accepted"


def test_auto_mode_falls_back_to_rules_when_heads_are_missing(monkeypatch):
    import mads_text.labelers
    from serve.outcome import OutcomeDetector

    def missing(*a, **k):
        raise FileNotFoundError("no trained heads")

    monkeypatch.setattr(mads_text.labelers, "make_labeler", missing)
    det = OutcomeDetector("auto")
    assert det.labeler is None and det.source == "rules"
    assert det.note.startswith("rules") and "no trained heads" in det.note
    with pytest.raises(ValueError, match="no trained heads"):
        OutcomeDetector("embedded")


def test_real_attitude_labeler_when_its_heads_are_installed():
    from serve.outcome import OutcomeDetector

    det = OutcomeDetector("auto")
    if det.labeler is None:
        pytest.skip(f"attitude labeler not installed: {det.note}")
    agent = {"role": "agent", "text": "Hello, this is Li Wei from Anxin Insurance about our critical illness plan."}
    r = det.detect([agent, U("How much is it per month?"), U("Great, sign me up, send me the application link.")], "caller")
    assert r.outcome == "accepted" and r.intention and r.source.startswith("labeler")
    r = det.detect([agent, U("No thanks, I'm not interested. Goodbye.")], "caller")
    assert r.outcome == "withdrawn"
