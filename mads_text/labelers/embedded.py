"""Embedded labelers: MiniLM sentence embeddings + the small trained heads in ``heads/``.

Strategy: every Dialog Agent sentence gets one of the ten P4G strategies or ``non-strategy``; the shipped
head also reads the words of the previous turn (what the user just said), built by :func:`record_inputs`
for records and :func:`item_inputs` for ``mads label`` items exactly as training builds it.

Attitude, in three steps:

1. every user sentence gets ``negative | neutral | positive | acceptance | none`` from the sentence head
   (``none``: the sentence carries no attitude, e.g. a greeting or a question about the charity);
2. a round (one user turn) gets its coarse group. With a round head (``attitude_round``, shipped), the whole turn
   is read at once, after the other speaker's previous turn (:func:`round_inputs`): a customer's attitude often
   lies in how the sentences of a turn go together ("It sounds good. But 288 a month is a lot."), and the head is
   trained on whole hand-labelled rounds of sales calls as well as P4G rounds. Without one, the round takes the
   group with the largest summed probability over its attitude-bearing sentences (renormalised over the four
   groups). Either way a round with no attitude-bearing sentence (or no words) is Indifference (docs/labelling.md),
   never a copy of the previous state, which would invent a self-transition: the round head is trained on rounds
   that carry an attitude and says which one, not whether there is one;
3. the fine state is the state of that group whose prototype is most similar (cosine) to the
   turn's attitude-bearing sentences: a prototype is the normalised mean embedding of the state's description and
   its example utterances in :mod:`mads_text.attitude`.

Step 2 is measured against human labels on held-out P4G dialogues and hand-labelled sales calls; step 3 has no
human reference (see docs/analysis.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..attitude import COARSE, GROUP_STATES, NO_ATTITUDE, STATE_GROUP, STATE_INFO, STATES
from ..common.records import DialogueRecord
from ..strategies import NON_STRATEGY, STRATEGIES
from .base import (
    AttitudeLabeler,
    AttitudeResult,
    ItemLabel,
    LabelItem,
    RoundLabel,
    SentenceStrategy,
    StrategyLabeler,
    StrategyResult,
    record_sentences,
    split_sentences,
)
from .encoder import MiniLMEncoder
from .features import SentenceInput, dense_features
from .heads import LinearHead, has_head

NO_STANCE = "Indifference"  # the state of a round that carries no attitude
ROUND_HEAD = "attitude_round"  # file name of the whole-turn attitude head

_ENCODERS: dict[str, MiniLMEncoder] = {}


def shared_encoder() -> MiniLMEncoder:
    if "default" not in _ENCODERS:
        _ENCODERS["default"] = MiniLMEncoder()
    return _ENCODERS["default"]


def record_inputs(record: DialogueRecord, role: str) -> list[tuple[int, int, SentenceInput]]:
    """(turn number among ``role``'s turns, 1-based; sentence index; input) for every sentence of ``role``."""
    out = []
    prev_sents: tuple[str, ...] = ()
    k = 0
    for ti, t in enumerate(record.turns):
        sents = record_sentences(t)
        if t.role == role:
            k += 1
            for j, s in enumerate(sents):
                out.append((k, j, SentenceInput(
                    text=s, turn_index=ti, sentence_index=j, n_sentences=len(sents),
                    prev_turn_sentences=prev_sents, prev_sentence=sents[j - 1] if j > 0 else None)))
        prev_sents = tuple(sents)
    return out


def whole_turn(inputs: Sequence[SentenceInput]) -> SentenceInput:
    """The sentence inputs of one turn as a single input: the round head's unit."""
    first = inputs[0]
    return dataclasses.replace(first, text=" ".join(x.text for x in inputs), n_sentences=len(inputs), prev_sentence=None)


def round_inputs(record: DialogueRecord, role: str = "user") -> list[tuple[int, SentenceInput]]:
    """(turn number among ``role``'s turns, 1-based; input) for every turn of ``role`` with words: the whole turn
    as one text after the other speaker's previous turn, as the round head is trained (``train/labeler.py``)."""
    turns: dict[int, list[SentenceInput]] = {}
    for k, _, x in record_inputs(record, role):
        turns.setdefault(k, []).append(x)
    return [(k, whole_turn(xs)) for k, xs in turns.items() if " ".join(x.text for x in xs).strip()]


def item_inputs(item: LabelItem) -> list[SentenceInput]:
    """A ``mads label`` item as sentence inputs (a multi-sentence item is split)."""
    sents = split_sentences(item.text) or [item.text]
    prev = tuple(split_sentences(item.context[-1]) or [item.context[-1]]) if item.context else ()
    return [
        SentenceInput(text=s, turn_index=item.position, sentence_index=item.sentence_index + j,
                      n_sentences=max(len(sents), item.sentence_index + len(sents)), prev_turn_sentences=prev,
                      prev_sentence=sents[j - 1] if j > 0 else None)
        for j, s in enumerate(sents)
    ]


class EmbeddedStrategyLabeler(StrategyLabeler):
    name = "embedded"

    def __init__(self, heads: str | None = None, encoder: MiniLMEncoder | None = None):
        self.head = LinearHead.load("strategy", heads)
        self.encoder = encoder or shared_encoder()

    def describe(self) -> dict[str, Any]:
        return {"labeler": "embedded", "task": "strategy", "encoder": self.encoder.model_id,
                "head": self.head.meta.get("variant", ""), "head_sha": self.head.meta.get("trained", {}).get("data_sha256")}

    def predict(self, inputs: Sequence[SentenceInput]) -> np.ndarray:
        """Class probabilities; the same call scores the held-out dialogues in ``train/labeler.py``."""
        return self.head.predict_inputs(inputs, self.encoder.encode)

    def label(self, items: Sequence[LabelItem]) -> list[ItemLabel]:
        per = [item_inputs(it) if it.text.strip() else [] for it in items]
        flat = [x for xs in per for x in xs]
        probs = self.predict(flat) if flat else np.zeros((0, len(self.head.classes)))
        non = self.head.classes.index(NON_STRATEGY)
        out, i = [], 0
        for it, xs in zip(items, per):
            p = probs[i : i + len(xs)]
            i += len(xs)
            if not len(p):
                out.append(ItemLabel(id=it.id, label=NON_STRATEGY))
                continue
            # a multi-sentence item gets its most confident strategy, if any sentence has one
            best, conf = NON_STRATEGY, float(p[:, non].mean())
            found = False
            for row in p:
                c = self.head.classes[int(row.argmax())]
                if c != NON_STRATEGY and (not found or row.max() > conf):
                    best, conf, found = c, float(row.max()), True
            out.append(ItemLabel(id=it.id, label=best, confidence=round(conf, 4)))
        return out

    def label_dialogues(self, records: Sequence[DialogueRecord]) -> list[StrategyResult]:
        per = [record_inputs(r, "agent") for r in records]
        flat = [x for rows in per for _, _, x in rows]
        probs = self.predict(flat) if flat else np.zeros((0, len(self.head.classes)))
        out, i = [], 0
        for r, rows in zip(records, per):
            sents = []
            for k, _, x in rows:
                sents.append(SentenceStrategy(turn=k, sentence=x.text, label=self.head.classes[int(probs[i].argmax())]))
                i += 1
            used = {s.label for s in sents}
            out.append(StrategyResult(dialogue_id=r.id, sentences=sents,
                                      strategy_set=[s for s in STRATEGIES if s in used]))
        return out


class EmbeddedAttitudeLabeler(AttitudeLabeler):
    name = "embedded"

    def __init__(self, heads: str | None = None, encoder: MiniLMEncoder | None = None, round_head: bool = True):
        self.head = LinearHead.load("attitude", heads)
        missing = set(COARSE) - set(self.head.classes)
        if missing:
            raise ValueError(f"attitude head lacks classes {sorted(missing)}")
        # the whole-turn head, where the heads folder has one (``round_head=False``: sentence aggregation only)
        self.round_head = LinearHead.load(ROUND_HEAD, heads) if round_head and has_head(ROUND_HEAD, heads) else None
        if self.round_head is not None and set(self.round_head.classes) != set(COARSE):
            raise ValueError(f"round head classes {self.round_head.classes} are not the four groups {list(COARSE)}")
        self.encoder = encoder or shared_encoder()
        self._proto: np.ndarray | None = None
        self._coarse_idx = [self.head.classes.index(c) for c in COARSE]
        self._none_idx = self.head.classes.index(NO_ATTITUDE) if NO_ATTITUDE in self.head.classes else None

    def describe(self) -> dict[str, Any]:
        return {"labeler": "embedded", "task": "attitude", "encoder": self.encoder.model_id,
                "fine_state": "cosine to state prototypes within the predicted group",
                "head": self.head.meta.get("variant", ""),
                "round_head": self.round_head.meta.get("variant", "") if self.round_head is not None else None}

    # --- fine state ----------------------------------------------------------------------------

    def prototypes(self) -> np.ndarray:
        """(16, 384) unit vectors, one per state in STATES order."""
        if self._proto is None:
            rows = []
            for s in STATES:
                info = STATE_INFO[s]
                e = self.encoder.encode([f"{s}: {info.description}", *info.examples])
                m = e.mean(axis=0)
                rows.append(m / (np.linalg.norm(m) or 1.0))
            self._proto = np.stack(rows)
        return self._proto

    def fine_state(self, group: str, turn_vec: np.ndarray) -> tuple[str, float]:
        proto = self.prototypes()
        cands = GROUP_STATES[group]
        sims = [float(proto[STATES.index(s)] @ turn_vec) for s in cands]
        j = int(np.argmax(sims))
        return cands[j], sims[j]

    # --- coarse --------------------------------------------------------------------------------

    def sentence_probs(self, inputs: Sequence[SentenceInput]) -> tuple[np.ndarray, np.ndarray]:
        """(class probabilities, sentence embeddings) for the sentences."""
        dense = dense_features(self.head.spec, inputs, self.encoder.encode)
        probs = self.head.predict_proba(dense, [x.text for x in inputs])
        emb = self.encoder.encode([x.text for x in inputs])
        return probs, emb

    def _bearing(self, probs: np.ndarray) -> np.ndarray:
        """Which sentences carry an attitude: those whose most likely class is not ``none``."""
        if self._none_idx is None:
            return np.ones(len(probs), dtype=bool)
        return probs.argmax(axis=1) != self._none_idx

    def aggregate(self, probs: np.ndarray) -> tuple[str | None, np.ndarray]:
        """Round group from sentence probabilities: (group or None when no sentence carries attitude, 4-vector)."""
        p4 = probs[:, self._coarse_idx]
        p4 = p4 / np.maximum(p4.sum(axis=1, keepdims=True), 1e-12)
        bearing = self._bearing(probs)
        if not bearing.any():
            return None, p4.mean(axis=0)
        agg = p4[bearing].sum(axis=0)
        return COARSE[int(agg.argmax())], agg / agg.sum()

    def _turn_vector(self, emb: np.ndarray, probs: np.ndarray) -> np.ndarray:
        if self._none_idx is not None:
            keep = probs.argmax(axis=1) != self._none_idx
            if keep.any():
                emb = emb[keep]
        m = emb.mean(axis=0)
        return m / (np.linalg.norm(m) or 1.0)

    def round_probs(self, inputs: Sequence[SentenceInput]) -> np.ndarray:
        """(n, 4) probabilities of the four groups (COARSE order) from the round head, one row per whole turn."""
        assert self.round_head is not None
        p = self.round_head.predict_inputs(inputs, self.encoder.encode)
        return p[:, [self.round_head.classes.index(c) for c in COARSE]] if len(inputs) else np.zeros((0, len(COARSE)))

    def label(self, items: Sequence[LabelItem]) -> list[ItemLabel]:
        per = [item_inputs(it) for it in items]
        flat = [x for xs in per for x in xs]
        probs, emb = self.sentence_probs(flat) if flat else (np.zeros((0, len(self.head.classes))), np.zeros((0, 384)))
        whole = self.round_probs([whole_turn(xs) for xs in per]) if self.round_head is not None else None
        out, i = [], 0
        for n, (it, xs) in enumerate(zip(items, per)):
            p, e = probs[i : i + len(xs)], emb[i : i + len(xs)]
            i += len(xs)
            group, p4 = self.aggregate(p)
            if whole is not None:
                p4 = whole[n]
                group = COARSE[int(p4.argmax())]
            elif group is None:  # no attitude-bearing sentence: the most likely group of the whole turn
                group = COARSE[int(p4.argmax())]
            state, _ = self.fine_state(group, self._turn_vector(e, p))
            out.append(ItemLabel(id=it.id, label=group, state=state, confidence=round(float(p4.max()), 4)))
        return out

    def label_dialogues(self, records: Sequence[DialogueRecord], coarse_override: Sequence[Sequence[str | None]] | None = None
                        ) -> list[AttitudeResult]:
        """Per-round states. ``coarse_override[d][k]`` (e.g. human labels) replaces the head's group of round k+1
        of dialogue d where it is not None; the fine state is still chosen by similarity within that group."""
        per = [record_inputs(r, "user") for r in records]
        flat = [x for rows in per for _, _, x in rows]
        if flat:
            probs, emb = self.sentence_probs(flat)
        else:
            probs, emb = np.zeros((0, len(self.head.classes))), np.zeros((0, 384))
        whole: dict[tuple[int, int], str] = {}  # (dialogue, round) -> group of the round head
        if self.round_head is not None:
            keyed = [((d, k), x) for d, r in enumerate(records) for k, x in round_inputs(r)]
            rp = self.round_probs([x for _, x in keyed])
            whole = {key: COARSE[int(row.argmax())] for (key, _), row in zip(keyed, rp)}
        results, i = [], 0
        for d, (r, rows) in enumerate(zip(records, per)):
            n_rounds = sum(1 for t in r.turns if t.role == "user")
            by_round: dict[int, list[int]] = {}
            for k, _, _ in rows:
                by_round.setdefault(k, []).append(i)
                i += 1
            rounds: list[RoundLabel] = []
            for k in range(1, n_rounds + 1):
                idx = by_round.get(k, [])
                group, src = None, "embedded"
                if (d, k) in whole:
                    # the sentence head says whether the round carries an attitude at all (its "none" class); the
                    # round head, trained on rounds that do, says which
                    group = whole[(d, k)] if self._bearing(probs[idx]).any() else None
                elif idx and self.round_head is None:
                    group, _ = self.aggregate(probs[idx])
                if coarse_override is not None and k - 1 < len(coarse_override[d]):
                    group, src = coarse_override[d][k - 1], "human+embedded"
                if group is None:
                    # no attitude in the round: Indifference (labelling guide), never the previous state, which
                    # would invent a self-transition; counted in metrics.json as source "no attitude"
                    rounds.append(RoundLabel(round=k, state=NO_STANCE, coarse=STATE_GROUP[NO_STANCE], source="no attitude"))
                    continue
                vec = self._turn_vector(emb[idx], probs[idx]) if idx else self.prototypes()[STATES.index(GROUP_STATES[group][0])]
                state, sim = self.fine_state(group, vec)
                rl = RoundLabel(round=k, state=state, coarse=STATE_GROUP[state], evidence=f"sim={sim:.3f}", source=src)
                rounds.append(rl)
            results.append(AttitudeResult(dialogue_id=r.id, rounds=rounds))
        return results
