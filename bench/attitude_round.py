"""Settings of the attitude round head against P4G's held-out rounds and the hand-labelled sales calls.

    python bench/attitude_round.py [--p4g /work/shared/data/p4g]

The round head (``mads train labeler --task attitude --in-domain ...``) is refitted with each setting on the same
training data as the shipped one (P4G's 192 training dialogues, split seed 13, and the train split of
``tests/data/sales_calls_labelled.jsonl``), and scored per round, coarse group, accuracy / macro-F1, on:
P4G's 48 held-out dialogues (rounds with a human attitude label; a round the sentence head finds no attitude in
counts as an error, as in ``labeler_metrics.json``), the sales test split and the seed-1313 batch
(``tests/data/sales_calls_heldout.jsonl``). Every setting uses the same "no attitude" gate: the sentence head fitted
with the shipped recipe. The last rows loosen that gate for the shipped round head and count the P4G rounds without
an attitude act that then get a group. Prints one row per setting (a few minutes with the embeddings cached).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mads_text.attitude import COARSE, NO_ATTITUDE  # noqa: E402
from mads_text.common import assets  # noqa: E402
from mads_text.labelers.base import record_sentences  # noqa: E402
from mads_text.labelers.embedded import ROUND_HEAD, EmbeddedAttitudeLabeler  # noqa: E402
from mads_text.labelers.encoder import MiniLMEncoder  # noqa: E402
from mads_text.labelers.features import NgramVectorizer, dense_features  # noqa: E402
from mads_text.p4g import human_round_coarse, load_p4g  # noqa: E402
from train import labeler as L  # noqa: E402
from train import labeler_sales as S  # noqa: E402
from train.labeler_fit import Sentences, fit_head  # noqa: E402
from train.labeler_scores import scores  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--p4g", default="/work/shared/data/p4g")
    args = ap.parse_args()
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    recs = load_p4g(Path(args.p4g), "annotated")
    _, test_ids = L.split_dialogues([r.id for r in recs], 13, 0.2)
    test = set(test_ids)
    table = L.embed_all([s for r in recs for t in r.turns for s in record_sentences(t)],
                        assets.cache_dir() / "labeler-embeddings", lambda *_: None)
    enc = L.CachedEncoder(table, MiniLMEncoder())
    sales = S.load_sales(DATA / "sales_calls_labelled.jsonl")
    s_train, s_test = S.split(sales, "train"), S.split(sales, "test")
    held = S.load_sales(DATA / "sales_calls_heldout.jsonl")
    p4g_test = [r for r in recs if r.id in test]

    # the sentence head (the gate) and the shipped round head, fitted as `mads train labeler` fits them
    sent = L.task_sentences(recs, "attitude")
    is_test = np.array([d in test for d in sent.dialogue])
    sales_sent = Sentences()
    for did, x, y in S.sentences(s_train):
        sales_sent.dialogue.append(did), sales_sent.inputs.append(x), sales_sent.labels.append(y)
    rounds = {"p4g_train": L.round_sentences([r for r in recs if r.id not in test], human_round_coarse),
              "sales_train": L.round_sentences(s_train, S.round_labels),
              "p4g_test": L.round_sentences(p4g_test, human_round_coarse),
              "sales_test": L.round_sentences(s_test, S.round_labels),
              "seed1313": L.round_sentences(held, S.round_labels)}
    heads = Path(tempfile.mkdtemp())
    fit_head("attitude", L.DEFAULT_RECIPES["attitude"], sent.subset(~is_test).plus(sales_sent).plus(sales_sent),
             enc.encode, [*COARSE, NO_ATTITUDE], 13).save(heads)
    fit_head(ROUND_HEAD, L.ROUND_RECIPE, rounds["p4g_train"].plus(rounds["sales_train"]).plus(rounds["sales_train"]),
             enc.encode, COARSE, 13).save(heads)
    lab = EmbeddedAttitudeLabeler(str(heads), encoder=enc)

    def gate(records, with_gold: bool) -> np.ndarray:
        """Rounds the sentence head finds no attitude in (P4G: only rounds with a human label)."""
        out = []
        for r, a in zip(records, lab.label_dialogues(records)):
            gold = human_round_coarse(r) if with_gold else [None] * len(a.rounds)
            out += [rl.source == "no attitude" for rl, g in zip(a.rounds, gold) if g is not None or not with_gold]
        return np.array(out)

    gates = {"p4g_test": gate(p4g_test, True), "sales_test": gate(s_test, False), "seed1313": gate(held, False)}
    spec = L.ROUND_RECIPE.spec
    dense = {k: dense_features(spec, v.inputs, enc.encode).astype(np.float64) for k, v in rounds.items()}
    domain = {"p4g_train": 0, "sales_train": 1, "p4g_test": 0, "sales_test": 1, "seed1313": 1}

    def row(name: str, w_sales=2, w_p4g=1, C=0.003, dom_bias=0.0, augment=0.0, ngw=20.0) -> None:
        both = np.concatenate([dense["p4g_train"], dense["sales_train"]])
        mean, sd = both.mean(0), both.std(0)
        sd[sd < 1e-8] = 1.0
        vec = NgramVectorizer.fit([i.text for i in rounds["p4g_train"].inputs + rounds["sales_train"].inputs], 2, min_df=2)

        def x(k):
            z = (dense[k] - mean) / sd
            blocks = [sparse.csr_matrix(z), vec.transform_sparse([i.text for i in rounds[k].inputs]) * ngw]
            if dom_bias:
                oh = np.zeros((len(z), 2))
                oh[:, domain[k]] = dom_bias
                blocks.append(sparse.csr_matrix(oh))
            if augment:  # shared features plus a copy per domain
                aug = np.zeros((len(z), 2 * z.shape[1]))
                aug[:, domain[k] * z.shape[1]:(domain[k] + 1) * z.shape[1]] = z * augment
                blocks.append(sparse.csr_matrix(aug))
            return sparse.hstack(blocks).tocsr()

        xtr = sparse.vstack([x("p4g_train")] * w_p4g + [x("sales_train")] * w_sales).tocsr()
        ytr = np.array(rounds["p4g_train"].labels * w_p4g + rounds["sales_train"].labels * w_sales)
        clf = LogisticRegression(C=C, max_iter=3000, class_weight="balanced", random_state=13).fit(xtr, ytr)
        cells = []
        for k in ("p4g_test", "sales_test", "seed1313"):
            # no attitude: an error on P4G, Indifference (neutral) on the sales calls, as the labeler records it
            pred = np.where(gates[k], "none" if k == "p4g_test" else "neutral", clf.predict(x(k)))
            s = scores(rounds[k].labels, list(pred), COARSE)
            cells.append(f"{s['accuracy']:.3f} / {s['macro_f1']:.3f}")
            if k == "p4g_test":
                cells.append(f"{s['per_class_f1']['neutral']:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)

    print("| round head setting | P4G held-out rounds | P4G neutral F1 | sales test split | seed-1313 batch |")
    print("| --- | --- | --- | --- | --- |")
    row("shipped (in-domain x2, C 0.003, n-gram weight 20)")
    for b in (1.0, 3.0, 10.0):
        row(f"domain bias {b:g}", dom_bias=b)
    for a in (0.5, 1.0):
        row(f"domain bias 3 + per-domain feature copies x{a:g}", dom_bias=3.0, augment=a)
    for w in (2, 3):
        row(f"P4G rounds x{w}", w_p4g=w)
    row("in-domain rounds x1", w_sales=1)
    for c in (0.001, 0.01, 0.03):
        row(f"C {c:g}", C=c)
    for n in (5.0, 50.0):
        row(f"n-gram weight {n:g}", ngw=n)

    print("\n| gate (shipped round head) | P4G held-out rounds | P4G rounds without an attitude act given a group |")
    print("| --- | --- | --- |")
    none = lab._none_idx
    for thr in (None, 0.4, 0.3, 0.2):
        if thr is not None:
            lab._bearing = lambda probs, t=thr: (1 - probs[:, none]) >= t
        yt, yp, given, silent = [], [], 0, 0
        for r, a in zip(p4g_test, lab.label_dialogues(p4g_test)):
            for rl, g in zip(a.rounds, human_round_coarse(r)):
                if g is None:
                    silent += 1
                    given += rl.source != "no attitude"
                else:
                    yt.append(g)
                    yp.append("none" if rl.source == "no attitude" else rl.coarse)
        s = scores(yt, yp, COARSE)
        name = "most likely class is not 'none' (shipped)" if thr is None else f"P(attitude) >= {thr}"
        print(f"| {name} | {s['accuracy']:.3f} / {s['macro_f1']:.3f} | {given}/{silent} |", flush=True)


if __name__ == "__main__":
    main()
