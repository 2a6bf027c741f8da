"""Labelers: LLM control flow with a scripted backend, embedded labelers with the real encoder and shipped heads,
and one real small-LLM run of the CoA prompt."""

import asyncio
import dataclasses
import json

import numpy as np
import pytest

from mads_text.attitude import GROUP_STATES, STATE_GROUP, STATES
from mads_text.common.records import DialogueRecord, Turn
from mads_text.labelers import LabelItem, make_labeler, split_sentences
from mads_text.labelers.llm import (
    LLMAttitudeLabeler,
    LLMStrategyLabeler,
    coa_schema,
    gather_limited,
    parse_coa,
    render_history,
)
from mads_text.llm import LLMError
from mads_text.llm.fake import ScriptedBackend
from mads_text.strategies import NON_STRATEGY, STRATEGY_LABELS, normalize_strategy


def dialogue(turns, did="d1"):
    return DialogueRecord(
        id=did, scenario="insurance", group="sign", persona={"name": "Ann"}, persona_prompt="", agent_prompt="",
        turns=[Turn(role=r, text=t) for r, t in turns], outcome="max_rounds", rounds=sum(r == "user" for r, _ in turns))


REC = dialogue([
    ("agent", "Hello, this is Li Wei from Anxin Insurance. Do you have a minute?"),
    ("user", "Who is this? I'm busy."),
    ("agent", "Our plan costs 288 RMB a month. It covers 70 major illnesses."),
    ("user", "Hmm, what does it cover exactly?"),
])


def coa_answer(states, accepted=False):
    return json.dumps({"rounds": [{"round": i + 1, "attitude": s, "evidence": "x"} for i, s in enumerate(states)],
                       "accepted": accepted, "accept_evidence": ""})


# --- LLM CoA classifier (control flow) --------------------------------------------------------


def test_coa_valid_answer_and_schema_passed():
    be = ScriptedBackend([coa_answer(["Disinterest", "seeking value"])])
    res = LLMAttitudeLabeler(be).label_dialogues([REC])[0]
    assert res.ok and [r.state for r in res.rounds] == ["Disinterest", "Seeking Value"]  # normalised
    assert [r.coarse for r in res.rounds] == ["negative", "positive"]
    prompt, params = be.calls[0]
    assert params.json_schema == coa_schema(2)  # constrained decoding requested
    text = prompt[0].content
    assert "Weighing Options" in text and "Round 2:" in text and "exactly 2 entries" in text


def test_coa_repairs_a_bad_answer():
    be = ScriptedBackend(["not json at all", coa_answer(["Refusal"]), coa_answer(["Refusal", "Doubt"])])
    res = LLMAttitudeLabeler(be, max_attempts=3).label_dialogues([REC])[0]
    assert res.ok and [r.state for r in res.rounds] == ["Refusal", "Doubt"]
    assert len(be.calls) == 3
    # the retry shows the model its answer and what was wrong
    retry = be.calls[2][0]
    assert retry[-1].role == "user" and "1 entries" in retry[-1].content


def test_coa_failure_is_marked_not_dropped():
    be = ScriptedBackend([coa_answer(["Maybe", "Doubt"])] * 2 + [LLMError("boom")])
    res = LLMAttitudeLabeler(be, max_attempts=3).label_dialogues([REC])[0]
    assert not res.ok and "3 attempts" in res.error
    assert len(res.rounds) == 2 and all(r.state is None for r in res.rounds)


def test_parse_coa_checks_round_count_and_states():
    assert parse_coa("```json\n" + coa_answer(["Active"]) + "\n```", 1).rounds[0].attitude == "Active"
    with pytest.raises(ValueError, match="2 user rounds"):
        parse_coa(coa_answer(["Active"]), 2)
    with pytest.raises(ValueError, match="unknown attitude"):
        parse_coa(coa_answer(["Happy"]), 1)


