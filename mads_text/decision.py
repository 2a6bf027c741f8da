"""The decision after a customer turn: the call goes on, or the customer accepted, or withdrew.

One module for every place that needs it: self-play ends calls with it, ``mads outcome`` re-decides stored
dialogues, the voice server detects conversions, fidelity compares simulated with real people.

A decision rests on the customer's own words. Each customer turn is read clause by clause for cues
(``cues.py``): a commitment to what the scenario counts as acceptance, a yes to the agent's concrete
proposal, a postponement, a refusal, a goodbye. Hedged or negated phrases do not count. The end marker a
model wrote ([ACCEPT]/[WITHDRAW]) is one more input, never the judge: a bare [ACCEPT] after "I'll think
about it" does not make a sale. When a turn carries any cue or marker and an LLM is at hand, it is asked a
multiple-choice question (commits / asks or considers / postpones / declines) under a JSON schema, with a
quote of the customer's words; its answer can confirm or veto a candidate decision but never create one
from nothing, because small models say "yes, they committed" far too readily. Turns with no cue and no
marker continue without an LLM call, which keeps the decision cheap.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from .common.records import Decision, Turn
from .cue_money import PRICE_DOUBT, SOFT_NO
from .cues import NO_NEED, Cues, bare_yes, canon, read_cues
from .llm import GenParams, LLMBackend, LLMError, Message
from .scenario import Scenario

Verdict = Literal["continue", "accept", "withdraw"]
Mode = Literal["auto", "rules", "hybrid"]

CHOICES = {
    "A": "commits now to one of the acceptance actions",
    "B": "asks a question, objects, or is still considering",
    "C": "postpones the decision (will think about it, talk to someone, be called back later)",
    "D": "declines, asks to stop, or ends the call",
}
SCHEMA = {
    "type": "object",
    "properties": {
        "quote": {"type": "string", "maxLength": 200},
        "choice": {"type": "string", "enum": list(CHOICES)},
    },
    "required": ["quote", "choice"],
    "additionalProperties": False,
}


class LLMAnswer(BaseModel):
    quote: str
    choice: Literal["A", "B", "C", "D"]


SYSTEM = "You read transcripts of sales calls and say exactly what the customer did in their last reply."

# The fixed part comes first, so every decision of a call shares a cached prompt prefix.
QUESTION = """Sales call between {agent} ({company}, the salesperson) and {customer} (the customer).
What counts as the customer accepting: {criteria}.

You will be asked what {customer} does in the LAST reply only:
A: {A}
B: {B}
C: {C}
D: {D}
Wanting more information, asking how it works, or saying it sounds good is B, not A.
Answer in JSON: "quote" = the words of {customer}'s last reply that show it, copied exactly; "choice" = A, B, C or D.

