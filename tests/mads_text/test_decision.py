"""The decision module: cues in the customer's words, the LLM as a check, re-deciding stored calls, self-play ends."""

import asyncio
import json

import pytest

from mads_text.common.records import Turn
from mads_text.cues import read_cues
from mads_text.decision import CallFrame, Decider, decide_call, find_quote, turns_of
from mads_text.llm.fake import ScriptedBackend
from mads_text.scenario import load_scenario

SC = load_scenario("insurance")
PROPOSAL = "Shall I send you the application link now?"


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize(
    "said, agent, cue",
    [
        ("I'll take it and apply for the policy right now.", "", "commit"),
        ("Great. Can I get an application link right now?", "", "commit"),
        ("Could you send me the link, please?", "", "commit"),
        ("Saturday at 10 works for me.", "Which day works for you?", "commit"),
        ("Yes, please.", PROPOSAL, "agree"),
        ("I'll think about it and let you know.", "", "defer"),
        ("Send me some information first.", "", "defer"),
        ("Not interested, thanks.", "", "refuse"),
        ("So, I'm sorry, I need to decline the offer.", "", "refuse"),
        ("I don't have 10,000 spare to lock away.", "", "soft_no"),
        ("189,900 is more than I want to spend on a car.", "", "soft_no"),
        ("No.", PROPOSAL, "refuse"),
        ("Have a nice day.", "", "end"),
        ("I'm done. I want to leave.", "", "end"),
        ("I'm ready to do it, thank you.", "", "commit"),
        ("I'll say yes, thank you.", "", "commit"),
        ("I can't do it.", "", "refuse"),
        ("No, it's not affordable for me.", "", "soft_no"),
        ("I can't handle this anymore.", "", "end"),
        ("I'll book it some day. I'll call you back with a quote.", "", "defer"),
        # a commitment's mirror, words between "I'll" and the act, keeping what one has instead
        ("I'm sorry, but I cannot subscribe to this product.", "", "refuse"),
        ("I'll definitely take it.", "", "commit"),
        ("I see, I'll keep a time deposit instead.", "", "refuse"),
        ("I don't think this product fits my needs.", "", "refuse"),
        ("I don't want to take any risks with this.", "Do you want to subscribe to the product?", "refuse"),
        ("I can't buy it right now.", "", "defer"),
        ("Okay, please book a test drive for Saturday.", "", "commit"),
        ("I accept this offer, thanks!", "", "commit"),
        ("I want to see a policy application link.", "", "commit"),
        ("I don't book anything from a sales call.", "", "refuse"),
        ("I can't do that, I already have a petrol SUV.", "", "refuse"),
        # spelt out rather than contracted, and the evidence is still the customer's own words
        ("Sorry, but I am not buying anything over the phone.", "", "refuse"),
        ("I will not sign anything, thanks.", "", "refuse"),
        ("Fine, I am ready to make the purchase now.", "", "commit"),
        ("Then I'm ready to say yes to the plan.", "", "commit"),
        ("My old policy still works, so I do not need another one.", "", "refuse"),
        ("I'll stick with my bank's deposit first.", "", "refuse"),
        ("Okay, I'm done with this conversation.", "", "end"),
        ("Fine. I'm ready to pay 20,000 RMB for it.", "", "commit"),
        ("I really cannot talk right now, I'm driving.", "", "end"),
        ("I don't really want to invest in this fund.", "", "refuse"),
        ("Honestly, I don't agree to buy it.", "", "refuse"),
        ("I don't think I need a second policy.", "", "refuse"),
        ("Sorry, I can't continue this conversation.", "", "end"),
        ("I'm getting tired of this.", "", "end"),
        # availability at a named time, keeping one's money where it is, not needing a new one
        ("I'm available tomorrow at 10 AM.", "When would suit you for the application?", "commit"),
        ("I see. I'll keep it in the time deposit then.", "", "refuse"),
        ("I already have products like this, so I don't need a new one.", "", "refuse"),
        ("I don't think I can afford it.", "", "soft_no"),
        ("I want to schedule a test drive on Saturday at 10 AM.", "", "commit"),
        ("I'm sure I can find a good car elsewhere.", "", "refuse"),
        ("I think I am going to stay away.", "", "refuse"),
        ("Yes, I'm ready to accept.", "", "commit"),
        ("Could I please buy the Critical Illness Protection Plan now?", "", "commit"),
        ("I'd rather keep a time deposit.", "", "refuse"),
        ("Sorry, this plan is not for me.", "", "refuse"),
        ("I'm not sure if 3,000 RMB per year is affordable for me.", "", "soft_no"),
        ("Ok, I'll complete the questionnaire now.", "", "commit"),
        ("I understand, I'll think about it. Thank you for your time.", "", "end"),
        ("My husband and I are both healthy, and we don't need this insurance.", "", "refuse"),
        ("I can't afford to pay 189,900 RMB. I need to find a cheaper option.", "", "refuse"),
        ("Yes, I'm interested in paying it now.", "Would you like to pay it now or in the future?", "agree"),
        ("Ok.", "I recommend that you complete the risk assessment now.", "agree"),
        ("I think I need to withdraw because the bank doesn't provide a secure way to hold my money.", "", "refuse"),
        ("I'll look for a product that offers a higher expected annualised return.", "", "refuse"),
        ("I can't continue with this call now.", "", "end"),
        ("I see. I'll do it now and let you know later.", "You need to take a risk assessment questionnaire first.", "commit"),
        ("Yes, I'm ready.", "Can you please fill out the form online?", "agree"),
        ("I'm ready to receive the application link.", "", "commit"),
        ("I don't have time. I also don't book anything from a sales call.", "", "refuse"),
        ("I'd like to test drive the PHEV at home on September 14th at 2 PM.", "Can you give me a date and time?", "commit"),
        ("I understand it, but I don't think that's a good product for me.", "", "refuse"),
        ("I'm ready to pay.", "That's right, it pays 30 % of the sum insured.", "commit"),
        ("I would like a test drive on a Saturday.", "What date and time are you available?", "commit"),
        ("Okay, I'm ready to come.", "The test drive will be at 3 PM tomorrow.", "commit"),
        ("I'm sorry. I'm withdrawing.", "", "refuse"),
        ("Okay. Let's set it for next Thursday at 7 PM.", "Can you please give me a specific date and time?", "commit"),
        ("Next Thursday at 7 PM.", "Which day and time suit you?", "commit"),
        ("Saturday morning, please.", "When would you like to come in?", "commit"),
        ("I will receive the application link now.", "Do you want to receive the application link now?", "commit"),
        ("I'm okay with the 178 RMB starter plan, I'll start right away.", "When do you want to complete it?", "commit"),
        ("Yes, I can do that now. What should I do next?", "Would you like to receive the application link now?", "agree"),
        ("I understand, but I don't want to spend any more money.", "", "soft_no"),
        ("Yes, Li Wei, I'm ready to pay the 178 RMB starter plan.", "You can start with the 178 RMB starter plan.", "commit"),
        ("Okay, then.", "Then, let's go ahead and apply.", "agree"),
    ],
)
def test_cues_found(said, agent, cue):
    c = read_cues(said, agent)
    assert getattr(c, cue) is not None and getattr(c, cue) in said


