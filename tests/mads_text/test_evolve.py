"""Evolution step: the paper's reflection prompt, SOP shape validation, bounded retries, fallback to P."""

import asyncio
import json

import pytest

from mads_text.common.records import Turn
from mads_text.evolve import (
    OPTIMIZATION_AGENT_TEMPLATE,
    DialogueFeedback,
    Feedback,
    evolve,
    extract_sop,
    reflection_prompt,
    render_dialog_history,
    render_sop_json,
)
from mads_text.llm import LLMError
from mads_text.llm.fake import ScriptedBackend
from mads_text.scenario import load_scenario

SC = load_scenario("insurance")

SOP = """After reviewing the calls, the main issue was weak objection handling.

**Business SOP**
Step 1: Occupational risk resonance
  Objective: Make job-related health risks concrete for the customer.
  Strategic Points:
  • Ask about the customer's work and name two risks typical of it.
  • Quote the 70 covered illnesses and the 500,000 RMB payout.
  Key Notes: Stay factual; no invented statistics.
Step 2: Efficient close
  Objective: Reduce decision friction and get a commitment.
  Strategic Points:
  • Offer the 178 RMB starter plan when the budget is the objection.
  • Offer to send the application link now.
  Key Notes: Ask a choice question, monthly or annual.

This SOP keeps what worked."""


def fb(n_failed=2, n_success=1):
    turns = [Turn(role="agent", text="Hello, this is Li Wei from Anxin Insurance."), Turn(role="user", text="Not interested.")]
    mk = lambda i, ok: DialogueFeedback(
        id=f"d{i}", outcome="accept" if ok else "withdraw", rounds=1, customer=f"Male, {30 + i}, Leo", turns=turns,
        attitudes=["Refusal"] if not ok else ["Interested"], judge={"relevance": 2, "task_success": ok}, success=ok,
    )
    return Feedback(n_dialogues=n_failed + n_success, acceptance_rate=n_success / (n_failed + n_success), h_avg=0.85,
                    failed=[mk(i, False) for i in range(n_failed)], succeeded=[mk(9, True)] * n_success)


def test_reflection_prompt_is_the_papers_template():
    text = reflection_prompt("sell a critical illness insurance policy (monthly 288 RMB)", fb(), SC)
    head = OPTIMIZATION_AGENT_TEMPLATE.split("{background}")[0]
    assert text.startswith(head) and "Step 1: {Phase Name}" in text  # the template's own braces survive
    assert text.rstrip().endswith("Get Started with the analysis and optimization!\n</final_instruction>")
    assert "288 RMB per month" in text and "sell a critical illness insurance policy (monthly 288 RMB)" in text
    hist = render_dialog_history(fb())
    assert hist.startswith("Summary: 3 simulated calls, acceptance rate 33.3%, average attitude-transition entropy 0.850.")
    assert "[Failure Case 1] customer: Male, 30, Leo; outcome: withdraw after 1 rounds" in hist
    assert "Attitude chain: Refusal" in hist and "Judge scores (0-3): relevance 2, task success false" in hist
    assert "[Success Case 1]" in hist and "  Assistant: Hello, this is Li Wei" in hist and "  User: Not interested." in hist


def test_history_respects_the_budget():
    big = fb(n_failed=6)
    for d in big.failed:
        d.turns = d.turns * 20
    hist = render_dialog_history(big, max_chars=3000)
    assert len(hist) <= 3000 and "[Failure Case 1]" in hist


def test_extract_sop_shapes():
    sop, reasons = extract_sop(SOP)
    assert reasons == [] and sop.startswith("Business SOP\nStep 1: Occupational risk resonance")
    assert "**" not in sop and "This SOP keeps" not in sop and "After reviewing" not in sop
    for bad, why in [
        ("I think we should be friendlier.", "no 'Business SOP' header"),
        ("Business SOP\nStep 1: Greet\n  Objective: say hi", "need at least 2"),
        ("Business SOP\nStep 1: {Phase Name}\n Objective: {Specific goal description}\n Strategic Points:\n • {Specific "
         "executable strategy 1}\n • x y\nStep 2: {Phase Name}\n Objective: {Specific goal description}" + " " * 200,
         "placeholders"),
    ]:
        got, reasons = extract_sop(bad)
        assert got is None and any(why in r for r in reasons), reasons
    # without a header, from the first step on
    got, _ = extract_sop(SOP.split("**Business SOP**")[1])
    assert got is not None and got.startswith("Business SOP\nStep 1")
    # a reply cut by the token limit keeps its complete steps
    cut = SOP.replace("This SOP keeps what worked.", "") + "Step 3: Follow-up\n  Objective: Call ba"
    got, _ = extract_sop(cut, truncated=True)
    assert got is not None and "Step 3" not in got and "Step 2: Efficient close" in got


def test_json_rendering_has_the_sop_shape():
    obj = {"steps": [{"phase": "Open", "objective": "Build trust quickly", "strategic_points": ["Name the company and why you call"],
                      "key_notes": "Be brief"}] * 3}
    sop, reasons = extract_sop(render_sop_json(obj))
    assert reasons == [] and sop.count("Step ") == 3


def run(backend, attempts=3, prev="sell it"):
    return asyncio.run(evolve(prev, fb(), SC, backend, attempts=attempts))


def test_evolve_accepts_a_valid_sop_first_try():
    be = ScriptedBackend([SOP])
    res = run(be)
    assert res.ok and res.prompt.startswith("Business SOP") and len(res.attempts) == 1
    assert res.previous == "sell it" and be.calls[0][0][0].role == "user"
    assert be.calls[0][0][0].content == res.reflection_prompt


def test_bounded_retry_then_json_fallback():
    obj = {"steps": [{"phase": "Open the call", "objective": "Build trust quickly", "strategic_points": ["Say who you are and why you call"],
                      "key_notes": "Be brief"}] * 3}
    be = ScriptedBackend(["no idea", "still no SOP", json.dumps(obj)])
    res = run(be)
    assert res.ok and [a.kind for a in res.attempts] == ["text", "text", "json"]
    assert [a.valid for a in res.attempts] == [False, False, True]
    assert be.calls[2][1].json_schema is not None and be.calls[0][1].json_schema is None
    assert be.calls[0][1].seed != be.calls[1][1].seed


def test_failure_keeps_the_previous_prompt():
    be = ScriptedBackend(["nothing", LLMError("down"), "{not json"])
    res = run(be)
    assert not res.ok and res.prompt == "sell it" and len(res.attempts) == 3
    assert "LLM error" in res.attempts[1].reasons[0] and "invalid JSON" in res.attempts[2].reasons[0]
    # an answer that only repeats the old prompt is no evolution
    res = run(ScriptedBackend([SOP]), attempts=1, prev=extract_sop(SOP)[0])
    assert not res.ok and res.attempts[0].reasons == ["identical to the previous prompt"]


@pytest.mark.slow
def test_real_evolution_on_the_embedded_model():
    """SmolLM2 is too weak to write an SOP freely; the constrained last try still gives the SOP shape."""
    from mads_text.llm import GenParams, make_backend

    be = make_backend("embedded", "smollm2")
    res = asyncio.run(evolve("sell a critical illness insurance policy (monthly 288 RMB)", fb(), SC, be, attempts=2,
                             params=GenParams(temperature=0.7, max_tokens=1200)))
    assert [a.kind for a in res.attempts] == ["text", "json"]
    assert not res.attempts[0].valid and res.attempts[1].valid
    assert res.ok and extract_sop(res.prompt)[1] == [] and res.prompt != res.previous
    assert res.prompt.startswith("Business SOP") and "Step 1:" in res.prompt
