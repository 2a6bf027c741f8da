"""Control flow of the participants with a scripted backend, and both prompt framings."""

import asyncio

from mads_text.agents import DialogAgent, UserAgent
from mads_text.common.records import Turn
from mads_text.llm import Message
from mads_text.llm.fake import ScriptedBackend
from mads_text.personas import sample_persona
from mads_text.replies import clean_reply, extract_marker, trim_to_sentence
from mads_text.scenario import load_scenario

SC = load_scenario("insurance")
P = sample_persona(SC, "sign", 0, seed=7)


def run(coro):
    return asyncio.run(coro)


def test_extract_marker_variants():
    assert extract_marker("Sure, send it. [ACCEPT]") == ("Sure, send it.", "accept")
    assert extract_marker("no thanks [withdraw]") == ("no thanks", "withdraw")
    assert extract_marker("[ ACCEPTED ] ok") == ("ok", "accept")
    assert extract_marker("ok [ACCEPT] wait, no [WITHDRAW]") == ("ok wait, no", "withdraw")
    assert extract_marker("plain") == ("plain", None)


def test_clean_reply_prefixes_and_slips():
    kw = dict(own_name="Fang", other_name="Li Wei", other_last="Would you like our plan?")
    assert clean_reply("Fang: Not really.", **kw).text == "Not really."
    r = clean_reply("Not really. Li Wei: But why not?", **kw)
    assert r.text == "Not really." and r.cleaned and r.retry is None
    assert clean_reply("Li Wei: Our plan is great!", **kw).retry == "spoke as the other speaker"
    assert clean_reply("User: hmm ok", **kw).text == "hmm ok"
    assert clean_reply("   ", **kw).retry == "empty"
    assert clean_reply("[ACCEPT]", **kw).retry == "marker only"  # words are requested again
    echo = clean_reply("Hello?", own_name="Fang", other_name="Li Wei", other_last="Hello?")
    assert echo.retry is None  # short lines may legitimately repeat
    echo = clean_reply("Would you like to buy our critical illness plan today?", own_name="Fang", other_name="Li Wei",
                       other_last="Would you like to buy our critical illness plan today?")
    assert echo.retry == "echoed the other speaker"
    imp = clean_reply("Hello, I'm Li Wei from Anxin.", impersonation=["I'm Li Wei"], **kw)
    assert imp.retry and "other role" in imp.retry


def test_clean_reply_catches_the_other_role_in_any_sentence():
    from mads_text.replies import CUSTOMER_RX, SALES_RX
    kw = dict(own_name="Hao", other_name="Zhang Min", other_last="Do you have savings?")
    agent_said = ["I am calling to recommend the Steady Growth 180 wealth management product to you.",
                  "The expected return is 2.9 % to 3.3 %."]
    # a sentence of the agent's from earlier in the call, said again by the customer
    r = clean_reply("Yes. I am calling to recommend the Steady Growth 180 wealth management product to you.",
                    other_said=agent_said, **kw)
    assert r.retry and r.retry.startswith("echoed the other speaker")
    # asking back about a stated fact is an answer, not an echo
    r = clean_reply("The expected return is 2.9 % to 3.3 %?", other_said=agent_said, **kw)
    assert r.retry is None
    for line in ("I understand. Are you interested in booking a test drive at this time?",
                 "Hi, I'm calling to tell you about a plan."):
        assert "other role" in clean_reply(line, impersonation=[SALES_RX], **kw).retry
    assert clean_reply("I'm calling my wife about it tonight.", impersonation=[SALES_RX], **kw).retry is None
    agent = dict(own_name="Chen", other_name="Karen", other_last="Fine.")
    r = clean_reply("Sure. I would like to have a test drive of the Aurora you mentioned.", impersonation=[CUSTOMER_RX], **agent)
    assert "other role" in r.retry
    assert clean_reply("I understand you may not be interested yet.", impersonation=[CUSTOMER_RX], **agent).retry is None
    slip = "I've heard about this product, and it's exactly what I'm looking for. How much do I need to pay?"
    assert clean_reply(slip, impersonation=[CUSTOMER_RX], **agent).retry.startswith("spoke in the other role")
    assert clean_reply("How much would you like to pay each month?", impersonation=[CUSTOMER_RX], **agent).retry is None
    for slip in ("You've been very helpful so far. I think I should subscribe now.",
                 "I'm happy to subscribe 10,000 RMB in the app today.",
                 "I'm looking to buy a product that invests in high-grade bonds and deposits.",
                 "Sure, please send me the application link now."):
        assert "other role" in clean_reply(slip, impersonation=[CUSTOMER_RX], **agent).retry, slip
    assert clean_reply("I'm happy to help you subscribe in the app today.", impersonation=[CUSTOMER_RX], **agent).retry is None