@pytest.mark.parametrize(
    "said, agent",
    [
        ("I don't want to sign up for anything today.", ""),  # negated
        ("If it were cheaper I'd take it.", ""),  # hedged
        ("Hmm, maybe I'll apply later.", ""),
        ("I'll do it later.", ""),
        ("Can I apply online?", ""),  # asked about, not done
        ("Yes, but how much is it per year?", PROPOSAL),  # a yes with a but
        ("Yes.", "It covers 70 major illnesses."),  # a yes to no proposal
        ("Sounds interesting. Tell me more.", ""),
        ("Well, I'll take that into account.", ""),
        ("I need to book a test drive within three months.", ""),  # a need, not a booking
        ("I want to buy this car but I can't install a home charger.", ""),  # hedged after
        ("Now I'm ready to buy the insurance. I can't put more than 75 RMB per month.", ""),  # a price it does not meet
        ("I'm looking forward to the deal.", ""),
        ("I'm ready to pay 10,000 RMB, but I also need to know how much it will grow.", ""),  # not done yet
        ("I want to buy a new car next year.", ""),  # a need, not this car
        ("I want to pay 300 RMB a month at most.", ""),  # a counter-offer
        ("I will pay 120,000 RMB. Can you give me a discount?", ""),
        ("I can make the payment by card, right?", ""),
        ("I want to schedule a test drive and get a quote. Please contact me.", ""),  # a wish: no time, no details
        ("I would like to book a test drive.", "We can schedule it at a date and time that suits you."),
        ("I'm not free tomorrow.", "Would tomorrow work for the branch visit?"),
        ("Can I subscribe to this now?", ""),  # asks whether it can be done
        ("I'll complete the questionnaire later.", ""),  # put off
        ("I will definitely complete the questionnaire in the next meeting.", ""),
        ("Ok.", "I recommend the annual premium."),  # a recommendation of no accepting step
        ("I see, I'll do it myself in the app.", ""),  # not through this call
        ("I'm worried about this, but I want to do it in the app instead.", ""),
        ("Okay, I think I'll book the test drive.", "You can come any day from 9:00 to 20:00."),  # no time of its own
        ("I want to test drive it.", "The Aurora PHEV has 120 km of electric range."),  # a wish: no time, no place
        ("I'd like a test drive.", "We can come to your home on weekdays."),
        ("I want to test drive it at a specific date and time.", "At a date and time, or a home test drive?"),
        ("Next Thursday at 7 PM.", "The showroom is open every day."),  # a time nobody asked for
        ("Not on Saturday.", "Which day suits you?"),
        ("Saturday? I'm busy all weekend.", "Which day suits you?"),
        ("I will say yes.", "So, Helen, can we cancel the application for now?"),  # yes to stopping
        ("I'm fine with the plan I have.", ""),
        ("Okay, if I subscribe 10,000 RMB today, I'll get 10,000 RMB plus 3 %, which is almost nothing.",
         "Would you like to subscribe 10,000 RMB in the app today?"),
    ],
)
def test_no_commitment(said, agent):
    c = read_cues(said, agent)
    assert c.commit is None and c.agree is None


def test_a_yes_or_no_answers_the_agents_last_question():
    agent = "Great! We can start with the starter plan. Do you have any other questions?"
    c = read_cues("No, I don't have any other questions.", agent)
    assert c.refuse is None and not c.proposal
    assert read_cues("No.", "Do you have questions? Shall I send you the application link?").refuse == "No."
    assert read_cues("Yes, I can confirm that.", "We can arrange a test drive tomorrow at 3 PM. Can you confirm that?").agree


def test_quotes_are_found_verbatim():
    assert find_quote("i'll take it", "Well, I'll take it, thanks!") == "I'll take it,"
    assert find_quote("send me the link", "Sure. Send me the link.") == "Send me the link."
    assert find_quote("I will buy it", "I'll think about it.") is None
    assert find_quote("", "anything") is None


def T(role, text, marker=None):
    return Turn(role=role, text=text, marker=marker)


