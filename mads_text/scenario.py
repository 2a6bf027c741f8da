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


class Bounds(_Strict):
    """A numeric condition: ``min <= value <= max`` (either side may be open)."""

    min: float | None = None
    max: float | None = None

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


# field -> allowed values (a list) or numeric bounds; every field must hold. A field the persona lacks fails.
When = dict[str, Union[list[Any], Bounds]]


def when_holds(when: When, fields: dict[str, Any]) -> bool:
    for key, cond in when.items():
        if key not in fields:
            return False
        value = fields[key]
        if isinstance(cond, Bounds):
            if not cond.holds(value):
                return False
        elif not any(_same(value, c) for c in cond):
            return False
    return True


def _same(value: Any, cond: Any) -> bool:
    # YAML gives true/false and numbers their own types; compare like with like, else as text
    if isinstance(value, bool) or isinstance(cond, bool):
        return value is cond or str(value).lower() == str(cond).lower()
    return value == cond or str(value) == str(cond)


class Given(_Strict):
    """A conditional prior: the attribute's distribution depends on an attribute drawn before it.

    ``cases`` maps a value of ``field`` to the parts of the attribute that change for it (``candidates`` of a
    categorical, ``prior`` of a boolean, ``mean``/``sd``/``range`` of a numeric); other values keep the default."""

    field: str
    cases: dict[str, dict[str, Any]] = Field(min_length=1)


class CategoricalAttr(_Strict):
    type: Literal["categorical"]
    label: str | None = None
    candidates: list[Candidate] = Field(min_length=1)
    exact_as: str | None = None
    exact_label: str | None = None
    given: Given | None = None

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
    given: Given | None = None

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
    given: Given | None = None

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


def case_attr(attr: Attribute, value: Any) -> Attribute:
    """The attribute as it is drawn when its ``given`` field has ``value``."""
    if attr.given is None:
        return attr
    for key, case in attr.given.cases.items():
        if _same(value, key):
            return type(attr).model_validate({**attr.model_dump(exclude={"given"}), **case})
    return attr


class Exclusion(_Strict):
    """A combination of attribute values no persona may have; such a draw is redrawn."""

    when: When = Field(min_length=2)
    reason: str = ""


class StanceRule(_Strict):
    """A sentence that applies to a persona when ``when`` holds (an empty ``when`` always holds)."""

    when: When = Field(default_factory=dict)
    text: str = Field(min_length=1)


class BudgetSource(_Strict):
    """Where a persona's budget comes from: a numeric attribute, or a categorical one mapped to amounts."""

    field: str
    amounts: dict[str, float] | None = None
    estimated: bool = Field(False, description="An estimate (e.g. from income), not a budget the persona stated")
    text: str | None = Field(None, description="How to say it, with {amount}: e.g. 'has about {amount} at the bank'")


# conditions stance rules may use besides the persona's fields
STANCE_KEYS = ("need", "budget_fits", "cheaper_fits", "trust", "busy")


class StanceConfig(_Strict):
    """Inputs of the customer's inner stance (``mads_text.stance``): what the offer costs, what the persona can
    pay, what makes them need it, their experience, and the objections they may raise."""

    price: float = Field(gt=0, description="What accepting costs, in the unit of the budget")
    price_text: str = Field(description="The price as the customer would say it, e.g. '288 RMB a month'")
    unit: str = Field(description="Unit of price and budget, e.g. 'RMB a month'")
    cheaper_price: float | None = Field(None, gt=0, description="A cheaper variant of the offer, if any")
    cheaper_text: str | None = None
    budget_weight: int = Field(2, ge=0, le=2, description="How much an offer over budget adds to the resistance (0-2): "
                               "less where accepting commits to no payment yet, e.g. a test drive")
    budget: list[BudgetSource] = Field(default_factory=list, description="The first source the persona has wins")
    needs: list[StanceRule] = Field(default_factory=list, description="Reasons to need the product; each match counts")
    no_need: str = "sees no particular reason to need this"
    experience: list[StanceRule] = Field(default_factory=list, description="First match")
    trust: list[StanceRule] = Field(default_factory=list, description="First match overrides the drawn trust")
    time: list[StanceRule] = Field(default_factory=list, description="First match overrides the drawn time pressure")
    objections: list[StanceRule] = Field(min_length=1, description="Candidates; the applicable ones are drawn from")

    @model_validator(mode="after")
    def _cheaper_pair(self):
        if (self.cheaper_price is None) != (self.cheaper_text is None):
            raise ValueError("cheaper_price and cheaper_text go together")
        return self

    def rules(self) -> list[tuple[str, StanceRule]]:
        return [(f"{name}[{i}]", r) for name in ("needs", "experience", "trust", "time", "objections")
                for i, r in enumerate(getattr(self, name))]


