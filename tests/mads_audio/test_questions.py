import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from mads_audio.question_eval import QuestionEvalConfig, evaluate
from mads_audio.questions import (
    QUESTIONS_DIR,
    Answer,
    QuestionSetError,
    load_questions,
    make_items,
    normalise,
    report,
    shuffled_partner,
)
from mads_text.llm.fake import ScriptedBackend
from mads_text.scenario import load_scenario

SHIPPED = sorted(p.stem for p in QUESTIONS_DIR.glob("*.yaml"))


def test_every_built_in_sales_scenario_has_a_set_of_at_least_fifty_questions():
    assert SHIPPED == ["automotive", "finance", "insurance"]
    for name in SHIPPED:
        qs = load_questions(name)
        assert qs.scenario == name
        assert sum(len(q.ask) for q in qs.questions) >= 50


@pytest.mark.parametrize("name", SHIPPED)
def test_each_fact_is_in_the_product_facts_and_its_patterns_accept_it(name):
    facts = normalise(load_scenario(name).product.metadata)
    for q in load_questions(name).questions:
        assert q.stated_in(q.fact), (q.id, q.fact)  # the fact as written states itself
        for pattern in q.expect:  # a pattern that asks for numbers asks for at least one the product facts give
            nums = [n.replace("\\", "") for n in re.findall(r"\d+(?:\\\.\d+)?", pattern)]
            assert not nums or any(n in facts for n in nums), (q.id, pattern)


def test_a_reply_states_a_fact_only_when_every_pattern_matches():
    qs = load_questions("automotive")
    price, hours = qs.get("price-from"), qs.get("showroom-hours")
    assert price.stated_in("It starts at 189,900 RMB for the Comfort trim.")
    assert price.stated_in("from 189 900 RMB")
    assert not price.stated_in("It is very affordable, and we have a trade-in bonus of 10,000 RMB.")
    assert hours.stated_in("We are open from 9:00 to 20:00 every day.")
    assert not hours.stated_in("We open at 9 in the morning.")  # the closing time is missing
    assert normalise("3.3 percent, 2.9 %") == "3.3%, 2.9%"
    early = load_questions("finance").get("early-redemption")
    assert early.stated_in("I\u2019m sorry, but we can\u2019t allow early redemption of this product.")  # typographic apostrophes
    assert not early.stated_in("Yes, you can redeem it anytime within the term.")


def test_a_bad_question_set_is_refused_with_the_field(tmp_path):
    bad = {"scenario": "insurance", "questions": [
        {"id": "a", "fact": "x", "ask": ["How much?"], "expect": ["(288"]},
        {"id": "b", "fact": "y", "ask": [], "expect": ["1"]},
    ]}  # fmt: skip
    p = tmp_path / "q.yaml"
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(QuestionSetError) as e:
        load_questions(str(p))
    assert "questions.0.expect" in str(e.value) and "questions.1.ask" in str(e.value)
    dup = {"scenario": "s", "questions": [{"id": "a", "fact": "x", "ask": ["q"], "expect": ["1"]}] * 2}
    p.write_text(yaml.safe_dump(dup))
    with pytest.raises(QuestionSetError, match="repeat"):
        load_questions(str(p))
    with pytest.raises(QuestionSetError, match="shipped: automotive, finance, insurance"):
        load_questions("no-such-scenario")
    cfg = QuestionEvalConfig(scenario="automotive", questions=str(QUESTIONS_DIR / "insurance.yaml"), out=str(tmp_path / "o"))
    with pytest.raises(QuestionSetError, match="not 'automotive'"):
        asyncio.run(evaluate(cfg, backend=ScriptedBackend([])))


def test_items_take_the_voices_in_turn_and_the_control_asks_about_another_fact():
    qs = load_questions("insurance")
    items = make_items(qs, ["v1", "v2", "v3"], per_phrasing=2)
    assert len(items) == 2 * sum(len(q.ask) for q in qs.questions)
    assert len({i.id for i in items}) == len(items)
    assert {i.speaker for i in items[:3]} == {"v1", "v2", "v3"}
    for it in items:
        other = shuffled_partner(qs, it)
        assert other not in qs.get(it.qid).ask


def test_report_gives_wilson_intervals_and_the_speech_to_cascade_ratio():
    qs = load_questions("insurance")
    # the stored verdict is not trusted: each reply is scored again against the set's patterns
    ans = [Answer(item=f"i{k}", qid="premium-month", arm=arm, variant="clean", asked="",
                  reply="It is 288 RMB a month." if ok else "Shall I send you the link?", ok=not ok)
           for arm, oks in (("cascade", [1, 1, 1, 0]), ("speech", [1, 0, 0, 0])) for k, ok in enumerate(oks)]  # fmt: skip
    rep = report(qs, ans)
    assert rep["rows"]["cascade/clean"]["accuracy"] == 0.75
    lo, hi = rep["rows"]["speech/clean"]["wilson95"]
    assert lo < 0.25 < hi
    assert rep["speech_over_cascade"] == {"clean": round(0.25 / 0.75, 3)}


