"""In-domain attitude data for the embedded attitude head: hand-labelled customer rounds of simulated sales calls.

``tests/data/sales_calls_labelled.jsonl`` (docs/labelling.md) holds calls in the dialogue-record schema with
``labels`` (one per customer round: state, coarse group, decision) and a fixed ``split`` by call. Training uses the
train split only: the sentence head learns each customer sentence with its round's coarse group, the round head
each whole customer turn; the test split is scored per round through the labeler's own inference path, beside the
sentence aggregation alone, the heads fitted on P4G only, an n-gram-only head fitted on the same in-domain rounds
and the majority class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mads_text.attitude import COARSE
from mads_text.common.records import DialogueRecord
from mads_text.labelers.embedded import ROUND_HEAD, EmbeddedAttitudeLabeler, record_inputs
from mads_text.labelers.features import FeatureSpec
from mads_text.labelers.heads import LinearHead

from .labeler_fit import Recipe, Sentences, fit_head
from .labeler_scores import scores


def load_sales(path: str | Path) -> list[DialogueRecord]:
    recs = [DialogueRecord.model_validate_json(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
    for r in recs:
        labels = getattr(r, "labels", None)
        if not labels or getattr(r, "split", None) not in ("train", "test"):
            raise ValueError(f"{path}: {r.id} has no labels or no train/test split")
        if len(labels) != sum(t.role == "user" for t in r.turns):
            raise ValueError(f"{path}: {r.id} has {len(labels)} labels for {sum(t.role == 'user' for t in r.turns)} rounds")
    return recs


def split(recs: Sequence[DialogueRecord], which: str) -> list[DialogueRecord]:
    return [r for r in recs if r.split == which]  # type: ignore[attr-defined]


def sentences(recs: Sequence[DialogueRecord]):
    """(dialogue id, input, label) for every customer sentence: the label of its round."""
    for r in recs:
        coarse = {lab["round"]: lab["coarse"] for lab in r.labels}  # type: ignore[attr-defined]
        for k, _, x in record_inputs(r, "user"):
            yield r.id, x, coarse[k]


def round_labels(r: DialogueRecord) -> list[str]:
    return [lab["coarse"] for lab in r.labels]  # type: ignore[attr-defined]


def gold_rounds(recs: Sequence[DialogueRecord]) -> list[str]:
    return [c for r in recs for c in round_labels(r)]


def round_scores(head_dir: Path, recs: Sequence[DialogueRecord], encoder, round_head: bool = True) -> dict[str, Any]:
    """Coarse attitude per round of the labeler with the heads in ``head_dir`` against the hand labels
    (``round_head=False``: the sentence head's aggregation alone)."""
    lab = EmbeddedAttitudeLabeler(str(head_dir), encoder=encoder, round_head=round_head)
    pred = [rl.coarse or "none" for res in lab.label_dialogues(list(recs)) for rl in res.rounds]
    return scores(gold_rounds(recs), pred, COARSE)


def majority(train: Sequence[DialogueRecord], test: Sequence[DialogueRecord]) -> dict[str, Any]:
    top = Counter(gold_rounds(train)).most_common(1)[0][0]
    gold = gold_rounds(test)
    return {**scores(gold, [top] * len(gold), COARSE), "label": top}


def brief(rep: dict[str, Any]) -> str:
    parts = [f"{k} {rep[k]['accuracy']} / {rep[k]['macro_f1']}" for k in ("head", "sentence_head", "p4g_only_round_head",
                                                                          "p4g_only_head", "ngram_only_head", "majority")]
    return "accuracy / macro-F1: " + "; ".join(parts)


def sales_report(sales, eval_dir: Path, recipe: Recipe, p4g_train: Sentences, encode, encoder, classes, seed: int,
                 path, weight: int, round_recipe: Recipe, p4g_rounds: Sentences) -> dict[str, Any]:
    """The in-domain test rounds: the labeler with the heads just fitted (round head and sentence head), the
    sentence head's aggregation alone, the round head fitted on P4G rounds only, the P4G-only sentence head, an
    n-gram-only sentence head on the sales rounds, and the majority class."""
    train, test = split(sales, "train"), split(sales, "test")
    out = {"data": str(path), "weight": weight, "train_calls": len(train), "test_calls": len(test),
           "head": round_scores(eval_dir, test, encoder),
           "sentence_head": round_scores(eval_dir, test, encoder, round_head=False)}
    shipped_round = LinearHead.load(ROUND_HEAD, eval_dir)
    fit_head(ROUND_HEAD, round_recipe, p4g_rounds, encode, list(COARSE), seed).save(eval_dir)
    out["p4g_only_round_head"] = round_scores(eval_dir, test, encoder)
    shipped_round.save(eval_dir)
    only = fit_head("attitude", recipe, p4g_train, encode, classes, seed)
    ngram = Recipe("ngram only", FeatureSpec(sentence=False, ngram_max=2, ngram_weight=1.0), C=1.0)
    rows = list(sentences(train))
    ng = fit_head("attitude", ngram, Sentences([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
                  encode, classes, seed)
    shipped_sentence = LinearHead.load("attitude", eval_dir)
    for name, h in (("p4g_only_head", only), ("ngram_only_head", ng)):
        h.save(eval_dir)
        out[name] = round_scores(eval_dir, test, encoder, round_head=False)
    shipped_sentence.save(eval_dir)
    out["majority"] = majority(train, test)
    return out
