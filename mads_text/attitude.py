"""The Chain-of-Attitude state space (MADS paper, Appendix A.1).

Sixteen fine attitude states in four coarse groups that follow the AIDA stages:
Negative (Attention), Neutral (Interest), Positive (Desire), Acceptance (Action).
``STATES`` fixes the order used by every transition matrix this project writes.

The descriptions and example utterances are ours: they are what the LLM
classifier reads in its prompt and what the embedded labeler compares a user
turn against when it picks the fine state inside a coarse group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COARSE = ("negative", "neutral", "positive", "acceptance")


@dataclass(frozen=True)
class AttitudeState:
    name: str
    group: str
    description: str
    examples: tuple[str, ...]


_DEFS: tuple[AttitudeState, ...] = (
    # --- Negative (AIDA: Attention) ---
    AttitudeState(
        "Refusal", "negative",
        "The user clearly says no: declines the offer, refuses to continue, or asks to end the conversation.",
        ("No, I don't want it.", "I'm not going to donate, sorry.", "Please stop, I'm not buying anything.",
         "No thanks, I'll pass on this."),
    ),
    AttitudeState(
        "Resistance", "negative",
        "The user pushes back: argues against the offer, objects to the agent's claims or pressure, "
        "or defends their current choice, without fully ending the talk.",
        ("I don't see why I should pay for that.", "You're being pushy, I already told you my view.",
         "I'd rather keep my money for my own family.", "That won't change anything, so why bother?"),
    ),
    AttitudeState(
        "Disinterest", "negative",
        "The user shows little engagement: curt or dismissive replies, changes the subject, "
        "or signals the topic does not matter to them.",
        ("Not really interested.", "Whatever.", "I don't care much about that.", "Can we talk about something else?"),
    ),
    AttitudeState(
        "Doubt", "negative",
        "The user questions the credibility of the agent, the organisation, the product or the claims; "
        "suspects a scam or distrusts where the money goes.",
        ("How do I know this isn't a scam?", "I'm not sure the money actually reaches the children.",
         "Those numbers sound too good to be true.", "Charities waste most of what they get."),
    ),
    # --- Neutral (AIDA: Interest) ---
    AttitudeState(
        "Indifference", "neutral",
        "The user replies without taking a stance: polite small talk, factual answers or acknowledgements "
        "that neither support nor oppose the offer.",
        ("I'm fine, thanks. How are you?", "Okay.", "I work in an office.", "I've heard the name before."),
    ),
    AttitudeState(
        "Cautious", "neutral",
        "The user is guarded: wants guarantees, mentions risks or fine print, asks for proof before going further, "
        "while staying open.",
        ("I'd need to see the terms in writing first.", "What happens if I want to cancel?",
         "I have to be careful with things like this.", "Is my information kept private?"),
    ),
    AttitudeState(
        "Hesitant", "neutral",
        "The user wavers and postpones: unsure, needs time, 'maybe later', would think about it.",
        ("Maybe, I'm not sure yet.", "Let me think about it.", "I might, but not right now.",
         "I'll have to talk to my wife first."),
    ),
    AttitudeState(
        "Weighing Options", "neutral",
        "The user deliberates: compares costs and benefits, alternatives, other charities or products, "
        "or what they already have.",
        ("I already give to another charity, so I'm comparing.", "Is this better than the plan from my employer?",
         "It depends on how much it costs compared to what I get.", "I could donate part and keep the rest."),
    ),
    # --- Positive (AIDA: Desire) ---
    AttitudeState(
        "Interested", "positive",
        "The user shows curiosity and asks to hear more about the offer or the cause.",
        ("Oh, tell me more about it.", "What does the organisation do exactly?", "That sounds interesting.",
         "How does it work?"),
    ),
    AttitudeState(
        "Attention", "positive",
        "The user listens and engages with the agent's points, agrees with or reflects on what was said.",
        ("That's true, kids really need help.", "I see, that makes sense.", "Wow, I didn't know that.",
         "It's sad to hear how many children suffer."),
    ),
    AttitudeState(
        "Consideration", "positive",
        "The user seriously considers taking the offer and relates it to their own situation.",
        ("I think I could afford a small amount.", "This might actually be useful for my family.",
         "I'm thinking about donating some of my bonus.", "That could work for me."),
    ),
    AttitudeState(
        "Seeking Value", "positive",
        "The user asks what they would gain: prices, benefits, coverage, impact of their money, how to do it.",
        ("How much of my donation goes to the children?", "What exactly does the policy cover?",
         "How do I donate?", "Is there a discount if I pay yearly?"),
    ),
    # --- Acceptance (AIDA: Action) ---
    AttitudeState(
        "Active", "acceptance",
        "The user takes the initiative toward the deal: proposes amounts or times, asks for next steps, "
        "offers to do more.",
        ("Let's set it up today.", "Send me the link and I'll fill it in.", "I'll donate a dollar, how do I start?",
         "Can I increase it to two dollars?"),
    ),
    AttitudeState(
        "Cooperative", "acceptance",
        "The user goes along with the process: provides requested details, confirms information, follows instructions.",
        ("Sure, my email is on file.", "Yes, that's correct.", "Okay, I'll do that.", "Fine, go ahead."),
    ),
    AttitudeState(
        "Satisfied", "acceptance",
        "The user is pleased with the decision or the outcome and expresses thanks or contentment.",
        ("Great, I feel good about this.", "Thank you, glad I could help.", "I'm happy with that plan.",
         "That was easy, thanks!"),
    ),
    AttitudeState(
        "Acceptance", "acceptance",
        "The user explicitly agrees to buy, sign, donate or otherwise commit.",
        ("Yes, I'll donate.", "Okay, I'll buy it.", "I agree, count me in.", "I'll give the full amount."),
    ),
)

STATES: tuple[str, ...] = tuple(s.name for s in _DEFS)
STATE_INFO: dict[str, AttitudeState] = {s.name: s for s in _DEFS}
STATE_GROUP: dict[str, str] = {s.name: s.group for s in _DEFS}
GROUP_STATES: dict[str, tuple[str, ...]] = {g: tuple(s.name for s in _DEFS if s.group == g) for g in COARSE}
STATE_INDEX: dict[str, int] = {s: i for i, s in enumerate(STATES)}
N_STATES = len(STATES)

# P4G persuadee acts (ee_label_1) that carry an attitude, grouped as in the dataset's README;
# every other act (greeting, ask-org-info, thank, ...) expresses no attitude.
P4G_EE_COARSE: dict[str, str] = {
    "negative-reaction-to-donation": "negative",
    "disagree-donation": "negative",
    "disagree-donation-more": "negative",
    "negative-to-inquiry": "negative",
    "neutral-reaction-to-donation": "neutral",
    "neutral-to-inquiry": "neutral",
    "positive-reaction-to-donation": "positive",
    "positive-to-inquiry": "positive",
    "ask-donation-procedure": "positive",
    "agree-donation": "acceptance",
    "provide-donation-amount": "acceptance",
    "confirm-donation": "acceptance",
}
NO_ATTITUDE = "none"


def _key(s: str) -> str:
    return re.sub(r"[^a-z]", "", s.lower())


_LOOKUP = {_key(s): s for s in STATES}


def normalize_state(value: str) -> str:
    """Map a state name in any case or spacing ("weighing_options", "SEEKING VALUE") to its canonical name.

    Raises ValueError for anything outside the 16 states.
    """
    k = _key(str(value))
    if k in _LOOKUP:
        return _LOOKUP[k]
    raise ValueError(f"unknown attitude state {value!r}; expected one of: {', '.join(STATES)}")


def coarse_of(state: str) -> str:
    return STATE_GROUP[normalize_state(state)]


def attitude_description(examples: bool = False) -> str:
    """The ``{attitude_description}`` block of the CoA Summary prompt, grouped by coarse state."""
    lines = []
    for g in COARSE:
        lines.append(f"{g.capitalize()}:")
        for name in GROUP_STATES[g]:
            st = STATE_INFO[name]
            line = f"  - {name}: {st.description}"
            if examples:
                line += " E.g. " + " / ".join(f'"{e}"' for e in st.examples[:2])
            lines.append(line)
    return "\n".join(lines)
