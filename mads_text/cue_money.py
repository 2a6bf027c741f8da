"""Money in a customer's turn: a price objection ("I can't afford it", "it's too expensive"), which is an objection
the first time and a no when said again asking for nothing, and a doubt about the price ("I'm not sure I can afford
it"), which counts as the first saying. Used by ``cues.read_cues`` and ``decision.last_cues``."""

from __future__ import annotations

from .cue_times import _rx

# "I can't afford it" is an objection the first time; said again after the agent's answer it is a no
SOFT_NO = _rx(
    r"\bcan'?t afford\b(?! to (?:go|be|live|stay) without)", r"\bcannot afford\b(?! to (?:go|be|live|stay) without)",
    r"\bnot sure (?:if|whether) [^.?!]{0,30}\bis affordable\b", r"\b(?:don'?t|do not) think i can afford\b", r"\btoo expensive\b", r"\btoo much (?:money|for me)\b",
    r"\b(?:premium|price|cost|it|that|this|rmb|yuan|\d)\b[^.?!,]{0,12}\b(?:is|'s) too much\b",
    r"\bout of my (?:budget|price range|range)\b", r"\bmore than i can (?:afford|pay|spend|put)\b",
    r"\bdon'?t have (?:the|that|this|that kind of|enough|any) money\b", r"\b(?:don'?t|do not) have (?:any |the |enough )?(?:\w+ )?budget for\b", r"\b(?:don'?t|do not) have (?:the )?[\d,]{4,}(?: rmb| yuan)?\b",
    r"\b(?:can'?t|cannot|(?:don'?t|do not) think i can) (?:invest|lock (?:away|up)) (?:the|that|this|my|so much|that much) money\b", r"\bno money to spare\b", r"\bnot in (?:my|the) budget\b",
    r"\bmoney is (?:tight|short)\b", r"\b(?:can'?t|(?:don'?t|do not) want to) take on (?:another|any more|more)\b", r"\bcan'?t (?:pay|spend) (?:that|this|so) much\b",
    r"\bcan'?t (?:put|pay|spend|afford) more than\b", r"\bnot affordable\b", r"\bunaffordable\b", r"\bmore than i (?:want|'?m willing|am willing) to (?:spend|pay|put)\b",
    r"\b(?:don'?t|do not) have [^.?!]{0,20}\b(?:spare|to spare)\b", r"\b(?:don'?t|do not) have enough\b",
    r"\b(?:haven'?t|have not) got (?:enough|the|any)(?: \w+)? money\b", r"\b(?:don'?t|do not) have any more money\b",
    r"\bcan'?t (?:put|pay|spend) (?:[\d,]+|that|this|so much|it)\b",
    r"\bcosts? (?:me )?more than (?:what )?i (?:have|can|earn|make)\b", r"\bcosts? (?:a lot|too much)\b",
    r"\b(?:don'?t|do not) want to (?:spend|pay) any more(?: money)?\b(?! than)",
)
# a doubt about the price ("I'm not sure if I can afford it") makes a later "I can't afford it" the second saying
PRICE_DOUBT = _rx(r"\bnot sure (?:(?:if|whether|that) )?i (?:can|could) (?:afford|pay|handle)\b", r"\bmake sure i can afford\b",
                  r"\bnot sure (?:if|whether) (?:it|this|that) fits my budget\b", r"\bnot sure (?:if|whether) i have enough (?:money|savings|funds)\b",
                  r"\b(?:it|that|this)(?:'s| is| looks| seems)(?: like it's)? (?:quite|very|really|rather|so|a bit) expensive\b(?!,? but\b)",
                  # "The premium amount is quite high." (not a treatment's cost)
                  r"\b(?:premium|price)\b[^.?!,]{0,15}\b(?:is|'s|seems|looks) (?:quite|very|really|rather|so|a bit) high\b(?!,? but\b)",
                  r"\b(?:not sure|don'?t know) (?:if|whether) (?:it'?s|it is) (?:ok(?:ay)?|fine) (?:for me )?to pay\b",
                  # "I am trying to decide whether I can afford it", "the amount ... is still a bit tight"
                  r"\b(?:decide|figure out|work out) (?:whether|if) i (?:can|could) afford\b",
                  r"\b(?:money|budget|amount|finances?|it|that)\b[^.?!]{0,60}\b(?:is|'s|are) (?:still )?(?:a bit|a little|too|quite|very|rather) tight\b",
                  r"\b(?:requires|needs|takes) (?:a lot of|so much|too much) money\b")
