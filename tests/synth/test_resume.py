"""Resume, torn tails, voice reassignment, settings guard, parallel workers and the CLI (flite: fast)."""

import json
import subprocess
import sys

import pytest

from synth.dialogue import SynthConfig
from synth.quality import QAConfig
from synth.stage import SynthError, synth_run

FAST = dict(engine="flite", qa=QAConfig(asr=None, speaker=False), hf=False)


def _lines(out):
    return [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]


def test_resume_skips_done_and_repairs_a_torn_tail(real_run, tmp_path):
    out = tmp_path / "aud"
    r1 = synth_run(real_run, out, SynthConfig(**FAST), progress=False, limit=2)
    assert r1.produced == 2
    first = _lines(out)
    # a crash mid-append leaves a partial last line
    with open(out / "manifest.jsonl", "a") as f:
        f.write('{"dialogue_id": "x", "tu')
    r2 = synth_run(real_run, out, SynthConfig(**FAST), progress=False)
    assert r2.skipped == 2 and r2.produced == r2.total - 2
    lines = _lines(out)
    assert lines[: len(first)] == first
    assert len({(x["dialogue_id"], x["turn"]) for x in lines}) == len(lines)
    # a dialogue that lost its last line is made again
    keep = (out / "manifest.jsonl").read_text().splitlines()[:-1]
    (out / "manifest.jsonl").write_text("\n".join(keep) + "\n")
    r3 = synth_run(real_run, out, SynthConfig(**FAST), progress=False)
    assert r3.produced == 1 and r3.redone == 1
    assert len(_lines(out)) == len(lines)
    r4 = synth_run(real_run, out, SynthConfig(**FAST), progress=False)
    assert r4.produced == 0 and r4.skipped == r4.total


def test_other_settings_are_refused_and_redo_rebuilds(real_run, tmp_path):
    out = tmp_path / "aud"
    synth_run(real_run, out, SynthConfig(**FAST), progress=False, limit=1)
    with pytest.raises(SynthError, match="seed"):
        synth_run(real_run, out, SynthConfig(**FAST, seed=5), progress=False)
    r = synth_run(real_run, out, SynthConfig(**FAST, seed=5), progress=False, redo=True, limit=1)
    assert r.produced == 1 and len({x["dialogue_id"] for x in _lines(out)}) == 1
    kokoro = SynthConfig(engine="kokoro", qa=QAConfig(asr=None, speaker=False), hf=False)
    with pytest.raises(SynthError, match="engine"):
        synth_run(real_run, out, kokoro, progress=False)
    with pytest.raises(SynthError, match="voiced with engine 'flite'"):
        synth_run(real_run, out, kokoro, progress=False, redo=True)


def test_reassigning_a_voice_redoes_only_that_personas_dialogues(real_run, tmp_path):
    out = tmp_path / "aud"
    synth_run(real_run, out, SynthConfig(**FAST), progress=False)
    book = json.loads((out / "voices.json").read_text())
    pid = sorted(book["personas"])[0]
    before = {x["dialogue_id"]: x for x in _lines(out) if x["persona_id"] != pid}
    mtimes = {d: (out / "calls" / f"{d}.wav").stat().st_mtime_ns for d in before}
    r = subprocess.run([sys.executable, "-m", "mads_text.cli", "voices", "set", str(out), pid, "--pitch", "1.3"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = synth_run(real_run, out, SynthConfig(**FAST), progress=False)
    n_pid = sum(1 for d in {x["dialogue_id"] for x in _lines(out)} if d.startswith(pid))
    assert res.redone == n_pid == res.produced == 2
    assert all((out / "calls" / f"{d}.wav").stat().st_mtime_ns == t for d, t in mtimes.items())
    new_voice = json.loads((out / "voices.json").read_text())["personas"][pid]["voice"]
    assert new_voice["pitch"] == 1.3
    assert {x["voice_key"] for x in _lines(out) if x["persona_id"] == pid and x["role"] == "user"} != {
        x["voice_key"] for x in before.values() if x["role"] == "user"}


def test_two_workers_write_the_same_files_as_one(real_run, tmp_path):
    a, b = tmp_path / "one", tmp_path / "two"
    synth_run(real_run, a, SynthConfig(**FAST), progress=False, limit=3)
    synth_run(real_run, b, SynthConfig(**FAST, workers=2), progress=False, limit=3)
    key = lambda x: (x["dialogue_id"], x["turn"])
    la = sorted(({k: v for k, v in x.items() if k != "run"} for x in _lines(a)), key=key)
    lb = sorted(({k: v for k, v in x.items() if k != "run"} for x in _lines(b)), key=key)
    assert la == lb
    for x in la:
        assert (a / x["call"]).read_bytes() == (b / x["call"]).read_bytes()


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(SynthError, match="dialogues.jsonl"):
        synth_run(tmp_path / "nope", tmp_path / "aud", SynthConfig(**FAST), progress=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "dialogues.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(SynthError, match="dialogues.jsonl:1"):
        synth_run(run, tmp_path / "aud", SynthConfig(**FAST), progress=False)


def test_cli_synth_and_voices(real_run, tmp_path):
    out = tmp_path / "aud"
    cmd = [sys.executable, "-m", "mads_text.cli"]
    r = subprocess.run([*cmd, "synth", str(real_run), "--out", str(out), "--engine", "flite", "--asr", "none",
                        "--no-speaker-check", "--limit", "1", "--no-hf"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 dialogues voiced" in r.stdout and "audio s/s" in r.stdout
    r = subprocess.run([*cmd, "voices", "show", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "agent:insurance" in r.stdout
    r = subprocess.run([*cmd, "voices", "list"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "distinct" in r.stdout
    r = subprocess.run([*cmd, "synth", str(tmp_path / "missing"), "--out", str(out)], capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 2 and "dialogues.jsonl" in r.stderr