def test_render_history_rounds():
    h = render_history(REC)
    assert h.splitlines()[0] == "Round 1:" and "Round 2:" in h and "Round 3:" not in h


def test_gather_limited_keeps_order_and_bounds_concurrency():
    running, peak = 0, 0

    async def work(x):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (5 - x))  # later items finish first
        running -= 1
        return x * 10

    assert asyncio.run(gather_limited(work, range(5), 2)) == [0, 10, 20, 30, 40]
    assert peak == 2


# --- LLM strategy classifier (control flow) ----------------------------------------------------


def p4g_answer(codes):
    return json.dumps({"total_strategies": codes, "strategy_details": [
        {"strategy_id": c, "strategy_name": normalize_strategy(c), "reason": "r",
         "occurrences": [{"turn": 2, "original_text": "It covers 70 major illnesses", "explanation": "e"}]}
        for c in codes]})


def test_strategy_pass_at_3_needs_two_votes():
    be = ScriptedBackend([p4g_answer(["S1", "S3"]), p4g_answer(["S3"]), p4g_answer(["S2"])], concurrency=1)
    res = LLMStrategyLabeler(be, samples=3, min_votes=2).label_dialogues([REC])[0]
    assert res.ok and res.strategy_set == ["credibility-appeal"]
    seeds = {c[1].seed for c in be.calls}
    assert len(seeds) == 3  # independent samples
    labels = {(s.turn, s.sentence): s.label for s in res.sentences}
    assert labels[(2, "It covers 70 major illnesses.")] == "credibility-appeal"
    assert labels[(2, "Our plan costs 288 RMB a month.")] == NON_STRATEGY
    assert labels[(1, "Do you have a minute?")] == NON_STRATEGY


def test_strategy_too_few_valid_samples_is_marked():
    be = ScriptedBackend(["{}x", "nope", "nope", "nope", "nope", "nope", "nope", "nope", "nope"], concurrency=1)
    res = LLMStrategyLabeler(be, max_attempts=3).label_dialogues([REC])[0]
    assert not res.ok and "samples valid" in res.error


def test_sentence_strategy_majority_vote():
    answers = iter(['{"strategy": "emotion-appeal"}', '{"strategy": "emotion-appeal"}', '{"strategy": "logical-appeal"}',
                    '{"strategy": "logical-appeal"}', '{"strategy": "emotion-appeal"}', '{"strategy": "foot-in-the-door"}'])
    be = ScriptedBackend(lambda p, g: next(answers), concurrency=1)
    items = [LabelItem(id="a", text="Imagine a child going hungry."), LabelItem(id="b", text="Anything helps.")]
    out = LLMStrategyLabeler(be).label(items)
    assert out[0].label == "emotion-appeal" and out[0].votes.count("emotion-appeal") == 2
    assert out[1].label == NON_STRATEGY  # three different answers: no label reaches two votes


def test_item_context_accepts_string_or_list():
    assert LabelItem(id="1", text="x", context="a\nb").context == ["a", "b"]
    assert LabelItem(id="1", text="x", context=["a"]).position == 1
    assert split_sentences("Hi there! How are you? I'm fine.") == ["Hi there!", "How are you?", "I'm fine."]


# --- embedded labelers (real MiniLM, shipped heads) ------------------------------------------


@pytest.fixture(scope="module")
def strategy_labeler():
    return make_labeler("strategy", "embedded")


@pytest.fixture(scope="module")
def attitude_labeler():
    return make_labeler("attitude", "embedded")