def test_rules_walk_a_call_to_its_first_decisive_turn():
    turns = [T("agent", "Hello, this is Li Wei."), T("user", "Hi, what is it about?"),
             T("agent", PROPOSAL), T("user", "Yes, please, send it."), T("agent", "Done."), T("user", "No thanks, bye.")]
    d = decide_call(turns)
    assert (d.outcome, d.round, d.evidence) == ("accept", 2, "Yes, please, send it.")
    d = decide_call(turns[:2])
    assert d.outcome == "undecided" and d.round is None
    # a goodbye after a postponement ends the call without a sale
    d = decide_call([T("agent", "Any questions?"), T("user", "I'll think about it. Bye.")])
    assert (d.outcome, d.evidence) == ("withdraw", "I'll think about it.")
    # "I don't think I need this" is an objection as a first reaction, a no once the offer has been heard
    opener = T("agent", "Hello, I'm calling about our critical illness plan.")
    d = decide_call([opener, T("user", "I don't think I need this.")])
    assert d.outcome == "undecided"
    d = decide_call([opener, T("user", "What does it cover?"), T("agent", "70 major illnesses."),
                     T("user", "I don't think I need this.")])
    assert (d.outcome, d.round) == ("withdraw", 2)


class Judge:
    """A scripted LLM check: answers the multiple-choice question with a fixed choice and quote."""

    def __init__(self, choice, quote=""):
        self.answer = json.dumps({"quote": quote, "choice": choice})

    def __call__(self, prompt, params):
        assert params.json_schema is not None and isinstance(prompt, list)
        return self.answer


def test_the_llm_confirms_or_vetoes_but_never_decides_alone():
    said = [T("agent", PROPOSAL), T("user", "Yes, please.")]
    be = ScriptedBackend(Judge("A", "Yes, please."))
    step = run(Decider(SC, be).decide(said))
    assert (step.verdict, step.source, step.evidence, step.llm_calls) == ("accept", "rules+llm:A", "Yes, please.", 1)
    step = run(Decider(SC, ScriptedBackend(Judge("B"))).decide(said))
    assert step.verdict == "continue" and step.source == "llm veto:B"
    # a goodbye in words stands, so the LLM (which answers "A" far too readily) is not even asked
    bye = [T("agent", "Anything else?"), T("user", "No, that's all. Goodbye.")]
    be = ScriptedBackend(Judge("A", "Goodbye"))
    step = run(Decider(SC, be).decide(bye))
    assert (step.verdict, step.source, step.llm_calls) == ("withdraw", "rules", 0) and be.calls == []
    # a cue that cannot end the call (a question) costs no LLM call either
    be = ScriptedBackend(Judge("A", "sign me up"))
    step = run(Decider(SC, be).decide([T("agent", PROPOSAL), T("user", "Could you sign me up later, maybe?")]))
    assert step.verdict == "continue" and be.calls == []
    # no cue and no marker: no LLM call at all, whatever it would say
    be = ScriptedBackend(Judge("A", "It covers a lot"))
    step = run(Decider(SC, be).decide([T("agent", "Hi"), T("user", "It covers a lot, right?")]))
    assert step.verdict == "continue" and be.calls == []


def test_a_marker_becomes_a_decision_only_with_the_customers_words():
    words = [T("agent", "It is 288 a month."), T("user", "Alright, put the policy in my name.")]
    ok = run(Decider(SC, ScriptedBackend(Judge("A", "put the policy in my name"))).decide(words, "accept"))
    assert (ok.verdict, ok.source, ok.evidence) == ("accept", "marker+llm:A", "put the policy in my name.")
    invented = run(Decider(SC, ScriptedBackend(Judge("A", "I will buy it today"))).decide(words, "accept"))
    assert invented.verdict == "continue"  # the quote is not in what the customer said
    rules_only = run(Decider(SC, mode="rules").decide(words, "accept"))
    assert rules_only.verdict == "continue"
    # a bare "Ok." to the price is no sale, whatever the marker and the LLM say; to "Shall I send the link?" it is
    offer = [T("agent", "The plan costs 288 RMB a month, or 3,000 RMB a year."), T("user", "Ok.")]
    step = run(Decider(SC, ScriptedBackend(Judge("A", "Ok"))).decide(offer, "accept"))
    assert step.verdict == "continue"
    link = [T("agent", "Shall I send you the application link now?"), T("user", "Ok.")]
    step = run(Decider(SC, ScriptedBackend(Judge("A", "Ok"))).decide(link, "accept"))
    assert step.verdict == "accept" and step.source == "rules+llm:A"


def test_unreadable_llm_answers_fall_back_to_the_rules():
    be = ScriptedBackend(["not json", "{\"choice\": \"Z\"}"])
    step = run(Decider(SC, be).decide([T("agent", PROPOSAL), T("user", "Yes, please.")]))
    assert step.verdict == "accept" and "llm failed" in step.source and step.llm_calls == 2


def test_markers_left_in_text_move_to_the_turn():
    ts = turns_of([{"role": "agent", "text": "Deal? [ACCEPT]"}, {"role": "user", "text": "Sure, send the link [ACCEPT]"}])
    assert ts[0].text == "Deal? [ACCEPT]" and ts[0].marker is None
    assert (ts[1].text, ts[1].marker) == ("Sure, send the link", "accept")


def test_call_frame_of_a_scenario():
    f = CallFrame.of(SC)
    assert f.agent == "Li Wei" and "application link" in f.criteria


def _world(customer_lines):
    """Scripted self-play: the agent proposes the link; the customer says the next scripted line."""
    lines = list(customer_lines)

    def reply(prompt, params):
        if isinstance(prompt, list):  # the decision's LLM check
            return json.dumps({"quote": "", "choice": "A"})
        if prompt == "Hi":  # the backend's reachability check
            return "ok"
        if prompt.rstrip().endswith("Li Wei:"):
            return "Shall I send you the application link now?"
        return lines.pop(0)

    return reply


SEED = 5  # draws a persona whose budget covers the plan: a yes after their doubts stands


def _simulate(tmp_path, customer_lines, **cfg):
    from mads_text.common.runstore import read_dialogues
    from mads_text.orchestrator import SimulationConfig, simulate

    c = SimulationConfig(scenario="insurance", group="busi", personas=1, per_persona=1, max_rounds=4, seed=SEED, **cfg)
    asyncio.run(simulate(c, tmp_path, backend=ScriptedBackend(_world(customer_lines)), progress=False))
    (rec,) = read_dialogues(tmp_path)
    return rec


