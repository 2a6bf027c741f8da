"""Would a learned round classifier catch what the cue rules miss on calls they have not seen?

Each fresh batch in ``tests/data`` was read after the decision module had been frozen; the module as it stood
then is rebuilt from git (the parent of the commit that added cues from that batch), so its rule verdicts are the
fresh figures, not a fit. Beside them: a logistic regression over MiniLM embeddings of the customer's turn, its last
sentence, the agent's turn before it and the customer's two turns before (balanced classes), trained on every
labelled call outside the batch. Combined, the rules decide first and the classifier decides a round the rules
continue when its probability for accept or withdraw reaches a threshold. Printed per batch and in all: calls whose
first decisive round's outcome agrees with the reader, for the majority class, the classifier alone, the rules, and
rules + classifier at each threshold.

    python bench/decision_learned.py          # needs the git history (a clone, not an archive)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from mads_text.decision import turns_of
from mads_text.labelers.base import split_sentences
from mads_text.labelers.encoder import MiniLMEncoder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
# batch seed -> the module the batch was read against (the parent of the commit that added cues from its calls)
FRESH = {1313: "e277737^", 1414: "c22e89b^", 1919: "e1070c7^", 2020: "146d63f^", 2222: "1094a5f^", 2323: "763be83^"}
LABELS = ("continue", "accept", "withdraw")
FILES = ("sales_calls_*.jsonl", "decision_calls_*.jsonl")  # the control batch shares its personas' ids: not here
THRESHOLDS = (0.5, 0.7, 0.9, 0.95)

# run with the old module on the path: per-round rule verdicts of every call in the given files
DUMP = """
import asyncio, json, sys
from mads_text.decision import Decider, turns_of
from mads_text.scenario import load_scenario
out, deciders = {}, {}
async def main():
    for path in sys.argv[2:]:
        for line in open(path):
            r = json.loads(line)
            d = deciders.setdefault(r["scenario"], Decider(load_scenario(r["scenario"]), None, mode="rules"))
            turns, verdicts = turns_of(r["turns"]), []
            for i, t in enumerate(turns):
                if t.role == "user":
                    verdicts.append((await d.decide(turns[: i + 1], t.marker)).verdict)
            out[r["id"]] = verdicts
asyncio.run(main())
json.dump(out, open(sys.argv[1], "w"))
"""


def labelled_files() -> list[Path]:
    return sorted(p for pattern in FILES for p in DATA.glob(pattern))


def labelled_rounds() -> list[dict]:
    rows = []
    for path in labelled_files():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            gold = {lab["round"]: lab["decision"] for lab in r.get("labels", []) if "decision" in lab}
            seed = int(re.search(r"-s(\d+)-", r["id"]).group(1))
            agent, before, k = "", [], 0
            for t in turns_of(r["turns"]):
                if t.role == "agent":
                    agent = t.text
                    continue
                k += 1
                if k in gold:
                    rows.append({"id": r["id"], "seed": seed, "round": k, "text": t.text, "agent": agent,
                                 "before": " ".join(before[-2:]), "gold": gold[k]})
                before.append(t.text)
    return rows


def old_rules(commit: str, tmp: Path) -> dict[str, list[str]]:
    src = tmp / commit.strip("^")
    src.mkdir()
    got = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "mads_text"], capture_output=True)
    if got.returncode:
        sys.exit(f"cannot rebuild the module at {commit} from git (this needs a clone with its history): "
                 f"{got.stderr.decode().strip()}")
    archive = got.stdout
    subprocess.run(["tar", "x", "-C", str(src)], input=archive, check=True)
    out = tmp / f"{commit.strip('^')}.json"
    files = [str(p) for p in labelled_files()]
    subprocess.run([sys.executable, "-c", DUMP, str(out), *files], check=True, cwd=src,
                   env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})  # cwd: not this checkout's mads_text
    return json.loads(out.read_text())


def first(verdicts: list[str]) -> str:
    return next((v for v in verdicts if v != "continue"), "undecided")


def main() -> None:
    rows = labelled_rounds()
    enc = MiniLMEncoder()
    X = np.hstack([enc.encode([r[k] for r in rows]) for k in ("text", "agent", "before")]
                  + [enc.encode([(split_sentences(r["text"]) or [""])[-1] for r in rows])])
    y = np.array([LABELS.index(r["gold"]) for r in rows])
    seeds = np.array([r["seed"] for r in rows])
    total: Counter = Counter()
    print(f"{'batch':>6} {'calls':>5} {'majority':>8} {'clf':>4} {'rules':>5} " + " ".join(f"{'+' + str(t):>6}" for t in THRESHOLDS))
    with tempfile.TemporaryDirectory() as tmp:
        for seed, commit in FRESH.items():
            rules = old_rules(commit, Path(tmp))
            test = seeds == seed
            clf = LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced").fit(X[~test], y[~test])
            calls = defaultdict(list)
            for i, p in zip(np.where(test)[0], clf.predict_proba(X[test])):
                calls[rows[i]["id"]].append((rows[i]["round"], rows[i]["gold"], p))
            golds = {cid: first([g for _, g, _ in sorted(v, key=lambda x: x[0])]) for cid, v in calls.items()}
            score = Counter()
            score["majority"] = max(Counter(golds.values()).values())
            for cid, lst in calls.items():
                lst.sort(key=lambda x: x[0])
                rule = [rules[cid][k - 1] for k, _, _ in lst]
                score["clf"] += first([LABELS[int(np.argmax(p))] for _, _, p in lst]) == golds[cid]
                score["rules"] += first(rule) == golds[cid]
                for th in THRESHOLDS:
                    both = [v if v != "continue" else "withdraw" if p[2] >= th else "accept" if p[1] >= th else v
                            for v, (_, _, p) in zip(rule, lst)]
                    score[th] += first(both) == golds[cid]
            score["calls"] = len(calls)
            total.update(score)
            print(f"{seed:>6} {score['calls']:>5} {score['majority']:>8} {score['clf']:>4} {score['rules']:>5} "
                  + " ".join(f"{score[t]:>6}" for t in THRESHOLDS))
    print(f"{'all':>6} {total['calls']:>5} {total['majority']:>8} {total['clf']:>4} {total['rules']:>5} "
          + " ".join(f"{total[t]:>6}" for t in THRESHOLDS))


if __name__ == "__main__":
    main()