def test_embedded_strategy_items(strategy_labeler):
    items = [
        LabelItem(id="1", text="Have you ever heard of Save the Children?", context=["Hi, how are you?"], turn_index=2),
        LabelItem(id="2", text="Hello, how are you today?", turn_index=0),
        LabelItem(id="3", text="Do you have any children of your own?", context=["Fine, thanks."], turn_index=2),
        LabelItem(id="4", text="You can donate any amount from $0 up to your full $2 payment.", turn_index=6,
                  context=["How would I donate?"]),
    ]
    out = strategy_labeler.label(items)
    assert [o.id for o in out] == ["1", "2", "3", "4"]
    assert all(o.label in STRATEGY_LABELS for o in out)
    assert out[0].label == "source-related-inquiry"
    assert out[1].label == NON_STRATEGY
    assert out[2].label == "personal-related-inquiry"
    assert out[3].label == "donation-information"


P4G_LIKE = [
    ("agent", "Hello, how are you doing today?"),
    ("user", "I'm good, thanks. How are you?"),
    ("agent", "Have you ever heard of the charity Save the Children?"),
    ("user", "No, I haven't. What do they do?"),
    ("agent", "Save the Children is an international non-governmental organization that promotes children's rights "
              "and provides relief in developing countries."),
    ("user", "That sounds good."),
    ("agent", "Do you have any kids of your own?"),
    ("user", "Yes, two boys."),
    ("agent", "I am going to donate part of my earnings from this task myself."),
    ("user", "Nice."),
    ("agent", "Your donation will be directly deducted from your task payment, and you can choose any amount from $0 "
              "to all your payment."),
    ("user", "Ok."),
    ("agent", "Would you like to donate some of your payment to Save the Children?"),
]


def test_shipped_strategy_head_on_unmistakable_sentences(strategy_labeler):
    st = strategy_labeler.label_dialogues([dialogue(P4G_LIKE)])[0]
    assert [s.label for s in st.sentences] == [
        NON_STRATEGY,  # a greeting
        "source-related-inquiry",
        "credibility-appeal",
        "personal-related-inquiry",
        "self-modeling",
        "donation-information",
        NON_STRATEGY,  # a plain donation ask: P4G's proposition-of-donation, which the ten strategies fold into non-strategy
    ]
    assert strategy_labeler.head.spec.prev_turn_ngrams  # the shipped head reads the persuadee's previous turn


def test_strategy_context_is_built_alike_in_training_and_inference(strategy_labeler):
    """The training path (train/labeler.py: task_sentences -> LinearHead.predict_inputs) and both run-time paths
    (label_dialogues on records, label on items whose context is the previous turn) give the same probabilities."""
    from mads_text.labelers.embedded import item_inputs, record_inputs
    from mads_text.labelers.features import context_text
    from train.labeler import task_sentences

    rec = dialogue(P4G_LIKE)
    head, encode = strategy_labeler.head, strategy_labeler.encoder.encode
    train_inputs = task_sentences([rec], "strategy").inputs
    run_inputs = [x for _, _, x in record_inputs(rec, "agent")]
    assert train_inputs == run_inputs
    assert [context_text(x) for x in run_inputs][:2] == ["", "I'm good, thanks. How are you?"]
    p_train = head.predict_inputs(train_inputs, encode)
    assert np.array_equal(p_train, strategy_labeler.predict(run_inputs))
    # a `mads label` item carrying the previous turn as context gets the same inputs (every agent turn here is one sentence)
    items = [LabelItem(id=str(i), text=t, context=[p for _, p in P4G_LIKE[:i]], turn_index=i)
             for i, (r, t) in enumerate(P4G_LIKE) if r == "agent"]
    item_in = [x for it in items for x in item_inputs(it)]
    assert [context_text(x) for x in item_in] == [context_text(x) for x in run_inputs]
    assert np.allclose(strategy_labeler.predict(item_in), p_train)
    # and the context is used: the same answer after a different persuadee turn scores differently
    other = [dataclasses.replace(x, prev_turn_sentences=("Do they work in the United States?",)) for x in run_inputs]
    assert not np.allclose(strategy_labeler.predict(other), p_train)