def _doubts(group="busi", seed=None):
    """The objections of the persona ``_simulate`` draws, said in one line: a customer says yes only after them."""
    from mads_text.personas import sample_personas
    from mads_text.stance import derive_stance

    return " ".join(o[0].upper() + o[1:] + "." for o in derive_stance(sample_personas(SC, group, 1, seed or SEED)[0], SC).objections)


def test_self_play_ends_on_the_decision_and_records_it(tmp_path):
    rec = _simulate(tmp_path / "a", [_doubts(), "Hmm, okay. Yes, please. [ACCEPT]"])
    assert rec.outcome == "accept" and rec.rounds == 2 and len(rec.turns) == 4
    d = rec.decision
    assert (d.outcome, d.round, d.source, d.marker) == ("accept", 2, "rules+llm:A", "accept")
    assert d.evidence in rec.turns[-1].text and rec.turns[-1].marker == "accept"
    assert rec.stance and rec.stance["objections"] and rec.stats.decision_llm_calls == 1
    # a bare [ACCEPT] with no words is no sale, and no words are made up for it
    rec = _simulate(tmp_path / "b", ["[ACCEPT]"] * 3)
    assert rec.outcome == "undecided" and rec.decision.source == "marker_only" and rec.rounds == 0
    assert [t.role for t in rec.turns] == ["agent"] and rec.stats.marker_only_retries == 3
    # with the decision off every call runs to the round cap (four different lines: a turn said again word for word
    # is a loop and is sampled again)
    rec = _simulate(tmp_path / "c", [_doubts(), "Yes, please.", "Sure, go ahead.", "Send it over."], decision="off")
    assert rec.outcome == "max_rounds" and rec.rounds == 4 and rec.decision.source == "decision off"


def test_mads_outcome_redecides_a_bare_file_and_reports_bad_lines(tmp_path):
    from typer.testing import CliRunner

    from mads_text import cli

    cli._register_plugins()
    good = {"id": "c1", "scenario": "insurance", "persona": {"name": "Fang"},
            "turns": [{"role": "agent", "text": PROPOSAL}, {"role": "user", "text": "Yes, please. [ACCEPT]"}]}
    other = {"id": "c2", "scenario": "elsewhere", "persona": {},
             "turns": [{"role": "agent", "text": "Hello"}, {"role": "user", "text": "Not interested. Bye."}]}
    src = tmp_path / "calls.jsonl"
    src.write_text(json.dumps(good) + "\n{broken\n" + json.dumps(other) + "\n")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(cli.app, ["outcome", str(src), "--out", str(out), "--decision", "rules"])
    assert res.exit_code == 0, res.output
    assert "calls.jsonl:2: skipped" in res.output
    lines = {x["id"]: x for x in map(json.loads, out.read_text().splitlines())}
    assert (lines["c1"]["outcome"], lines["c1"]["round"], lines["c1"]["evidence"]) == ("accept", 1, "Yes, please.")
    assert lines["c2"]["outcome"] == "withdraw" and lines["c2"]["recorded"] == "unknown"
    # a rerun skips what is done; the input file is never the output
    res = CliRunner().invoke(cli.app, ["outcome", str(src), "--out", str(out), "--decision", "rules"])
    assert "0 dialogues decided, 2 already there" in res.output
    res = CliRunner().invoke(cli.app, ["outcome", str(src), "--out", str(src), "--decision", "rules"])
    assert res.exit_code == 2


def test_a_price_objection_made_twice_is_a_refusal():
    first = [T("agent", "It is 288 a month."), T("user", "I can't afford that.")]
    assert decide_call(first).outcome == "undecided"  # the first time it is an objection
    again = first + [T("agent", "The starter plan is 178."), T("user", "Still too expensive for me, sorry.")]
    d = decide_call(again)
    assert (d.outcome, d.round, d.evidence) == ("withdraw", 2, "Still too expensive for me, sorry.")
    asking = first + [T("agent", "It is the best we have."), T("user", "I can't afford it. Is there a starter plan?")]
    assert decide_call(asking).outcome == "undecided"  # still negotiating
    asking = first + [T("agent", "It is the best we have."), T("user", "I can't afford it. I need to know what else I can get.")]
    assert decide_call(asking).outcome == "undecided"  # a request without a question mark
    still = first + [T("agent", "It protects your family."), T("user", "I can't afford that, but I still want to try.")]
    assert decide_call(still).outcome == "undecided"
    assert read_cues("I don't think I can afford it.").refuse is None  # the first saying is an objection
    # a doubt about the price first, a plain "I can't afford it" after the answer
    doubt = [T("agent", "It is 189,900."), T("user", "I'm not sure if I can afford it.")]
    assert decide_call(doubt).outcome == "undecided"
    assert decide_call(doubt + [T("agent", "0 % financing."), T("user", "I can't afford it.")]).outcome == "withdraw"
    assert decide_call(doubt + [T("agent", "0 % financing."), T("user", "I'm not sure if I can afford it.")]).outcome == "undecided"
    bill = [T("agent", "It is 288 a month."), T("user", "I can't afford it."), T("agent", "We also have a green channel."),
            T("user", "Okay. I don't want to take on another monthly bill.")]
    assert decide_call(bill).outcome == "withdraw"
    # a preference among versions of the offer, and needing the cover, are no refusals
    assert read_cues("But the Comfort trim is not for me. I'm more interested in a Premium trim.").refuse is None
    assert read_cues("I have a chronic disease. I can't afford to go without insurance.").soft_no is None
    assert read_cues("If the return isn't guaranteed, I'd rather keep a time deposit.").refuse is None
    # thanks for the time with a question after it is not a goodbye
    assert read_cues("Thank you for your time. What is the minimum purchase?").end is None
    # nor is a goodbye with a question after it (a caller's "Hi" heard as "Bye" by the ASR ended a served call here)
    assert read_cues("Bye. Thanks. I already have social medical insurance, isn't that enough?").end is None
    assert read_cues("Bye, Blyway. I'm Jing. I'm here to talk about a specific issue.").end is None  # and went on
    assert read_cues("Okay, I'll think about it. Bye.").end == "Bye."
    assert read_cues("Goodbye. Have a nice day.").end == "Goodbye."


