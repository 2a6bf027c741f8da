"""Outcome of a call from what the caller said.

Outcomes: ``accepted`` (conversion), ``withdrawn`` (an explicit no / goodbye), ``intention`` (interest
shown, no decision), ``hung_up`` (the caller left with none of these), ``no_decision`` (the server ended
the call: turn cap or time limit). Separately, ``intention`` is true for every call where interest was
shown, accepted ones included: that is the paper's user-intention rate.

Accepted and withdrawn come from the project's one decision module (``mads_text.decision``, its rules:
the caller's own words, clause by clause, with negations, hedges and the agent's proposal taken into
account; an end marker on a text channel is one input). Interest comes from phrase rules over the
caller's turns and, when the embedded attitude labeler has its trained heads installed, from its
per-turn attitude (``OutcomeDetector``). Every call row says which produced its outcome (``outcome_source``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from mads_text.cues import REFUSE
from mads_text.decision import decide_call, turns_of

INTENTION = [
    r"how much", r"what('?s| is| are) the (price|premium|cost|rate|fee)", r"tell me more", r"sounds (good|interesting|great|fine)",
    r"\binterested\b", r"what does it cover", r"call me (back|later|tomorrow|next)", r"send me (some |more )?(information|details|info)",
    r"i'?ll think about it", r"how do i (apply|sign up|buy)", r"\bmaybe\b", r"what about", r"can you explain",
    r"is there a (discount|cheaper)", r"(i'?d|i would) like to know",
]  # fmt: skip
_INTENT = re.compile("|".join(f"(?:{p})" for p in INTENTION), re.IGNORECASE)


def intention_phrase(text: str) -> str | None:
    """A phrase showing interest; "not interested" and other refusals are masked first."""
    m = _INTENT.search(REFUSE.sub(" ", text))
    return m.group(0) if m else None


@dataclass
class OutcomeResult:
    outcome: str
    intention: bool
    source: str
    evidence: str = ""
    final: bool = False  # the caller made a decision; the call can close


def _turns(turns: list[Any]) -> list:
    return turns_of([t if isinstance(t, dict) else t.model_dump() for t in turns])


class OutcomeDetector:
    """The decision module's rules for accepted/withdrawn; phrases and, when its trained heads are
    installed, the embedded attitude labeler for intention (a ``positive`` or ``acceptance`` turn)."""

    def __init__(self, mode: str = "auto"):
        if mode not in ("auto", "rules", "embedded"):
            raise ValueError(f"outcome mode must be auto, rules or embedded, not {mode!r}")
        self.mode = mode
        self.labeler = None
        self._lock = threading.Lock()
        self.note = "decision rules; intention from phrases"
        if mode != "rules":
            try:
                from mads_text.labelers import make_labeler

                self.labeler = make_labeler("attitude", "embedded")
                self.note = "decision rules; intention from phrases and the embedded attitude labeler"
            except Exception as e:  # heads not trained or extras missing: phrases only
                if mode == "embedded":
                    raise ValueError(f"the embedded attitude labeler cannot load: {e}") from e
                self.note = f"rules (decision rules and intention phrases); attitude labeler unavailable: {e}"

    @property
    def source(self) -> str:
        return "labeler+rules" if self.labeler is not None else "rules"

    def coarse(self, turns: list[Any]) -> list[str]:
        """Coarse attitude of each caller turn, labelled with the turns before it as context."""
        from mads_text.labelers import LabelItem

        items, context = [], []
        for t in _turns(turns):
            if t.role == "user" and t.text:
                items.append(LabelItem(id=str(len(items)), text=t.text, context=list(context)))
            context.append(t.text)
        if not items:
            return []
        with self._lock:
            return [lab.label for lab in self.labeler.label(items)]

    def detect(self, turns: list[Any], ended_by: str | None = None) -> OutcomeResult:
        """``ended_by``: None (the call goes on), 'caller', or anything else (the server ended it)."""
        ts = _turns(turns)
        decision = decide_call(ts)
        said = [t.text for t in ts if t.role == "user" and t.text]
        intent = next((p for p in map(intention_phrase, said) if p), "")
        source = "rules"
        if not intent and self.labeler is not None:
            try:
                if any(g in ("positive", "acceptance") for g in self.coarse(turns)):
                    intent, source = "positive attitude", "labeler+rules"
            except Exception:  # noqa: BLE001 - a labeler failure must not lose the call's outcome
                pass
        if decision.outcome == "accept":
            return OutcomeResult("accepted", True, "rules", decision.evidence, final=True)
        if decision.outcome == "withdraw":
            return OutcomeResult("withdrawn", bool(intent), source, decision.evidence, final=True)
        if ended_by is None:
            return OutcomeResult("intention" if intent else "open", bool(intent), source, intent)
        if intent:
            return OutcomeResult("intention", True, source, intent)
        return OutcomeResult("hung_up" if ended_by == "caller" else "no_decision", False, source)


_RULES = OutcomeDetector("rules")


def detect_outcome(turns: list[Any], ended_by: str | None = None) -> OutcomeResult:
    """Rules only; a server uses its own ``OutcomeDetector`` (labeler when available)."""
    return _RULES.detect(turns, ended_by)


OUTCOMES = ("accepted", "intention", "withdrawn", "hung_up", "no_decision", "error")