def test_embedded_attitude_items(attitude_labeler):
    items = [
        LabelItem(id="yes", text="Yes, I will donate $1 to the children.", context=["Would you like to donate?"]),
        LabelItem(id="no", text="No, I don't want to donate anything, sorry.", context=["Would you like to donate?"]),
    ]
    out = attitude_labeler.label(items)
    assert out[0].label == "acceptance" and out[1].label == "negative"
    for o in out:
        assert o.state in GROUP_STATES[o.label]  # the fine state lies in the predicted group


def test_embedded_dialogue_labels(attitude_labeler, strategy_labeler):
    rec = dialogue([
        ("agent", "Hi! How are you today?"),
        ("user", "Hi, I'm good, thanks."),
        ("agent", "Would you be willing to donate part of your payment to Save the Children?"),
        ("user", "No way. I don't trust charities with my money."),
        ("agent", "They are rated highly and spend most donations on programs."),
        ("user", "Okay, fine, I'll give 50 cents."),
    ])
    att = attitude_labeler.label_dialogues([rec, REC])
    assert [len(a.rounds) for a in att] == [3, 2]
    for a in att:
        assert a.ok and all(r.state in STATES and r.coarse == STATE_GROUP[r.state] for r in a.rounds)
    assert att[0].rounds[1].coarse == "negative"
    assert att[0].rounds[2].coarse == "acceptance"
    st = strategy_labeler.label_dialogues([rec])[0]
    assert len(st.sentences) == 4 and all(s.label in STRATEGY_LABELS for s in st.sentences)
    assert set(st.strategy_set) <= set(STRATEGY_LABELS) - {NON_STRATEGY}


def test_a_round_without_attitude_is_indifference_never_a_copy(attitude_labeler):
    # human coarse labels as an override: None means the round expressed no attitude
    rec = dialogue([("agent", "a"), ("user", "I would rather not."), ("agent", "b"), ("user", "What is the charity's name?"),
                    ("agent", "c"), ("user", "ok")])
    res = attitude_labeler.label_dialogues([rec], coarse_override=[["negative", None, "acceptance"]])[0]
    assert res.rounds[0].coarse == "negative"
    # no silent carry-over of the previous state: that would invent a Refusal -> Refusal self-transition
    assert (res.rounds[1].state, res.rounds[1].source) == ("Indifference", "no attitude")
    assert res.rounds[2].coarse == "acceptance"
    none = attitude_labeler.label_dialogues([rec], coarse_override=[[None, None, None]])[0]
    assert [r.state for r in none.rounds] == ["Indifference"] * 3


SALES = [
    ("agent", "Hello, this is Li Wei from Anxin Insurance. Do you have a minute?"),
    ("user", "Sure, what is it about?"),
    ("agent", "Our Critical Illness plan costs 288 RMB a month and pays out on diagnosis."),
    ("user", "It sounds useful. But 288 a month is a lot for me right now."),
    ("agent", "Shall I send you the application link?"),
    ("user", ""),
    ("agent", "Are you still there?"),
    ("user", "Yes. Send me the link, I'll apply today."),
]


