"""Train the embedded labelers' heads on the annotated P4G dialogues.

Read top to bottom:

1. load the 240 annotated dialogues (``mads_text.p4g``) and turn every sentence into the same
   inputs the labelers build at run time (``record_inputs``), so training and inference agree;
2. embed every distinct sentence once with the packaged MiniLM (cached on disk by content hash);
3. split by dialogue: the sorted dialogue ids are shuffled with ``numpy.random.default_rng(seed)`` and
   the first ``test_frac`` of them are held out (48 of 240 with the defaults);
4. for each task, optionally pick a recipe by grouped cross-validation on the training dialogues
   (``--search``), fit a multinomial logistic regression (scikit-learn, lbfgs) on the training
   dialogues, export it to numpy arrays and score the *exported* head on the held-out dialogues
   (for the strategy head also the majority class and the previous recipe, on the same sentences).
   The strategy head's bias then gains per-class offsets tuned for macro-F1 on out-of-fold predictions of the
   training dialogues (``tune_offsets``; ``--no-calibrate`` leaves them out), so the held-out split never sets them.
   The attitude task also fits the round head (``attitude_round``): whole persuadee/customer turns after the other
   speaker's turn (``round_inputs``), labelled with their round's group (P4G rounds with an attitude act);
   With ``--in-domain FILE`` (hand-labelled sales calls, docs/labelling.md) both attitude heads also learn the
   file's train split (each sentence or round counted ``--in-domain-weight`` times, labelled with its round's
   group) and the labeler is scored per round on its test split, beside sentence aggregation alone, the P4G-only
   heads, an n-gram-only head and the majority class (``train/labeler_sales.py``);
5. refit the same recipe on all 240 dialogues (plus the in-domain train split; its test split is never
   trained on), or keep the training-split fit with ``--final train``, and write ``strategy.npz/json`` and
   ``attitude.npz/json`` and ``attitude_round.npz/json`` plus ``labeler_metrics.json`` (``--task`` retrains one head and keeps the other's entry
   in the metrics file).

Tasks: persuader sentences → ten strategies + ``non-strategy``; persuadee sentences →
``negative | neutral | positive | acceptance | none`` (``none``: acts that carry no attitude).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from mads_text.attitude import COARSE, NO_ATTITUDE
from mads_text.common import assets
from mads_text.common.records import DialogueRecord
from mads_text.labelers.base import record_sentences
from mads_text.labelers.embedded import ROUND_HEAD, EmbeddedAttitudeLabeler, record_inputs, round_inputs
from mads_text.labelers.encoder import DIM, LAST_LAYER, N_LAYERS, MiniLMEncoder, texts_digest
from mads_text.labelers.features import FeatureSpec
from mads_text.labelers.heads import LinearHead
from mads_text.p4g import ANNOTATED_DIALOG, P4GError, human_round_coarse, load_p4g, sentence_coarse, turn_labels
from mads_text.strategies import STRATEGY_LABELS, p4g_strategy

from . import labeler_sales as sales_data
from .labeler_fit import Recipe, Sentences, cross_validate, fit_head, out_of_fold_logits, predict, tune_offsets
from .labeler_scores import attitude_scores, majority_baseline, scores

# The recipes kept after the search documented in docs/analysis.md; --search re-runs the comparison.
MULTI = [3, 4, 5, 6]  # mean-pooled outputs of the top four MiniLM layers
NG = {"ngram_max": 2, "ngram_weight": 20.0}
# the strategy head before the previous-turn n-grams (kept to score it beside the shipped one)
PREVIOUS_STRATEGY = Recipe("multi+pos+ngram", FeatureSpec(layers=MULTI, position=True, **NG), C=0.05)

DEFAULT_RECIPES = {
    "strategy": Recipe("multi+pos+ngram+prevturn-ngram sqrt-balanced",
                       FeatureSpec(layers=MULTI, position=True, prev_turn_ngrams=True, **NG), C=0.05,
                       class_weight="sqrt-balanced"),
    # balanced and strongly regularised: picked by 4-fold grouped CV over the in-domain train calls (docs/customers.md)
    "attitude": Recipe("multi+prevturn+pos+ngram balanced C=0.003",
                       FeatureSpec(layers=MULTI, prev_turn=True, position=True, **NG), C=0.003, class_weight="balanced"),
}

# the whole-turn head: picked by 4-fold grouped CV over the in-domain train calls among C 0.001-0.03, n-gram weight
# 0/5/20, in-domain weight 1-3, with and without P4G rounds (docs/customers.md)
ROUND_RECIPE = Recipe("round: multi+prevturn+pos+ngram balanced C=0.003",
                      FeatureSpec(layers=MULTI, prev_turn=True, position=True, **NG), C=0.003, class_weight="balanced")

SEARCH_RECIPES = {
    "strategy": [
        Recipe("emb+pos", FeatureSpec(position=True), C=0.1),
        Recipe("emb+pos+ngram", FeatureSpec(position=True, **NG), C=0.03),
        Recipe("multi+pos+ngram", FeatureSpec(layers=MULTI, position=True, **NG), C=0.05),
        Recipe("multi+prevsent+pos+ngram", FeatureSpec(layers=MULTI, prev_sentence=True, position=True, **NG), C=0.03),
        Recipe("multi+prevturn+pos+ngram", FeatureSpec(layers=MULTI, prev_turn=True, position=True, **NG), C=0.03),
        Recipe("multi+pos+ngram balanced", FeatureSpec(layers=MULTI, position=True, **NG), C=0.05, class_weight="balanced"),
        Recipe("multi+pos+ngram+prevturn-ngram", FeatureSpec(layers=MULTI, position=True, prev_turn_ngrams=True, **NG),
               C=0.05),
        DEFAULT_RECIPES["strategy"],
    ],
    "attitude": [
        Recipe("emb+pos", FeatureSpec(position=True), C=0.1),
        Recipe("emb+prevturn+pos", FeatureSpec(prev_turn=True, position=True), C=0.05),
        Recipe("emb+prevturn+pos+ngram", FeatureSpec(prev_turn=True, position=True, **NG), C=0.03),
        Recipe("multi+prevturn+pos+ngram", FeatureSpec(layers=MULTI, prev_turn=True, position=True, **NG), C=0.03),
        Recipe("multi+prevturn+pos+ngram balanced",
               FeatureSpec(layers=MULTI, prev_turn=True, position=True, **NG), C=0.03, class_weight="balanced"),
        DEFAULT_RECIPES["attitude"],
    ],
}


ALL_LAYERS = tuple(range(N_LAYERS))


def task_sentences(records: Sequence[DialogueRecord], task: str) -> Sentences:
    role = "agent" if task == "strategy" else "user"
    out = Sentences()
    for r in records:
        turns = [t for t in r.turns if t.role == role]
        for k, j, x in record_inputs(r, role):
            raw = turn_labels(turns[k - 1])
            lab = raw[j] if j < len(raw) else None
            out.dialogue.append(r.id)
            out.inputs.append(x)
            out.labels.append(p4g_strategy(lab) if task == "strategy" else sentence_coarse(lab))
    return out


def round_sentences(records: Sequence[DialogueRecord], gold) -> Sentences:
    """Whole user turns (``round_inputs``) whose round has a coarse label; ``gold(record)`` gives one per round."""
    out = Sentences()
    for r in records:
        labels = gold(r)
        for k, x in round_inputs(r):
            if labels[k - 1] is not None:
                out.dialogue.append(r.id)
                out.inputs.append(x)
                out.labels.append(labels[k - 1])
    return out


def split_dialogues(ids: Sequence[str], seed: int, test_frac: float) -> tuple[list[str], list[str]]:
    """(train ids, test ids): sorted ids shuffled with default_rng(seed); the first round(test_frac * n) are test."""
    ids = sorted(set(ids))
    perm = np.random.default_rng(seed).permutation(len(ids))
    n_test = int(round(test_frac * len(ids)))
    test = sorted(ids[i] for i in perm[:n_test])
    train = sorted(ids[i] for i in perm[n_test:])
    return train, test


class CachedEncoder:
    """Embeddings (all 7 layers) looked up from a precomputed table; unseen texts go to the real encoder."""

    def __init__(self, table: dict[str, np.ndarray], encoder: MiniLMEncoder):
        self.table = table  # text -> (7, 384)
        self.encoder = encoder
        self.model_id = encoder.model_id

    def encode(self, texts: Sequence[str], layers: Sequence[int] = (LAST_LAYER,)) -> np.ndarray:
        miss = [t for t in dict.fromkeys(texts) if t not in self.table]
        if miss:
            arr = self.encoder.encode(miss, ALL_LAYERS).reshape(len(miss), N_LAYERS, DIM)
            for t, v in zip(miss, arr):
                self.table[t] = v
        if not texts:
            return np.zeros((0, DIM * len(layers)), dtype=np.float32)
        return np.stack([self.table[t][list(layers)].reshape(-1) for t in texts])


def embed_all(texts: Sequence[str], cache: Path | None, log) -> dict[str, np.ndarray]:
    """Every layer's pooled embedding of every distinct text, cached as one (n, 7, 384) array by content hash."""
    texts = sorted(set(texts))
    enc = MiniLMEncoder(memo_size=0)
    key = texts_digest(texts)
    path = cache / f"minilm-layers-{key}.npy" if cache else None
    if path is not None and path.exists():
        arr = np.load(path, allow_pickle=False)
        log(f"embeddings: {len(texts)} sentences from cache {path}")
    else:
        t0 = time.perf_counter()
        arr = np.zeros((len(texts), N_LAYERS, DIM), dtype=np.float32)
        step = 256
        for i in range(0, len(texts), step):
            part = texts[i : i + step]
            arr[i : i + len(part)] = enc.encode(part, ALL_LAYERS).reshape(len(part), N_LAYERS, DIM)
            log(f"embeddings: {min(i + step, len(texts))}/{len(texts)} ({time.perf_counter() - t0:.0f}s)")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, arr)
    return {t: arr[i] for i, t in enumerate(texts)}


