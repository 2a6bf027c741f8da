"""The LLM CoA classifier: one request per dialogue gives one of the 16 states for every user round plus the
accept / not-accept judgement with evidence; single user turns (``mads label``) get one request each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...attitude import STATE_GROUP, attitude_description, normalize_state
from ...common.records import DialogueRecord
from ...llm import GenParams, LLMBackend
from ..base import AttitudeLabeler, AttitudeResult, ItemLabel, LabelItem, RoundLabel
from .answers import _ask_json, _run, extract_json, gather_limited, parse_coa
from .prompts import (
    COA_PROMPT,
    DEFAULT_ACCEPTANCE,
    TURN_ATTITUDE_PROMPT,
    coa_schema,
    render_history,
    turn_attitude_schema,
)


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
        return await gather_limited(self.alabel_dialogue, records, self.concurrency)

    def label_dialogues(self, records: Sequence[DialogueRecord]) -> list[AttitudeResult]:
        return _run(self.alabel_dialogues(records))

    async def alabel(self, items: Sequence[LabelItem]) -> list[ItemLabel]:
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
            try:
                state, _ = await _ask_json(self.backend, prompt, schema, parse,
                                           GenParams(temperature=self.temperature, max_tokens=60, seed=self.seed),
                                           self.max_attempts)
            except ValueError as e:
                return ItemLabel(id=it.id, label="", error=str(e))
            return ItemLabel(id=it.id, label=STATE_GROUP[state], state=state)

        return await gather_limited(one, items, self.concurrency)

    def label(self, items: Sequence[LabelItem]) -> list[ItemLabel]:
        return _run(self.alabel(items))
