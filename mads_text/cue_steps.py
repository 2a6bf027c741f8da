"""What the agent asks for: a concrete proposal of the accepting step ("Shall I send you the link?", "Would you like to
book a test drive?"), which a plain yes or no then answers, as against a question for information. Used by
``cues.read_cues`` and ``cues.proposes``."""

from __future__ import annotations

import re

from .cue_times import _DAYS, _rx

PROPOSAL = _rx(
    r"\b(?:shall|should|can|may|could) i (?:go ahead and )?(?:send|book|schedule|sign|set|put|register|arrange|get|start|"
    r"email|text|reserve|process|pencil)\b",
    # "Would you like to ..." and "Do you want to ..." ask the same
    r"\b(?:would you like|do you want) (?:me )?to (?:send|book|schedule|sign|set|go ahead|apply|start|get|receive|reserve|register|"
    r"subscribe|proceed|take|try|come|do|pay)\b",
    r"\bi (?:recommend|suggest|propose) (?:that )?(?:you|we) (?:complete|fill|sign|apply|book|take|start|do|schedule|subscribe)\b",
    r"\b(?:are you )?ready to (?:apply|sign|book|proceed|go ahead|subscribe|start|buy)\b",
    r"\b(?:shall|can|should) we (?:book|schedule|go ahead|proceed|set|start|get|reserve|pencil)\b",
    r"\bhow about (?:we )?(?:book|schedul|send|reserv|sign)", r"\bwhich (?:day|time|slot|date) (?:works|suits|is)\b",
    r"\bwhat time (?:works|suits|is good)\b", r"\b(?:may|can) i have your (?:number|email|contact)\b",
    r"\b(?:can|could|would|will) you (?:please )?(?:fill (?:in|out)|complete|do the|take the|sign|book|come (?:in|by)|"
    r"schedule|confirm|download|open the app|start the)\b",
    r"\blet'?s (?:go ahead and )?(?:book|schedule|set (?:it|that|you) up|get you|start|reserve|pencil|apply|sign you up)\b",
    r"\bi(?: can| could| will|'ll) (?:go ahead and )?(?:send|book|schedule|reserve|set up|arrange) (?:you|it|that|a|the)\b",
    rf"\bwould (?:{_DAYS}|tomorrow|this week|next week)\b[^.?!]{{0,30}}\bwork\b",
    r"\bwe (?:can|could|will|'?ll) (?:go ahead and )?(?:schedule|book|set up|send|arrange|reserve|start)\b",
    # "I would like to book a 30-minute test drive at your showroom this Saturday at 10 am."
    r"\bi(?:'d| would) (?:like|love) to (?:book|schedule|reserve|arrange) (?:you|a|an|the)\b",
    r"\bis it (?:okay|ok|alright|all right|fine)(?: (?:with|for) you)? if (?:i|we) (?:go ahead and )?(?:send|book|schedule|set|sign|"
    r"register|arrange|reserve|email|text)\b",
)

# a proposal counts only when it is about the step that accepts, not "we can start with the premium"
ACCEPT_OBJECT = re.compile(r"\b(?:link|application|apply|sign|buy|purchase|policy|plan|test[- ]drive|drive|appointment|"
                           r"visit|book|booking|subscri\w*|assessment|questionnaire|order|contract|quote|contact|number|"
                           r"e-?mail|slot|showroom|branch|app|account|donat\w*|pay|form)\b", re.IGNORECASE)

# a question that asks for a yes to what was just proposed ("Can you confirm that?", "Does that work for you?")
CONFIRMS = _rx(r"\bconfirm\b", r"\bagree\b", r"\binterested\b", r"\b(?:sound|sounds) (?:good|ok|okay|fine)\b", r"\bdeal\b",
               r"\b(?:that|it|this)\b[^?]{0,20}\b(?:work|works|suit|suits|okay|ok|fine|good|alright)\b")

# a question by its words, for speech whose transcript lost the mark ("How much does it cost per month.", "Does it
# cover cancer.": an ear's or an ASR's punctuation)
ASKED = re.compile(r"(?:^|[.!?]\s+)(?:(?:so|and|ok|okay|well|hi|hello|but)\W+)*(?:how|what|which|when|where|why|who|"
                   r"(?:do|does|did|is|are|can|could|will|would|should|may|have|has)\s+(?:i|you|it|this|that|there|the|we|"
                   r"my|your|they|he|she))\b", re.IGNORECASE)

# "So, how much do you want to pay?" asks for an amount; a yes cannot answer it
WH_QUESTION = re.compile(r"^\W*(?:(?:so|and|ok|okay|well)\W+)*(?:how|what|which|when|where|why|who)\b", re.IGNORECASE)

# a question ending in a choice: "Do you want to pay monthly or yearly?", "... at our showroom or at your home?"
EITHER_OR = re.compile(r"\bor (?:\w+ ){0,2}\w+\W*\?\W*$", re.IGNORECASE)

# the seller's act said by the customer ("Okay, I'll send you the link now."): the agent's line said back, no yes
SELLER_ACT = re.compile(r"\bi(?:'ll| will| can) (?:send|book|schedule|reserve|arrange) you\b|\bi(?:'ll| will) have (?:the|an|your) [\w ]{0,20}sent to you\b",
                        re.IGNORECASE)
# a customer speaking of themselves: "No, I can't afford it." declines what the agent said it will do; "No, the cover
# doesn't stop at 70" corrects a fact
SELF = re.compile(r"\b(?:i|i'm|me|my|thanks?)\b", re.IGNORECASE)
# the agent's question offers help ("Do you need help with that?"): a no to it ("No, I don't want that.") turns down the
# help, not the offer
HELP_OFFER = re.compile(r"\b(?:need|want|like) (?:any |some |my |our )?(?:help|assistance)\b[^.?!]*\?\W*$|\b(?:can|may|shall) i help\b[^.?!]*\?\W*$",
                        re.IGNORECASE)
NO_TO_IT = re.compile(r"\W*no\b\W*(?:(?:thanks?|thank you)\W*)?(?:i (?:don'?t|do not) (?:want|need) (?:that|it|any)\W*)?", re.IGNORECASE)
# "Okay, so let's take a look at my current investments." turns to something else
REDIRECT = _rx(r"^\W*(?:ok(?:ay)?|alright|all right|yes|yeah|sure)\W+(?:so\W+)?let(?:'s| us) (?:first )?(?:take a look|look|talk|discuss|"
               r"think|see|check|review|go over|compare)\b")
# "Yes, I already have products like this." answers with a fact about oneself, not to the proposal
STATES_FACT = re.compile(r"\W*(?:yes|yeah)\W+i already have\b", re.IGNORECASE)
# "No, I just want to know if ...", "No, no, I don't know how to book it": a no that asks, not one that declines
ASKS_INSTEAD = _rx(r"\b(?:just|only) want to (?:know|ask|check|see|try|test)\b", r"\bdon'?t know how\b")
