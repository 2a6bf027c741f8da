"""Checks on one generated utterance: what a reply may keep, and why a sample must be drawn again.

Small models slip out of role: they echo speaker prefixes, answer as the other speaker, repeat the last line,
write stage directions or a bare end marker, read their directions aloud, or say again what they already said.
``clean_reply`` and ``drop_repeats`` cut away what can be cut (never adding a word) and flag what needs a fresh
sample; the participants (``agents.py``) and the voice server's pipeline arm retry such samples and count them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

STAGE_ONLY = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*")


def has_words(text: str) -> bool:
    """Something is said outside stage directions and brackets."""
    return bool(re.search(r"[^\W_]", STAGE_ONLY.sub("", text)))


LEADING_STAGE = re.compile(r"^\s*(?:\((?!\s*\d)[^)]{1,60}\)|\*[^*]{1,60}\*|\[(?!\s*(?:ACCEPT|WITHDRAW|END)\s*\])[^\]]{1,60}\])\s*",
                           re.IGNORECASE)
# a marker cut before its closing bracket ("[ACCEPT" at the end of a reply) is still a marker, never words
MARKER_RE = re.compile(r"\[\s*(ACCEPT(?:ED)?|WITHDRAW(?:N|S)?)\s*(?:\]|$)", re.IGNORECASE)
GENERIC_PREFIXES = ("assistant", "user", "agent", "customer", "salesperson", "sales agent", "consultant", "caller", "client")
# what a salesperson says and a customer does not: a customer line with one of these took over the other role
SALES_LINES = ("we offer", "we can offer", "i can offer you", "i'd like to sell", "i would like to sell",
               "would you like to buy", "would you like to sign up", "would you like to book", "would you like to apply",
               "our company offers", "let me tell you about our")
# the same as patterns: the caller's purpose and closing questions, which the called customer never has
SALES_RX = re.compile(
    r"\b(?:i'?m|i am) calling (?:to|about|from|you)\b|\bcalling (?:you )?to (?:recommend|offer|sell|introduce|present)\b|"
    r"\bare you interested in (?:booking|buying|purchasing|applying|subscribing|signing|taking|a test drive|our)\b|"
    r"\bwould you like (?:to|me to) (?:book|buy|purchase|apply|subscribe|sign|schedule|have a test drive)\b|"
    r"\b(?:can|may) i interest you\b", re.IGNORECASE)
# what a customer says and a salesperson does not: an agent line with one of these took over the customer's role
CUSTOMER_RX = re.compile(
    r"\bi(?:'d| would) like to (?:have|book|take|schedule|go for) a test drive\b|\bi (?:can'?t|cannot) afford\b|"
    r"\bi(?:'m| am) not interested\b|\bsign me up\b|\bi'?ll think about it\b|"
    r"\bhow much (?:do|would|will|should) i (?:need to |have to )?pay\b|\bexactly what i(?:'m| am) looking for\b|"
    r"\bi(?:'m| am) not sure (?:if|whether) i (?:want|should|can afford)\b|"
    # the agent's own ask answered in its mouth ("Ok, I want to subscribe 10,000 RMB in the app today.")
    r"\bi(?:'d| would)? (?:like|want) to (?:subscribe|buy|apply|purchase|sign up)\b|"
    r"\b(?:i think )?(?:i'?ll|i will) (?:(?:subscribe|buy|purchase)(?! (?:you|it for you)\b)|take it(?! from\b))\b|"
    # "I think I should subscribe now.", "I'm happy to subscribe 10,000 RMB in the app today.", "I'm looking to buy a product"
    r"\bi think i should (?:subscribe|buy|purchase|sign up|apply|invest)\b|"
    r"\bi(?:'m| am) (?:happy|ready|glad|going|looking) to (?:subscribe|buy|purchase|sign up|invest)\b|"
    # the link goes to the customer: "Sure, please send me the application link now." is the customer's line
    r"\b(?:please )?send me the (?:application |sign-?up |payment )?link\b", re.IGNORECASE)
# the chat model's own voice, which neither a salesperson nor a customer on a call has ("I'm sorry, but I can't assist
# with that."); checked for both speakers like the other role's phrases
ASSISTANT_RX = re.compile(r"\bi (?:can'?t|cannot) assist with (?:that|this|your request)\b|\bas an ai\b|\bi'?m an ai\b|"
                          r"\bas a language model\b", re.IGNORECASE)
ECHO_WORDS = 6  # a sentence this long said nearly word for word after the other speaker is theirs, not an answer


def trim_to_sentence(text: str, min_chars: int = 20) -> str:
    """Cut a reply that hit the token limit back to its last finished sentence."""
    m = list(re.finditer(r"[.!?](?=\s|$)", text))
    if m and m[-1].end() >= min_chars:
        return text[: m[-1].end()]
    return text


SENTENCE_END = re.compile(r"""[.!?…]["')\]]*\s*$""")


