"""Fine-tuning MiniLM's top layers as the whole-turn attitude head, against the shipped linear round head.

    python bench/attitude_tune.py prepare [--p4g ../shared/data/p4g] --out rounds.jsonl     # ~5 min on 2 cores
    python bench/attitude_tune.py fit --rounds rounds.jsonl [--device cuda] [--report report.json]

The linear round head stops near P4G round macro-F1 0.63 whatever its settings (``bench/attitude_round.py``); this
asks whether a stronger encoder gets further. The head reads the customer's turn after the end of the other
speaker's previous turn as one sentence pair (optionally after a marker naming the domain: P4G's annotators and
docs/labelling.md draw "neutral" differently), runs it through MiniLM with its top layers trainable, mean-pools the
customer's tokens and applies a linear layer.

``prepare`` writes every labelled round once: P4G's rounds with a human attitude (the labeler's split, seed 13) and
the hand-labelled sales calls (``tests/data/sales_calls_labelled.jsonl`` train and test splits, the seed-1313 batch
``sales_calls_heldout.jsonl``), each with the "no attitude" gate and the probabilities of a linear round head, both
from heads fitted on the training rounds only (as ``mads train labeler`` fits them for its held-out figures), so
``fit`` scores exactly as ``labeler_metrics.json`` does and needs no labeler code (torch, transformers, scikit-learn).

``fit`` picks the setting (tuned layers, learning rate, epochs, marker) by 3-fold cross-validation over the training
dialogues (the mean of P4G and sales macro-F1), refits it on all training rounds with three seeds and scores each on
the held-out sets, beside the linear head and an even blend of the two. Scoring: on P4G a round the gate finds no
attitude in is an error; on sales calls it is neutral (Indifference), as the labeler records it. Sales rounds count
twice, as for the linear head. One fit takes about 10 minutes on two CPU cores (the grid, about 30 fits, is meant for a
GPU) and seconds on one. Results are in docs/customers.md; the shipped labeler keeps the linear head.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# mads_text.attitude.COARSE, written out so that `fit` runs where only torch, transformers and scikit-learn are installed
COARSE = ["negative", "neutral", "positive", "acceptance"]
DATA = ROOT / "tests" / "data"

PREV_WORDS = 48  # the end of the other speaker's turn: what the customer answers
MAX_LEN = 160
DIM = 384


# which labelling guide a round was read by: P4G's annotators and docs/labelling.md draw "neutral" differently
DOMAINS = {"donation": "donation chat.", "sales": "sales call."}


def pair(prev: str, text: str, domain: str | None = None) -> tuple[str, str]:
    """(context, turn) as the tokenizer's sentence pair; the context keeps the previous turn's last words, after
    the domain's marker where the head was trained with one."""
    ctx = " ".join(prev.split()[-PREV_WORDS:])
    return (f"{DOMAINS[domain]} {ctx}" if domain else ctx), text


class TurnClassifier(torch.nn.Module):
    """MiniLM over (context, turn), mean over the turn's tokens (the pair's second segment), then a linear layer."""

    def __init__(self, encoder: torch.nn.Module, n_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(DIM, n_classes)

    def forward(self, input_ids, attention_mask, token_type_ids):
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        m = (attention_mask * token_type_ids).unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1).clamp(min=1.0))


def tokenize(tok, pairs: Sequence[tuple[str, str]]):
    return tok([p[0] for p in pairs], [p[1] for p in pairs], padding=True, truncation="longest_first",
               max_length=MAX_LEN, return_tensors="pt", return_token_type_ids=True)


def tuned_names(n_layers: int, top: int) -> list[str]:
    """Parameter-name prefixes that training changes: the top ``top`` layers and the linear layer."""
    return [f"encoder.encoder.layer.{i}." for i in range(n_layers - top, n_layers)] + ["head."]


