"""Spoken product questions: does an arm answer what the caller asked about the product?

A question set (``mads_audio/questions/<scenario>.yaml``, or any file in that schema) lists facts of a
scenario's product, each with a few ways a caller asks about it and the patterns a reply must match to
state it. ``mads eval questions`` voices every phrasing with persona voices drawn from the scenario's
priors (assigned as ``mads synth`` assigns them), clean and through a phone line, and asks:

- ``text``: the Dialog Agent reading the question as written (a perfect ear: the ceiling);
- ``cascade``: Whisper's transcript of the clip read by the same Dialog Agent (the pipeline arm);
- ``speech``: a speech-LLM checkpoint hearing the clip (``--ckpt``);
- ``shuffled``: the Dialog Agent reading a question about another fact, scored against this one. This is
  the control: how often a reply "states the fact" without being asked (an agent that recites its price
  every turn, or a pattern that is too lax).

Every answer is one line of ``OUT/answers.jsonl``, written as soon as it exists, so a stopped run resumes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from mads_text.agents import derive_seed
from mads_text.metrics import wilson_interval

QUESTIONS_DIR = Path(__file__).parent / "questions"
Arm = Literal["text", "cascade", "speech", "shuffled"]
Variant = Literal["clean", "phone"]


class QuestionSetError(ValueError):
    pass


class ProductQuestion(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    fact: str = Field(min_length=1, description="the fact a right answer states, for people reading the report")
    ask: list[str] = Field(min_length=1, description="ways a caller asks about it; each is voiced")
    expect: list[str] = Field(min_length=1, description="regular expressions; a reply states the fact when all match")

    @field_validator("expect")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"pattern {p!r} does not compile: {e}") from e
        return v

    def stated_in(self, reply: str) -> bool:
        said = normalise(reply)
        return all(re.search(p, said, re.IGNORECASE) for p in self.expect)


class QuestionSet(BaseModel):
    scenario: str
    questions: list[ProductQuestion] = Field(min_length=2)

    @model_validator(mode="after")
    def _unique(self) -> QuestionSet:
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"question ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
        return self

    def get(self, qid: str) -> ProductQuestion:
        return next(q for q in self.questions if q.id == qid)


def normalise(text: str) -> str:
    """What the patterns are matched against: typographic apostrophes made plain, thousands separators dropped, per
    cent written '%'."""
    t = text.replace("\u2019", "'")
    t = re.sub(r"(?<=\d)[,\u2009 ](?=\d{3}\b)", "", t)
    t = re.sub(r"\s*(?:%|％|\bper ?cent\b)", "%", t, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", t)


def load_questions(scenario_or_path: str) -> QuestionSet:
    """The set shipped for a built-in scenario, or a YAML file; errors name the field at fault."""
    path = Path(scenario_or_path)
    if not path.suffix:
        path = QUESTIONS_DIR / f"{scenario_or_path}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in QUESTIONS_DIR.glob("*.yaml")))
        raise QuestionSetError(f"no question set {scenario_or_path!r} (shipped: {shipped}; or give a YAML path)")
    try:
        return QuestionSet.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as e:
        raise QuestionSetError(f"{path}: not valid YAML: {e}") from e
    except ValidationError as e:
        where = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise QuestionSetError(f"{path}: {where}") from e


class Item(BaseModel):
    """One phrasing voiced by one persona voice."""

    id: str
    qid: str
    text: str
    speaker: str


def make_items(qs: QuestionSet, speakers: list[str], per_phrasing: int = 1) -> list[Item]:
    """Each phrasing voiced by ``per_phrasing`` speakers, the speakers taken in turn over the whole set."""
    if not speakers:
        raise QuestionSetError("no voices to ask the questions with")
    items, n = [], 0
    for q in qs.questions:
        for k, text in enumerate(q.ask):
            for _ in range(min(per_phrasing, len(speakers))):
                spk = speakers[n % len(speakers)]
                n += 1
                items.append(Item(id=f"{q.id}-{k}-{spk}", qid=q.id, text=text, speaker=spk))
    return items


def shuffled_partner(qs: QuestionSet, item: Item) -> str:
    """A question about another fact (fixed per item), for the control arm."""
    others = [t for q in qs.questions if q.id != item.qid for t in q.ask]
    return others[derive_seed(item.id, "shuffle") % len(others)]


def phone_line(audio: np.ndarray, item_id: str) -> np.ndarray:
    """The clip (16 kHz) through a phone line: always narrow-band and mu-law, noise drawn per clip."""
    from .augment import TelephonyConfig, telephony

    cfg = TelephonyConfig(p=1.0, p_band=1.0, p_mulaw=1.0)
    return telephony(audio, np.random.default_rng(derive_seed(item_id, "phone")), cfg)


class Answer(BaseModel):
    item: str
    qid: str
    arm: Arm
    variant: Variant
    asked: str = Field(description="what the arm was given to read (the question, Whisper's transcript, the CTC "
                                   "ear's tokens as text, or the other question); empty for the torch speech arm, "
                                   "which reads the audio itself")
    reply: str
    ok: bool

    @property
    def key(self) -> tuple[str, str, str]:
        return self.item, self.arm, self.variant


def read_answers(path: Path) -> list[Answer]:
    """The answers already written; a line that cannot be read (a run killed mid-write) is skipped."""
    out: list[Answer] = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(Answer.model_validate_json(line))
            except ValidationError:
                continue
    return out


def report(qs: QuestionSet, answers: Iterable[Answer]) -> dict[str, Any]:
    """Accuracy per arm and variant with Wilson intervals, per fact, and the speech/cascade ratio. Replies are scored
    again against the set's patterns as they are now, so a corrected pattern needs no new answers."""
    cells: dict[tuple[str, str], list[Answer]] = {}
    ids = {q.id for q in qs.questions}
    for a in answers:
        if a.qid in ids:
            cells.setdefault((a.arm, a.variant), []).append(a.model_copy(update={"ok": qs.get(a.qid).stated_in(a.reply)}))
    rows = {}
    for (arm, variant), got in sorted(cells.items()):
        k, n = sum(a.ok for a in got), len(got)
        lo_hi = wilson_interval(k, n)
        by_fact = {q.id: [a.ok for a in got if a.qid == q.id] for q in qs.questions}
        rows[f"{arm}/{variant}"] = {
            "arm": arm, "variant": variant, "n": n, "correct": k, "accuracy": round(k / n, 4) if n else None,
            "wilson95": [round(x, 4) for x in lo_hi] if lo_hi else None,
            "by_fact": {f: round(sum(v) / len(v), 3) for f, v in by_fact.items() if v},
        }  # fmt: skip
    ratio = {}
    for variant in ("clean", "phone"):
        s, c = rows.get(f"speech/{variant}"), rows.get(f"cascade/{variant}")
        if s and c and c["accuracy"]:
            ratio[variant] = round(s["accuracy"] / c["accuracy"], 3)
    return {"scenario": qs.scenario, "questions": len(qs.questions), "phrasings": sum(len(q.ask) for q in qs.questions),
            "rows": rows, "speech_over_cascade": ratio}  # fmt: skip