def test_reported_and_conditional_refusals_are_no_refusals():
    assert read_cues("I've been told that I can't buy it.").refuse is None
    assert read_cues("I'm worried that if I don't buy insurance, my family has no support.").refuse is None
    assert read_cues("I'm sorry, but I can't subscribe to it.").refuse == "but I can't subscribe to it."


def test_what_a_repeated_objection_ends_with_counts():
    first = [T("agent", "It is 288 a month."), T("user", "I can't afford 288 a month.")]
    again = first + [T("agent", "It protects your family."), T("user", "Is that so? I can't afford to pay that much.")]
    assert decide_call(again).outcome == "withdraw"  # the question came before the objection
    asking = first + [T("agent", "It protects your family."), T("user", "I can't afford that much. Is that so?")]
    assert decide_call(asking).outcome == "undecided"
    wondering = first + [T("agent", "You can pay in the app."),
                         T("user", "I'm wondering whether this is a good deal, as I have to pay more than I can afford.")]
    assert decide_call(wondering).outcome == "undecided"  # a question without a question mark


def test_withdrawing_money_is_no_refusal():
    assert read_cues("I might need to withdraw my money at short notice.").refuse is None
    assert read_cues("I don't need that money at short notice.").refuse is None  # a misspoken objection


def test_keeping_what_one_has_refuses_once_the_offer_is_heard():
    opener = T("agent", "I'm calling to recommend the Steady Growth 180 to you.")
    first = [opener, T("user", "I'm fine keeping my savings at the bank. I have about 30,000 RMB.")]
    assert decide_call(first).outcome == "undecided"  # describing one's situation in the first turn
    later = [opener, T("user", "Hello."), T("agent", "It returns 2.9 % to 3.3 %."), T("user", "I'm fine keeping savings where they are.")]
    assert decide_call(later).outcome == "withdraw"


def test_someone_elses_no_and_a_not_now_are_no_refusals():
    assert read_cues("I'm worried that my son is not interested in this product.").refuse is None
    assert read_cues("My wife and I are not interested.").refuse is not None
    assert read_cues("But my family is healthy, and I don't need this.").refuse is not None
    assert read_cues("If I can't afford it, I'm going to have to talk it over with my spouse first.").soft_no is None
    assert read_cues("I don't need a new car right now.").refuse is None
    assert read_cues("I don't need a new car.").refuse is not None


def test_eagerness_a_named_time_and_the_customers_home_commit():
    assert read_cues("I agree to pay 622 RMB a month. I'll be happy to buy the product.").commit
    assert read_cues("I'm happy to go ahead with the purchase.").commit
    assert not read_cues("But I'm willing to go ahead and try it.").commit  # willingness is not a yes
    assert not read_cues("I'm happy to book a test drive.").commit  # no day or place: a wish
    ask = "Would you like to book a test drive, at our showroom or at your home? Which day and time suit you?"
    assert read_cues("I'll definitely come to the showroom at 5 pm on February 15.", ask).commit
    assert not read_cues("I'll come to the showroom sometime.", ask).commit
    assert read_cues("Well, it's okay. I can have you come to my home and do a test drive.", ask).commit
    assert not read_cues("I don't want to do a test drive at home.", ask).commit
    assert read_cues("I want to book it right now.", "I'll book a branch appointment for you. It's in two hours.").commit
    assert read_cues("I understand. I'll get to it right away.", "Please complete the risk questionnaire now.").commit
    assert read_cues("I don't have any objections.", "Shall I send you the application link now?").agree


def test_ruling_it_out_and_a_money_objection_in_other_words():
    assert read_cues("I really can't do this, I'm just not sure.").refuse
    assert read_cues("It's true that my SUV works fine. But I'm not planning to buy a car this year.").refuse
    assert not read_cues("I wasn't planning to buy a car this year.").refuse  # a doubt the agent can answer
    spare = [T("agent", "It is 10,000 RMB at least."), T("user", "I don't have 10,000 spare to lock away.")]
    again = spare + [T("agent", "It returns 2.9 % to 3.3 %."), T("user", "I still don't think I can invest the money at this time.")]
    assert decide_call(again).outcome == "withdraw"


def test_an_order_to_do_the_step_commits_and_a_conditional_withdrawal_does_not_refuse():
    c = read_cues("Yes, please do the risk assessment. I'll have to withdraw if the price is too high.")
    assert c.commit and not c.refuse
    assert read_cues("I'm sorry, I have to withdraw.").refuse
    assert not read_cues("Please do the risk assessment later.").commit


def test_going_ahead_is_not_leaving_and_a_bare_i_cant_accept_refuses():
    assert not read_cues("I need to go ahead.").end
    assert read_cues("Sorry, I have to go.").end
    assert read_cues("I can't accept. I'm already paying for my parents' chronic illness.").refuse


def test_a_second_joined_act_and_trying_it_at_a_named_time_commit():
    assert read_cues("I know, I'll get the money and subscribe to the product.").commit
    assert not read_cues("I'll think about it and subscribe later.").commit
    assert not read_cues("I'll talk to my wife and buy it if she agrees.").commit
    assert read_cues("Okay, I'll try it at 3 PM tomorrow.", "What time suits you?").commit
    assert not read_cues("Okay, I'll try.", "Would you like to subscribe today?").commit


def test_do_you_want_to_take_proposes_like_would_you_like_to():
    c = read_cues("Yes, please. It's only 178 a month, so I can afford it.", "So, do you want to take the starter plan?")
    assert c.proposal and c.agree
    assert not read_cues("Yes, please.", "Do you want to know more about the cover?").agree


