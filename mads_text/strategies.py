"""The ten Persuasion-for-Good (P4G) strategies and the non-strategy class.

Names are the dataset's ``er_label_1`` values. Definitions are written for the
classifier prompt and for people reading reports; they are phrased so they fit
both the donation setting of P4G and the sales calls MADS simulates
("the offer" is a donation request or a product).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NON_STRATEGY = "non-strategy"


@dataclass(frozen=True)
class Strategy:
    code: str
    name: str
    kind: str  # appeal | inquiry
    definition: str
    example: str


STRATEGY_DEFS: tuple[Strategy, ...] = (
    Strategy(
        "S1", "logical-appeal", "appeal",
        "Argues with reasons or evidence that the offer makes sense: explains what the money achieves, "
        "cause and effect, or why acting is the rational choice.",
        "Even a small amount pays for vaccines that keep a child alive.",
    ),
    Strategy(
        "S2", "emotion-appeal", "appeal",
        "Tries to make the listener feel something (sympathy, guilt, worry, hope, warmth) about the people "
        "affected or about what could happen, e.g. asking them to imagine a suffering child or a family in trouble.",
        "Imagine how it feels for a mother who cannot feed her baby.",
    ),
    Strategy(
        "S3", "credibility-appeal", "appeal",
        "Builds trust in the organisation or company: its name, history, reputation, ratings, scale, "
        "transparency, or facts about its work presented as evidence of legitimacy.",
        "Save the Children has worked in over 100 countries for a century.",
    ),
    Strategy(
        "S4", "foot-in-the-door", "appeal",
        "Starts with a small, easy request to get a first commitment, or stresses that even a tiny amount or a small "
        "step is enough, to make a larger commitment easier later.",
        "Would you be willing to give just 10 cents to start?",
    ),
    Strategy(
        "S5", "self-modeling", "appeal",
        "The persuader sets an example: says they themselves donate, buy or have committed, to be imitated.",
        "I'm going to donate half of my payment myself.",
    ),
    Strategy(
        "S6", "personal-story", "appeal",
        "Tells a story from their own or someone else's life (an experience, an anecdote) to illustrate the cause.",
        "When my nephew was sick, a charity like this paid for his treatment.",
    ),
    Strategy(
        "S7", "donation-information", "appeal",
        "Gives concrete information about the act requested: how, where or how much to donate or buy, the price, "
        "payment, amounts, or that it comes out of the task payment.",
        "You can donate any amount from $0 to your full $2 payment.",
    ),
    Strategy(
        "S8", "source-related-inquiry", "inquiry",
        "Asks whether the listener knows or has heard of the organisation, company or product.",
        "Have you heard of Save the Children before?",
    ),
    Strategy(
        "S9", "task-related-inquiry", "inquiry",
        "Asks for the listener's opinion, experience or habits regarding the task itself: donating, charities, "
        "the cause, or the kind of product offered.",
        "Do you usually donate to charities?",
    ),
    Strategy(
        "S10", "personal-related-inquiry", "inquiry",
        "Asks about the listener's own life, family, job or circumstances beyond the task.",
        "Do you have children of your own?",
    ),
)

STRATEGIES: tuple[str, ...] = tuple(s.name for s in STRATEGY_DEFS)
STRATEGY_LABELS: tuple[str, ...] = (*STRATEGIES, NON_STRATEGY)
BY_NAME: dict[str, Strategy] = {s.name: s for s in STRATEGY_DEFS}
BY_CODE: dict[str, Strategy] = {s.code: s for s in STRATEGY_DEFS}

NON_STRATEGY_DEFINITION = (
    "Any other act: greetings, small talk, thanks, acknowledgements, asking directly for a donation or purchase "
    "without one of the strategies above, closing remarks, off-task talk."
)


def _key(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


_LOOKUP = {_key(s.name): s.name for s in STRATEGY_DEFS} | {_key(s.code): s.name for s in STRATEGY_DEFS}
_LOOKUP[_key(NON_STRATEGY)] = NON_STRATEGY
_LOOKUP["none"] = NON_STRATEGY
_LOOKUP["other"] = NON_STRATEGY


def normalize_strategy(value: str) -> str:
    """Canonical label for a strategy name or code (any case/spacing); raises ValueError when unknown."""
    k = _key(str(value))
    if k in _LOOKUP:
        return _LOOKUP[k]
    raise ValueError(f"unknown strategy {value!r}; expected one of: {', '.join(STRATEGY_LABELS)} (or codes S1-S10)")


def p4g_strategy(er_label: str | None) -> str:
    """P4G ``er_label_1`` → one of the ten strategies or ``non-strategy``."""
    return er_label if er_label in BY_NAME else NON_STRATEGY


def strategy_description(with_examples: bool = True, include_non_strategy: bool = False) -> str:
    """The ``{strategy_description}`` table of the P4G classifier prompt."""
    rows = ["| code | strategy | definition |" + (" example |" if with_examples else ""), "| --- | --- | --- |"
            + (" --- |" if with_examples else "")]
    for s in STRATEGY_DEFS:
        row = f"| {s.code} | {s.name} | {s.definition} |"
        if with_examples:
            row += f' "{s.example}" |'
        rows.append(row)
    if include_non_strategy:
        rows.append(f"| - | {NON_STRATEGY} | {NON_STRATEGY_DEFINITION} |" + (" |" if with_examples else ""))
    return "\n".join(rows)