SETTINGS = [  # (tuned top layers, learning rate, epochs, domain marker)
    (2, 1e-4, 4, False), (2, 2e-4, 4, False), (3, 5e-5, 4, False), (3, 1e-4, 4, False), (4, 5e-5, 4, False),
    (4, 1e-4, 4, False), (3, 1e-4, 8, False), (4, 5e-5, 8, False), (3, 1e-4, 12, False),
    (3, 1e-4, 8, True), (4, 1e-4, 8, True), (3, 2e-4, 8, True), (3, 1e-4, 12, True),
]


def domain(r: dict) -> str:
    return "donation" if r["set"].startswith("p4g") else "sales"


def prepare(p4g: Path, out: Path) -> None:
    import tempfile

    from mads_text.attitude import NO_ATTITUDE
    from mads_text.common import assets
    from mads_text.labelers.base import record_sentences
    from mads_text.labelers.embedded import ROUND_HEAD, EmbeddedAttitudeLabeler, round_inputs
    from mads_text.labelers.encoder import MiniLMEncoder
    from mads_text.labelers.features import context_text
    from mads_text.p4g import human_round_coarse, load_p4g
    from train import labeler as L
    from train import labeler_sales as S
    from train.labeler_fit import Sentences, fit_head

    recs = load_p4g(p4g, "annotated")
    _, test_ids = L.split_dialogues([r.id for r in recs], 13, 0.2)
    test = set(test_ids)
    sales = S.load_sales(DATA / "sales_calls_labelled.jsonl")
    groups = {"p4g_train": ([r for r in recs if r.id not in test], human_round_coarse),
              "p4g_test": ([r for r in recs if r.id in test], human_round_coarse),
              "sales_train": (S.split(sales, "train"), S.round_labels),
              "sales_test": (S.split(sales, "test"), S.round_labels),
              "heldout": (S.load_sales(DATA / "sales_calls_heldout.jsonl"), S.round_labels)}
    # the gate and the linear baseline from heads fitted on the training rounds only, as `mads train labeler`
    # fits them for its held-out figures (the shipped heads have seen every P4G dialogue)
    table = L.embed_all([s for r in recs for t in r.turns for s in record_sentences(t)],
                        assets.cache_dir() / "labeler-embeddings", lambda *_: None)
    enc = L.CachedEncoder(table, MiniLMEncoder())
    sent = L.task_sentences(recs, "attitude")
    in_domain = Sentences()
    for did, x, y in S.sentences(groups["sales_train"][0]):
        in_domain.dialogue.append(did), in_domain.inputs.append(x), in_domain.labels.append(y)
    heads = Path(tempfile.mkdtemp())
    fit_head("attitude", L.DEFAULT_RECIPES["attitude"],
             sent.subset(np.array([d not in test for d in sent.dialogue])).plus(in_domain).plus(in_domain),
             enc.encode, [*COARSE, NO_ATTITUDE], 13).save(heads)
    round_train = L.round_sentences(groups["p4g_train"][0], human_round_coarse)
    sales_rounds = L.round_sentences(groups["sales_train"][0], S.round_labels)
    fit_head(ROUND_HEAD, L.ROUND_RECIPE, round_train.plus(sales_rounds).plus(sales_rounds), enc.encode, COARSE,
             13).save(heads)
    lab = EmbeddedAttitudeLabeler(str(heads), encoder=enc)
    rows = []
    for name, (records, gold) in groups.items():
        keyed = [(r, k, x) for r in records for k, x in round_inputs(r)]
        linear = lab.round_probs([x for _, _, x in keyed])
        results = {r.id: a for r, a in zip(records, lab.label_dialogues(records))}
        for (r, k, x), p in zip(keyed, linear):
            y = gold(r)[k - 1]
            if y is None:
                continue
            rows.append({"set": name, "dialogue": r.id, "round": k, "prev": context_text(x), "text": x.text, "label": y,
                         "gate": results[r.id].rounds[k - 1].source == "no attitude",
                         "linear": [round(float(v), 5) for v in p]})
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print({n: sum(r["set"] == n for r in rows) for n in groups}, "->", out)