def test_seed_2525_automotive_phrasings():
    ask = "Would you like to book a test drive at our showroom or at your home? Which day and time suit you?"
    assert read_cues("I want to go at the weekend, can we go on Sunday?", ask).commit
    assert not read_cues("Can I think about it until Sunday?", ask).commit
    assert not read_cues("Can we go on Sunday?", "It has a 10,000 RMB trade-in bonus.").commit  # no time was asked for
    assert read_cues("I'm sorry, but I can't make it.", "I'd be happy to arrange a home test drive.").refuse
    assert not read_cues("I can't make it at 3, how about 4?", ask).refuse
    assert read_cues("No, I don't need a test drive.").refuse
    assert read_cues("I was worried about the cost. So I decided not to.").refuse
    doubt = [T("agent", "It starts at 189,900 RMB."), T("user", "I'm not sure I can afford to spend that on this car.")]
    again = doubt + [T("agent", "You can pay 30 % down and 0 % interest."), T("user", "I can't afford to spend more than 92,871 RMB.")]
    assert decide_call(again).outcome == "withdraw"


def test_a_no_to_the_step_with_a_question_for_a_time_after_it_declines():
    ask = "Would you like to book a test drive at our showroom or at your home? Which day and time suit you?"
    assert read_cues("No, I don't want to go to the showroom or your home.", ask).refuse
    assert not read_cues("No, Saturday doesn't work. How about Sunday?", ask).refuse
    assert not read_cues("No, I'm not sure.", ask).refuse
    assert not read_cues("No problem.", "Shall I send you the application link now?").refuse
    assert not read_cues("No.", "It comes with a free charger. Which day suits you?").refuse  # no step was asked for
    assert read_cues("I'm sorry, I'm not available to speak at the moment.").end


def test_seed_2626_insurance_phrasings():
    link = "Shall I send you the application link now? If 288 RMB a month is too much, the 178 RMB starter plan is there too."
    c = read_cues("I'm sorry, I'm not sure. Can you send me the application link?", link)
    assert c.commit and not c.defer
    assert read_cues("I'm ready to pay the monthly premium of 288 RMB and schedule a call with you.").commit
    assert read_cues("I already have a policy, and the 288 RMB premium is too much.").soft_no
    assert not read_cues("No, I'll think about it.", link).refuse  # a postponement
    assert read_cues("Oh, I think I'll decline.").refuse


def test_a_wh_question_proposes_nothing():
    assert not read_cues("Yes, please.", "So, how much do you want to pay?").agree
    assert read_cues("Yes, please.", "Do you want to take the starter plan?").agree


def test_a_named_slot_and_its_answers():
    slot = ("Shall I book you a 30-minute test drive at our showroom this Saturday at 10 am? If another day suits you "
            "better, or you would rather we bring the car to your home on a weekday, just say when.")
    c = read_cues("No problem. I can try the test drive on Saturday at 10 am, if you're not available then.", slot)
    assert c.commit and c.agree
    assert read_cues("No problem, I'll book it.", "I would like to book a test drive at your showroom this Saturday at 10 am.").commit
    assert not read_cues("No, I'm not interested.", slot).agree
    assert read_cues("I'm sorry, but I'm afraid I can't make it this time.", slot).refuse
    assert not read_cues("I can't make it at that time, how about 4?", slot).refuse
    assert read_cues("Do you think you can arrange a home test drive for me?", "We can arrange a home test drive.").commit
    assert not read_cues("Can you arrange a test drive for me?", "We can arrange a test drive.").commit  # no day, no home
    assert read_cues("I'm ready to pay the full price for the Comfort trim.").commit
    # "quite expensive" is the first saying of a price objection, unless a "but" concedes it
    doubt = [T("agent", "It starts at 189,900 RMB."), T("user", "But it looks like it's quite expensive.")]
    assert decide_call(doubt + [T("agent", "It has 120 km range."), T("user", "I don't think I can afford it.")]).outcome == "withdraw"
    conceded = [T("agent", "It is 288 RMB a month."), T("user", "I know it's quite expensive, but I'm willing to give it a shot.")]
    assert decide_call(conceded + [T("agent", "Here is the link."), T("user", "I can't afford it.")]).outcome == "undecided"


def test_a_choice_between_ways_is_no_proposal_a_yes_can_answer():
    c = read_cues("Yes, please. I can pay monthly.", "So, how much do you want to pay? Do you want to pay monthly or yearly?")
    assert not c.proposal and not c.agree
    assert read_cues("Yes, I'm interested in paying it now.", "Would you like to pay it now or in the future?").agree
    showroom_or_home = "Would you like to book a test drive at our showroom or at your home?"
    assert read_cues("No, I don't want to go to the showroom or your home.", showroom_or_home + " Which day suits you?").refuse


def test_seed_2727_automotive_phrasings():
    slot = "Do you want a test drive at our showroom this Saturday at 10 am? If another day suits you better, just say when."
    assert read_cues("I'm okay with the Saturday test drive.", slot).commit
    assert not read_cues("Yes, I can say yes to that.", "Can you tell me what the running cost is?").commit
    assert not read_cues("Okay, I understand.", "I will book you a test drive at our showroom this Saturday at 10 am.").agree
    assert read_cues("Okay, sure.", "I will book you a test drive at our showroom this Saturday at 10 am.").agree
    assert read_cues("It's okay, Chen Jie. I don't want to change.").refuse
    assert not read_cues("I'm just not sure if I want to change now.").refuse
    assert read_cues("I'm sorry, but I don't think I can get this car.").refuse


