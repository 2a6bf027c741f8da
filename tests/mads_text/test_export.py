"""Export: quality filters, chat format, provenance, persona-level split, datasets folder, CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mads_text import prompts
from mads_text.common.records import DialogueRecord, RunManifest, Turn
from mads_text.export import ExportConfig, ExportError, expand_inputs, export, read_split, slip_reasons, to_messages
from mads_text.personas import render_agent_prompt, sample_personas
from mads_text.scenario import load_scenario

SC = load_scenario("insurance")
PERSONAS = sample_personas(SC, "sign", 12, 3)
GOOD = [
    ("agent", "Hello, this is Li Wei from Anxin Insurance. Do you have a minute?"),
    ("user", "Sure, what is it about?"),
    ("agent", "We offer a critical illness plan at 288 RMB a month that pays 500,000 on diagnosis."),
    ("user", "Hmm, that sounds useful. Send me the link."),
]


def rec(i, turns, outcome="accept", version="p0", prompt_k=None, **kw):
    p = PERSONAS[i % len(PERSONAS)]
    return DialogueRecord(
        id=f"{p.id}-d{i:02d}", scenario="insurance", group="sign", persona=p.fields, persona_id=p.id,
        persona_prompt="", agent_prompt=render_agent_prompt(SC, prompt_k), prompt_version=version,
        turns=[Turn(role=r, text=t) for r, t in turns], outcome=outcome, rounds=len(turns) // 2, **kw,
    )


def write_run(path: Path, recs, version="p0", prompt_k=None):
    path.mkdir(parents=True)
    (path / "dialogues.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in recs))
    man = RunManifest(created="2025-01-01T00:00:00", scenario="insurance", scenario_file=SC.source_file,
                      scenario_sha256=SC.sha256, group="sign", personas=len(recs), per_persona=1, max_rounds=4, seed=3,
                      backend="embedded", model="qwen1.5b", prompt_mode="transcript",
                      agent_instruction=prompt_k or SC.agent.meta_instruction, prompt_version=version)
    (path / "manifest.json").write_text(man.model_dump_json())
    return path


def varied(i):
    return [(r, t + f" ({i})") for r, t in GOOD]


def test_chat_format():
    r = rec(0, GOOD + [("agent", "Great, I will text it now."), ("user", "Okay bye.")])
    msgs = to_messages(r)
    assert msgs[0] == {"role": "system", "content": r.agent_prompt} and "<reference_information>" in msgs[0]["content"]
    assert msgs[1] == {"role": "user", "content": prompts.CALL_CONNECTED}
    assert [m["role"] for m in msgs[1:]] == ["user", "assistant"] * 3
    assert msgs[-1]["content"] == "Great, I will text it now."  # the trailing customer turn is no target


@pytest.mark.parametrize(
    "turns, reason",
    [
        ([("agent", "Hi there, Li Wei here."), ("user", "")], "empty user turn"),
        ([("agent", "Hello! Customer: yes I want it"), ("user", "ok")], "speaker prefix inside a agent turn"),
        ([("agent", "Hello, may I talk to you?"), ("user", "Hi, I'm Li Wei from Anxin Insurance.")],
         "customer spoke as the salesperson"),
        ([("agent", "Hello there, good morning."), ("user", "What do you sell exactly today?"),
          ("agent", "What do you sell exactly today?")], "agent echoed the customer"),
        ([("agent", "Would you like to hear more?"), ("user", "no"), ("agent", "Would you like to hear more?")],
         "agent repeated itself"),
        ([("agent", "Great [ACCEPT]"), ("user", "ok")], "end marker in an agent turn"),
    ],
)
def test_slip_detection(turns, reason):
    assert reason in slip_reasons(rec(0, turns), "Li Wei", "Anxin Insurance")


def test_good_dialogue_has_no_slips():
    assert slip_reasons(rec(0, GOOD), "Li Wei", "Anxin Insurance") == []


def test_filters_split_and_provenance(tmp_path):
    recs = [rec(i, varied(i), version="p1") for i in range(10)]
    recs += [
        rec(10, varied(10), outcome="withdraw"),
        rec(11, varied(11), outcome="error"),
        rec(20, [("agent", "Hello! Customer: yes I want it"), ("user", "ok"), ("agent", "fine"), ("user", "x")]),
        rec(21, GOOD[:2]),  # one agent turn
        rec(22, varied(3), version="p1"),  # a duplicate of dialogue 3's text
    ]
    run = write_run(tmp_path / "opt" / "iter_1" / "run", recs, version="p1")
    info = export([run], tmp_path / "ds", ExportConfig(test_fraction=0.3, seed=1))
    assert info["kept"] == 10 and info["train"] + info["test"] == 10 and info["test"] >= 1
    assert info["dropped"] == {"outcome withdraw": 1, "llm error": 1, "role slip: speaker prefix inside a agent turn": 1,
                               "too few agent turns": 1, "duplicate": 1}
    train, test = read_split(tmp_path / "ds", "train"), read_split(tmp_path / "ds", "test")
    assert not {x["provenance"]["persona_id"] for x in train} & {x["provenance"]["persona_id"] for x in test}
    p = train[0]["provenance"]
    assert p["iteration"] == 1 and p["prompt_version"] == "p1" and p["model"] == "qwen1.5b" and p["outcome"] == "accept"
    assert p["run"] == str(run) and p["dialogue_id"].startswith("insurance-sign")
    from datasets import load_from_disk

    dd = load_from_disk(str(tmp_path / "ds" / "hf"))
    assert dd["train"].num_rows == len(train) and dd["train"][0]["messages"][0]["role"] == "system"
    # more outcomes on request
    info = export([run], tmp_path / "ds2", ExportConfig(outcomes=["accept", "withdraw"]))
    assert info["kept"] == 11


def test_a_slip_kept_as_written_is_dropped_unless_asked(tmp_path):
    from mads_text.common.records import DialogueStats

    recs = [rec(i, varied(i)) for i in range(3)] + [rec(3, varied(3), stats=DialogueStats(role_slips_kept=1))]
    run = write_run(tmp_path / "run", recs)
    info = export([run], tmp_path / "ds", ExportConfig(test_fraction=0.0))
    assert info["kept"] == 3 and info["dropped"] == {"role slip kept as written": 1}
    assert export([run], tmp_path / "ds2", ExportConfig(test_fraction=0.0, keep_unrepaired_slips=True))["kept"] == 4


def test_optimize_folder_expansion(tmp_path):
    opt = tmp_path / "opt"
    write_run(opt / "iter_0" / "run", [rec(i, varied(i)) for i in range(3)])
    write_run(opt / "iter_1" / "run", [rec(i, varied(i + 50), version="p1") for i in range(3)], version="p1")
    assert [(p.parent.name, k) for p, k in expand_inputs([opt])] == [("iter_0", 0), ("iter_1", 1)]
    (opt / "result.json").write_text(json.dumps({"best_run": "iter_1/run"}))
    assert [k for _, k in expand_inputs([opt], opt_best=True)] == [1]
    with pytest.raises(ExportError, match="neither a run folder"):
        expand_inputs([tmp_path / "nothing"])


def test_judge_filters(tmp_path):
    recs = [rec(i, varied(i)) for i in range(8)]
    run = write_run(tmp_path / "run", recs)
    with pytest.raises(ExportError, match="judge"):
        export([run], tmp_path / "ds", ExportConfig(min_judge_mean=2.0))
    (run / "analysis").mkdir()
    lines = []
    for i, r in enumerate(recs):
        s = 3 if i < 4 else 1
        lines.append({"dialogue_id": r.id, "ok": True, "scores": {
            "authenticity": s, "relevance": s, "consistency": s, "efficiency": s, "human_likeness": s,
            "task_success": i % 2 == 0, "reason": "x"}, "mean": float(s)})
    lines.append({"dialogue_id": "unscorable", "ok": False, "error": "bad JSON"})
    (run / "analysis" / "judge.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    info = export([run], tmp_path / "ds", ExportConfig(min_judge_mean=2.0))
    assert info["kept"] == 4 and info["dropped"] == {"judge mean below minimum": 4}
    info = export([run], tmp_path / "ds", ExportConfig(judge_quantile=0.5, require_task_success=True))
    assert info["kept"] == 2
    ex = read_split(tmp_path / "ds", "train") + read_split(tmp_path / "ds", "test")
    assert all(x["provenance"]["judge_mean"] == 3.0 and x["provenance"]["judge"]["relevance"] == 3 for x in ex)


def test_nothing_left_is_an_error_naming_the_filters(tmp_path):
    run = write_run(tmp_path / "run", [rec(0, varied(0), outcome="withdraw")])
    with pytest.raises(ExportError, match="outcome withdraw"):
        export([run], tmp_path / "ds")


def test_cli(tmp_path):
    run = write_run(tmp_path / "run", [rec(i, varied(i), outcome="max_rounds") for i in range(4)])
    res = subprocess.run([sys.executable, "-m", "mads_text.cli", "export", str(run), "--out", str(tmp_path / "ds"),
                          "--outcome", "any"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "kept 4 of 4" in res.stdout
    res = subprocess.run([sys.executable, "-m", "mads_text.cli", "export", str(run), "--out", str(tmp_path / "ds"),
                          "--outcome", "bogus"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "bogus" in res.stderr