def test_the_round_head_reads_whole_turns_built_alike_in_training_and_inference(attitude_labeler):
    from mads_text.labelers.embedded import record_inputs, round_inputs
    from train.labeler import round_sentences

    rec = dialogue(SALES)
    assert attitude_labeler.round_head is not None  # shipped
    run = round_inputs(rec)
    # one input per customer turn with words: the turn's sentences as one text, after the agent's turn
    assert [k for k, _ in run] == [1, 2, 4]
    assert run[1][1].text == "It sounds useful. But 288 a month is a lot for me right now."
    assert run[1][1].prev_turn_sentences == ("Our Critical Illness plan costs 288 RMB a month and pays out on diagnosis.",)
    trained = round_sentences([rec], lambda r: ["neutral", "negative", None, "acceptance"])
    assert trained.inputs == [x for _, x in run] and trained.labels == ["neutral", "negative", "acceptance"]
    res = attitude_labeler.label_dialogues([rec])[0]
    assert [r.coarse for r in res.rounds][3] == "acceptance"
    # a round with no words is Indifference, counted as such, whatever the head would say
    assert (res.rounds[2].state, res.rounds[2].source) == ("Indifference", "no attitude")
    # so is a round whose sentences carry no attitude by the sentence head (a bare question): the round head, trained
    # on rounds that carry one, only says which
    asked = dialogue(SALES[:2] + [("agent", "It covers 70 major illnesses."), ("user", "What is the waiting period?")])
    probs, _ = attitude_labeler.sentence_probs([x for k, _, x in record_inputs(asked, "user") if k == 2])
    assert not attitude_labeler._bearing(probs).any()
    assert attitude_labeler.label_dialogues([asked])[0].rounds[1].source == "no attitude"
    # the same turn as a `mads label` item gets the same group
    items = [LabelItem(id="4", text=SALES[7][1], context=[t for _, t in SALES[:7]], turn_index=7)]
    assert attitude_labeler.label(items)[0].label == "acceptance"


def test_without_a_round_head_the_sentences_are_aggregated(tmp_path, attitude_labeler):
    import shutil

    from mads_text.labelers.embedded import EmbeddedAttitudeLabeler, record_inputs
    from mads_text.labelers.heads import SHIPPED_DIR

    for f in ("attitude.npz", "attitude.json"):
        shutil.copy(SHIPPED_DIR / f, tmp_path / f)
    alone = EmbeddedAttitudeLabeler(str(tmp_path), encoder=attitude_labeler.encoder)
    off = EmbeddedAttitudeLabeler(encoder=attitude_labeler.encoder, round_head=False)
    assert alone.round_head is None and off.round_head is None and alone.describe()["round_head"] is None
    rec = dialogue(SALES)
    a, b = alone.label_dialogues([rec])[0], off.label_dialogues([rec])[0]
    assert [r.state for r in a.rounds] == [r.state for r in b.rounds]
    # what the sentence head alone gives: the summed group probabilities of the attitude-bearing sentences
    probs, _ = alone.sentence_probs([x for k, _, x in record_inputs(rec, "user") if k == 2])
    group, _ = alone.aggregate(probs)
    assert a.rounds[1].coarse == (group or "neutral")


def test_missing_heads_folder_is_a_clear_error(tmp_path):
    from mads_text.labelers.heads import HeadError

    with pytest.raises(HeadError, match="mads train labeler"):
        make_labeler("strategy", "embedded", heads=str(tmp_path))


# --- a real small LLM through the CoA prompt (machinery only: SmolLM2's labels are not meaningful) ------


@pytest.mark.slow
def test_llm_coa_with_smollm2():
    from mads_text.llm import LLMBackend, make_backend

    class Recorded(LLMBackend):
        """The embedded backend, with every request it gets kept for the asserts."""

        def __init__(self, inner):
            super().__init__(inner.model)
            self.inner, self.name, self.params = inner, inner.name, []
            self.supports_json_schema = inner.supports_json_schema

        async def _complete(self, prompt, params):
            self.params.append(params)
            return await self.inner.complete(prompt, params)

    be = Recorded(make_backend("embedded", "smollm2", parallel=1))
    rec = dialogue([("agent", "Hello, would you like our insurance plan?"), ("user", "No thanks, not interested.")])
    res = LLMAttitudeLabeler(be, max_attempts=2).label_dialogues([rec])[0]
    # the embedded backend decodes under the CoA schema, so even a 135M model's first answer is valid: no repair
    assert [p.json_schema for p in be.params] == [coa_schema(1)]
    assert res.ok and res.error is None and isinstance(res.accepted, bool)
    assert len(res.rounds) == 1
    r = res.rounds[0]
    assert r.round == 1 and r.source == "llm" and r.state in STATES and r.coarse == STATE_GROUP[r.state]