def score(rows: list[dict], probs: np.ndarray) -> dict:
    """Accuracy and macro-F1 over the four groups with the gate applied (see the module docstring)."""
    from sklearn.metrics import f1_score

    gated = "none" if rows and rows[0]["set"].startswith("p4g") else "neutral"
    pred = [gated if r["gate"] else COARSE[int(p.argmax())] for r, p in zip(rows, probs)]
    gold = [r["label"] for r in rows]
    present = [c for c in COARSE if c in set(gold)]
    per = f1_score(gold, pred, labels=present, average=None, zero_division=0)
    return {"n": len(rows), "accuracy": round(float(np.mean([a == b for a, b in zip(gold, pred)])), 4),
            "macro_f1": round(float(np.mean(per)), 4), "per_class_f1": {c: round(float(f), 3) for c, f in zip(present, per)}}


def fit_one(rows: list[dict], top: int, lr: float, seed: int, device: str, encoder: str, epochs: int = 4,
            marker: bool = False, batch: int = 32):
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = AutoTokenizer.from_pretrained(encoder)
    base = AutoModel.from_pretrained(encoder, dtype=torch.float32)  # the carried copy may be fp16
    model = TurnClassifier(base, len(COARSE)).to(device)
    trainable = tuned_names(base.config.num_hidden_layers, top)
    for name, p in model.named_parameters():
        p.requires_grad = any(name.startswith(t) for t in trainable)
    y = np.array([COARSE.index(r["label"]) for r in rows])
    w = np.array([2.0 if r["set"].startswith("sales") else 1.0 for r in rows])
    # balanced classes over the weighted rounds, as the linear head's class_weight="balanced"
    mass = np.bincount(y, weights=w, minlength=len(COARSE))
    cw = torch.tensor(mass.sum() / (len(COARSE) * np.maximum(mass, 1e-9)), dtype=torch.float32, device=device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    steps = epochs * int(np.ceil(len(rows) / batch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, 1 - s / steps))
    model.train()
    for _ in range(epochs):
        perm = rng.permutation(len(rows))
        for i in range(0, len(rows), batch):
            idx = perm[i : i + batch]
            enc = tokenize(tok, [pair(rows[j]["prev"], rows[j]["text"], domain(rows[j]) if marker else None)
                                 for j in idx]).to(device)
            logits = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
            yt = torch.tensor(y[idx], device=device)
            wt = torch.tensor(w[idx], dtype=torch.float32, device=device)
            # the weighted mean over rounds: sum(w * cw[y] * ce) / sum(w * cw[y])
            ce = torch.nn.functional.cross_entropy(logits, yt, weight=cw, reduction="none")
            loss = (ce * wt).sum() / (wt * cw[yt]).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model, tok


def predict(model, tok, rows: list[dict], device: str, marker: bool = False) -> np.ndarray:
    out = np.zeros((len(rows), len(COARSE)), dtype=np.float32)
    with torch.inference_mode():
        for i in range(0, len(rows), 64):
            chunk = rows[i : i + 64]
            enc = tokenize(tok, [pair(r["prev"], r["text"], domain(r) if marker else None) for r in chunk]).to(device)
            out[i : i + len(chunk)] = torch.softmax(model(enc["input_ids"], enc["attention_mask"],
                                                          enc["token_type_ids"]).float(), -1).cpu().numpy()
    return out


def read_rounds(path: Path) -> list[dict]:
    """The rounds ``prepare`` wrote; a line that is not one is reported by file and line number."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            missing = {"set", "dialogue", "prev", "text", "label", "gate", "linear"} - set(r)
        except (json.JSONDecodeError, TypeError) as e:
            raise SystemExit(f"{path}:{n}: not a JSON object ({e})") from None
        if missing or r["label"] not in COARSE:
            raise SystemExit(f"{path}:{n}: missing {sorted(missing)} or label not one of {COARSE}: rerun `prepare`")
        rows.append(r)
    return rows


def folds(rows: list[dict], k: int, seed: int) -> list[np.ndarray]:
    ids = sorted({r["dialogue"] for r in rows})
    fold_of = {d: i % k for i, d in enumerate(np.random.default_rng(seed).permutation(ids))}
    return [np.array([fold_of[r["dialogue"]] == f for r in rows]) for f in range(k)]


def fit(rounds: Path, device: str, encoder: str | None, settings=SETTINGS, seeds=(13, 14, 15), cv: int = 3) -> dict:
    if encoder is None:
        from mads_text.common import assets

        encoder = str(assets.minilm_dir())
    rows = read_rounds(rounds)
    held = ("p4g_test", "sales_test", "heldout")
    by = {n: [r for r in rows if r["set"] == n] for n in ("p4g_train", "sales_train", *held)}
    train = by["p4g_train"] + by["sales_train"]
    report: dict = {"rounds": {n: len(v) for n, v in by.items()}, "cv": {}, "device": device}
    t0 = time.perf_counter()
    name = "top{}_lr{:g}_ep{}_marker{}".format
    for top, lr, epochs, marker in settings:
        cells = []
        for mask in folds(train, cv, 13):
            tr = [r for r, m in zip(train, mask) if not m]
            te = [r for r, m in zip(train, mask) if m]
            model, tok = fit_one(tr, top, lr, 13, device, encoder, epochs, marker)
            p = predict(model, tok, te, device, marker)
            cells.append([score([r for r in te if r["set"] == s], p[[r["set"] == s for r in te]])["macro_f1"]
                          for s in ("p4g_train", "sales_train")])
        m = np.mean(cells, axis=0)
        key = name(top, lr, epochs, marker)
        report["cv"][key] = {"p4g": round(float(m[0]), 4), "sales": round(float(m[1]), 4), "mean": round(float(m.mean()), 4)}
        print(f"cv {key}: P4G {m[0]:.3f} sales {m[1]:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    top, lr, epochs, marker = max(settings, key=lambda s: report["cv"][name(*s)]["mean"])
    report["chosen"] = {"tuned_layers": top, "lr": lr, "epochs": epochs, "domain_marker": marker}
    linear = {n: np.array([r["linear"] for r in by[n]]) for n in held}
    report["linear_round_head"] = {n: score(by[n], linear[n]) for n in held}
    report["tuned"], report["blend"] = {}, {}
    for seed in seeds:
        model, tok = fit_one(train, top, lr, seed, device, encoder, epochs, marker)
        probs = {n: predict(model, tok, by[n], device, marker) for n in held}
        report["tuned"][seed] = {n: score(by[n], p) for n, p in probs.items()}
        report["blend"][seed] = {n: score(by[n], 0.5 * p + 0.5 * linear[n]) for n, p in probs.items()}
        print(f"seed {seed}: tuned " + ", ".join(f"{n} {v['macro_f1']:.3f}" for n, v in report["tuned"][seed].items())
              + "; blend " + ", ".join(f"{n} {v['macro_f1']:.3f}" for n, v in report["blend"][seed].items()), flush=True)
    print("linear round head: " + ", ".join(f"{n} {v['macro_f1']:.3f}" for n, v in report["linear_round_head"].items()))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--p4g", type=Path, default=Path("../shared/data/p4g"))
    p.add_argument("--out", type=Path, required=True)
    f = sub.add_parser("fit")
    f.add_argument("--rounds", type=Path, required=True)
    f.add_argument("--report", type=Path, default=None, help="write the whole report (JSON) here")
    f.add_argument("--device", default="cpu")
    f.add_argument("--encoder", default=None, help="MiniLM folder (default: the packaged one)")
    f.add_argument("--quick", action="store_true", help="one short setting, two folds, one seed: a smoke run")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a.p4g, a.out)
    else:
        rep = (fit(a.rounds, a.device, a.encoder, settings=[(2, 1e-4, 1, True)], seeds=(13,), cv=2) if a.quick
               else fit(a.rounds, a.device, a.encoder))
        if a.report:
            a.report.write_text(json.dumps(rep, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