def _knows_only_the_monthly_price(prompt, params):
    # a Dialog Agent that answers a question about the month and otherwise pushes its next step
    if "Customer:" not in str(prompt):
        return "Hello, this is Li Wei from Anxin Insurance."
    last = str(prompt).rsplit("Customer:", 1)[-1].lower()
    return "It is 288 RMB per month." if "month" in last else "Shall I send you the application link now?"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite voices the questions")
def test_the_cascade_hears_the_question_and_a_rerun_asks_nothing_again(tmp_path: Path):
    qs = {"scenario": "insurance", "questions": [
        {"id": "month", "fact": "288 RMB per month", "ask": ["How much is it per month?", "What is the monthly premium?"],
         "expect": [r"\b288\b"]},
        {"id": "wait", "fact": "90 days", "ask": ["Is there a waiting period?"], "expect": [r"\b90\b"]},
    ]}  # fmt: skip
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(qs))
    cfg = QuestionEvalConfig(scenario="insurance", questions=str(tmp_path / "q.yaml"), out=str(tmp_path / "out"),
                             voices=2, engine="flite", asr="tiny.en", threads=1, variants=["clean", "phone"])  # fmt: skip
    backend = ScriptedBackend(_knows_only_the_monthly_price)
    rep = asyncio.run(evaluate(cfg, backend=backend))
    rows = rep["rows"]
    assert rows["text/clean"]["correct"] == 2 and rows["text/clean"]["n"] == 3  # the waiting period is never said
    assert rows["cascade/clean"]["correct"] == 2, "Whisper should hear 'month' in both monthly questions"
    assert rows["shuffled/clean"]["correct"] == 0  # asked about the other fact, no reply states this one
    answers = [json.loads(line) for line in (tmp_path / "out" / "answers.jsonl").read_text().splitlines()]
    heard = [a["asked"].lower() for a in answers if a["arm"] == "cascade"]
    assert sum("month" in h for h in heard) == 4, heard  # clean and phone
    assert len(list((tmp_path / "out" / "audio").glob("*.wav"))) == 3
    calls = len(backend.calls)
    asyncio.run(evaluate(cfg, backend=backend))
    assert len(backend.calls) == calls  # everything was already answered


def test_the_command_names_a_missing_question_set(tmp_path):
    import typer
    from typer.testing import CliRunner

    from mads_audio.cli import register

    app, train, ev = typer.Typer(), typer.Typer(), typer.Typer()
    app.add_typer(ev, name="eval")
    register(app, train, ev)
    res = CliRunner().invoke(app, ["eval", "questions", "--out", str(tmp_path / "q"), "--questions", str(tmp_path / "none.yaml")])
    assert res.exit_code == 2
    assert "no question set" in res.output and "shipped: automotive, finance, insurance" in res.output


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite voices the questions")
def test_the_speech_arms_token_path_puts_what_the_ear_heard_before_the_same_agent(tmp_path: Path, monkeypatch):
    from mads_audio import ear

    heard_on = []

    class Ear:  # control flow only: what a CTC checkpoint's ear would hand over
        def __init__(self, ckpt, threads=None):
            self.ckpt = ckpt

        def hear(self, audio):
            heard_on.append(len(audio))
            return ear.Heard(ids=[1], text="What do I pay per month?", confidence=0.9, seconds=0.01)

    monkeypatch.setattr(ear, "CTCEar", Ear)
    qs = {"scenario": "insurance", "questions": [
        {"id": "month", "fact": "288 RMB per month", "ask": ["How much is it per month?"], "expect": [r"\b288\b"]},
        {"id": "wait", "fact": "90 days", "ask": ["Is there a waiting period?"], "expect": [r"\b90\b"]},
    ]}  # fmt: skip
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(qs))
    cfg = QuestionEvalConfig(scenario="insurance", questions=str(tmp_path / "q.yaml"), out=str(tmp_path / "out"),
                             voices=1, engine="flite", threads=1, variants=["clean", "phone"], arms=["speech"],
                             ckpt="CKPT")  # fmt: skip
    backend = ScriptedBackend(_knows_only_the_monthly_price)
    rep = asyncio.run(evaluate(cfg, backend=backend))
    assert len(heard_on) == 4 and all(n > 8000 for n in heard_on)  # each clip, clean and through the phone line
    answers = [json.loads(line) for line in (tmp_path / "out" / "answers.jsonl").read_text().splitlines()]
    assert {a["asked"] for a in answers} == {"What do I pay per month?"}  # the record holds what the ear heard
    # the agent answered the heard words: right about the month, wrong about the waiting period
    assert rep["rows"]["speech/clean"]["correct"] == 1 and rep["rows"]["speech/phone"]["correct"] == 1
    assert any("What do I pay per month?" in str(p) for p, _ in backend.calls)