def test_seed_2828_finance_and_insurance_phrasings():
    assert read_cues("I'm afraid there's no way I can do this.").refuse
    assert read_cues("Okay, I'm going to accept the starter plan, then we can talk about it further.").commit
    assert read_cues("288 RMB is too much, the starter plan is there too.").soft_no
    assert read_cues("But I don't have 10,001 RMB, can I use some of my savings?").soft_no
    short = [T("agent", "The minimum is 10,000 RMB."), T("user", "OK, I understand. But I don't have 10,001 RMB, can I use some of my savings?"),
             T("agent", "I'll let you know."), T("user", "I'm sorry, but I don't have the money to subscribe.")]
    assert decide_call(short).outcome == "withdraw" and decide_call(short[:2]).outcome == "undecided"


def test_seed_2828_automotive_phrasings():
    slot = "Shall I book you a 30-minute test drive at our showroom this Saturday at 10 am?"
    assert read_cues("It sounds good to me. I would prefer a 30-minute test drive.", slot).agree
    assert read_cues("I'm sorry, but I need to confirm my decision. Can you confirm the test drive at the showroom?",
                     "I'd love to book a 30-minute test drive at our showroom this Saturday at 10 am.").commit
    assert not read_cues("Can you confirm the test drive at the showroom?", "We have test drives at the showroom.").commit


def test_make_run_phrasings():
    assert read_cues("OK, let me get it right away.", "Do you need to wait for the link or can you get it right away?").commit
    assert read_cues("Li Wei, I'll pay this amount now.", "Li Wei, I'll send you the application link now.").commit
    later = read_cues("Li Wei, I'll pay this amount on January 1 of the next year.", "Shall I send you the link?")
    assert later.defer and not later.commit
    assert not read_cues("Let me get back to you later.").commit


def test_seed_2929_phrasings():
    assert read_cues("The price is too high for me. I want to stick to the petrol car I've been driving for years.").refuse
    assert not read_cues("If it's not cheaper, I want to stick to my petrol car.").refuse
    assert not read_cues("I want to stick to the plan we discussed.").refuse
    # talking it over with the caller, now, is no postponement
    assert not read_cues("Li Wei, I still have doubts. I need to talk it over with you.").defer
    assert read_cues("I need to talk it over with my wife.").defer
    link = "Is it okay with you if I send you the application link now?"
    assert read_cues("I don't have any objections.", link).agree
    assert read_cues("I agree.", "Perfect. Then I'll send you the application link now.").agree
    assert not read_cues("I agree with you, but it is a lot of money.", link).agree
    # "I don't need another one" followed by a question about the offer still asks about it
    assert not read_cues("I already have a policy, so I don't need another one. I just want to know if it will help me.").refuse
    assert read_cues("I already have a policy, so I don't need another one.").refuse
    assert read_cues("I'm sorry, I can't agree.").refuse
    # a repeated price objection with a wish to talk it through still negotiates
    price = [T("agent", "It is 288 RMB a month."), T("user", "I can't afford the premium."),
             T("agent", "The starter plan is 178 RMB."), T("user", "Li Wei, I just can't afford this. I need to talk to you about it.")]
    assert decide_call(price).outcome == "undecided"
    price[-1] = T("user", "Li Wei, I just can't afford this.")
    assert decide_call(price).outcome == "withdraw"
    # what the agent says it will do is a proposal too; the customer saying it back, or correcting a fact, is no answer
    told = "I'll send you the application link now."
    assert read_cues("No, I can't afford it.", told).refuse
    assert not read_cues("No, the policy's coverage doesn't stop until the policyholder dies.", told).refuse
    assert not read_cues("Okay, I'll send you the link now.", told).agree
    assert read_cues("Okay, please do.", told).agree


def test_seed_2929_finance_phrasings():
    assert read_cues("I want the highest interest rate, so I'll look at the next option.").refuse
    assert read_cues("But I don't have that money either.").soft_no
    assert read_cues("I need to reconsider before making a decision.").defer
    # a doubt about the budget makes the later "I don't have 10,000 spare" the second saying
    calls = [T("agent", "Would you like to subscribe 10,000 RMB in the app today?"), T("user", "I am not sure if it fits my budget."),
             T("agent", "I understand your situation."), T("user", "I don't have 10,000 spare to lock away.")]
    assert decide_call(calls).outcome == "withdraw" and decide_call(calls[:2]).outcome == "undecided"
    # the seller's act in the customer's mouth commits to nothing; the customer's own booking does
    ask = "I will book you a branch appointment tomorrow, okay?"
    assert not read_cues("I will book you a branch appointment in the app today.", ask).commit
    assert read_cues("I will book a branch appointment in the app tomorrow.", ask).commit
    # offering one's contact details for the application is leaving them
    assert read_cues("Okay, I'll provide my email address.", "What is your email address?").commit
    assert not read_cues("Why should I give you my email address?").commit


def test_seed_3030_phrasings():
    # "I would like" is read as "I'd like": the request after a price objection keeps it a negotiation
    assert read_cues("I can't afford the price, but I would like to test the car to see if it's a good fit for me.").asks
    assert read_cues("Okay, I agree to pay you the amount you are asking.").commit
    # taking a risk is not taking the product
    assert not read_cues("I understand that, but I don't want to take the risk of the return being low.").refuse
    assert read_cues("I don't want to take the policy.").refuse
    assert read_cues("But I don't have any immediate budget for insurance.").soft_no


