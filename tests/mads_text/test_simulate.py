"""End-to-end self-play on the small embedded model: records, resume after a kill, errors."""

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mads_text.common.records import DialogueRecord

MADS = [sys.executable, "-m", "mads_text.cli"]
ARGS = ["simulate", "--scenario", "insurance", "--group", "busi", "--personas", "3", "--per-persona", "2",
        "--max-rounds", "2", "--seed", "5", "--model", "smollm2", "--concurrency", "2"]


def _records(run: Path) -> list[DialogueRecord]:
    return [DialogueRecord.model_validate_json(line) for line in (run / "dialogues.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_killed_run_resumes_without_loss_or_duplicates(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(MADS + ARGS + ["--out", str(run)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    path = run / "dialogues.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if path.exists() and path.read_text().count("\n") >= 1:
            break
        if proc.poll() is not None:
            pytest.fail("simulate ended before it could be killed: " + proc.stdout.read().decode()[-2000:])
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _records(run)
    assert 1 <= len(partial) < 6
    out = subprocess.run(MADS + ARGS + ["--out", str(run)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    recs = _records(run)
    ids = [r.id for r in recs]
    assert len(ids) == 6 and len(set(ids)) == 6
    assert {r.id: r.model_dump() for r in partial}.items() <= {r.id: r.model_dump() for r in recs}.items()
    # a third run has nothing to do
    out = subprocess.run(MADS + ARGS + ["--out", str(run)], capture_output=True, text=True, timeout=300)
    assert "0 new dialogues, 6 already there" in out.stdout
    assert len(_records(run)) == 6

    man = json.loads((run / "manifest.json").read_text())
    assert man["seed"] == 5 and man["group"] == "busi" and man["backend"] == "embedded"
    assert man["model"] == "smollm2" and "xllamacpp" in man["packages"] and man["expected_dialogues"] == 6
    for r in recs:
        assert r.scenario == "insurance" and r.group == "busi"
        assert r.outcome in ("accept", "withdraw", "max_rounds", "undecided")
        assert r.rounds <= 2 and r.turns[0].role == "agent"
        # a call ended by a bare end marker stores no customer words for that round
        tail = ["agent"] if r.decision.source == "marker_only" else []
        assert [t.role for t in r.turns] == ["agent", "user"] * r.rounds + tail
        assert (r.decision.outcome == "undecided") == (r.outcome in ("max_rounds", "undecided"))
        assert all("[ACCEPT]" not in t.text and "[WITHDRAW]" not in t.text for t in r.turns)
        assert r.usage.completion_tokens > 0 and "health_status" in r.persona
        assert r.persona_prompt.startswith("<user_profile>") and r.agent_prompt.startswith("<reference_information>")
    stats = json.loads((run / "stats.json").read_text())
    assert stats["n_dialogues"] == 6 and sum(stats["outcomes"].values()) == 6
    assert Counter(r.persona_id for r in recs) == Counter({p: 2 for p in {r.persona_id for r in recs}})


def test_resume_into_a_different_run_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({
        "created": "x", "scenario": "insurance", "scenario_file": "", "scenario_sha256": "0", "group": "sign",
        "personas": 1, "per_persona": 1, "max_rounds": 2, "seed": 1, "backend": "embedded", "model": "smollm2",
        "prompt_mode": "transcript", "agent_instruction": "x",
    }))
    out = subprocess.run(MADS + ARGS + ["--out", str(run)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "holds a different run" in out.stderr and "group 'sign' vs 'busi'" in out.stderr


def test_unreachable_openai_run_fails_clearly(tmp_path):
    out = subprocess.run(
        MADS + ["simulate", "--personas", "1", "--per-persona", "1", "--backend", "openai", "--model", "m",
                "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert "LLM backend unavailable" in out.stderr and "127.0.0.1:9" in out.stderr
    assert not (tmp_path / "r" / "dialogues.jsonl").exists() or (tmp_path / "r" / "dialogues.jsonl").read_text() == ""


def test_bad_scenario_file_on_the_command_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nproduct: {name: x}\n")
    out = subprocess.run(MADS + ["simulate", "--scenario", str(bad), "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and str(bad) in out.stderr and "product.metadata" in out.stderr


@pytest.mark.slow
def test_chat_mode_run_on_embedded(tmp_path):
    out = subprocess.run(
        MADS + ["simulate", "--personas", "1", "--per-persona", "1", "--max-rounds", "1", "--model", "smollm2",
                "--prompt-mode", "chat", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (rec,) = _records(tmp_path / "r")
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["prompt_mode"] == "chat"
    assert rec.turns and rec.turns[0].role == "agent"
