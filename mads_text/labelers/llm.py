"""LLM labelers: the paper's Summary prompts (Appendix A.4) through any :class:`LLMBackend`.

* CoA classifier: one request per dialogue gives one of the 16 states for every user
  round plus the accept / not-accept judgement with evidence.
* P4G strategy classifier: one request per dialogue lists the strategies used, with
  reasons and occurrences; it is sampled three times and a strategy is kept when at
  least two samples name it (pass@3, >= 2 votes).

Answers are JSON validated with pydantic. Where the backend supports it the JSON
schema also constrains decoding (the schema fixes the number of rounds and the
allowed state names, so a small model cannot skip a round or invent a state). A
bad answer is sent back with the validation error for a bounded number of repair
attempts; a dialogue that still fails is returned with ``ok=False``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ..attitude import COARSE, STATE_GROUP, STATES, attitude_description, normalize_state
from ..common.records import DialogueRecord
from ..llm import GenParams, LLMBackend, LLMError, LLMUnavailable, Message
from ..strategies import (
    BY_CODE,
    NON_STRATEGY,
    NON_STRATEGY_DEFINITION,
    STRATEGIES,
    STRATEGY_DEFS,
    STRATEGY_LABELS,
    normalize_strategy,
    strategy_description,
)
from .base import (
    AttitudeLabeler,
    AttitudeResult,
    ItemLabel,
    LabelItem,
    RoundLabel,
    SentenceStrategy,
    StrategyLabeler,
    StrategyResult,
    record_sentences,
)

EVIDENCE_CHARS = 100

COA_PROMPT = """<core_task>
  Analyze the evolution of user attitudes towards specific events/topics in the provided conversation history. Must analyze attitudes for EVERY round of dialogue, without omitting any round, and each round can only have ONE attitude.
  Also determine if the user ultimately shows intent to accept the sales pitch (such as leaving contact information, inquiring about details, scheduling viewing appointments, or expressing purchase interest.
</core_task>
<predefined_attitude_states>
{attitude_description}
</predefined_attitude_states>
<analysis_requirements>
  Round-by-Round Analysis: Must analyze user attitude in every round of dialogue
  Single Attitude: Only one primary attitude state can be selected per round
  State Restriction: Strictly select from predefined set, no other vocabulary allowed
  Evidence Support: Each attitude judgment must have specific textual evidence
  Sales Outcome Assessment: Clearly determine if user accepts the sales pitch (Acceptance criteria: {acceptance_criteria})
</analysis_requirements>
<input_source>
{dialog_history}
</input_source>
<output_format>
  Answer with one JSON object only: {{"rounds": [{{"round": 1, "attitude": "<state>", "evidence": "<user words>"}}, ...], "accepted": true|false, "accept_evidence": "<user words>"}}. The conversation has {n_rounds} user rounds, so "rounds" has exactly {n_rounds} entries, in order.
</output_format>"""

DEFAULT_ACCEPTANCE = "clearly scheduling time and place, agreeing to purchase, or making other specific commitment behaviors"

P4G_PROMPT = """<task_description>
Extract the persuasion strategies used by the assistant in the conversation based on the Persuasion Strategy Definition Table. Output in JSON format a list of all strategy codes used throughout the conversation history, along with the reasoning for each strategy selection and where they appear in the original text.
Note: Do not force-map or extract strategies. Only extract a strategy when its usage fully satisfies the Strategy Description.
</task_description>
<strategy_definition_table>
{strategy_description}
</strategy_definition_table>
<output_format>
{{
  "total_strategies": ["List of strategy codes"],
  "strategy_details": [
    {{
      "strategy_id": "Strategy code",
      "strategy_name": "Strategy name",
      "reason": "Explanation for choosing this strategy",
      "occurrences": [
        {{"turn": "Conversation turn number", "original_text": "Original text excerpt", "explanation": "How this excerpt demonstrates the strategy"}}
      ]
    }}
  ]
}}
</output_format>
<input_source>
{dialog_history}
</input_source>
<additional_instructions>
Only include strategies when they clearly match the strategy description criteria. Provide detailed reasoning and specific text examples for each identified strategy.
</additional_instructions>"""

SENTENCE_STRATEGY_PROMPT = """Classify the persuasion strategy of one sentence said by the persuader.

<strategy_definition_table>
{strategy_description}
</strategy_definition_table>

<context>
{context}
</context>

<sentence>
{sentence}
</sentence>

Answer with one JSON object: {{"strategy": "<one strategy name from the table, or {non_strategy}>"}}."""

TURN_ATTITUDE_PROMPT = """Classify the attitude the user expresses in their latest turn of a persuasion conversation.

<predefined_attitude_states>
{attitude_description}
</predefined_attitude_states>

<context>
{context}
</context>

<user_turn>
{text}
</user_turn>

Answer with one JSON object: {{"attitude": "<one state name>", "evidence": "<user words>"}}."""


# --- answer models ------------------------------------------------------------------------------


class CoARound(BaseModel):
    round: int | None = None
    attitude: str
    evidence: str = ""


class CoAAnswer(BaseModel):
    rounds: list[CoARound]
    accepted: bool
    accept_evidence: str = ""


class Occurrence(BaseModel):
    turn: int | str | None = None
    original_text: str = ""
    explanation: str = ""


class StrategyDetail(BaseModel):
    strategy_id: str
    strategy_name: str = ""
    reason: str = ""
    occurrences: list[Occurrence] = Field(default_factory=list)


class P4GAnswer(BaseModel):
    total_strategies: list[str] = Field(default_factory=list)
    strategy_details: list[StrategyDetail] = Field(default_factory=list)


# --- schemas for constrained decoding ----------------------------------------------------------


def _str(max_len: int) -> dict:
    return {"type": "string", "maxLength": max_len}


def coa_schema(n_rounds: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "rounds": {
                "type": "array",
                "minItems": n_rounds,
                "maxItems": n_rounds,
                "items": {
                    "type": "object",
                    "properties": {
                        "round": {"type": "integer"},
                        "attitude": {"type": "string", "enum": list(STATES)},
                        "evidence": _str(EVIDENCE_CHARS),
                    },
                    "required": ["round", "attitude", "evidence"],
                    "additionalProperties": False,
                },
            },
            "accepted": {"type": "boolean"},
            "accept_evidence": _str(EVIDENCE_CHARS),
        },
        "required": ["rounds", "accepted", "accept_evidence"],
        "additionalProperties": False,
    }


def p4g_schema(max_strategies: int = 10, max_occurrences: int = 3) -> dict[str, Any]:
    codes = [s.code for s in STRATEGY_DEFS]
    return {
        "type": "object",
        "properties": {
            "total_strategies": {"type": "array", "items": {"type": "string", "enum": codes}, "maxItems": max_strategies},
            "strategy_details": {
                "type": "array",
                "maxItems": max_strategies,
                "items": {
                    "type": "object",
                    "properties": {
                        "strategy_id": {"type": "string", "enum": codes},
                        "strategy_name": {"type": "string", "enum": list(STRATEGIES)},
                        "reason": _str(EVIDENCE_CHARS),
                        "occurrences": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": max_occurrences,
                            "items": {
                                "type": "object",
                                "properties": {
                                    "turn": {"type": "integer"},
                                    "original_text": _str(EVIDENCE_CHARS),
                                    "explanation": _str(EVIDENCE_CHARS),
                                },
                                "required": ["turn", "original_text", "explanation"],
                                "additionalProperties": False,
                            },
                        },
                    },
                    "required": ["strategy_id", "strategy_name", "reason", "occurrences"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["total_strategies", "strategy_details"],
        "additionalProperties": False,
    }


def sentence_strategy_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"strategy": {"type": "string", "enum": list(STRATEGY_LABELS)}},
        "required": ["strategy"],
        "additionalProperties": False,
    }


def turn_attitude_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"attitude": {"type": "string", "enum": list(STATES)}, "evidence": _str(EVIDENCE_CHARS)},
        "required": ["attitude", "evidence"],
        "additionalProperties": False,
    }


# --- parsing ----------------------------------------------------------------------------------

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def extract_json(text: str) -> Any:
    """The first JSON object in ``text`` (code fences and chatter around it are ignored)."""
    s = _FENCE.sub("", text.strip())
    start = s.find("{")
    if start < 0:
        raise ValueError("no JSON object in the answer")
    obj, _ = json.JSONDecoder().raw_decode(s[start:])
    return obj


def parse_coa(text: str, n_rounds: int) -> CoAAnswer:
    """Validate a CoA answer: exactly ``n_rounds`` rounds, every attitude one of the 16 states."""
    try:
        ans = CoAAnswer.model_validate(extract_json(text))
    except (ValueError, ValidationError) as e:
        raise ValueError(f"not the expected JSON object: {_short(e)}") from e
    if len(ans.rounds) != n_rounds:
        raise ValueError(f"'rounds' has {len(ans.rounds)} entries, the conversation has {n_rounds} user rounds")
    for r in ans.rounds:
        r.attitude = normalize_state(r.attitude)
    return ans


def parse_p4g(text: str) -> P4GAnswer:
    try:
        ans = P4GAnswer.model_validate(extract_json(text))
    except (ValueError, ValidationError) as e:
        raise ValueError(f"not the expected JSON object: {_short(e)}") from e
    ans.total_strategies = [normalize_strategy(s) for s in ans.total_strategies]
    for d in ans.strategy_details:
        d.strategy_id = normalize_strategy(d.strategy_id)
    return ans


def _short(e: Exception, n: int = 300) -> str:
    s = str(e).replace("\n", " ")
    return s if len(s) <= n else s[:n] + "..."


# --- rendering ----------------------------------------------------------------------------------


def render_history(record: DialogueRecord, agent: str = "Assistant", user: str = "User") -> str:
    """Turns grouped into numbered rounds; round k holds the agent turn(s) before user turn k and user turn k."""
    lines, k, open_round = [], 0, False
    for t in record.turns:
        if not open_round:
            k += 1
            lines.append(f"Round {k}:")
            open_round = True
        lines.append(f"  {agent if t.role == 'agent' else user}: {t.text}")
        if t.role == "user":
            open_round = False
    return "\n".join(lines)


def render_agent_turns(record: DialogueRecord) -> str:
    """The history with numbered turns, as the strategy prompt's occurrences refer to them."""
    lines, k = [], 0
    for t in record.turns:
        if t.role == "agent":
            k += 1
            lines.append(f"Turn {k} Assistant: {t.text}")
        else:
            lines.append(f"        User: {t.text}")
    return "\n".join(lines)


async def _ask_json(
    backend: LLMBackend,
    prompt: str,
    schema: dict,
    parse,
    params: GenParams,
    max_attempts: int,
) -> tuple[Any, int]:
    """Ask, validate, and on a bad answer ask again with the error shown; returns (parsed, attempts)."""
    use_schema = getattr(backend, "supports_json_schema", False)
    messages = [Message(role="user", content=prompt)]
    last = "no answer"
    for attempt in range(1, max_attempts + 1):
        p = params.model_copy(update={
            "json_schema": schema if use_schema else None,
            "seed": None if params.seed is None else params.seed + attempt - 1,
            # a deterministic retry would repeat the same mistake
            "temperature": params.temperature if attempt == 1 else max(params.temperature, 0.4),
        })
        try:
            c = await backend.complete(messages, p)
        except LLMUnavailable:
            raise
        except LLMError as e:
            last = f"backend error: {e}"
            continue
        try:
            return parse(c.text), attempt
        except ValueError as e:
            last = str(e)
            messages = [
                Message(role="user", content=prompt),
                Message(role="assistant", content=c.text[:4000]),
                Message(role="user", content=f"That answer is invalid: {last}. Reply again with the corrected JSON object only."),
            ]
    raise ValueError(f"no valid answer after {max_attempts} attempts: {last}")


def _run(coro):
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    raise RuntimeError("call the async method (alabel / alabel_dialogues) from inside an event loop")


# --- CoA classifier ---------------------------------------------------------------------------


class LLMAttitudeLabeler(AttitudeLabeler):
    name = "llm"

    def __init__(
        self,
        backend: LLMBackend,
        acceptance_criteria: str | None = None,
        max_attempts: int = 3,
        temperature: float = 0.0,
        seed: int = 7,
        concurrency: int | None = None,
    ):
        self.backend = backend
        self.acceptance_criteria = acceptance_criteria or DEFAULT_ACCEPTANCE
        self.max_attempts = max_attempts
        self.temperature = temperature
        self.seed = seed
        self.concurrency = concurrency or max(1, getattr(backend, "concurrency", 1))

    def describe(self) -> dict[str, Any]:
        return {"labeler": "llm", "task": "attitude", "max_attempts": self.max_attempts,
                "temperature": self.temperature, **self.backend.describe()}

    def prompt(self, record: DialogueRecord) -> str:
        return COA_PROMPT.format(
            attitude_description=attitude_description(examples=True),
            acceptance_criteria=self.acceptance_criteria,
            dialog_history=render_history(record),
            n_rounds=sum(1 for t in record.turns if t.role == "user"),
        )

    async def alabel_dialogue(self, record: DialogueRecord) -> AttitudeResult:
        n = sum(1 for t in record.turns if t.role == "user")
        if n == 0:
            return AttitudeResult(dialogue_id=record.id, ok=True)
        params = GenParams(temperature=self.temperature, max_tokens=60 + 45 * n, seed=self.seed)
        try:
            ans, _ = await _ask_json(self.backend, self.prompt(record), coa_schema(n),
                                     lambda s: parse_coa(s, n), params, self.max_attempts)
        except ValueError as e:
            return AttitudeResult(
                dialogue_id=record.id, ok=False, error=str(e),
                rounds=[RoundLabel(round=k, source="llm") for k in range(1, n + 1)],
            )
        rounds = [
            RoundLabel(round=k, state=r.attitude, coarse=STATE_GROUP[r.attitude], evidence=r.evidence, source="llm")
            for k, r in enumerate(ans.rounds, 1)
        ]
        return AttitudeResult(dialogue_id=record.id, rounds=rounds, accepted=ans.accepted,
                              accept_evidence=ans.accept_evidence)

    async def alabel_dialogues(self, records: Sequence[DialogueRecord]) -> list[AttitudeResult]:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(r):
            async with sem:
                return await self.alabel_dialogue(r)

        return list(await asyncio.gather(*(one(r) for r in records)))

    def label_dialogues(self, records: Sequence[DialogueRecord]) -> list[AttitudeResult]:
        return _run(self.alabel_dialogues(records))

    async def alabel(self, items: Sequence[LabelItem]) -> list[ItemLabel]:
        sem = asyncio.Semaphore(self.concurrency)
        schema = turn_attitude_schema()

        def parse(s: str) -> str:
            obj = extract_json(s)
            if not isinstance(obj, dict) or "attitude" not in obj:
                raise ValueError("missing 'attitude'")
            return normalize_state(obj["attitude"])

        async def one(it: LabelItem) -> ItemLabel:
            prompt = TURN_ATTITUDE_PROMPT.format(
                attitude_description=attitude_description(examples=True),
                context="\n".join(it.context[-4:]) or "(start of the conversation)", text=it.text)
            async with sem:
                try:
                    state, _ = await _ask_json(self.backend, prompt, schema, parse,
                                               GenParams(temperature=self.temperature, max_tokens=60, seed=self.seed),
                                               self.max_attempts)
                except ValueError as e:
                    return ItemLabel(id=it.id, label="", error=str(e))
            return ItemLabel(id=it.id, label=STATE_GROUP[state], state=state)

        return list(await asyncio.gather(*(one(it) for it in items)))

    def label(self, items: Sequence[LabelItem]) -> list[ItemLabel]:
        return _run(self.alabel(items))


# --- P4G strategy classifier -------------------------------------------------------------------


def _norm_text(s: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", s.lower()).split())


def attribute_occurrences(record: DialogueRecord, kept: dict[str, list[Occurrence]]) -> list[SentenceStrategy]:
    """Sentence-level labels from the occurrences of the kept strategies.

    An occurrence names an agent turn and an excerpt; it labels the sentences of that turn that
    overlap the excerpt (or, if none does, the turn's first sentence). Unlabelled sentences are
    ``non-strategy``; a sentence hit by several strategies keeps the first in table order.
    """
    turns = [t for t in record.turns if t.role == "agent"]
    labels: dict[tuple[int, int], str] = {}
    order = {s: i for i, s in enumerate(STRATEGIES)}
    for strategy in sorted(kept, key=lambda s: order[s]):
        for occ in kept[strategy]:
            try:
                k = int(str(occ.turn).strip().split()[-1]) if occ.turn is not None else None
            except ValueError:
                k = None
            cands = range(1, len(turns) + 1) if k is None or not 1 <= k <= len(turns) else [k]
            exc = _norm_text(occ.original_text)
            hit = False
            for kk in cands:
                for j, sent in enumerate(record_sentences(turns[kk - 1])):
                    ns = _norm_text(sent)
                    if exc and ns and (exc in ns or ns in exc or _overlap(exc, ns) >= 0.6):
                        labels.setdefault((kk, j), strategy)
                        hit = True
            if not hit and k is not None and 1 <= k <= len(turns):
                labels.setdefault((k, 0), strategy)
    out = []
    for kk, t in enumerate(turns, 1):
        for j, sent in enumerate(record_sentences(t)):
            out.append(SentenceStrategy(turn=kk, sentence=sent, label=labels.get((kk, j), NON_STRATEGY)))
    return out


def _overlap(a: str, b: str) -> float:
    wa, wb = set(a.split()), set(b.split())
    return len(wa & wb) / max(1, min(len(wa), len(wb)))


class LLMStrategyLabeler(StrategyLabeler):
    name = "llm"

    def __init__(
        self,
        backend: LLMBackend,
        samples: int = 3,
        min_votes: int = 2,
        temperature: float = 0.7,
        max_attempts: int = 3,
        seed: int = 7,
        concurrency: int | None = None,
    ):
        if not 1 <= min_votes <= samples:
            raise ValueError("min_votes must be between 1 and samples")
        self.backend = backend
        self.samples = samples
        self.min_votes = min_votes
        self.temperature = temperature
        self.max_attempts = max_attempts
        self.seed = seed
        self.concurrency = concurrency or max(1, getattr(backend, "concurrency", 1))

    def describe(self) -> dict[str, Any]:
        return {"labeler": "llm", "task": "strategy", "samples": self.samples, "min_votes": self.min_votes,
                "temperature": self.temperature, **self.backend.describe()}

    def prompt(self, record: DialogueRecord) -> str:
        return P4G_PROMPT.format(strategy_description=strategy_description(), dialog_history=render_agent_turns(record))

    async def alabel_dialogue(self, record: DialogueRecord, sem: asyncio.Semaphore | None = None) -> StrategyResult:
        sem = sem or asyncio.Semaphore(self.concurrency)
        prompt = self.prompt(record)
        n_agent = sum(1 for t in record.turns if t.role == "agent")

        async def sample(i: int):
            params = GenParams(temperature=self.temperature, max_tokens=220 + 60 * min(n_agent, 10),
                               seed=self.seed + 1000 * i)
            async with sem:
                try:
                    ans, _ = await _ask_json(self.backend, prompt, p4g_schema(), parse_p4g, params, self.max_attempts)
                    return ans
                except ValueError as e:
                    return e

        answers = await asyncio.gather(*(sample(i) for i in range(self.samples)))
        good = [a for a in answers if isinstance(a, P4GAnswer)]
        if len(good) < self.min_votes:
            errs = "; ".join(str(a) for a in answers if isinstance(a, Exception))
            return StrategyResult(dialogue_id=record.id, ok=False,
                                  error=f"only {len(good)} of {self.samples} samples valid: {errs}")
        votes: Counter = Counter()
        occ: dict[str, list[Occurrence]] = {}
        for a in good:
            used = set(a.total_strategies) | {d.strategy_id for d in a.strategy_details}
            votes.update(used)
            for d in a.strategy_details:
                occ.setdefault(d.strategy_id, []).extend(d.occurrences)
        kept = [s for s in STRATEGIES if votes[s] >= self.min_votes]
        sentences = attribute_occurrences(record, {s: occ.get(s, []) for s in kept})
        return StrategyResult(dialogue_id=record.id, sentences=sentences, strategy_set=kept)

    async def alabel_dialogues(self, records: Sequence[DialogueRecord]) -> list[StrategyResult]:
        sem = asyncio.Semaphore(self.concurrency)
        return list(await asyncio.gather(*(self.alabel_dialogue(r, sem) for r in records)))

    def label_dialogues(self, records: Sequence[DialogueRecord]) -> list[StrategyResult]:
        return _run(self.alabel_dialogues(records))

    async def alabel(self, items: Sequence[LabelItem]) -> list[ItemLabel]:
        """Sentence-level: ``samples`` answers per sentence; the label needs ``min_votes`` of them,
        otherwise the sentence is ``non-strategy`` (the votes are kept for inspection)."""
        sem = asyncio.Semaphore(self.concurrency)
        schema = sentence_strategy_schema()
        table = strategy_description(with_examples=True, include_non_strategy=True)

        def parse(s: str) -> str:
            obj = extract_json(s)
            if not isinstance(obj, dict) or "strategy" not in obj:
                raise ValueError("missing 'strategy'")
            return normalize_strategy(obj["strategy"])

        async def vote(prompt: str, i: int) -> str | None:
            async with sem:
                try:
                    lab, _ = await _ask_json(self.backend, prompt, schema, parse,
                                             GenParams(temperature=self.temperature, max_tokens=24,
                                                       seed=self.seed + 1000 * i), self.max_attempts)
                    return lab
                except ValueError:
                    return None

        async def one(it: LabelItem) -> ItemLabel:
            prompt = SENTENCE_STRATEGY_PROMPT.format(
                strategy_description=table, context="\n".join(it.context[-3:]) or "(start of the conversation)",
                sentence=it.text, non_strategy=NON_STRATEGY)
            votes = await asyncio.gather(*(vote(prompt, i) for i in range(self.samples)))
            valid = [v for v in votes if v is not None]
            if not valid:
                return ItemLabel(id=it.id, label="", votes=[], error="no valid answer")
            top, n = Counter(valid).most_common(1)[0]
            label = top if n >= self.min_votes else NON_STRATEGY
            return ItemLabel(id=it.id, label=label, votes=[v or "" for v in votes], confidence=n / self.samples)

        return list(await asyncio.gather(*(one(it) for it in items)))

    def label(self, items: Sequence[LabelItem]) -> list[ItemLabel]:
        return _run(self.alabel(items))


__all__ = [
    "BY_CODE",
    "COARSE",
    "LLMAttitudeLabeler",
    "LLMStrategyLabeler",
    "NON_STRATEGY_DEFINITION",
    "attribute_occurrences",
    "coa_schema",
    "extract_json",
    "p4g_schema",
    "parse_coa",
    "parse_p4g",
    "render_history",
]
