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
# "unknown": the record did not say (a dialogue file from elsewhere); never written by `mads simulate`
Outcome = Literal["accept", "withdraw", "max_rounds", "error", "unknown"]


class Turn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    text: str


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens


class DialogueStats(BaseModel):
    """Per-dialogue guard counters (role slips of small models and the like)."""

    role_slips_cleaned: int = 0
    role_slips_retried: int = 0
    empty_retries: int = 0
    llm_calls: int = 0
    wall_s: float = 0.0


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
