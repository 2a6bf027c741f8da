"""Run records: the contract between stages.

Every stage reads the previous stage's files through these models, so a field
added here is visible everywhere and a record written by an older version still
loads (unknown fields are kept, missing optional ones default).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RECORD_VERSION = 1

Role = Literal["agent", "user"]
# "max_rounds": no decision before the round cap; "undecided": the customer ended the call with a bare end
# marker and no words to judge; "unknown": the record did not say (a dialogue file from elsewhere)
Outcome = Literal["accept", "withdraw", "max_rounds", "undecided", "error", "unknown"]


class Turn(BaseModel):
    """One utterance as the model wrote it. ``marker`` keeps an end marker ([ACCEPT]/[WITHDRAW]) that was
    stripped from a customer's words: an input to the decision, never part of what was said."""

    model_config = ConfigDict(extra="allow")

    role: Role
    text: str
    marker: Literal["accept", "withdraw"] | None = Field(None, exclude_if=lambda v: v is None)


class Decision(BaseModel):
    """How a call ended: the decision made after a customer turn, quoting the customer's own words."""

    outcome: Literal["accept", "withdraw", "undecided"]
    round: int | None = Field(None, description="The customer round (1-based) it was made after; None if undecided")
    source: str = Field(description="What decided: rules, llm, marker, max_rounds, marker_only, ...")
    evidence: str = Field("", description="The customer's words that carry the decision, verbatim")
    marker: Literal["accept", "withdraw"] | None = Field(None, description="The end marker the model wrote, if any")


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens


class DialogueStats(BaseModel):
    """Per-dialogue guard counters (role slips of small models and the like) and where the time went."""

    role_slips_cleaned: int = 0
    role_slips_retried: int = 0
    role_slips_kept: int = 0  # replies kept as written because every sample slipped
    empty_retries: int = 0
    marker_only_retries: int = 0  # customer replies that were a bare end marker, sampled again
    repeats_removed: int = 0  # agent sentences dropped because the agent had already said them
    repeat_retries: int = 0  # agent replies sampled again because nothing new was left
    repeats_kept: int = 0  # repeated agent sentences kept because every sample was only repeats
    stance_retries: int = 0  # customer commitments sampled again because the customer's doubts were not said yet
    llm_calls: int = 0
    decision_llm_calls: int = 0
    wall_s: float = 0.0
    decision_s: float = 0.0  # time spent deciding after customer turns


class DialogueRecord(BaseModel):
    """One line of ``RUN/dialogues.jsonl``.

    Only ``id``, ``scenario``, ``persona`` and ``turns`` are required, so dialogue files that did not come from
    `mads simulate` load too; the defaults say "not recorded" rather than guess."""

    model_config = ConfigDict(extra="allow")

    id: str
    scenario: str
    group: str = "unknown"
    persona: dict[str, Any]
    persona_prompt: str = ""
    agent_prompt: str = ""
    turns: list[Turn]
    outcome: Outcome = "unknown"
    rounds: int
    usage: Usage = Field(default_factory=Usage)
    persona_id: str = ""
    sample_index: int = 0
    seed: int = 0
    prompt_version: str = ""
    error: str | None = None
    stats: DialogueStats = Field(default_factory=DialogueStats)
    decision: Decision | None = None
    stance: dict[str, Any] | None = Field(None, description="The customer's inner stance (mads_text.stance)")
    version: int = RECORD_VERSION

    @model_validator(mode="before")
    @classmethod
    def _rounds_from_turns(cls, data: Any) -> Any:
        # a round ends with the user's turn, so a record that does not state its rounds still has them
        if isinstance(data, dict) and data.get("rounds") is None and isinstance(data.get("turns"), list):
            roles = [t.get("role") if isinstance(t, dict) else getattr(t, "role", None) for t in data["turns"]]
            data = {**data, "rounds": roles.count("user")}
        return data

    def user_turns(self) -> list[str]:
        return [t.text for t in self.turns if t.role == "user"]

    def agent_turns(self) -> list[str]:
        return [t.text for t in self.turns if t.role == "agent"]


class RunManifest(BaseModel):
    """``RUN/manifest.json``: everything needed to reproduce or resume a run."""

    model_config = ConfigDict(extra="allow")

    version: int = RECORD_VERSION
    created: str
    command: str = "simulate"
    scenario: str
    scenario_file: str
    scenario_sha256: str
    group: str
    personas: int
    per_persona: int
    max_rounds: int
    seed: int
    backend: str
    model: str
    prompt_mode: str
    agent_instruction: str
    prompt_version: str = "p0"
    generation: dict[str, Any] = Field(default_factory=dict)
    packages: dict[str, str] = Field(default_factory=dict)
    git_revision: str | None = None
    expected_dialogues: int = 0
    personas_file: str | None = None
    decision: str = "markers"  # runs written before the decision module ended calls on the end markers
    stance_in_chat: bool = False
    agent_note: bool = False  # runs written before the agent's reminder existed