Last part of the call:
{context}"""


@dataclass(frozen=True)
class CallFrame:
    """What the decision needs to know about the call: who sells, and what counts as accepting."""

    agent: str
    company: str
    criteria: str

    @classmethod
    def of(cls, scenario: Scenario) -> CallFrame:
        return cls(scenario.agent.name, scenario.agent.company, scenario.acceptance_criteria)


GENERIC = CallFrame("Agent", "the company", "agreeing to buy, scheduling a specific time for a follow-up, or leaving "
                    "contact details")


@dataclass
class Step:
    """What was decided after one customer turn, with what it cost."""

    verdict: Verdict
    source: str
    evidence: str
    llm_calls: int = 0
    seconds: float = 0.0


# the agent has said what they offer: a figure, or a word of selling
PITCH = re.compile(r"\d|\b(?:recommend\w*|offer\w*|sell\w*|introduc\w*|product|plan|policy|premium|price|test drive)\b",
                   re.IGNORECASE)


def last_cues(turns: Sequence[Turn]) -> Cues:
    """The cues of the last turn, which must be the customer's, read against the agent's turn before it. A price
    objection the customer already made in an earlier round and makes again, asking for nothing, is a refusal
    ("I can't afford it. Is there a cheaper plan?" or "I need to know what cover I can get" still negotiates)."""
    if not turns or turns[-1].role != "user":
        raise ValueError("a decision needs a history that ends with a customer turn")
    agent_before = next((t.text for t in reversed(turns[:-1]) if t.role == "agent"), "")
    cues = read_cues(turns[-1].text, agent_before)
    # "I don't think I need this" or "I'm fine keeping my savings" before the offer is heard (the customer's first
    # turn, or before the agent has said what they offer) is an objection
    heard = (any(t.role == "user" for t in turns[:-1])
             and any(PITCH.search(t.text) for t in turns[:-1] if t.role == "agent"))
    if cues.refuse and NO_NEED.search(canon(cues.refuse)) and not heard:
        cues.refuse = None
    if (cues.soft_no and not cues.refuse and not cues.asks
            and any(SOFT_NO.search(canon(t.text)) or PRICE_DOUBT.search(canon(t.text)) for t in turns[:-1] if t.role == "user")):
        cues.refuse = cues.soft_no
    return cues


UNDECIDED = re.compile(r"\b(?:decision|decide|think|consider|sure)\b", re.IGNORECASE)


def rule_step(c: Cues, marker: str | None) -> Step:
    """The decision from the cues alone (and the marker, which can only confirm a postponement as an end)."""
    yes = c.commit or c.agree
    if yes and not (c.refuse or c.defer):
        return Step("accept", "rules", yes)
    if c.refuse:
        return Step("withdraw", "rules", c.refuse)
    if c.end and not yes:
        return Step("withdraw", "rules", c.defer or c.end)
    # the marker ends "I can't buy it right now", never "I can't make a decision yet", which all readers continue
    if marker == "withdraw" and c.defer and not UNDECIDED.search(c.defer):
        return Step("withdraw", "rules+marker", c.defer)
    return Step("continue", "rules", "")


# a customer reply with no spoken words ends the call undecided: a bare end marker, or only stage directions
NO_WORDS = ("marker_only", "no_words")


def no_words(round_: int, marker: str | None) -> Decision:
    """The decision when the customer's reply, after its retries, holds no words to judge."""
    return Decision(outcome="undecided", round=round_, source="marker_only" if marker else "no_words", marker=marker)


def decide_call(turns: Sequence[Turn]) -> Decision:
    """Rules only, synchronously: the first decisive customer turn of a call (the voice server's detector)."""
    rnd = 0
    for i, t in enumerate(turns):
        if t.role == "user":
            rnd += 1
            step = rule_step(last_cues(turns[: i + 1]), t.marker)
            if step.verdict != "continue":
                return Decision(outcome=step.verdict, round=rnd, source=step.source, evidence=step.evidence,
                                marker=t.marker)
    return Decision(outcome="undecided", round=None, source="rules")


