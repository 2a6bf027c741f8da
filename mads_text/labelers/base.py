"""The labeler interface: ``label(items) -> labels``, and the per-dialogue label record.

Two tasks: ``strategy`` (a Dialog Agent sentence → one of the ten P4G strategies or
``non-strategy``) and ``attitude`` (a user turn → coarse group, and the fine state when
the labeler gives one). Implementations: ``llm`` (prompted LLM through any backend)
and ``embedded`` (MiniLM sentence embeddings + small trained heads).

Analyses work on whole dialogues, so every labeler also offers ``label_dialogues``,
which returns one :class:`DialogueLabels` per dialogue and never drops one: a
dialogue whose labels could not be obtained comes back with ``ok=False`` and the reason.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from ..common.records import DialogueRecord

Task = Literal["strategy", "attitude"]


class LabelItem(BaseModel):
    """One line of ``mads label --in``: the text to label and what was said before it."""

    id: str
    text: str
    context: list[str] = Field(default_factory=list, description="Preceding turns, oldest first")
    turn_index: int | None = Field(None, description="0-based index of the turn in the dialogue; len(context) if absent")
    sentence_index: int = Field(0, description="0-based index of the sentence inside its turn")

    @field_validator("context", mode="before")
    @classmethod
    def _split_context(cls, v: Any) -> list[str]:
        # a plain string holds one turn per line, as the CLI's input format allows
        if v is None:
            return []
        if isinstance(v, str):
            return [ln for ln in v.splitlines() if ln.strip()]
        return [str(x) for x in v]

    @property
    def position(self) -> int:
        return self.turn_index if self.turn_index is not None else len(self.context)


class ItemLabel(BaseModel):
    id: str
    label: str
    state: str | None = Field(None, description="Fine attitude state (attitude task, when the labeler gives one)")
    confidence: float | None = None
    votes: list[str] | None = Field(None, description="Per-sample answers of a voting LLM labeler")
    error: str | None = None


class RoundLabel(BaseModel):
    round: int = Field(description="1-based index of the user turn")
    state: str | None = Field(None, description="One of the 16 states, None when it could not be obtained")
    coarse: str | None = None
    evidence: str = ""
    source: str = Field("", description="What produced the label: llm, embedded, human, human+embedded, no attitude")


class SentenceStrategy(BaseModel):
    turn: int = Field(description="1-based index of the agent turn")
    sentence: str
    label: str


class DialogueLabels(BaseModel):
    """One line of ``RUN/analysis/labels.jsonl``."""

    dialogue_id: str
    group: str = ""
    outcome: str = ""
    attitude_labeler: str = ""
    strategy_labeler: str = ""
    rounds: list[RoundLabel] = Field(default_factory=list)
    strategies: list[SentenceStrategy] = Field(default_factory=list)
    strategy_set: list[str] = Field(default_factory=list, description="Distinct strategies used in the dialogue")
    accepted: bool | None = Field(None, description="The attitude labeler's accept judgement, when it gives one")
    accept_evidence: str | None = None
    attitude_ok: bool = True
    strategy_ok: bool = True
    errors: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.attitude_ok and self.strategy_ok

    def chain(self) -> list[str | None]:
        return [r.state for r in sorted(self.rounds, key=lambda r: r.round)]


class AttitudeResult(BaseModel):
    """What an attitude labeler returns for one dialogue."""

    dialogue_id: str
    rounds: list[RoundLabel] = Field(default_factory=list)
    accepted: bool | None = None
    accept_evidence: str | None = None
    ok: bool = True
    error: str | None = None


class StrategyResult(BaseModel):
    dialogue_id: str
    sentences: list[SentenceStrategy] = Field(default_factory=list)
    strategy_set: list[str] = Field(default_factory=list)
    ok: bool = True
    error: str | None = None


class Labeler(abc.ABC):
    """``label(items) -> labels`` for one task."""

    task: Task
    name: str = "base"

    @abc.abstractmethod
    def label(self, items: Sequence[LabelItem]) -> list[ItemLabel]: ...

    def describe(self) -> dict[str, Any]:
        return {"labeler": self.name, "task": self.task}


class AttitudeLabeler(Labeler):
    task: Task = "attitude"

    @abc.abstractmethod
    def label_dialogues(self, records: Sequence[DialogueRecord]) -> list[AttitudeResult]: ...


class StrategyLabeler(Labeler):
    task: Task = "strategy"

    @abc.abstractmethod
    def label_dialogues(self, records: Sequence[DialogueRecord]) -> list[StrategyResult]: ...


# --- text helpers shared by the labelers -------------------------------------------------------

_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9$])")


def split_sentences(text: str) -> list[str]:
    """Split a turn into sentences at ., ! or ? followed by a capitalised word (P4G turns are split similarly)."""
    text = " ".join((text or "").split())
    if not text:
        return []
    parts = [p.strip() for p in _SENT_END.split(text)]
    return [p for p in parts if p]


def record_sentences(turn) -> list[str]:
    """Sentences of a turn: the record's own split when it carries one (P4G), else :func:`split_sentences`."""
    extra = turn.model_extra or {}
    sents = extra.get("sentences")
    if sents:
        return [str(s) for s in sents]
    return split_sentences(turn.text) or [turn.text]
