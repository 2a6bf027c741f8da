"""Persona sampling into the paper's four groups and prompt rendering.

Groups: ``base`` (demographic profile), ``sign`` (+ Zodiac sign), ``mbti``
(+ MBTI type), ``busi`` (sign + business attributes). Each persona index draws
from its own seeded streams: demographics from one, the Zodiac sign, MBTI type
and business attributes from others. So persona *i* of ``sign`` is persona *i*
of ``base`` plus a sign, the groups are paired for comparison, and asking for
more personas never changes the first ones.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
from pydantic import BaseModel

from . import prompts
from .scenario import Attribute, BooleanAttr, CategoricalAttr, NumericAttr, Scenario, case_attr, when_holds

GROUPS = ("base", "sign", "mbti", "busi")
ZODIAC = (
    "Aries", "Taurus", "Gemini", "Cancer", "Leo", "Virgo",
    "Libra", "Scorpio", "Sagittarius", "Capricorn", "Aquarius", "Pisces",
)  # fmt: skip
MBTI = tuple(a + b + c + d for a in "EI" for b in "SN" for c in "TF" for d in "JP")

# First names for the speaker label; chosen by gender so voices can match later.
NAMES = {
    "Male": ("James", "Wei", "Daniel", "Ming", "Robert", "Hao", "Michael", "Jun", "David", "Lei", "Thomas", "Kai",
             "Andrew", "Bo", "Peter", "Tao", "Mark", "Chen", "Paul", "Yong"),
    "Female": ("Mary", "Li", "Sarah", "Fang", "Linda", "Mei", "Emily", "Xia", "Anna", "Yan", "Laura", "Jing",
               "Grace", "Lan", "Helen", "Na", "Susan", "Hui", "Karen", "Qing"),
}  # fmt: skip

_STREAM_DEMO, _STREAM_SIGN, _STREAM_MBTI, _STREAM_BUSI, _STREAM_NAME = range(5)


class Persona(BaseModel):
    id: str
    index: int
    scenario: str
    group: str
    seed: int
    fields: dict[str, Any]
    labels: dict[str, str]  # field -> display label, in render order
    profile_keys: list[str]
    business_keys: list[str]

    @property
    def name(self) -> str:
        return str(self.fields.get("name", "Customer"))

    @property
    def traits(self) -> str | None:
        sig = [self.fields[k] for k in ("zodiac", "mbti") if k in self.fields]
        return " and ".join(map(str, sig)) if sig else None

    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.fields, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, stream]))


def _draw(attr: Attribute, rng: np.random.Generator) -> tuple[Any, Any | None]:
    """Return (value, exact numeric value drawn inside the candidate's range or None)."""
    if isinstance(attr, CategoricalAttr):
        p = np.array([c.p for c in attr.candidates], dtype=float)
        i = int(rng.choice(len(p), p=p / p.sum()))
        cand = attr.candidates[i]
        exact = None
        if cand.range is not None:
            lo, hi = cand.range
            exact = int(rng.integers(int(lo), int(hi) + 1))
        return cand.value, exact
    if isinstance(attr, BooleanAttr):
        return bool(rng.random() < attr.prior["true"]), None
    if isinstance(attr, NumericAttr):
        lo, hi = attr.range
        if attr.distribution == "uniform":
            v = rng.integers(int(lo), int(hi) + 1) if attr.integer else rng.uniform(lo, hi)
        else:
            v = float(np.clip(rng.normal(attr.mean, attr.sd), lo, hi))
            v = round(v) if attr.integer else v
        return (int(v) if attr.integer else round(float(v), 2)), None
    raise TypeError(f"unknown attribute {attr!r}")


def _label(key: str, attr: Attribute) -> str:
    return attr.label or key.replace("_", " ").title()


def _weighted(options: dict[str, float] | None, default: tuple[str, ...], rng: np.random.Generator) -> str:
    if options:
        keys = list(options)
        p = np.array([options[k] for k in keys], dtype=float)
        return keys[int(rng.choice(len(keys), p=p / p.sum()))]
    return default[int(rng.integers(len(default)))]


MAX_REDRAWS = 200


def _draw_section(scenario: Scenario, attrs: dict[str, Attribute], rng: np.random.Generator, before: dict[str, Any],
                  labels: dict[str, str], keys: list[str], where: str) -> dict[str, Any]:
    """Draw one section (profile or business) in order. An attribute whose value completes an excluded
    combination is drawn again, so the attributes before it keep their priors and only the excluded pair moves;
    redraws continue the same random stream, so the result stays a function of (seed, index)."""
    fields: dict[str, Any] = {}
    for key, attr in attrs.items():
        if attr.given is not None:
            attr = case_attr(attr, {**before, **fields}.get(attr.given.field))
        new = {key} | ({attr.exact_as} if isinstance(attr, CategoricalAttr) and attr.exact_as else set())
        # the exclusions this draw completes: all their fields are known once ``key`` is drawn
        closing = [ex for ex in scenario.exclusions if set(ex.when) & new
                   and set(ex.when) <= set(before) | set(fields) | new]
        for _ in range(MAX_REDRAWS):
            value, exact = _draw(attr, rng)
            drawn = {key: value} | ({attr.exact_as: exact} if new - {key} else {})
            every = {**before, **fields, **drawn}
            if not any(when_holds(ex.when, every) for ex in closing):
                break
        else:
            raise ValueError(f"{scenario.name}: {where} attribute '{key}' hits an exclusion in {MAX_REDRAWS} draws; "
                             "its prior leaves (almost) nothing outside the exclusions")
        fields.update(drawn)
        labels[key] = _label(key, attr)
        keys.append(key)
        if new - {key}:
            labels[attr.exact_as] = attr.exact_label or attr.exact_as.replace("_", " ").title()
            keys.append(attr.exact_as)
    return fields


def sample_persona(scenario: Scenario, group: str, index: int, seed: int) -> Persona:
    if group not in GROUPS:
        raise ValueError(f"unknown group '{group}'; choose one of {', '.join(GROUPS)}")
    labels: dict[str, str] = {}
    profile_keys: list[str] = []
    fields = _draw_section(scenario, scenario.user_profile, _rng(seed, index, _STREAM_DEMO), {}, labels,
                           profile_keys, "profile")
    gender = str(fields.get("gender", ""))
    pool = NAMES.get(gender) or NAMES["Male"] + NAMES["Female"]
    # a customer who shares a name with the agent ("Chen" and "Chen Jie") confuses who is speaking
    taken = set(scenario.agent.name.lower().split())
    pool = tuple(n for n in pool if n.lower() not in taken)
    fields["name"] = pool[int(_rng(seed, index, _STREAM_NAME).integers(len(pool)))]
    labels["name"] = "Name"
    profile_keys.insert(0, "name")
    if group in ("sign", "busi"):
        fields["zodiac"] = _weighted(scenario.signifiers.zodiac, ZODIAC, _rng(seed, index, _STREAM_SIGN))
    if group == "mbti":
        fields["mbti"] = _weighted(scenario.signifiers.mbti, MBTI, _rng(seed, index, _STREAM_MBTI))
    business_keys: list[str] = []
    if group == "busi":
        fields.update(_draw_section(scenario, scenario.business_attributes, _rng(seed, index, _STREAM_BUSI), fields,
                                    labels, business_keys, "business attributes"))
    pid = f"{scenario.name}-{group}-s{seed}-p{index:04d}"
    return Persona(
        id=pid,
        index=index,
        scenario=scenario.name,
        group=group,
        seed=seed,
        fields=fields,
        labels=labels,
        profile_keys=profile_keys,
        business_keys=business_keys,
    )


def sample_personas(scenario: Scenario, group: str, n: int, seed: int, start: int = 0) -> list[Persona]:
    return [sample_persona(scenario, group, i, seed) for i in range(start, start + n)]


# --- rendering -----------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


def render_fields(persona: Persona, keys: list[str], bullet: str = "- ") -> str:
    return "\n".join(f"{bullet}**{persona.labels[k]}**: {_fmt(persona.fields[k])}" for k in keys)


def render_user_prompt(persona: Persona, scenario: Scenario, stance: str | None = None) -> str:
    """The User Agent system prompt of Appendix A.4; ``stance`` (opt-in) adds the inner stance as a block."""
    profile = prompts.indent(render_fields(persona, persona.profile_keys), "    ").lstrip()
    business = prompts.indent(render_fields(persona, persona.business_keys), "    ").lstrip()
    text = prompts.USER_AGENT_TEMPLATE
    if persona.traits is None:
        block = prompts.PERSONALITY_BLOCK
        text = text.replace(block, "")
    text = text.replace("    {business_attributes}\n", "" if not business else "    {business_attributes}\n")
    if stance:
        block = "  <stance>\n" + prompts.indent(stance.replace("{", "{{").replace("}", "}}"), "    ") + "\n  </stance>\n"
        text = text.replace("</user_profile>", block + "</user_profile>", 1)
    return text.format(
        user_profile=profile,
        business_attributes=business,
        personality_traits=persona.traits or "",
        end_rule=prompts.END_RULE.format(
            acceptance_criteria=scenario.acceptance_criteria, medium=scenario.medium, agent_name=scenario.agent.name
        ),
    )


def product_metadata(scenario: Scenario) -> str:
    who = f"You are {scenario.agent.name}, {scenario.agent.company} ({scenario.medium})"
    return prompts.indent(f"{scenario.product.metadata.strip()}\n{who}", "  ").lstrip()


def render_agent_prompt(scenario: Scenario, prompt_k: str | None = None) -> str:
    """The Dialog Agent system prompt of Appendix A.4 with ``{prompt_k}`` = the current instruction/SOP."""
    task = (prompt_k or scenario.agent.meta_instruction).strip()
    return prompts.DIALOG_AGENT_TEMPLATE.format(
        product_metadata=product_metadata(scenario), prompt_k=prompts.indent(task, "  ").lstrip()
    )


def profile_prose(persona: Persona) -> str:
    """Profile as plain ``Label: value`` lines for transcript-mode headers."""
    keys = [k for k in persona.profile_keys if k != "name"] + persona.business_keys
    return "\n".join(f"- {persona.labels[k]}: {_fmt(persona.fields[k])}" for k in keys)


def user_transcript_header(persona: Persona, scenario: Scenario, stance: str | None = None) -> str:
    personality = ""
    if persona.traits:
        personality = (
            f"{persona.name}'s personality follows the commonly accepted and general {persona.traits} "
            "personality traits, and it shows in how they talk.\n"
        )
    return prompts.USER_TRANSCRIPT_HEADER.format(
        medium=scenario.medium,
        agent_name=scenario.agent.name,
        company=scenario.agent.company,
        user_name=persona.name,
        profile_prose=profile_prose(persona),
        personality_prose=personality,
        stance_block=prompts.STANCE_BLOCK.format(user_name=persona.name, stance=stance) if stance else "",
        acceptance_criteria=scenario.acceptance_criteria,
    )


def agent_guidance(scenario: Scenario, user_name: str) -> str:
    """The header's directions on how to lead the call, which the agent follows and never says."""
    guide = prompts.AGENT_TRANSCRIPT_HEADER.split("{prompt_k}", 1)[1].split("Transcript:", 1)[0]
    # without the acceptance criteria, which the agent rightly puts as a question ("a test drive at a specific time?")
    return guide.format(agent_name=scenario.agent.name, user_name=user_name, acceptance_criteria="...")


def agent_transcript_header(scenario: Scenario, user_name: str, prompt_k: str | None = None) -> str:
    return prompts.AGENT_TRANSCRIPT_HEADER.format(
        medium=scenario.medium,
        agent_name=scenario.agent.name,
        company=scenario.agent.company,
        user_name=user_name,
        product_metadata=scenario.product.metadata.strip(),
        prompt_k=(prompt_k or scenario.agent.meta_instruction).strip(),
        acceptance_criteria=scenario.acceptance_criteria,
    )
