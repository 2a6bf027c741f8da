"""Times and bookings in a customer's turn: what makes a booking specific ("Saturday at ten", "tomorrow at 3 PM",
"in two hours"; not "next week" or "soon"), a wish to book as against a booking, and a time given in answer to the
agent's question for one. Used by ``cues.read_cues``."""

from __future__ import annotations

import re


def _rx(*pats: str) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in pats), re.IGNORECASE)


_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
# a named day or clock time: what makes a booking specific ("next week" and "soon" do not)
_WHEN = (rf"\b(?:{_DAYS}|tomorrow|tonight|today|this (?:morning|afternoon|"
         r"evening|weekend)|\d{1,2}(?::\d\d)? ?(?:am|pm|a\.m|p\.m|o'?clock)|(?:at|by) (?:\d{1,2}(?::\d\d)?|noon|one|two|three|"
         r"four|five|six|seven|eight|nine|ten|eleven|twelve)\b|in (?:an?|one|two|three|four|five|\d+) (?:hours?|minutes)\b)")
WHEN = re.compile(_WHEN, re.IGNORECASE)
# wanting to book is accepting only with a specific time (or a home test drive): "I want to schedule a test drive" is
# a wish, "I'm ready to schedule it" after the agent's "Let's schedule a test drive" a yes
BOOKING = re.compile(r"\b(?:book|schedule|reserve|come (?:in|by|over)|make an appointment|test[- ]drive)\b", re.IGNORECASE)
WISH = re.compile(r"\b(?:want|would like|'d like|'d love|need|hope|happy|glad|willing|pleased) (?:to\b|a test[- ]drive)|\bi think i'?ll\b",
                  re.IGNORECASE)
TEST_DRIVE_WISH = re.compile(r"\bto test[- ]drive\b|\b(?:want|like|love) a test[- ]drive\b", re.IGNORECASE)
HOME_OR_CONTACT = re.compile(r"\bhome\b|\b(?:number|e-?mail|contact details) is\b|\breach me (?:at|on)\b", re.IGNORECASE)

# a time and nothing else, in answer to the agent's question for one ("Which day and time suit you?" - "Next Thursday
# at 7 PM.")
ASKS_TIME = _rx(r"\b(?:what|which) (?:day|date|time)s?\b[^.?!]*\?", r"\bdate and time\b[^.?!]*\?", r"\bwhen (?:would|can|could|are|is|will)\b[^.?!]*\?")
TIME_ONLY = _rx(rf"^\W*(?:(?:ok|okay|yes|yeah|sure|alright|then|um|well|let'?s say|say|maybe)\W+)*(?:on |at )?(?:next |this )?"
                rf"(?:{_DAYS}|tomorrow|tonight)\b[^.?!,;]{{0,25}}(?:,? please)?\W*$")
# a day or time put as a question, in answer to the agent's question for one ("Which day and time suit you?" - "I want
# to go at the weekend, can we go on Sunday?")
TIME_ASKED = _rx(rf"(?:^|,\s*)\W*(?:(?:ok|okay|yes|yeah|so|then)\W+)*(?:can|could|shall) (?:we|i|you) (?:go|come|do it|do the test[- ]drive|"
                 rf"book (?:it|one|the test[- ]drive)|make it|meet)\b[^.?!]{{0,20}}{_WHEN}[^.?!]{{0,15}}\?")
# a day and a clock time of the customer's own, asked for ("Can I come by tomorrow at 9 a.m.?"): a booking in question
# form, whether or not the agent asked for a time ("Can I come by next week?" names no time)
_CLOCK = r"\d{1,2}(?::\d\d)? ?(?:am|pm|a\.m|p\.m|o'?clock)\b|\b(?:at|by) \d{1,2}(?::\d\d)?\b"
_DAY = rf"\b(?:(?:this |next )?(?:{_DAYS})|tomorrow|tonight|today)\b"
SLOT_ASKED = _rx(rf"\b(?:can|could|may|shall) (?:i|we) (?:come (?:in|by|over)|book|schedule|do|take|have|go)\b[^.?!]{{0,40}}"
                 rf"(?:{_DAY}[^.?!]{{0,20}}(?:{_CLOCK})|(?:{_CLOCK})[^.?!]{{0,20}}{_DAY})[^?!]{{0,20}}\?")