def ends_sentence(text: str) -> bool:
    """The words (end markers aside) end a sentence, as a finished reply does."""
    return bool(SENTENCE_END.search(extract_marker(text)[0]))


def extract_marker(text: str) -> tuple[str, Literal["accept", "withdraw"] | None]:
    """Strip end markers; the last one in the text decides."""
    found = MARKER_RE.findall(text)
    marker = None
    if found:
        marker = "accept" if found[-1].upper().startswith("ACCEPT") else "withdraw"
    cleaned = MARKER_RE.sub("", text)
    if MARKER_RE.match(text.lstrip()):  # "[WITHDRAW]. I'm withdrawing." leaves no stray full stop in front of the words
        cleaned = re.sub(r"^[\s.,;:]+", "", cleaned)
    return re.sub(r"\s{2,}", " ", cleaned).strip(), marker


def norm_words(s: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", s.lower())


def _overlap(a: str, b: str) -> float:
    wa, wb = set(norm_words(a)), set(norm_words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


@dataclass
class Cleaned:
    text: str
    cleaned: bool = False  # something was cut away
    retry: str | None = None  # reason the sample must be redrawn


def clean_reply(
    raw: str,
    *,
    own_name: str,
    other_name: str,
    other_last: str | None,
    impersonation: list[str | re.Pattern] | None = None,
    instructions: list[str | re.Pattern] | None = None,
    other_said: list[str] | None = None,
) -> Cleaned:
    """Repair or reject one generated utterance of ``own_name``. ``impersonation``: phrases or patterns only the other
    role says; ``other_said``: the other speaker's sentences so far in the call."""
    text = raw.replace("\r", "").strip()
    cleaned = False
    names = [own_name, other_name, *GENERIC_PREFIXES]
    prefix_re = re.compile(r"^\s*\**(" + "|".join(re.escape(n) for n in names) + r")\**\s*:\s*", re.IGNORECASE)
    # a leading prefix: our own name is harmless, the other speaker's means we speak for them
    m = prefix_re.match(text)
    while m:
        who = m.group(1).lower()
        if who == other_name.lower():
            return Cleaned(text[m.end():], True, "spoke as the other speaker")
        text = text[m.end():]
        cleaned = True
        m = prefix_re.match(text)
    # a speaker prefix later on starts a line of someone else: cut there
    mid = re.compile(r"(?:^|\s|\n)\**(" + "|".join(re.escape(n) for n in names) + r")\**\s*:", re.IGNORECASE)
    m = mid.search(text)
    if m and m.start() > 0:
        text = text[: m.start()]
        cleaned = True
    if "\n" in text:
        text = text.split("\n", 1)[0]
        cleaned = True
    text = text.strip().strip('"').strip()
    core, marker = extract_marker(text)
    if not core:
        return Cleaned(text, cleaned, "marker only" if marker else "empty")
    if not has_words(core):  # "[END]", "(hangs up)", "[", ".": no words spoken
        return Cleaned(text, cleaned, "empty")
    # a direction in front of the words ("(short, casual speech) Hi") is no part of what was said: cut it, with the
    # punctuation it leaves behind ("(smiles). Thanks." is "Thanks.")
    lead = LEADING_STAGE.match(text)
    if lead:
        text, cleaned = text[lead.end():].lstrip(" .,;:-"), True
    # a parenthesis anywhere that restates the speaker's directions ("(proposes exactly that next step)", "(Fang still
    # has this doubt: ...)") is a stage direction, never said: cut it
    notes = [n for n in instructions or [] if isinstance(n, str)]
    for m in reversed(list(PAREN.finditer(text))):
        if any(_shares_run(m.group(1), n, DIRECTION_WORDS) for n in notes):
            text, cleaned = (text[: m.start()].rstrip() + " " + text[m.end():].lstrip(" .,;")).strip(), True
    core, marker = extract_marker(text)
    if not has_words(core):
        return Cleaned(text, cleaned, "empty")
    # a parenthesis opened and never closed is a private reminder read out ('(for example: "Can I subscribe ...?"')
    if core.lstrip().startswith("(") and ")" not in core:
        return Cleaned(text, cleaned, "recited its instructions")
    # the checks read typographic apostrophes as plain ones ("I’m sorry, but I can’t assist with that."); the text stays
    core = core.replace("’", "'").replace("‘", "'")
    if LOOP.search(core):
        return Cleaned(text, cleaned, LOOPED)
    if other_last and len(norm_words(core)) >= 4 and _overlap(core, other_last) >= 0.8:
        return Cleaned(text, cleaned, "echoed the other speaker")
    for phrase in impersonation or []:
        m = phrase.search(core) if isinstance(phrase, re.Pattern) else (phrase.lower() in core.lower() and phrase)
        if m:
            said = m.group(0) if isinstance(m, re.Match) else m
            return Cleaned(text, cleaned, f"spoke in the other role ('{said}')")
    if other_said and (echo := _echoed_sentence(core, other_said)):
        return Cleaned(text, cleaned, f"echoed the other speaker ('{echo}')")
    if any(n.search(core) if isinstance(n, re.Pattern) else _shares_run(core, n) for n in instructions or []):
        return Cleaned(text, cleaned, "recited its instructions")
    return Cleaned(text, cleaned)


def _echoed_sentence(said: str, other_said: list[str]) -> str | None:
    """A sentence of ``said`` that nearly repeats one of the other speaker's ("I am calling to recommend the Steady
    Growth 180 to you" from the customer). A question about a stated fact ("Is the warranty 8 years?") is an answer."""
    for sent in sentences(said):
        if len(norm_words(sent)) < ECHO_WORDS:
            continue
        for other in other_said:
            if _overlap(sent, other) >= 0.8 and not (sent.rstrip().endswith("?") and not other.rstrip().endswith("?")):
                return sent
    return None


# a sample stuck in a loop: the same one to three words six times or more in a row ("No, no, no, no, no, no, ...")
LOOP = re.compile(r"\b(\w+(?:\W+\w+){0,2})(?:\W+\1\b){5,}", re.IGNORECASE)
LOOPED = "looped"
PAREN = re.compile(r"\(([^()]{3,300})\)")
DIRECTION_WORDS = 3  # a parenthesis sharing three words in a row with the directions is one of them
# the header's "Product facts Chen Jie can use" read out as "You can use the fact that ..."
FACTS_FRAME = re.compile(r"\b(?:i|you|we) can use the facts?\b", re.IGNORECASE)

RECITED_WORDS = 6  # six words in a row from a private note are the note read aloud, not a turn of phrase


def _shares_run(said: str, note: str, n: int = RECITED_WORDS) -> bool:
    a, b = norm_words(said), norm_words(note)
    grams = {tuple(b[i:i + n]) for i in range(len(b) - n + 1)}
    return any(tuple(a[i:i + n]) in grams for i in range(len(a) - n + 1))


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _same_sentence(a: str, b: str) -> bool:
    wa, wb = norm_words(a), norm_words(b)
    if len(wa) < 4 or len(wb) < 4:  # "Sure." and "Of course." may come back
        return False
    return wa == wb or _overlap(a, b) >= 0.8


def drop_repeats(text: str, said_before: list[str], turns_before: list[str] = ()) -> tuple[str, int]:
    """Remove the sentences of ``text`` that repeat one said before in the call or earlier in ``text``; a whole
    turn of two words or more that repeats an earlier turn of the speaker word for word is a repeat ("Hi, Susan."
    five times, "Li Wei?" eight times); a one-word turn ("Okay.") may come back."""
    if len(norm_words(text)) >= 2 and norm_words(text) in [norm_words(t) for t in turns_before]:
        return "", len(sentences(text))
    kept: list[str] = []
    dropped = 0
    for sent in sentences(text):
        if any(_same_sentence(sent, old) for old in [*said_before, *kept]):
            dropped += 1
        else:
            kept.append(sent)
    return " ".join(kept), dropped