class Product(_Strict):
    name: str
    metadata: str = Field(min_length=1, description="Product facts the Dialog Agent may cite")


class AgentConfig(_Strict):
    name: str = Field(description="How the agent introduces itself; the speaker name in transcripts")
    company: str = "our company"
    meta_instruction: str = Field(min_length=1, description="The initial Dialog Agent prompt P0 ({prompt_k})")
    opening: str | None = Field(None, description="Fixed first agent line; generated when absent")
    next_step: str | None = Field(
        None, description="How the agent asks for the concrete next step, in its own words (transcript mode's "
        "reminder before the agent's line quotes it as an example); the acceptance criteria when absent")
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
    exclusions: list[Exclusion] = Field(default_factory=list, description="Attribute combinations never drawn")
    stance: StanceConfig | None = Field(None, description="How a persona's attributes set their stance on the offer")
    source_file: str = Field("", exclude=True)
    sha256: str = Field("", exclude=True)

    @model_validator(mode="after")
    def _no_name_clash(self):
        clash = set(self.user_profile) & set(self.business_attributes)
        if clash:
            raise ValueError(f"fields defined both in user_profile and business_attributes: {sorted(clash)}")
        return self

    @model_validator(mode="after")
    def _conditions_name_known_fields(self):
        # a conditional prior may only depend on an attribute drawn before it (profile first, then business)
        order = [*self.user_profile, *self.business_attributes]
        for section in ("user_profile", "business_attributes"):
            for key, attr in getattr(self, section).items():
                if attr.given is None:
                    continue
                if attr.given.field not in order[: order.index(key)]:
                    raise ValueError(f"{section}.{key}.given: '{attr.given.field}' must be an attribute defined before '{key}'")
                if isinstance(attr, CategoricalAttr) and attr.exact_as:
                    raise ValueError(f"{section}.{key}.given: an attribute with exact_as cannot be conditional")
                known = {repr(c.value) for c in attr.candidates} if isinstance(attr, CategoricalAttr) else None
                for value in attr.given.cases:
                    try:
                        drawn = case_attr(attr, value)
                    except ValidationError as e:
                        msg = "; ".join(err["msg"] for err in e.errors())
                        raise ValueError(f"{section}.{key}.given.cases[{value!r}]: {msg}") from None
                    if known is not None and not {repr(c.value) for c in drawn.candidates} <= known:
                        raise ValueError(f"{section}.{key}.given.cases[{value!r}]: values outside the attribute's candidates")
        fields = self.field_names()
        for i, ex in enumerate(self.exclusions):
            unknown = sorted(set(ex.when) - fields)
            if unknown:
                raise ValueError(f"exclusions[{i}]: unknown fields {unknown}")
        if self.stance is not None:
            for where, rule in self.stance.rules():
                unknown = sorted(set(rule.when) - fields - set(STANCE_KEYS))
                if unknown:
                    raise ValueError(f"stance.{where}.when: unknown fields {unknown}")
            for i, b in enumerate(self.stance.budget):
                if b.field not in fields:
                    raise ValueError(f"stance.budget[{i}]: unknown field '{b.field}'")
        return self

    def field_names(self) -> set[str]:
        names = set(self.user_profile) | set(self.business_attributes)
        names |= {a.exact_as for a in self.user_profile.values() if isinstance(a, CategoricalAttr) and a.exact_as}
        return names


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