def round_level(head_dir: Path, records: Sequence[DialogueRecord], encoder, round_head: bool = True) -> dict[str, Any]:
    """Round (user turn) coarse attitude of the embedded labeler vs the human-label aggregation."""
    lab = EmbeddedAttitudeLabeler(str(head_dir), encoder=encoder, round_head=round_head)
    res = lab.label_dialogues(records)
    yt, yp = [], []
    for r, a in zip(records, res):
        for k, human in enumerate(human_round_coarse(r), 1):
            if human is None:
                continue
            rl = a.rounds[k - 1]
            if rl.source == "no attitude":  # the head saw no attitude in this round
                yp.append("none")
            else:
                yp.append(rl.coarse or "none")
            yt.append(human)
    s = scores(yt, yp, COARSE)
    s["note"] = "rounds with a human attitude label; rounds the head found no attitude in count as errors"
    return s


def strategy_baselines(tr: Sentences, te: Sentences, encode, classes, seed: int) -> dict[str, Any]:
    """The majority class and the previous strategy recipe, fitted on the same training dialogues."""
    prev = scores(te.labels, predict(fit_head("strategy", PREVIOUS_STRATEGY, tr, encode, classes, seed), te, encode),
                  classes)
    return {"majority": majority_baseline(tr.labels, te.labels, classes),
            "previous_recipe": {"name": PREVIOUS_STRATEGY.name, "accuracy": prev["accuracy"], "macro_f1": prev["macro_f1"],
                                "per_class_f1": prev["per_class_f1"]}}