class Decider:
    """``decide(turns, marker)`` after each customer turn. ``mode``: ``rules`` (no LLM), ``hybrid`` (rules,
    with the LLM confirming or vetoing candidates), ``auto`` (hybrid when a backend is given)."""

    def __init__(self, frame: Scenario | CallFrame, backend: LLMBackend | None = None, mode: Mode = "auto",
                 params: GenParams | None = None, context_turns: int = 4):
        if mode == "hybrid" and backend is None:
            raise ValueError("the hybrid decision needs an LLM backend")
        self.frame = frame if isinstance(frame, CallFrame) else CallFrame.of(frame)
        self.backend = backend if mode != "rules" else None
        self.params = params or GenParams(temperature=0.0, max_tokens=200, seed=0)  # room for a 200-character quote and the choice
        self.context_turns = context_turns

    @property
    def mode(self) -> str:
        return "hybrid" if self.backend is not None else "rules"

    async def decide(self, turns: Sequence[Turn], marker: str | None = None) -> Step:
        """The verdict after the last turn, which must be the customer's."""
        t0 = time.perf_counter()
        cues = last_cues(turns)
        step = rule_step(cues, marker)
        # the LLM is asked only where its answer can change the verdict: to confirm or veto an accept, and to
        # turn a bare marker into a decision; a refusal or goodbye in words stands without it
        if self.backend is not None and (step.verdict == "accept" or (step.verdict == "continue" and marker)):
            step = await self._adjudicate(step, cues, marker, turns)
        step.seconds = time.perf_counter() - t0
        return step

    # -- the LLM as a check ------------------------------------------------------------------------------

    async def _adjudicate(self, step: Step, c: Cues, marker: str | None, turns: Sequence[Turn]) -> Step:
        said = turns[-1].text
        ans, calls = await self._ask(turns)
        if ans is None:
            return Step(step.verdict, step.source + " (llm failed)", step.evidence, calls)
        quote = find_quote(ans.quote, said) or ""
        if step.verdict == "accept":
            if ans.choice == "A":
                return Step("accept", "rules+llm:A", step.evidence, calls)
            return Step("continue", f"llm veto:{ans.choice}", "", calls)
        # no rule decision: a marker alone can become a decision only when the LLM agrees and quotes the words; a
        # bare "Ok." is not words that commit (with a concrete proposal before it the rules would have accepted)
        if (marker == "accept" and ans.choice == "A" and quote and not read_cues(quote, "").blocks_accept()
                and not bare_yes(said)):
            return Step("accept", "marker+llm:A", quote, calls)
        if marker == "withdraw" and ans.choice in ("C", "D") and quote:
            return Step("withdraw", f"marker+llm:{ans.choice}", quote, calls)
        return Step("continue", f"rules+llm:{ans.choice}", "", calls)

    async def _ask(self, turns: Sequence[Turn]) -> tuple[LLMAnswer | None, int]:
        f = self.frame
        customer = "Customer"
        tail = list(turns)[-self.context_turns:]
        context = "\n".join(f"{f.agent if t.role == 'agent' else customer}: {t.text}" for t in tail)
        q = QUESTION.format(agent=f.agent, company=f.company, customer=customer, criteria=f.criteria,
                            context=context, **CHOICES)
        msgs = [Message(role="system", content=SYSTEM), Message(role="user", content=q)]
        params = self.params.model_copy(update={"json_schema": SCHEMA})
        calls = 0
        for attempt in range(2):  # one retry on output that is not the JSON asked for
            calls += 1
            try:
                c = await self.backend.complete(msgs, params.model_copy(update={"seed": (params.seed or 0) + attempt}))
                return LLMAnswer.model_validate_json(_json_part(c.text)), calls
            except (ValidationError, ValueError, LLMError):
                continue
        return None, calls

    # -- whole dialogues ---------------------------------------------------------------------------------

    async def redecide(self, turns: Sequence[Turn]) -> tuple[Decision, int, float]:
        """Walk a stored dialogue round by round; the first decision that is not 'continue' ends it."""
        rnd, calls, secs = 0, 0, 0.0
        for i, t in enumerate(turns):
            if t.role != "user":
                continue
            rnd += 1
            step = await self.decide(turns[: i + 1], t.marker)
            calls, secs = calls + step.llm_calls, secs + step.seconds
            if step.verdict != "continue":
                return Decision(outcome=step.verdict, round=rnd, source=step.source, evidence=step.evidence,
                                marker=t.marker), calls, secs
        return Decision(outcome="undecided", round=None, source=self.mode), calls, secs



# the LLM quotes the customer: its quote must be words the customer said
def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", s.replace("’", "'").lower())).strip()


def find_quote(quote: str, text: str) -> str | None:
    """``quote`` as it stands in ``text`` (case, spacing and punctuation forgiven), or None if it is not there."""
    q = _norm(quote)
    if len(q) < 2:
        return None
    words = text.split()
    norm_words = [_norm(w) for w in words]
    target = q.split()
    for i in range(len(words)):
        j, k = i, 0
        while j < len(words) and k < len(target):
            if not norm_words[j]:
                j += 1
                continue
            if norm_words[j] != target[k]:
                break
            j, k = j + 1, k + 1
        if k == len(target):
            return " ".join(words[i:j])
    return None


def _json_part(text: str) -> str:
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        raise ValueError("no JSON object")
    return m.group(0)


def turns_of(raw: Sequence[Any]) -> list[Turn]:
    """Turns from records or plain dicts; an end marker still in a customer's text moves to ``marker``."""
    from .replies import extract_marker

    out = []
    for t in raw:
        t = t if isinstance(t, Turn) else Turn.model_validate(t)
        if t.role == "user":
            text, marker = extract_marker(t.text)
            t = t.model_copy(update={"text": text, "marker": marker or t.marker})
        out.append(t)
    return out
