"""train/ear_runs.py: the run folders the shipped ear is voiced from."""

import json
import re
import sys

from train import ear_runs


def test_ear_runs_split_calls_into_whole_lines_and_single_sentences(tmp_path, monkeypatch):
    calls = "tests/data/decision_calls_seed20*.jsonl"
    monkeypatch.setattr(sys, "argv", ["ear_runs", "--out", str(tmp_path), "--calls", calls,
                                      "--kokoro-per-scenario", "3", "--sentences-per-scenario", "25"])  # fmt: skip
    ear_runs.main()
    read = lambda name: [json.loads(x) for x in (tmp_path / name / "dialogues.jsonl").read_text().splitlines()]  # noqa: E731
    every, kokoro, sent = read("all"), read("kokoro"), read("sentences")
    assert len(kokoro) == 9 and {c["id"] for c in kokoro} <= {c["id"] for c in every}
    assert not {c["id"] for c in kokoro} & {c["id"] for c in sent}  # the sentences come from other calls
    said = [t["text"] for c in sent for t in c["turns"] if t["role"] == "user"]
    per_scenario = {s: sum(1 for c in sent if c["scenario"] == s for t in c["turns"] if t["role"] == "user")
                    for s in ("insurance", "finance", "automotive")}  # fmt: skip
    assert per_scenario == dict.fromkeys(per_scenario, 25)
    # one sentence per turn, each written by someone in its call, most of them questions
    assert all(len(re.split(r"(?<=[.?!])\s+", s)) == 1 and len(s.split()) >= 3 for s in said)
    originals = {c["id"]: " ".join(t["text"] for t in c["turns"]) for c in every}
    assert all(s in originals[c["id"]] for c in sent for s in (t["text"] for t in c["turns"] if t["role"] == "user"))
    assert sum(s.endswith("?") for s in said) > len(said) / 3


def test_ear_runs_leave_out_batches_labelled_after_the_shipped_ear(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["ear_runs", "--out", str(tmp_path), "--calls", "tests/data/decision_calls_seed3*.jsonl",
                                      "--kokoro-per-scenario", "1", "--sentences-per-scenario", "2"])  # fmt: skip
    ear_runs.main()
    every = [json.loads(x)["id"] for x in (tmp_path / "all" / "dialogues.jsonl").read_text().splitlines()]
    kept = [json.loads(x)["id"] for f in ("tests/data/decision_calls_seed3030.jsonl",
                                          "tests/data/decision_calls_seed3131.jsonl") for x in open(f) if x.strip()]  # fmt: skip
    assert sorted(every) == sorted(kept)
    assert ear_runs.seed_of("x/decision_calls_seed2626_slot.jsonl") == 2626 and ear_runs.seed_of("calls.jsonl") == 0