def kept_tasks(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Entries of an existing metrics file for tasks not retrained now (``--task``), when data and split match,
    so retraining one head leaves the other's figures beside its unchanged files."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    if old.get("data") != report["data"] or old.get("split") != report["split"]:
        return {}
    return {t: v for t, v in old.get("tasks", {}).items() if t not in report["tasks"]}


def with_offsets(head: LinearHead, offsets: np.ndarray, classes: Sequence[str]) -> LinearHead:
    """The head with per-class offsets folded into its bias (same file format; recorded in its metadata)."""
    off = np.array([offsets[list(classes).index(c)] for c in head.classes])
    head.bias = head.bias + off
    head.meta["class_offsets"] = {c: round(float(o), 2) for c, o in zip(head.classes, off)}
    return head


def data_sha256(p4g: Path) -> str:
    h = hashlib.sha256()
    with open(p4g / ANNOTATED_DIALOG, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


# --- the command -------------------------------------------------------------------------------


def train_labelers(
    p4g: str | Path,
    out: str | Path,
    seed: int = 13,
    test_frac: float = 0.2,
    search: bool = False,
    folds: int = 5,
    final: str = "all",
    cache: str | Path | None = None,
    tasks: Sequence[str] = ("strategy", "attitude"),
    in_domain: str | Path | None = None,
    in_domain_weight: int = 2,
    calibrate: bool = True,
    log=print,
) -> dict[str, Any]:
    p4g, out = Path(p4g), Path(out)
    if final not in ("all", "train"):
        raise ValueError("final must be 'all' or 'train'")
    records = load_p4g(p4g, "annotated")
    train_ids, test_ids = split_dialogues([r.id for r in records], seed, test_frac)
    log(f"P4G annotated: {len(records)} dialogues; split seed {seed}: {len(train_ids)} train / {len(test_ids)} test")
    data = {t: task_sentences(records, t) for t in tasks}
    # every sentence of every turn, whatever the tasks, so one cache serves all runs
    all_texts = [s for r in records for t in r.turns for s in record_sentences(t)]
    cache_dir = Path(cache) if cache else assets.cache_dir() / "labeler-embeddings"
    table = embed_all(all_texts, cache_dir, log)
    encoder = CachedEncoder(table, MiniLMEncoder())
    encode = encoder.encode
    test_set = set(test_ids)
    report: dict[str, Any] = {
        "data": {"path": str(p4g.resolve()), "annotated_dialog_sha256": data_sha256(p4g), "dialogues": len(records)},
        "split": {"seed": seed, "test_frac": test_frac, "method": "sorted ids, numpy default_rng(seed).permutation, "
                  "first round(test_frac*n) held out", "train_dialogues": len(train_ids), "test_dialogues": len(test_ids),
                  "test_ids": test_ids},
        "encoder": "all-MiniLM-L6-v2 (mean pooling, L2 norm)",
        "final_fit": final,
        "tasks": {},
    }
    out.mkdir(parents=True, exist_ok=True)
    eval_dir = out / "_heldout_heads"
    for task in tasks:
        d = data[task]
        classes = list(STRATEGY_LABELS) if task == "strategy" else [*COARSE, NO_ATTITUDE]
        is_test = np.array([x in test_set for x in d.dialogue])
        tr, te = d.subset(~is_test), d.subset(is_test)
        log(f"[{task}] {len(tr.labels)} train / {len(te.labels)} test sentences")
        cv = {}
        recipe = DEFAULT_RECIPES[task]
        if search:
            for rc in SEARCH_RECIPES[task]:
                t0 = time.perf_counter()
                cv[rc.name] = cross_validate(task, rc, tr, encode, classes, folds, seed)
                log(f"[{task}] cv {rc.name}: {cv[rc.name]} ({time.perf_counter() - t0:.0f}s)")
            best = max(SEARCH_RECIPES[task], key=lambda rc: (cv[rc.name]["accuracy"] + cv[rc.name]["macro_f1"]))
            recipe = best
            log(f"[{task}] chosen by mean of cv accuracy and macro-F1: {recipe.name}")
        t0 = time.perf_counter()
        extra, extra_rounds = Sentences(), Sentences()
        if task == "attitude" and in_domain:  # sales rounds of the train split, counted in_domain_weight times
            sales = sales_data.load_sales(in_domain)
            for did, x, y in list(sales_data.sentences(sales_data.split(sales, "train"))) * in_domain_weight:
                extra.dialogue.append(did), extra.inputs.append(x), extra.labels.append(y)
            rounds = round_sentences(sales_data.split(sales, "train"), sales_data.round_labels)
            for _ in range(in_domain_weight):
                extra_rounds = extra_rounds.plus(rounds)
        head = fit_head(task, recipe, tr.plus(extra), encode, classes, seed)
        offsets = None
        if task == "strategy" and calibrate:  # thresholds tuned on the training dialogues only (docs/analysis.md)
            oof = out_of_fold_logits(task, recipe, tr, encode, classes, folds, seed)
            offsets = tune_offsets(oof, tr.labels, classes)
            plain = scores(tr.labels, [classes[i] for i in oof.argmax(axis=1)], classes)
            tuned = scores(tr.labels, [classes[i] for i in (oof + offsets).argmax(axis=1)], classes)
            log(f"[strategy] out-of-fold on the training dialogues: accuracy {plain['accuracy']} -> {tuned['accuracy']}, "
                f"macro-F1 {plain['macro_f1']} -> {tuned['macro_f1']} with class offsets")
            uncal = scores(te.labels, predict(head, te, encode), classes)
            head = with_offsets(head, offsets, classes)
        head.save(eval_dir)
        head = LinearHead.load(task, eval_dir)  # score the exported arrays, not the sklearn object
        if task == "attitude":
            p4g_rounds = round_sentences([r for r in records if r.id not in test_set], human_round_coarse)
            fit_head(ROUND_HEAD, ROUND_RECIPE, p4g_rounds.plus(extra_rounds), encode, COARSE, seed).save(eval_dir)
        probs = head.predict_inputs(te.inputs, encode)
        pred = [head.classes[i] for i in probs.argmax(axis=1)]
        res: dict[str, Any] = {"recipe": recipe.describe(), "cv": cv, "train_sentences": len(tr.labels),
                               "test_sentences": len(te.labels), "fit_s": round(time.perf_counter() - t0, 1)}
        if task == "strategy":
            res["heldout"] = scores(te.labels, pred, classes)
            if offsets is not None:
                res["class_offsets"] = {c: round(float(o), 2) for c, o in zip(classes, offsets)}
                res["out_of_fold_train"] = {"plain": {k: plain[k] for k in ("accuracy", "macro_f1")},
                                            "with_offsets": {k: tuned[k] for k in ("accuracy", "macro_f1")}}
                res["heldout_without_offsets"] = {k: uncal[k] for k in ("accuracy", "macro_f1", "per_class_f1")}
                log(f"[strategy] held-out without the offsets: accuracy {uncal['accuracy']}, macro-F1 {uncal['macro_f1']}")
            log(f"[strategy] held-out: accuracy {res['heldout']['accuracy']}, macro-F1 {res['heldout']['macro_f1']}")
            res["heldout_baselines"] = strategy_baselines(tr, te, encode, classes, seed)
            log(f"[strategy] baselines on the same sentences: {res['heldout_baselines']}")
        else:
            res["heldout_5way"] = scores(te.labels, pred, classes)
            res["heldout_coarse"] = attitude_scores(te.labels, probs, head.classes)
            test_recs = [r for r in records if r.id in test_set]
            res["heldout_rounds"] = round_level(eval_dir, test_recs, encoder)
            res["heldout_rounds_sentence_head"] = round_level(eval_dir, test_recs, encoder, round_head=False)
            res["round_head"] = {"recipe": ROUND_RECIPE.describe(), "p4g_train_rounds": len(p4g_rounds.labels),
                                 "in_domain_train_rounds": len(extra_rounds.labels)}
            if in_domain:
                res["sales_rounds"] = sales_data.sales_report(sales, eval_dir, recipe, tr, encode, encoder, classes, seed,
                                                   in_domain, in_domain_weight, ROUND_RECIPE, p4g_rounds)
                log(f"[attitude] sales-call test rounds: {sales_data.brief(res['sales_rounds'])}")
            log(f"[attitude] held-out sentences (4 groups): accuracy {res['heldout_coarse']['accuracy']}, "
                f"macro-F1 {res['heldout_coarse']['macro_f1']}; 5-way incl. none: {res['heldout_5way']['accuracy']} / "
                f"{res['heldout_5way']['macro_f1']}; rounds: {res['heldout_rounds']['accuracy']} / "
                f"{res['heldout_rounds']['macro_f1']} (sentence aggregation alone "
                f"{res['heldout_rounds_sentence_head']['accuracy']} / {res['heldout_rounds_sentence_head']['macro_f1']})")
        round_head = LinearHead.load(ROUND_HEAD, eval_dir) if task == "attitude" else None
        if final == "all":
            head = fit_head(task, recipe, d.plus(extra), encode, classes, seed)
            if offsets is not None:  # the offsets found on the training dialogues' out-of-fold predictions
                head = with_offsets(head, offsets, classes)
            if round_head is not None:
                round_head = fit_head(ROUND_HEAD, ROUND_RECIPE, round_sentences(records, human_round_coarse).plus(extra_rounds),
                                      encode, COARSE, seed)
        head.meta.update({
            "task": task,
            "trained": {"data_sha256": report["data"]["annotated_dialog_sha256"], "split_seed": seed,
                        "fit_on": "all 240 annotated dialogues" if final == "all" else f"{len(train_ids)} training dialogues",
                        "sentences": len(d.labels) if final == "all" else len(tr.labels)},
            "encoder": report["encoder"],
            "heldout": {k: ({kk: vv for kk, vv in v.items() if kk in ("n", "accuracy", "macro_f1", "per_class_f1")}
                            if isinstance(v, dict) and "accuracy" in v else v)
                        for k, v in res.items() if k.startswith("heldout")},
        })
        head.save(out)
        if round_head is not None:
            round_head.meta.update({k: v for k, v in head.meta.items() if k in ("task", "encoder", "heldout")})
            round_head.meta["trained"] = {**head.meta["trained"], "unit": "whole user turn",
                                          "in_domain_rounds": len(extra_rounds.labels)}
            round_head.save(out)
        report["tasks"][task] = res
    for f in eval_dir.glob("*"):
        f.unlink()
    eval_dir.rmdir()
    report["tasks"] = {**kept_tasks(out / "labeler_metrics.json", report), **report["tasks"]}
    (out / "labeler_metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


# --- CLI ----------------------------------------------------------------------------------


def labeler_cmd(
    p4g: Path = typer.Option(Path("/work/shared/data/p4g"), help="Folder with the P4G csv files (annotated_dialog.csv ...)."),
    out: Path = typer.Option(..., help="Where to write strategy.npz/json, attitude.npz/json and labeler_metrics.json. "
                             "Point MADS_LABELER_HEADS (or --heads of `mads analyze`) at it to use them."),
    seed: int = typer.Option(13, help="Seed of the dialogue-level held-out split."),
    test_frac: float = typer.Option(0.2, min=0.05, max=0.5, help="Share of the 240 dialogues held out."),
    search: bool = typer.Option(False, help="Pick each head's recipe by grouped cross-validation on the training dialogues."),
    folds: int = typer.Option(5, min=2, help="Folds for --search."),
    final: str = typer.Option("all", help="all: refit the chosen recipe on all 240 dialogues for the shipped head; "
                              "train: keep the training-split fit (the one the held-out scores describe)."),
    cache: Optional[Path] = typer.Option(None, help="Embedding cache folder (default: the mads cache)."),
    task: Optional[str] = typer.Option(None, help="Train only this task (strategy or attitude)."),
    in_domain: Optional[Path] = typer.Option(None, help="Hand-labelled sales calls (docs/labelling.md): the attitude head "
                                              "also learns their train split and is scored on their test split."),
    in_domain_weight: int = typer.Option(2, min=1, help="How many times each in-domain sentence (sentence head) and "
                                         "round (round head) counts in training."),
    calibrate: bool = typer.Option(True, help="Strategy head: add per-class offsets to its bias, tuned for macro-F1 on "
                                   "out-of-fold predictions of the training dialogues (accuracy kept within 0.3 points)."),
) -> None:
    """Train the strategy and attitude heads on the annotated P4G dialogues; prints held-out accuracy and macro-F1."""
    if task not in (None, "strategy", "attitude"):
        typer.secho("error: --task must be strategy or attitude", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        rep = train_labelers(p4g, out, seed=seed, test_frac=test_frac, search=search, folds=folds, final=final,
                             cache=cache, tasks=(task,) if task else ("strategy", "attitude"),
                             in_domain=in_domain, in_domain_weight=in_domain_weight, calibrate=calibrate,
                             log=lambda s: typer.echo(s, err=True))
    except (P4GError, ValueError) as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from e
    for t, r in rep["tasks"].items():
        if task and t != task:  # figures kept from the metrics file, not retrained now
            continue
        if t == "strategy":
            h = r["heldout"]
            typer.echo(f"strategy: held-out accuracy {h['accuracy']:.4f}, macro-F1 {h['macro_f1']:.4f} ({h['n']} sentences)")
        else:
            h, h5, hr = r["heldout_coarse"], r["heldout_5way"], r["heldout_rounds"]
            typer.echo(f"attitude: held-out coarse accuracy {h['accuracy']:.4f}, macro-F1 {h['macro_f1']:.4f} "
                       f"({h['n']} attitude sentences); with 'none' {h5['accuracy']:.4f} / {h5['macro_f1']:.4f}; "
                       f"rounds {hr['accuracy']:.4f} / {hr['macro_f1']:.4f}")
    typer.echo(f"wrote {out}")


def register_labeler(train: typer.Typer) -> None:
    train.command("labeler")(labeler_cmd)
