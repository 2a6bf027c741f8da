"""Outcome of a call from what the caller said.

Outcomes: ``accepted`` (conversion), ``withdrawn`` (an explicit no / goodbye),
``intention`` (interest shown, no decision), ``hung_up`` (the caller left with
none of these), ``no_decision`` (the server ended the call: turn cap or time
limit). Separately, ``intention`` is true for every call where interest was
shown, accepted ones included: that is the paper's user-intention rate.

Detection is by the end markers ``[ACCEPT]``/``[WITHDRAW]`` when a text
channel carries them, then by phrase rules over the caller's transcribed
turns, with negations ("I don't want to buy") handled; when the embedded
attitude labeler of ``mads_text.labelers`` has its trained heads installed, its
per-turn attitude is added (``OutcomeDetector``). Every call row says which
produced its outcome (``outcome_source``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from mads_text.agents import extract_marker

NEGATION = re.compile(r"\b(don'?t|do not|not|never|no|won'?t|can'?t|wouldn'?t|isn'?t|hardly)\b(\W+\w+){0,2}\W*$")

ACCEPT = [
    r"sign me up", r"i'?ll take (it|the (policy|plan))", r"i'?ll (buy|get|purchase|apply)", r"let'?s do (it|that)",
    r"send (me )?(the )?(application )?link", r"(i'?d|i would|i want to|i'?m ready to|i'?ll) (like to )?(buy|apply|purchase|sign up|go ahead)",
    r"count me in", r"go ahead (and|with)", r"sounds like a deal", r"it'?s a deal", r"where do i sign",
    r"book (me|it)", r"schedule (it|a time|the application)", r"(yes|yeah|okay|ok|sure),? (let'?s|please) (do it|go ahead|proceed|sign)",
]  # fmt: skip
WITHDRAW = [
    r"not interested", r"no,? thanks?", r"no,? thank you", r"don'?t call", r"stop calling", r"remove (me|my number)",
    r"take me off", r"leave me alone", r"good ?bye", r"\bbye\b", r"hang(ing)? up", r"i have to go", r"i'?m (too )?busy",
    r"not for me", r"i'?ll pass", r"waste of (my )?time", r"i don'?t need (it|this|that|insurance|a car|any)",
]  # fmt: skip
INTENTION = [
    r"how much", r"what('?s| is| are) the (price|premium|cost|rate|fee)", r"tell me more", r"sounds (good|interesting|great)",
    r"\binterested\b", r"what does it cover", r"call me (back|later|tomorrow|next)", r"send me (some |more )?(information|details|info)",
    r"i'?ll think about it", r"how do i (apply|sign up|buy)", r"\bmaybe\b", r"what about", r"can you explain",
    r"is there a (discount|cheaper)", r"(i'?d|i would) like to know",
]  # fmt: skip


def _compile(pats: list[str]) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in pats), re.IGNORECASE)


_ACCEPT, _WITHDRAW, _INTENT = _compile(ACCEPT), _compile(WITHDRAW), _compile(INTENTION)


def _hits(rx: re.Pattern, text: str) -> list[str]:
    out = []
    for m in rx.finditer(text):
        before = text[max(0, m.start() - 30) : m.start()]
        if NEGATION.search(before):
            continue  # "I don't want to buy", "not sign me up"
        out.append(m.group(0))
    return out


@dataclass
class TurnSignal:
    accept: list[str]
    withdraw: list[str]
    intention: list[str]
    marker: str | None = None


def turn_signal(text: str) -> TurnSignal:
    cleaned, marker = extract_marker(text)
    low = cleaned.lower()
    withdraw = _hits(_WITHDRAW, low)
    # "not interested" must not count as interest
    masked = _WITHDRAW.sub(" ", low)
    return TurnSignal(_hits(_ACCEPT, low), withdraw, _hits(_INTENT, masked), marker)


@dataclass
class OutcomeResult:
    outcome: str
    intention: bool
    source: str
    evidence: str = ""
    final: bool = False  # the caller made a decision; the call can close


def _user_texts(turns: list[Any]) -> list[str]:
    out = []
    for t in turns:
        role = t["role"] if isinstance(t, dict) else t.role
        text = t["text"] if isinstance(t, dict) else t.text
        if role == "user" and text:
            out.append(text)
    return out


def rule_outcome(turns: list[Any], ended_by: str | None = None) -> OutcomeResult:
    """Outcome from markers and phrases. ``ended_by``: None (call goes on), 'caller', or anything else (server)."""
    accept_ev = withdraw_ev = intent_ev = ""
    for text in _user_texts(turns):
        s = turn_signal(text)
        if s.marker == "accept" or s.accept:
            accept_ev = accept_ev or (f"[{s.marker.upper()}]" if s.marker == "accept" else s.accept[0])
        elif s.marker == "withdraw" or s.withdraw:
            withdraw_ev = f"[{s.marker.upper()}]" if s.marker == "withdraw" else s.withdraw[0]
        if s.intention:
            intent_ev = intent_ev or s.intention[0]
    intention = bool(accept_ev or intent_ev)
    if accept_ev:
        return OutcomeResult("accepted", True, "rules", accept_ev, final=True)
    if withdraw_ev:
        return OutcomeResult("withdrawn", intention, "rules", withdraw_ev, final=True)
    if ended_by is None:
        return OutcomeResult("intention" if intention else "open", intention, "rules", intent_ev)
    if intention:
        return OutcomeResult("intention", True, "rules", intent_ev)
    return OutcomeResult("hung_up" if ended_by == "caller" else "no_decision", False, "rules")


class OutcomeDetector:
    """Rules, plus the embedded attitude labeler of ``mads_text.labelers`` when its trained heads are installed.

    With the labeler, each caller turn also gets a coarse attitude (negative, neutral, positive,
    acceptance) in the context of the call: a last turn labelled ``acceptance`` counts as a
    conversion and any ``positive``/``acceptance`` turn as intention, on top of the rules. An
    explicit refusal found by the rules in that last turn wins over the labeler.
    """

    def __init__(self, mode: str = "auto"):
        if mode not in ("auto", "rules", "embedded"):
            raise ValueError(f"outcome mode must be auto, rules or embedded, not {mode!r}")
        self.mode = mode
        self.labeler = None
        self._lock = threading.Lock()
        self.note = "rules (markers and phrases)"
        if mode != "rules":
            try:
                from mads_text.labelers import make_labeler

                self.labeler = make_labeler("attitude", "embedded")
                self.note = "embedded attitude labeler + rules"
            except Exception as e:  # heads not trained or extras missing: rules only
                if mode == "embedded":
                    raise ValueError(f"the embedded attitude labeler cannot load: {e}") from e
                self.note = f"rules (markers and phrases); attitude labeler unavailable: {e}"

    @property
    def source(self) -> str:
        return "labeler+rules" if self.labeler is not None else "rules"

    def coarse(self, turns: list[Any]) -> list[str]:
        """Coarse attitude of each caller turn, labelled with the turns before it as context."""
        from mads_text.labelers import LabelItem

        items, context = [], []
        for t in turns:
            role = t["role"] if isinstance(t, dict) else t.role
            text = t["text"] if isinstance(t, dict) else t.text
            if role == "user" and text:
                items.append(LabelItem(id=str(len(items)), text=text, context=list(context)))
            context.append(text)
        if not items:
            return []
        with self._lock:
            return [lab.label for lab in self.labeler.label(items)]

    def detect(self, turns: list[Any], ended_by: str | None = None) -> OutcomeResult:
        res = rule_outcome(turns, ended_by)
        if self.labeler is None:
            return res
        try:
            groups = self.coarse(turns)
        except Exception:  # noqa: BLE001 - a labeler failure must not lose the call's outcome
            return res
        if not groups:
            return res
        texts = _user_texts(turns)
        last = turn_signal(texts[-1])
        intention = res.intention or any(g in ("positive", "acceptance") for g in groups)
        if res.outcome == "accepted":
            return OutcomeResult("accepted", True, "labeler+rules", res.evidence, final=True)
        if groups[-1] == "acceptance" and not last.withdraw and last.marker != "withdraw":
            return OutcomeResult("accepted", True, "labeler", f"attitude of the last turn: acceptance ({texts[-1][:60]})", final=True)
        if res.outcome == "withdrawn":
            return OutcomeResult("withdrawn", intention, "labeler+rules", res.evidence, final=True)
        if ended_by is None:
            return OutcomeResult("intention" if intention else "open", intention, "labeler+rules", res.evidence)
        if intention:
            return OutcomeResult("intention", True, "labeler+rules", res.evidence or "positive attitude")
        return OutcomeResult("hung_up" if ended_by == "caller" else "no_decision", False, "labeler+rules")


_RULES = OutcomeDetector("rules")


def detect_outcome(turns: list[Any], ended_by: str | None = None) -> OutcomeResult:
    """Rules only; a server uses its own ``OutcomeDetector`` (labeler when available)."""
    return _RULES.detect(turns, ended_by)


OUTCOMES = ("accepted", "intention", "withdrawn", "hung_up", "no_decision", "error")
