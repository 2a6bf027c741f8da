"""A customer's inner stance on the offer, derived from their persona and the product facts.

Small models play an agreeable customer unless told what this person needs, can pay and doubts. The
stance spells that out, deterministically: the same persona and scenario always give the same stance.
It is built from the scenario's ``stance`` section (``StanceConfig``):

- need: every matching ``needs`` rule is a reason; none, one, or two and more give none / some / strong;
- money: the budget from the first source the persona has (a stated budget, else an estimate from
  income) against the price, and against a cheaper variant when there is one;
- experience with the product kind, trust in cold calls, time pressure: the first matching rule, else
  (trust, time) a draw seeded by the persona;
- one to three of the applicable objections, more for a more resistant customer: money first when the
  offer is over budget, then the persona's own reasons, then generic doubts;
- a leaning (open, guarded, resistant) from how many of these speak against buying.

The transcript header shows it to the User Agent as private notes; every dialogue record keeps it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from .personas import Persona
from .scenario import BudgetSource, Scenario, StanceConfig, when_holds

Leaning = Literal["open", "guarded", "resistant"]

TRUST_TEXT = {
    "low": "distrusts sales calls and suspects a scam until the caller proves otherwise",
    "medium": "is wary of sales calls but will listen if the caller is straight with them",
    "high": "does not mind sales calls and gives the caller a fair hearing",
}
TRUST_P = {"low": 0.35, "medium": 0.45, "high": 0.20}
BUSY_TEXT = {True: "is in the middle of something and wants the call short",
             False: "has a few minutes to talk"}
BUSY_P = 0.4


class Stance(BaseModel):
    budget_text: str | None = None  # the scenario's wording of this budget source, with {amount}
    need: Literal["none", "some", "strong"]
    need_reasons: list[str]
    budget: float | None
    budget_estimated: bool
    price: float
    budget_fits: bool | None
    cheaper_fits: bool | None
    experience: str | None
    trust: Literal["low", "medium", "high"]
    trust_text: str
    busy: bool
    time_text: str
    objections: list[str]
    resistance: int  # how many points speak against buying (0-7)
    leaning: Leaning

    @property
    def priced_out(self) -> bool:
        """The offer is over budget and nothing cheaper fits (a known budget only)."""
        return self.budget_fits is False and not self.cheaper_fits


def _rng(persona: Persona, what: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{persona.seed}/{persona.id}/stance/{what}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _budget(cfg: StanceConfig, fields: dict[str, Any]) -> tuple[float | None, BudgetSource | None]:
    for src in cfg.budget:
        amount = _amount(src, fields.get(src.field))
        if amount is not None:
            return amount, src
    return None, None


def _amount(src: BudgetSource, value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if src.amounts is not None:
        return src.amounts.get(str(value))
    return float(value) if isinstance(value, (int, float)) else None


def _first(rules, fields: dict[str, Any]) -> str | None:
    return next((r.text for r in rules if when_holds(r.when, fields)), None)


def derive_stance(persona: Persona, scenario: Scenario) -> Stance | None:
    """The persona's stance on the scenario's offer; None when the scenario declares no ``stance``."""
    cfg = scenario.stance
    if cfg is None:
        return None
    fields = dict(persona.fields)
    reasons = [r.text for r in cfg.needs if when_holds(r.when, fields)]
    need = "none" if not reasons else ("some" if len(reasons) == 1 else "strong")
    budget, src = _budget(cfg, fields)
    fits = None if budget is None else budget >= cfg.price
    cheaper = None if budget is None or cfg.cheaper_price is None else budget >= cfg.cheaper_price
    trust_rule, time_rule = _first(cfg.trust, fields), _first(cfg.time, fields)
    levels = list(TRUST_P)
    trust = levels[int(_rng(persona, "trust").choice(len(levels), p=list(TRUST_P.values())))]
    busy = time_rule is not None or bool(_rng(persona, "time").random() < BUSY_P)
    resistance = ({"none": 2, "some": 1, "strong": 0}[need] + {None: 1, True: 0, False: cfg.budget_weight}[fits]
                  + {"low": 2, "medium": 1, "high": 0}[trust] + int(busy))
    leaning: Leaning = "resistant" if resistance >= 5 else ("guarded" if resistance >= 3 else "open")
    derived = {**fields, "need": need, "budget_fits": fits, "cheaper_fits": cheaper, "trust": trust, "busy": busy}
    # money first, then the persona's other own reasons (health, age, ...), then the generic doubts;
    # a seeded shuffle within each tier
    tiers: list[list[str]] = [[], [], []]
    for r in cfg.objections:
        if when_holds(r.when, derived):
            tiers[0 if {"budget_fits", "cheaper_fits"} & set(r.when) else 1 if r.when else 2].append(r.text)
    rng = _rng(persona, "objections")
    ordered = [t[i] for t in tiers for i in rng.permutation(len(t))]
    n = 1 + (resistance >= 3) + (resistance >= 5)
    return Stance(
        need=need, need_reasons=reasons, budget=budget, budget_estimated=bool(src and src.estimated),
        budget_text=src.text if src else None, price=cfg.price,
        budget_fits=fits, cheaper_fits=cheaper, experience=_first(cfg.experience, fields), trust=trust,
        trust_text=trust_rule or TRUST_TEXT[trust], busy=busy, time_text=time_rule or BUSY_TEXT[busy],
        objections=ordered[:n], resistance=resistance, leaning=leaning,
    )


def _money(stance: Stance, cfg: StanceConfig, name: str) -> str:
    if stance.budget is None:
        return f"{name} has not thought about what they could spend; the offer costs {cfg.price_text}"
    amount = f"{stance.budget:,.0f} {cfg.unit}"
    said = (stance.budget_text or ("could probably spare about {amount}" if stance.budget_estimated
                                   else "is prepared to spend at most {amount}")).format(amount=amount)
    line = f"{name} {said}; the offer costs {cfg.price_text}"
    if stance.budget_fits:
        return line + ", which fits"
    if stance.cheaper_fits:
        return line + f", which is too much, but {cfg.cheaper_text} would fit and {name} would consider that"
    return line + f", which is too much{' (even ' + cfg.cheaper_text + ' is over it)' if cfg.cheaper_text else ''}"


LEANING_TEXT = {
    "open": "{name} is open to it: once the objections are answered and the price fits, {name} agrees to the next step.",
    "guarded": "{name} needs the objections answered convincingly; if they are and the price fits, {name} agrees, "
               "otherwise {name} declines.",
    "resistant": "{name} is unlikely to agree today; it would take a clear answer to every objection and an "
                 "offer within budget, and otherwise {name} declines and ends the call.",
}


def render_stance(stance: Stance, scenario: Scenario, name: str) -> str:
    """The stance as private notes in the customer's transcript header."""
    cfg = scenario.stance
    assert cfg is not None
    need = "; ".join(stance.need_reasons) if stance.need_reasons else cfg.no_need
    lines = [
        f"- Need: {name} {need}.",
        f"- Money: {_money(stance, cfg, name)}.",
        *([f"- Experience: {name} {stance.experience}."] if stance.experience else []),
        f"- Cold calls: {name} {stance.trust_text}.",
        f"- Time: {name} {stance.time_text}.",
        f"- Objections {name} raises, one at a time, in their own words: "
        + "; ".join(f'"{o}"' for o in stance.objections) + ".",
        f"- {LEANING_TEXT[stance.leaning].format(name=name)}",
    ]
    return "\n".join(lines)