def test_neither_speaker_talks_like_a_chat_assistant():
    sc = load_scenario("insurance")
    user = UserAgent(sample_persona(sc, "busi", 0, seed=7), sc, ScriptedBackend([]), "transcript")
    agent = DialogAgent(sc, ScriptedBackend([]))
    for who in (user, agent):
        kw = dict(own_name=who.own_name, other_name=who.other_name, other_last="Can you lend me money?")
        r = clean_reply("I'm sorry, but I can't assist with that. I'm here to help you.", impersonation=who.impersonation(), **kw)
        assert r.retry and "other role" in r.retry
        assert clean_reply("I can't help you with a loan, sorry.", impersonation=who.impersonation(), **kw).retry is None
        # typographic apostrophes, after a greeting, too
        r = clean_reply("Hi, how are you doing? I’m sorry, but I can’t assist with that.", impersonation=who.impersonation(), **kw)
        assert r.retry and "other role" in r.retry and "’" in r.text


def test_the_customer_does_not_introduce_themselves_from_the_company():
    sc = load_scenario("finance")
    user = UserAgent(sample_persona(sc, "sign", 0, seed=7), sc, ScriptedBackend([]), "transcript")
    kw = dict(own_name=user.own_name, other_name=sc.agent.name, other_last="Hello.")
    said = f"Hi {sc.agent.name}, this is Karen from {sc.agent.company}."
    assert "other role" in clean_reply(said, impersonation=user.impersonation(), **kw).retry
    ok = f"I'm sorry, but I already have a policy from {sc.agent.company}."
    assert clean_reply(ok, impersonation=user.impersonation(), **kw).retry is None


def test_trim_to_sentence():
    assert trim_to_sentence("It covers 70 illnesses. It also pays") == "It covers 70 illnesses."
    assert trim_to_sentence("short. and") == "short. and"


def test_user_agent_retries_a_slip_then_strips_marker():
    be = ScriptedBackend(["Li Wei: Buy now!", "Hmm, maybe. Tell me more. [ACCEPT]"])
    user = UserAgent(P, SC, be, "transcript", seed=1)
    r = run(user.next_turn([Turn(role="agent", text="Hello, can you hear me?")]))
    assert r.text == "Hmm, maybe. Tell me more." and r.marker == "accept"
    assert r.calls == 2 and r.slips_retried == 1
    # different seeds for the retry, and the transcript framing ends with the speaker's name
    (p1, a1), (p2, a2) = be.calls
    assert a1.seed != a2.seed
    assert isinstance(p1, str) and p1.endswith(f"Li Wei: Hello, can you hear me?\n{P.name}:")
    assert "\n" in a1.stop and "Li Wei:" in a1.stop


def test_a_bare_marker_is_sampled_again_and_never_given_words():
    be = ScriptedBackend(["[WITHDRAW]", "[WITHDRAW]", "[WITHDRAW]"])
    r = run(UserAgent(P, SC, be, "transcript").next_turn([Turn(role="agent", text="Hi")]))
    assert r.calls == 3 and r.marker == "withdraw" and r.text == "" and r.marker_only_retries == 3
    be = ScriptedBackend(["[ACCEPT]", "Hmm, tell me more. [ACCEPT]"])
    r = run(UserAgent(P, SC, be, "transcript").next_turn([Turn(role="agent", text="Shall I send the link?")]))
    assert (r.text, r.marker, r.marker_only_retries) == ("Hmm, tell me more.", "accept", 1)


