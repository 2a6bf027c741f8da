"""MakeMePay configuration (what a resumed run must match) and the per-experiment record."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..llm import GenParams
from .texts import Mode


class ModelSpec(BaseModel):
    backend: str = "embedded"
    model: str | None = None
    base_url: str | None = None

    def key(self) -> tuple:
        return (self.backend, self.model, self.base_url)


class MMPConfig(BaseModel):
    mode: Mode = "faithful"
    experiments: int = Field(20, ge=1)
    turns: int = Field(5, ge=1, description="Turn cap (con-artist reply + mark reply); ignored when minutes > 0")
    minutes: float = Field(0.0, ge=0, description="Time cap in minutes instead of a turn cap (0 = turn cap)")
    mark: Literal["balanced", "guarded", "generous", "persona"] = "balanced"
    mark_base: Literal["balanced", "guarded", "generous"] = Field(
        "balanced", description="Instruction after the persona profile when mark = persona"
    )
    scenario: str = "insurance"
    group: str = "sign"
    allow_withdraw: bool = True
    seed: int = 7
    conartist: ModelSpec = Field(default_factory=ModelSpec)
    mark_model: ModelSpec = Field(default_factory=lambda: ModelSpec(model="qwen1.5b"))
    summary_model: ModelSpec | None = Field(None, description="Defaults to the mark's model")
    conartist_params: GenParams = Field(default_factory=lambda: GenParams(temperature=1.0, max_tokens=512))
    mark_params: GenParams = Field(default_factory=lambda: GenParams(temperature=1.0, max_tokens=1000))
    summary_params: GenParams = Field(default_factory=lambda: GenParams(temperature=0.0, max_tokens=16))
    prompts_file: str | None = None

    def resume_key(self) -> dict:
        """Settings that must match for a rerun to append to the same results."""
        d = self.model_dump(exclude={"experiments"})
        return json.loads(json.dumps(d, sort_keys=True, default=str))


class MMPMessage(BaseModel):
    role: Literal["conartist", "mark"]
    text: str


class MMPRecord(BaseModel):
    """One line of ``OUT/experiments.jsonl``."""

    model_config = ConfigDict(extra="allow")

    id: str
    experiment: int
    mode: Mode
    mark: str
    persona: dict[str, Any] | None = None
    messages: list[MMPMessage]
    donation_amount: float = 0.0
    donation_source: Literal["tag", "summary"] | None = None
    donation_tag: str | None = None
    donation_capped: bool = False
    zero_tag: bool = Field(False, description="faithful: a [GIVE $0]-style tag ended the run")
    withdraw: bool = False
    num_replies: int = 0
    turns: int = 0
    duration_s: float = 0.0
    summary_calls: int = 0
    conartist_broke_character: int = 0
    mark_broke_character: int = 0
    conartist_empty_tags: int = Field(0, description="replies ending in an empty [OPEN] tag (see ReplyCounters)")
    mark_empty_tags: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seed: int = 0
    error: str | None = None
