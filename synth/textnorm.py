"""Text clean-up before synthesis and normalisation before word error rate.

Small models leave markers, stage directions and markup in their turns; a TTS
engine would read them out. ``speakable`` is the one clean-up for every voice
in the project: the synthesis stage (so the training audio), the speech agent's
replies and the voice server all say exactly what it returns.
``sentence_complete`` decides when a streamed reply has a sentence ready to
voice. For WER, both sides are reduced to lower-case words with digits spelled
out, so "1,200" and "twelve hundred" styles of the same number do not count as
errors of the voice.
"""

from __future__ import annotations

import re
import unicodedata

_MARKERS = re.compile(r"\[[^\]]*\]")  # [ACCEPT], [WITHDRAW], [laughs]
_BOLD = re.compile(r"(\*\*|__)(.+?)\1")  # **word** is emphasis, spoken
_ACTIONS = re.compile(r"(?<![*\w])\*[^*]{1,80}\*(?![*\w])")  # *smiles* is a stage direction, not spoken
# (pause), (sighs), "(The call has connected. ...)" echoed from the prompt: any length, innermost first
_PARENS = re.compile(r"\([^()]*\)")
_MARKUP = re.compile(r"[*_#`~<>|\\]+")
_SPACES = re.compile(r"\s+")
# symbols that are words when read ("dollars", "percent", "and"); other symbols (emoji, arrows) are
# spelled out by name by espeak, so they go, except currency signs, which say what a price is in
_SPOKEN_SYMBOLS = "$%&+=@"
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s*$")


def speakable(text: str) -> str:
    """What the engine should say: markers, stage directions and markup removed; "" when nothing is left."""
    t = unicodedata.normalize("NFKC", text or "")
    t = _MARKERS.sub(" ", t)
    t = _BOLD.sub(r"\2", t)
    t = _ACTIONS.sub(" ", t)
    n = 1
    while n:  # "(sighs (quietly))": each pass removes the innermost pair
        t, n = _PARENS.subn(" ", t)
    t = _MARKUP.sub(" ", t)
    t = "".join(ch for ch in t if not _is_silent_symbol(ch))
    t = _SPACES.sub(" ", t).strip()
    # punctuation alone ("...", "-") says nothing; the engines' voices are English, so a Latin letter or digit must be left
    return t if re.search(r"[A-Za-z0-9]", t) else ""


def _is_silent_symbol(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] == "S" and cat != "Sc" and ch not in _SPOKEN_SYMBOLS


def sentence_complete(text: str, done: bool = False, min_chars: int = 12) -> bool:
    """Whether streamed reply text can be voiced now: the stream ended, or it ends a sentence.

    A sentence shorter than ``min_chars`` waits for the next one ("Yes." then "Of course."),
    so a reply is not voiced in clipped fragments with a pause between each.
    """
    return done or (len(text.strip()) >= min_chars and _SENTENCE_END.search(text) is not None)


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()  # fmt: skip
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))


def number_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for value, word in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return number_words(head) + " " + word + ("" if rest == 0 else " " + number_words(rest))
    return str(n)  # pragma: no cover


def _spell(m: re.Match) -> str:
    s = m.group(0).replace(",", "")
    if "." in s:
        whole, frac = s.split(".", 1)
        return number_words(int(whole or 0)) + " point " + " ".join(_ONES[int(d)] for d in frac)
    if len(s) > 12:
        return " ".join(_ONES[int(d)] for d in s)
    return number_words(int(s))


_CONTRACTIONS = {"'m": " am", "'re": " are", "'ve": " have", "'ll": " will", "'d": " would", "n't": " not"}


def wer_words(text: str) -> list[str]:
    t = unicodedata.normalize("NFKC", text or "").lower().replace("\u2019", "'")
    t = t.replace("%", " percent ").replace("&", " and ").replace("$", " dollars ")
    t = re.sub(r"\d[\d,]*(?:\.\d+)?", _spell, t)
    t = re.sub(r"\b(can)'t\b", r"\1 not", t)
    t = re.sub(r"\bwon't\b", "will not", t)
    t = re.sub(r"\bcannot\b", "can not", t)
    for k, v in _CONTRACTIONS.items():
        t = t.replace(k, v)
    t = re.sub(r"[^a-z' ]+", " ", t.replace("-", " "))
    return [w.strip("'") for w in t.split() if w.strip("'")]
