"""Persuasion-for-Good (P4G) dialogues as MADS run records.

The persuader becomes the ``agent`` and the persuadee the ``user``; a persuadee who
donated anything after the task (``B6 > 0``) is an ``accept``, anyone else a
``withdraw`` (declined; P4G dialogues have no round limit). Consecutive sentences
of one speaker form one turn, so a *round* is one persuadee turn, as in a MADS run.
Each turn keeps its sentences and, for the annotated subset, the sentence labels
(``er_label_1`` for the persuader, ``ee_label_1`` for the persuadee), so human
annotations travel with the records.

The data stays where it is (default ``/work/shared/data/p4g``); nothing here copies it.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .attitude import GROUP_STATES, NO_ATTITUDE, P4G_EE_COARSE
from .common.records import DialogueRecord, Turn
from .strategies import p4g_strategy

DEFAULT_P4G = Path(os.environ.get("MADS_P4G", "/work/shared/data/p4g"))
ANNOTATED_DIALOG = "annotated_dialog.csv"
ANNOTATED_INFO = "annotated_info.csv"
FULL_DIALOG = "full_dialog.csv"
FULL_INFO = "full_info.csv"

# persuadee columns of full_info.csv kept in the record's persona
_PERSONA_COLS = {
    "age.x": "age", "sex.x": "gender", "race.x": "race", "edu.x": "education", "marital.x": "marital_status",
    "employment.x": "employment", "income.x": "income", "religion.x": "religion", "ideology.x": "ideology",
    "extrovert.x": "extrovert", "agreeable.x": "agreeable", "conscientious.x": "conscientious",
    "neurotic.x": "neurotic", "open.x": "open",
}


class P4GError(RuntimeError):
    pass


def _require(path: Path) -> Path:
    if not path.exists():
        raise P4GError(f"{path} not found: pass the folder holding the P4G csv files (--data / --p4g)")
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(_require(path), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _float(v: str | None) -> float | None:
    try:
        return float(v) if v not in (None, "", "NA", "nan") else None
    except ValueError:
        return None


@dataclass
class _Row:
    role: int
    text: str
    label: str | None


def _turns(rows: list[_Row]) -> list[Turn]:
    """Group consecutive sentences of the same speaker into turns (file order)."""
    turns: list[Turn] = []
    cur: list[_Row] = []
    for r in rows:
        if cur and r.role != cur[-1].role:
            turns.append(_make_turn(cur))
            cur = []
        cur.append(r)
    if cur:
        turns.append(_make_turn(cur))
    return turns


def _make_turn(rows: list[_Row]) -> Turn:
    sents = [r.text.strip() for r in rows]
    t = Turn(role="agent" if rows[0].role == 0 else "user", text=" ".join(s for s in sents if s))
    t.sentences = sents  # type: ignore[attr-defined]
    if any(r.label is not None for r in rows):
        t.labels = [r.label for r in rows]  # type: ignore[attr-defined]
    return t


def load_p4g(path: str | Path = DEFAULT_P4G, subset: str = "annotated") -> list[DialogueRecord]:
    """Read the ``annotated`` (240 dialogues, sentence labels) or ``full`` (1,017) subset as DialogueRecords."""
    root = Path(path)
    if subset not in ("annotated", "full"):
        raise P4GError(f"subset must be 'annotated' or 'full', not {subset!r}")
    annotated = subset == "annotated"
    dialog = _read_csv(root / (ANNOTATED_DIALOG if annotated else FULL_DIALOG))
    info = _read_csv(root / (ANNOTATED_INFO if annotated else FULL_INFO))
    needed = {"B2", "B4", "Unit"} | ({"er_label_1", "ee_label_1"} if annotated else set())
    missing = needed - set(dialog[0].keys() if dialog else ())
    if missing:
        raise P4GError(f"{root}: dialog csv lacks columns {sorted(missing)}")

    persuadee: dict[str, dict[str, str]] = {}
    for r in info:
        if r.get("B4") in ("1", "1.0"):
            persuadee[r["B2"]] = r
    demographics = persuadee
    if annotated and (root / FULL_INFO).exists():
        # the annotated info file has donations only; demographics come from the full file
        demographics = {r["B2"]: r for r in _read_csv(root / FULL_INFO) if r.get("B4") in ("1", "1.0")}

    by_dialogue: dict[str, list[_Row]] = {}
    for i, r in enumerate(dialog, 2):
        try:
            role = int(float(r["B4"]))
        except (TypeError, ValueError) as e:
            raise P4GError(f"{root}: line {i}: bad role B4={r.get('B4')!r}") from e
        label = None
        if annotated:
            label = (r.get("er_label_1") if role == 0 else r.get("ee_label_1")) or None
        by_dialogue.setdefault(r["B2"], []).append(_Row(role, r.get("Unit") or "", label))

    records = []
    for did, rows in by_dialogue.items():
        turns = _turns(rows)
        inf = persuadee.get(did, {})
        donation = _float(inf.get("B6"))
        persona: dict = {"source": "p4g"}
        demo = demographics.get(did, {})
        for col, key in _PERSONA_COLS.items():
            if demo.get(col) not in (None, ""):
                persona[key] = demo[col]
        rec = DialogueRecord(
            id=did,
            scenario="p4g",
            group="human" if annotated else "human-full",
            persona=persona,
            persona_id=inf.get("B3", ""),
            persona_prompt="",
            agent_prompt="",
            turns=turns,
            outcome="accept" if (donation or 0) > 0 else "withdraw",
            rounds=sum(1 for t in turns if t.role == "user"),
        )
        rec.donation = donation  # type: ignore[attr-defined]
        rec.intended_donation = _float(inf.get("B5"))  # type: ignore[attr-defined]
        records.append(rec)
    return records


# --- human labels ---------------------------------------------------------------------------


def turn_labels(turn: Turn) -> list[str | None]:
    labels = getattr(turn, "labels", None)
    if labels is None:
        extra = turn.model_extra or {}
        labels = extra.get("labels")
    return list(labels or [])


def turn_sentences(turn: Turn) -> list[str]:
    s = getattr(turn, "sentences", None)
    if s is None:
        s = (turn.model_extra or {}).get("sentences")
    return list(s) if s else [turn.text]


def sentence_coarse(ee_label: str | None) -> str:
    """Coarse attitude of one persuadee sentence from its human act label; ``none`` for acts without attitude."""
    return P4G_EE_COARSE.get(ee_label or "", NO_ATTITUDE)


def aggregate_coarse(sentence_groups: list[str]) -> str | None:
    """Round-level coarse attitude from the coarse labels of the turn's sentences.

    The most frequent attitude among the attitude-bearing sentences; a tie goes to the one said last
    (the end of a turn usually carries the decision). ``None`` when no sentence carries an attitude.
    """
    seq = [g for g in sentence_groups if g != NO_ATTITUDE]
    if not seq:
        return None
    counts = Counter(seq)
    best = max(counts.values())
    for g in reversed(seq):
        if counts[g] == best:
            return g
    return None  # pragma: no cover


def human_round_coarse(record: DialogueRecord) -> list[str | None]:
    """Per-round coarse attitude from the persuadee's human act labels (None where no attitude was expressed)."""
    out = []
    for t in record.turns:
        if t.role != "user":
            continue
        out.append(aggregate_coarse([sentence_coarse(lbl) for lbl in turn_labels(t)]))
    return out


def human_strategies(record: DialogueRecord) -> list[tuple[int, str, str]]:
    """(agent turn number 1-based, sentence, strategy label) for every persuader sentence with a human label."""
    out = []
    k = 0
    for t in record.turns:
        if t.role != "agent":
            continue
        k += 1
        for s, lbl in zip(turn_sentences(t), turn_labels(t)):
            out.append((k, s, p4g_strategy(lbl)))
    return out


def has_human_labels(record: DialogueRecord) -> bool:
    return any(turn_labels(t) for t in record.turns)


__all__ = [
    "DEFAULT_P4G",
    "GROUP_STATES",
    "P4GError",
    "aggregate_coarse",
    "has_human_labels",
    "human_round_coarse",
    "human_strategies",
    "load_p4g",
    "sentence_coarse",
    "turn_labels",
    "turn_sentences",
]
