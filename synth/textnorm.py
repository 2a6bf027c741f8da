"""Text clean-up before synthesis and normalisation before word error rate.

Small models leave markers, stage directions and markup in their turns; a TTS
engine would read them out. For WER, both sides are reduced to lower-case
words with digits spelled out, so "1,200" and "twelve hundred" styles of the
same number do not count as errors of the voice.
"""

from __future__ import annotations

import re
import unicodedata

_MARKERS = re.compile(r"\[[^\]]*\]")  # [ACCEPT], [WITHDRAW], [laughs]
_BOLD = re.compile(r"(\*\*|__)(.+?)\1")  # **word** is emphasis, spoken
_ACTIONS = re.compile(r"(?<![*\w])\*[^*]{1,80}\*(?![*\w])")  # *smiles* is a stage direction, not spoken
_PARENS = re.compile(r"\((?:[^()]{0,40})\)")  # (pause) (sighs)
_MARKUP = re.compile(r"[*_#`~<>|\\]+")
_SPACES = re.compile(r"\s+")


def speakable(text: str) -> str:
    """What the engine should say: markers, stage directions and markup removed."""
    t = unicodedata.normalize("NFKC", text or "")
    t = _MARKERS.sub(" ", t)
    t = _BOLD.sub(r"\2", t)
    t = _ACTIONS.sub(" ", t)
    t = _PARENS.sub(" ", t)
    t = _MARKUP.sub(" ", t)
    # drop emoji and other symbols espeak spells out by name
    t = "".join(ch for ch in t if unicodedata.category(ch)[0] != "S" or ch in "$%&+=@")
    t = _SPACES.sub(" ", t).strip()
    return t if re.search(r"[A-Za-z0-9]", t) else ""


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
