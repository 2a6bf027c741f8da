"""Scenario configuration: product, agent, user-profile priors, business attributes.

A scenario is a YAML file validated against these models. Attribute priors use
the shape of the MADS paper's Appendix A.4 example (``type: categorical`` with
``candidates: [{value, p}]``, ``type: boolean`` with ``prior: {"true": p, "false": q}``)
plus ``type: numeric`` ranges. Errors name the file and the dotted field path.
"""

from __future__ import annotations

import hashlib
import math
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROB_TOL = 1e-6


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Candidate(_Strict):
    value: Any
    p: float = Field(ge=0.0, le=1.0)
    # A candidate may carry a numeric range; a value inside it is then drawn and
    # stored under the attribute's ``exact_as`` field (age band -> exact age).
    range: tuple[float, float] | None = None

    @field_validator("range")
    @classmethod
    def _ordered(cls, v):
        if v is not None and v[0] > v[1]:
            raise ValueError(f"range lower bound {v[0]} is above upper bound {v[1]}")
        return v


class CategoricalAttr(_Strict):
    type: Literal["categorical"]
    label: str | None = None
    candidates: list[Candidate] = Field(min_length=1)
    exact_as: str | None = None
    exact_label: str | None = None

    @model_validator(mode="after")
    def _sums_to_one(self):
        total = sum(c.p for c in self.candidates)
        if not math.isclose(total, 1.0, abs_tol=PROB_TOL):
            raise ValueError(f"candidate probabilities sum to {total:.6g}, expected 1")
        values = [repr(c.value) for c in self.candidates]
        if len(set(values)) != len(values):
            raise ValueError("candidate values are not unique")
        if self.exact_as and not all(c.range for c in self.candidates):
            raise ValueError("exact_as needs a range on every candidate")
        return self


class BooleanAttr(_Strict):
    type: Literal["boolean"]
    label: str | None = None
    candidates: list[bool] = Field(default_factory=lambda: [True, False])
    prior: dict[str, float]

    @model_validator(mode="after")
    def _prior_ok(self):
        keys = set(self.prior)
        if keys != {"true", "false"}:
            raise ValueError(f"prior must have exactly the keys 'true' and 'false', got {sorted(keys)}")
        if sorted(self.candidates) != [False, True]:
            raise ValueError("candidates must be [true, false]")
        for k, v in self.prior.items():
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"prior[{k!r}] = {v} is not a probability")
        total = sum(self.prior.values())
        if not math.isclose(total, 1.0, abs_tol=PROB_TOL):
            raise ValueError(f"prior probabilities sum to {total:.6g}, expected 1")
        return self


class NumericAttr(_Strict):
    type: Literal["numeric"]
    label: str | None = None
    range: tuple[float, float]
    distribution: Literal["uniform", "normal"] = "uniform"
    mean: float | None = None
    sd: float | None = None
    integer: bool = True
    unit: str = ""

    @model_validator(mode="after")
    def _range_ok(self):
        lo, hi = self.range
        if lo > hi:
            raise ValueError(f"range lower bound {lo} is above upper bound {hi}")
        if self.distribution == "normal":
            if self.mean is None or self.sd is None or self.sd <= 0:
                raise ValueError("a normal distribution needs mean and a positive sd")
        return self


Attribute = Annotated[Union[CategoricalAttr, BooleanAttr, NumericAttr], Field(discriminator="type")]


class Product(_Strict):
    name: str
    metadata: str = Field(min_length=1, description="Product facts the Dialog Agent may cite")


class AgentConfig(_Strict):
    name: str = Field(description="How the agent introduces itself; the speaker name in transcripts")
    company: str = "our company"
    meta_instruction: str = Field(min_length=1, description="The initial Dialog Agent prompt P0 ({prompt_k})")
    opening: str | None = Field(None, description="Fixed first agent line; generated when absent")
    voice: dict[str, Any] = Field(default_factory=dict, description="TTS voice of the agent (synth stage)")


class Signifiers(_Strict):
    """Personality signifier priors; uniform over the standard sets when absent."""

    zodiac: dict[str, float] | None = None
    mbti: dict[str, float] | None = None

    @field_validator("zodiac", "mbti")
    @classmethod
    def _sums(cls, v):
        if v is not None:
            total = sum(v.values())
            if not math.isclose(total, 1.0, abs_tol=PROB_TOL):
                raise ValueError(f"probabilities sum to {total:.6g}, expected 1")
        return v


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_\-]+$")
    description: str = ""
    language: str = "en"
    medium: str = Field("phone call", description="What the conversation is (phone call, online chat); shapes the prompts")
    product: Product
    agent: AgentConfig
    user_profile: dict[str, Attribute] = Field(min_length=1)
    business_attributes: dict[str, Attribute] = Field(default_factory=dict)
    signifiers: Signifiers = Field(default_factory=Signifiers)
    acceptance_criteria: str = Field(
        "agreeing to purchase, scheduling a specific time for a follow-up, or leaving contact details",
        description="What counts as [ACCEPT] for the User Agent and the judges",
    )
    source_file: str = Field("", exclude=True)
    sha256: str = Field("", exclude=True)

    @model_validator(mode="after")
    def _no_name_clash(self):
        clash = set(self.user_profile) & set(self.business_attributes)
        if clash:
            raise ValueError(f"fields defined both in user_profile and business_attributes: {sorted(clash)}")
        return self


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("categorical", "boolean", "numeric", "function-after[_sums_to_one()]"):
            continue  # discriminator tags say nothing to a user
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_scenario(data: Any, source: str = "<memory>") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = _format_loc(tuple(p for p in err["loc"] if not str(p).startswith("function-")))
            lines.append(f"{source}: field '{loc}': {err['msg']}")
        raise ScenarioError("invalid scenario\n  " + "\n  ".join(lines)) from None


def builtin_scenarios() -> list[str]:
    folder = resources.files("mads_text") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_scenario_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ScenarioError(f"{p}: scenario file not found")
        return p
    folder = resources.files("mads_text") / "scenarios"
    candidate = folder / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise ScenarioError(
            f"unknown scenario '{name_or_path}': built-in ones are {', '.join(builtin_scenarios())}, "
            "or pass a path to a .yaml file"
        )
    return Path(str(candidate))


def load_scenario(name_or_path: str) -> Scenario:
    path = resolve_scenario_path(name_or_path)
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML: {e}") from None
    sc = parse_scenario(data, str(path))
    sc.source_file = str(path)
    sc.sha256 = hashlib.sha256(raw).hexdigest()
    return sc