def test_stage_directions_are_never_stored_as_words():
    # a leading note is cut; a reply that is only notes is sampled again, then ends with no words at all
    be = ScriptedBackend(["[Hui is ready to say yes.] Hmm, tell me more."])
    r = run(UserAgent(P, SC, be, "transcript").next_turn([Turn(role="agent", text="Shall I send the link?")]))
    assert r.text == "Hmm, tell me more." and r.calls == 1
    be = ScriptedBackend(["[Hui is ready to say yes.]", "(nods)", "*smiles*"])
    r = run(UserAgent(P, SC, be, "transcript").next_turn([Turn(role="agent", text="Shall I send the link?")]))
    assert (r.text, r.marker, r.calls, r.empty_retries) == ("", None, 3, 3)
    # nor are the leftovers of one: a lone bracket or full stop is no reply, the stop after a cut note is dropped
    be = ScriptedBackend(["[", ".", "(smiles). Thanks."])
    r = run(UserAgent(P, SC, be, "transcript").next_turn([Turn(role="agent", text="Shall I send the link?")]))
    assert (r.text, r.empty_retries) == ("Thanks.", 2)


def test_the_agent_does_not_repeat_a_sentence_it_already_said():
    said = [Turn(role="agent", text="Our plan covers 70 major illnesses. It costs 288 RMB a month."),
            Turn(role="user", text="Hmm.")]
    # repeats of earlier turns and within the reply are cut; what is new stays, as written
    be = ScriptedBackend(["Our plan covers 70 major illnesses. The waiting period is 90 days. "
                          "The waiting period is 90 days."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn(said))
    assert r.text == "The waiting period is 90 days." and r.repeats_removed == 2 and r.calls == 1
    # a reply with nothing new is sampled again
    be = ScriptedBackend(["It costs 288 RMB a month.", "Would you like the 178 RMB starter plan instead?"])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn(said))
    assert r.text == "Would you like the 178 RMB starter plan instead?" and r.repeat_retries == 1
    # the retry asks the runtime to penalise repeating the context; a first sample does not
    assert be.calls[0][1].dry_multiplier == 0 and be.calls[1][1].dry_multiplier > 0
    # short acknowledgements may come back
    be = ScriptedBackend(["Sure. It is issued the same day."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn(said + [
        Turn(role="agent", text="Sure."), Turn(role="user", text="And then?")]))
    assert r.text == "Sure. It is issued the same day." and r.repeats_removed == 0
    # a short whole turn said again is a loop, not an acknowledgement; a one-word turn may come back
    hist = [Turn(role="agent", text="Hi, Susan."), Turn(role="user", text="Li Wei?")]
    be = ScriptedBackend(["Hi, Susan.", "Yes, this is Li Wei from Anxin Insurance."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Susan").next_turn(hist))
    assert r.text == "Yes, this is Li Wei from Anxin Insurance." and r.repeat_retries == 1
    be = ScriptedBackend(["Okay."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Susan").next_turn(
        [Turn(role="agent", text="Okay."), Turn(role="user", text="Go on.")]))
    assert r.text == "Okay." and r.repeat_retries == 0


def test_agent_never_ends_the_call():
    be = ScriptedBackend(["Great, I'll send it. [ACCEPT]"])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn([]))
    assert r.marker is None and r.text == "Great, I'll send it."


def test_chat_framing_uses_paper_prompts():
    be = ScriptedBackend(["Hello, this is Li Wei from Anxin Insurance.", "Who is this?"])
    agent = DialogAgent(SC, be, "chat", user_name="Fang")
    user = UserAgent(P, SC, be, "chat")
    a = run(agent.next_turn([]))
    hist = [Turn(role="agent", text=a.text)]
    run(user.next_turn(hist))
    agent_msgs, user_msgs = be.calls[0][0], be.calls[1][0]
    assert isinstance(agent_msgs, list) and agent_msgs[0].role == "system"
    assert agent_msgs[0].content == agent.system_prompt and "<reference_information>" in agent.system_prompt
    assert user_msgs[0] == Message(role="system", content=user.system_prompt)
    assert user_msgs[1] == Message(role="user", content=a.text)  # the other side is "user"


def test_fixed_opening_is_used():
    sc = SC.model_copy(deep=True)
    sc.agent.opening = "Hello, can you hear me?"
    be = ScriptedBackend([])
    assert run(DialogAgent(sc, be, "transcript").next_turn([])).text == "Hello, can you hear me?"
    assert be.calls == []


def test_a_customer_repeating_a_whole_turn_is_sampled_again_hotter():
    said = [Turn(role="agent", text="Hello Linda."), Turn(role="user", text="Hi, Li Wei. I'm Linda."),
            Turn(role="agent", text="Our plan costs 288 a month.")]
    be = ScriptedBackend(["Hi, Li Wei. I'm Linda.", "That's more than I can spend."])
    r = run(UserAgent(P, SC, be, "transcript", seed=1).next_turn(said))
    assert r.text == "That's more than I can spend." and r.repeat_retries == 1
    (_, a1), (_, a2) = be.calls
    assert a2.temperature > a1.temperature
    said = [Turn(role="agent", text="Hi, Susan."), Turn(role="user", text="Li Wei?"), Turn(role="agent", text="Yes.")]
    be = ScriptedBackend(["Li Wei?", "Why are you calling me?"])
    r = run(UserAgent(P, SC, be, "transcript", seed=1).next_turn(said))
    assert r.text == "Why are you calling me?" and r.repeat_retries == 1


def test_a_sample_stuck_in_a_loop_is_sampled_again_and_counted_if_kept():
    said = [Turn(role="agent", text="Hello Linda."), Turn(role="user", text="Hi."),
            Turn(role="agent", text="Can I ask you a question first?")]
    loop = "No, " * 20
    be = ScriptedBackend([loop, "Sure, go ahead."])
    r = run(UserAgent(P, SC, be, "transcript", seed=1).next_turn(said))
    assert r.text == "Sure, go ahead." and r.repeat_retries == 1
    be = ScriptedBackend([loop] * 3)
    r = run(UserAgent(P, SC, be, "transcript", seed=1).next_turn(said))
    assert r.text == loop.strip() and r.repeats_kept == 1 and r.slips_kept == 0
    # a few words said twice or thrice are speech, not a loop
    be = ScriptedBackend(["No, no, no. I said no."])
    assert run(UserAgent(P, SC, be, "transcript", seed=1).next_turn(said)).repeat_retries == 0


def test_stance_notes_follow_the_persona():
    from mads_text.agents import stance_note
    from mads_text.stance import Stance

    base = dict(need="some", need_reasons=[], budget=300.0, budget_estimated=False, price=288.0, budget_fits=True,
                cheaper_fits=True, experience=None, trust="medium", trust_text="", busy=False, time_text="",
                objections=["I already have social medical insurance, isn't that enough?"], resistance=2)
    open_, stubborn = Stance(**base, leaning="open"), Stance(**{**base, "budget_fits": False}, leaning="resistant")
    h = [Turn(role="agent", text="Hello."), Turn(role="user", text="Hi.")]
    assert "still has this doubt" in stance_note(open_, h, "Linda")  # the unvoiced objection is recalled
    voiced = h + [Turn(role="agent", text="It pays cash."),
                  Turn(role="user", text="I already have social medical insurance, isn't that enough?")]
    assert "ready to say yes" in stance_note(open_, voiced, "Linda")
    long = voiced + [Turn(role="agent", text="x"), Turn(role="user", text="y")] * 4
    note = stance_note(stubborn, long, "Linda")
    assert "running out of patience" in note and "ready to say yes" not in note
    assert stance_note(open_, [], "Linda") == ""  # nothing before the first round


def test_the_agent_is_reminded_to_answer_then_ask_for_the_next_step():
    h = [Turn(role="agent", text="Hello."), Turn(role="user", text="Hi.")]
    two = h + [Turn(role="agent", text="It pays cash on diagnosis."), Turn(role="user", text="Okay, that sounds useful.")]
    be = ScriptedBackend(["It is 288 RMB a month. Shall I send you the application link now?"] * 4)
    agent = DialogAgent(SC, be, "transcript", user_name="Fang")
    run(agent.next_turn(h))
    run(agent.next_turn(two))
    first, second = be.calls[0][0], be.calls[1][0]
    assert "next step" not in first.split("Transcript:")[1]  # not before the second round
    # right before the agent's line, quoting the scenario's step; never part of the transcript lines
    assert second.endswith(f'"{SC.agent.next_step}")\nLi Wei:') and SC.agent.next_step
    # a doubt or a question is answered first, without asking
    doubt = two[:-1] + [Turn(role="user", text="I don't think I need it, I have social insurance.")]
    run(agent.next_turn(doubt))
    assert be.calls[2][0].endswith("does not ask for anything yet.)\nLi Wei:")
    run(DialogAgent(SC, be, "transcript", user_name="Fang", note=False).next_turn(two))
    assert "next step" not in be.calls[3][0].split("Transcript:")[1]
    # the reminder said aloud is a direction, not a line
    be = ScriptedBackend(["Li Wei answers that with the facts above, in a sentence or two.", "It is 288 RMB a month."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn(doubt))
    assert r.text == "It is 288 RMB a month." and r.slips_retried == 1


def test_after_repeating_the_step_the_agent_is_not_shown_it_again():
    # the reminder quotes the step; a sample that only says it again is retried with a reminder that quotes nothing
    step = SC.agent.next_step
    h = [Turn(role="agent", text="Hello."), Turn(role="user", text="Hi."),
         Turn(role="agent", text=f"It pays cash on diagnosis. {step}"), Turn(role="user", text="Okay, that sounds useful.")]
    be = ScriptedBackend([step, "You can also start with the starter plan and upgrade later."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn(h))
    assert r.text == "You can also start with the starter plan and upgrade later." and r.repeat_retries == 1
    first, second = be.calls[0][0], be.calls[1][0]
    assert first.endswith(f'"{step}")\nLi Wei:')
    assert step not in second.split("Transcript:")[1].rsplit("Fang: Okay", 1)[1]
    assert second.endswith("in other words.)\nLi Wei:")
    # reading that reminder aloud is a slip, sampled again
    be = ScriptedBackend([step, "Li Wei has said that before; now Li Wei answers Fang's last words.", "It is 288 RMB a month."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn(h))
    assert r.text == "It is 288 RMB a month." and r.slips_retried == 1
    # without reminders the prompt stays as it was
    be = ScriptedBackend([step, "Anything else?"])
    run(DialogAgent(SC, be, "transcript", user_name="Fang", note=False).next_turn(h))
    assert be.calls[0][0] == be.calls[1][0]


def test_what_counts_as_a_concern_the_agent_answers_first():
    from mads_text.cues import raises_concern

    for said in ("How long is the waiting period?", "I'm worried about the premium.", "It's too expensive for me.",
                 "I don't usually sign up for things on a cold call.", "That sounds risky.",
                 "How much does it cost per month.", "Okay. Does it cover cancer."):  # spoken: the mark may be lost
        assert raises_concern(said), said
    for said in ("Okay, that sounds useful.", "I see. My family would like that.", "Yes.", "I know how it works."):
        assert not raises_concern(said, "It pays cash on diagnosis."), said


def test_the_agent_answering_its_own_ask_is_resampled():
    be = ScriptedBackend(["Ok, I want to subscribe 10,000 RMB in the app today.", "It is 2.9 % to 3.3 % a year."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn([Turn(role="user", text="Hmm.")]))
    assert r.text == "It is 2.9 % to 3.3 % a year." and r.slips_retried == 1
    be = ScriptedBackend(["I think I'll subscribe 10,000 RMB in the app today.", "Shall I book you a branch appointment?"])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn([Turn(role="user", text="Hmm.")]))
    assert r.text == "Shall I book you a branch appointment?" and r.slips_retried == 1


def test_a_speaker_narrating_the_call_is_resampled():
    be = ScriptedBackend(["Yes, I'll send you the link now. Fang says that she has decided to buy the policy.",
                          "Yes, I'll send you the link now."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn(
        [Turn(role="agent", text="Hello."), Turn(role="user", text="Send me the link.")]))
    assert r.text == "Yes, I'll send you the link now." and r.slips_retried == 1 and r.slips_kept == 0
    # every draw narrates: the first is kept as written, and counted
    be = ScriptedBackend(["Shall I send the link? (Fang agrees to buy the policy) Fang agrees to buy the policy."] * 4)
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn(
        [Turn(role="agent", text="Hello."), Turn(role="user", text="Hmm.")]))
    assert r.slips_kept == 1 and "Shall I send the link?" in r.text
    from mads_text.agents import narration

    assert narration("Chen Jie", "Yan").search("So shall we set up a test drive? (Yan answers yes)")
    # a customer line that tells the call: what the model wrote around an end marker it moved out of the words
    for told in ("Mark ended the call with , indicating he declined to make the test drive appointment.",
                 "This is Mark's final message, which he will never read out loud."):
        assert narration("Mark", "Chen Jie").search(told)
    assert not narration("Mark", "Chen Jie").search("Chen Jie, I declined that offer before, and I ended up buying a car.")
    # the salesperson naming the company as themself is sampled again; the company's salesperson is fine
    be = ScriptedBackend(["Hello Fang, I'm Anxin Insurance. We sell critical illness cover.",
                          "Hello Fang, I'm Anxin Insurance's salesperson, Li Wei."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn([Turn(role="user", text="Hello?")]))
    assert r.text == "Hello Fang, I'm Anxin Insurance's salesperson, Li Wei." and r.slips_retried == 1
    # the name as an address is no narration
    be = ScriptedBackend(["Fang, says who? The policy is issued the same day."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn([Turn(role="user", text="Really?")]))
    assert r.slips_retried == 0


def test_a_customer_reciting_its_private_notes_is_resampled():
    kw = dict(own_name="Sarah", other_name="Chen Jie", other_last="Would you like to book a test drive?")
    note = "Sarah needs the objections answered convincingly; if they are and the price fits, Sarah agrees, otherwise Sarah declines."
    said = "I need the objections answered convincingly; if they are and the price fits, Sarah agrees."
    assert clean_reply(said, instructions=[note], **kw).retry == "recited its instructions"
    # a few shared words are a turn of phrase, not the note read aloud
    assert clean_reply("I agree if the price fits my budget.", instructions=[note], **kw).retry is None


def test_the_customer_may_say_its_objections_but_not_how_it_decides():
    user = UserAgent(P, SC, ScriptedBackend([]), "transcript")
    history = [Turn(role="agent", text="Hello."), Turn(role="user", text="Hi."), Turn(role="agent", text="It is 288 a month.")]
    notes = user.directions(history)
    assert user.stance and user.stance.objections
    kw = dict(own_name=P.name, other_name="Li Wei", other_last="It is 288 a month.", instructions=notes)
    assert clean_reply(user.stance.objections[0], **kw).retry is None
    assert clean_reply(notes[0], **kw).retry == "recited its instructions"


def test_directions_in_parentheses_are_cut_and_recited_frames_resampled():
    sc = load_scenario("automotive")
    agent = DialogAgent(sc, ScriptedBackend([]), "transcript", user_name="Hui")
    kw = dict(own_name=sc.agent.name, other_name="Hui", other_last="Hm.", instructions=agent.directions([]))
    said = "Hi Hui, I'm Chen Jie. (introduces the product) The Aurora PHEV is a compact SUV."
    r = clean_reply(said, **kw)
    assert r.retry is None and r.cleaned and r.text == "Hi Hui, I'm Chen Jie. The Aurora PHEV is a compact SUV."
    r = clean_reply("Let me call you back later. (proposes exactly that next step and asks for it directly)", **kw)
    assert r.text == "Let me call you back later."
    # parentheses that are part of what is said stay, and a direction alone leaves nothing to say
    fact = "It starts at 189,900 RMB (Comfort trim)."
    assert clean_reply(fact, **kw).text == fact and not clean_reply(fact, **kw).cleaned
    assert clean_reply("(handles objections)", **kw).retry == "empty"
    assert clean_reply("You can use the fact that the range is 120 km.", **kw).retry == "recited its instructions"
    # the accepting step is the agent's to ask for, in its own words
    assert clean_reply("Would you like to book a test drive at a specific date and time?", **kw).retry is None
    # the customer's private note read out in brackets
    user = UserAgent(P, SC, ScriptedBackend([]), "transcript")
    hist = [Turn(role="agent", text="Hello."), Turn(role="user", text="Hi."), Turn(role="agent", text="It is 288 RMB.")]
    note = user.directions(hist)
    said = f'I see. ({user.own_name} still has this doubt: "it is too much".)'
    r = clean_reply(said, own_name=user.own_name, other_name=SC.agent.name, other_last="It is 288 RMB.", instructions=note)
    assert r.text == "I see."


def test_a_customer_commits_only_after_raising_their_doubts():
    # P's stance holds two objections: the price and the cover stopping at 70
    said = [Turn(role="agent", text="Hi, it is 288 RMB a month. Shall I send you the application link?")]
    be = ScriptedBackend(["Sure, send me the link.", "Hmm, 288 a month is more than I can put toward insurance."])
    r = run(UserAgent(P, SC, be, "transcript", seed=1).next_turn(said))
    assert r.text == "Hmm, 288 a month is more than I can put toward insurance." and r.stance_retries == 1
    # once both doubts are said, a yes stands
    voiced = said + [Turn(role="user", text="288 a month is more than I can put toward insurance."),
                     Turn(role="agent", text="There is a starter plan at 178."),
                     Turn(role="user", text="The cover stops at 70, so what happens after that?"),
                     Turn(role="agent", text="You can renew up to 70. Shall I send you the application link?")]
    r = run(UserAgent(P, SC, ScriptedBackend(["Sure, send me the link."]), "transcript").next_turn(voiced))
    assert (r.text, r.stance_retries, r.calls) == ("Sure, send me the link.", 0, 1)
    # a model that keeps saying yes is kept as written after its retries, and counted
    be = ScriptedBackend(["Sure, send me the link."] * 3)
    r = run(UserAgent(P, SC, be, "transcript").next_turn(said))
    assert (r.text, r.stance_retries, r.calls) == ("Sure, send me the link.", 3, 3)


def test_a_customer_does_not_commit_to_an_offer_over_their_budget():
    # a persona whose budget covers neither the plan nor the starter plan, all objections already voiced
    broke = next(p for i in range(200) if (p := sample_persona(SC, "busi", i, seed=7))
                 and (s := UserAgent(p, SC, ScriptedBackend([]), "transcript").stance)
                 and s.budget_fits is False and s.cheaper_fits is False)
    user = UserAgent(broke, SC, ScriptedBackend(["Sure, send me the application link.", "That is more than I can pay."]),
                     "transcript", seed=1)
    voiced = [Turn(role="agent", text="Hi, it is 288 RMB a month.")]
    voiced += [x for o in user.stance.objections for x in (Turn(role="user", text=o), Turn(role="agent", text="I see."))]
    voiced[-1] = Turn(role="agent", text="Shall I send you the application link?")
    r = run(user.next_turn(voiced))
    assert (r.text, r.stance_retries) == ("That is more than I can pay.", 1)
    assert "committed beyond their budget" in r.notes
    # a refusal is never resampled for the budget
    r = run(UserAgent(broke, SC, ScriptedBackend(["No, thank you."]), "transcript").next_turn(voiced))
    assert (r.text, r.stance_retries, r.calls) == ("No, thank you.", 0, 1)


def test_the_reminders_frame_said_aloud_is_resampled():
    user = UserAgent(P, SC, ScriptedBackend([]), "transcript")
    hist = [Turn(role="agent", text="Hello."), Turn(role="user", text="Hi."), Turn(role="agent", text="It is 288 RMB.")]
    kw = dict(own_name=user.own_name, other_name=SC.agent.name, other_last="It is 288 RMB.",
              instructions=user.directions(hist))
    assert clean_reply("I still have this doubt. Is it worth it?", **kw).retry == "recited its instructions"
    assert clean_reply("Yes, I do have this doubt, but I'll do my best.", **kw).retry == "recited its instructions"
    assert clean_reply("I still have doubts about the price.", **kw).retry is None
    assert clean_reply("Okay, I've raised every doubt.", **kw).retry == "recited its instructions"
    # the money line read out; saying one's budget is fine
    said = "I'm prepared to spend at most 305 RMB a month. The offer costs 288 RMB a month, which fits."
    assert clean_reply(said, **kw).retry == "recited its instructions"
    assert clean_reply("I can spend at most 305 RMB a month.", **kw).retry is None


def test_a_marker_cut_before_its_bracket_is_no_words():
    assert extract_marker("[ACCEPT") == ("", "accept")
    assert extract_marker("Okay, send it. [ACCEPT] [ACCEPT") == ("Okay, send it.", "accept")
    assert extract_marker("I said [withdraw] earlier, fine.")[1] == "withdraw"
    assert extract_marker("[WITHDRAW]. I'm withdrawing.") == ("I'm withdrawing.", "withdraw")
    assert extract_marker("...well, maybe. [ACCEPT]") == ("...well, maybe.", "accept")  # only a leading marker's stop goes


def test_a_sample_under_the_repetition_penalty_keeps_only_finished_sentences():
    said = [Turn(role="agent", text="It costs 288 RMB a month."), Turn(role="user", text="Can I use my deposit?")]
    # the first sample repeats; the penalised second stops mid-phrase and is cut back to its finished sentence
    be = ScriptedBackend(["It costs 288 RMB a month.", "Yes, you can. The premium comes from your current"])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn(said))
    assert (r.text, r.repeat_retries) == ("Yes, you can.", 1)
    # nothing finished in it: sampled again
    be = ScriptedBackend(["It costs 288 RMB a month.", "Yes, you can still use your current", "Yes, from your deposit."])
    r = run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn(said))
    assert (r.text, r.repeat_retries, r.calls) == ("Yes, from your deposit.", 2, 3)
    assert "stopped mid-sentence" in r.notes
    # without the penalty a reply is kept as written
    be = ScriptedBackend(["Yes, you can use your deposit"])
    assert run(DialogAgent(SC, be, "transcript", user_name="Fang").next_turn(said)).text == "Yes, you can use your deposit"


def test_a_transcript_sample_stops_where_it_writes_the_header_word():
    be = ScriptedBackend(["No thanks."])
    run(UserAgent(P, SC, be, "transcript", seed=1).next_turn([Turn(role="agent", text="Hello.")]))
    assert "Transcript:" in be.calls[0][1].stop


def test_a_reminder_opened_and_never_closed_is_read_out():
    kw = dict(own_name="Zhang Min", other_name="Emily", other_last="I'm done for now.")
    said = '(for example: "Can I subscribe 10,000 RMB in the app now, or shall I book you a branch appointment?'
    assert clean_reply(said, **kw).retry == "recited its instructions"
    assert clean_reply("(laughs) Sure, the app takes three minutes.", **kw).retry is None


def test_a_direction_left_alone_once_the_repeats_are_gone_is_sampled_again():
    said = "Shall I send you the application link now?"
    h = [Turn(role="agent", text=said), Turn(role="user", text="I need to talk it over with my spouse first.")]
    be = ScriptedBackend([f"{said} (Li Wei repeats the same question a second time)", "Of course. The cover starts after 90 days."])
    r = run(DialogAgent(SC, be, "transcript", seed=1).next_turn(h))
    assert r.text == "Of course. The cover starts after 90 days." and r.repeat_retries == 1