def test_seed_3131_phrasings():
    slot = "Shall I book you a 30-minute test drive at our showroom this Saturday at 10 am?"
    assert read_cues("I'm ready to go.", slot).agree
    assert not read_cues("I'm ready to talk about this now.", slot).agree
    # a day and a clock time of the customer's own, asked for, books; a week or a day alone does not
    assert read_cues("Oh, yes, I'm interested. Can I come by tomorrow at 9 a.m.?").commit
    assert not read_cues("I don't want to pay so much money. Can I come by next week at 10 a.m.?").commit
    assert not read_cues("Can I come by tomorrow?").commit
    # a no to the agent's offer of help turns down the help, not the product
    help_ = "You still need to fill out the questionnaire. Do you need help with that?"
    assert not read_cues("No, I don't want that. I just need to fill out the questionnaire.", help_).refuse
    assert read_cues("No, I don't want that.", "Would you like to subscribe 10,000 RMB in the app today?").refuse
    assert read_cues("I can't afford it anymore, I want to quit now.").end
    assert read_cues("Li Wei, I have to stop this. I need to save up to buy the insurance.").end
    # "The premium amount is quite high." is the first saying of a price objection
    call = [T("agent", "What do you think about the premium amount?"), T("user", "The premium amount is quite high."),
            T("agent", "It covers 70 illnesses."), T("user", "I'm really worried about this. I can't afford another monthly bill.")]
    assert decide_call(call).outcome == "withdraw" and decide_call(call[:2]).outcome == "undecided"
    # the end marker ends "I can't buy it right now", not "I cannot make a decision yet"
    assert decide_call([T("agent", "Shall I send the link?"), T("user", "I am afraid I cannot make a decision yet.", "withdraw")]).outcome == "undecided"
    assert decide_call([T("agent", "Shall I send the link?"), T("user", "I can't buy the insurance right now.", "withdraw")]).outcome == "withdraw"


def test_seed_3131b_phrasings():
    slot = "Shall I book you a 30-minute test drive at our showroom this Saturday at 10 am?"
    # "I don't want to wait" is in a hurry, not a no
    assert not read_cues("I don't want to wait anymore, I want to look at the SUV right now.", slot).refuse
    assert read_cues("I know what you mean, but I feel that hybrids are not my thing. I want to stick with what I know.").refuse
    # a no that turns to trying it out is no refusal
    assert not read_cues("No. I don't usually book things from a sales call, but I think I should try it out.",
                         "Are you ready to book a test drive?").refuse
    assert read_cues("No.", "Are you ready to book a test drive?").refuse
    # the seller's act in the customer's mouth commits nothing
    assert not read_cues("I'll have the application link sent to you now.", "I will send you the application link now.").commit
    assert read_cues("Yes. I'll agree to pay 288 RMB a month.").commit
    call = [T("agent", "It is 288 RMB a month."),
            T("user", "I don't know if it's okay for me to pay 288 RMB a month. I already have social medical insurance."),
            T("agent", "Do you have any questions?"),
            T("user", "I can't buy it now, because the 288 RMB a month is more than I can put toward insurance.")]
    assert decide_call(call).outcome == "withdraw" and decide_call(call[:2]).outcome == "undecided"


def test_seed_3333_phrasings():
    assert read_cues("I haven't got enough money.").soft_no
    assert read_cues("I'm so tired of waiting, and I don't have any more money.").soft_no
    # a doubt in other words is the first saying; "I don't know if I can afford it" stays as the labels read it
    for doubt in ("I am trying to decide whether I can afford it or not.",
                  "The amount you want me to put aside for insurance is still a bit tight."):
        call = [T("agent", "It is 288 RMB a month."), T("user", doubt), T("agent", "The starter plan is 178 RMB."),
                T("user", "I am sorry. I can't afford this.")]
        assert decide_call(call).outcome == "withdraw" and decide_call(call[:2]).outcome == "undecided"
    call = [T("agent", "It is 288 RMB a month."), T("user", "I don't know if I can afford the 288 you mentioned."),
            T("agent", "The starter plan is 178 RMB."), T("user", "I can't afford this.")]
    assert decide_call(call).outcome == "undecided"
    # an okay that turns to something else agrees to nothing
    step = "All right, let's start with the risk assessment now."
    assert not read_cues("Okay, so let's take a look at my current investments.", step).agree
    assert read_cues("Okay, let's do it.", step).agree
    slot = "Shall we book you a 30-minute test drive at our showroom this Saturday at 10 am?"
    assert read_cues("I'm ready, please book me.", slot).commit
    later = "That's okay. If you'd like to test drive the car later, we can schedule it for a later day."
    assert not read_cues("No, I just want to know if it's okay for us to test drive it today.", later).refuse
    assert read_cues("No, I don't want to.", later).refuse


def test_seed_3535_phrasings():
    # money taken out of the product, or charging where one lives, is not a refusal of the offer
    redeem = "And if I want to withdraw, the bank will give me back the interest I have earned."
    assert not read_cues(redeem, "Shall I book you a branch appointment? What time suits you?").refuse
    assert not read_cues("But I can't do it in the city.", "Do you want to charge the car at home?").refuse
    assert read_cues("I'm sorry, but I can't do it.", "Shall I book you a test drive?").refuse
    # "I'll be there." says yes to a named slot
    slot = "Yes, I'll book you a 30-minute test drive at our showroom this Saturday at 10 am."
    assert read_cues("I'll be there.", slot).agree and not read_cues("I'll be there if it rains.", slot).agree
    for no in ("I'm sorry, but I'm not in a position to purchase this plan.", "I don't want to accept this.",
               "I understand, I'll keep a time deposit."):
        assert read_cues(no).refuse, no
    assert read_cues("I'm not in a position to buy it right now.").defer
    assert not read_cues("If the return is better, I'll subscribe; otherwise, I'll keep the time deposit.").refuse
    # "I don't know how to book it" asks for help; "Yes, I already have ..." answers a fact, not the proposal
    branch = "I suggest we book a branch appointment at a specific time to discuss this."
    assert not read_cues("No, no, no, I don't know how to book the branch appointment.", branch).refuse
    assert not read_cues("Yes, I already have products like this. I think I can manage the risk.", branch).agree
    assert read_cues("Yes, I want it.").commit and not read_cues("Yes, I want it. But how much is it?").commit


def test_seed_3636_phrasings():
    step = "Shall I book you a branch appointment at 17:00 today?"
    assert read_cues("OK, let's get started.", step).agree and not read_cues("OK, let's get started.").agree
    assert read_cues("David, I've given up on this idea. I'm sorry.").refuse
    assert not read_cues("I've given up on smoking, so my health is good.").refuse
