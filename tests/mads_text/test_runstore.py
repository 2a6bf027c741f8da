import json

import pytest

from mads_text.common.records import DialogueRecord, RunManifest, Turn
from mads_text.common.runstore import (
    JsonlWriter,
    RunStoreError,
    iter_jsonl,
    open_dialogues,
    repair_tail,
    write_json_atomic,
)


def test_torn_tail_is_cut_and_appends_continue(tmp_path):
    p = tmp_path / "d.jsonl"
    with JsonlWriter(p) as w:
        w.append({"id": 1})
        w.append(Turn(role="user", text="hi"))
    with open(p, "ab") as f:
        f.write(b'{"id": 3, "trunc')  # a crash mid-line
    assert [o.get("id") for o in iter_jsonl(p)] == [1, None]
    with JsonlWriter(p) as w:
        assert w.repaired == len(b'{"id": 3, "trunc')
        w.append({"id": 4})
    lines = p.read_text().splitlines()
    assert len(lines) == 3 and lines[-1] == '{"id": 4}'


def test_repair_single_partial_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"partial')
    assert repair_tail(p) == 9 and p.read_bytes() == b""


# --- records and open_dialogues --------------------------------------------------------------------

def minimal(did, n_rounds=2, **more):
    """A record with only the documented minimal fields (README, "Run records")."""
    turns = []
    for k in range(n_rounds):
        turns += [{"role": "agent", "text": f"Offer {k}."}, {"role": "user", "text": f"Reply {k}."}]
    return {"id": did, "scenario": "insurance", "persona": {"name": did}, "turns": turns, **more}


def test_minimal_record_gets_unknowns_and_rounds_from_turns():
    r = DialogueRecord.model_validate(minimal("a", n_rounds=3))
    assert (r.group, r.outcome, r.persona_prompt, r.agent_prompt) == ("unknown", "unknown", "", "")
    assert r.rounds == 3
    # a stated count wins over the derived one
    assert DialogueRecord.model_validate(minimal("b", n_rounds=3, rounds=5)).rounds == 5
    with pytest.raises(ValueError):
        DialogueRecord.model_validate({"id": "c", "scenario": "insurance", "turns": []})  # no persona


def test_simulate_record_serializes_as_before():
    full = {"id": "x", "scenario": "insurance", "group": "sign", "persona": {"name": "Fang"}, "persona_prompt": "p",
            "agent_prompt": "q", "turns": [{"role": "agent", "text": "Hi"}, {"role": "user", "text": "No [sic]"}],
            "outcome": "withdraw", "rounds": 1}
    dumped = json.loads(DialogueRecord.model_validate(full).model_dump_json())
    assert list(dumped)[:9] == list(full)  # field order of the run-record contract
    assert {k: dumped[k] for k in full} == full


def _write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(lines).encode("utf-8"))
    return path


def test_open_dialogues_reports_a_bad_middle_line_and_keeps_the_rest(tmp_path):
    p = _write_lines(tmp_path / "run" / "dialogues.jsonl", [
        json.dumps(minimal("a")) + "\n",
        '{"id": "b", "scenario": "insur\n',                       # not JSON
        json.dumps({"id": "c", "scenario": "insurance"}) + "\n",  # JSON, not a record
        "\n",                                                    # blank lines are not errors
        json.dumps(minimal("d", outcome="accept")) + "\n",
        '{"id": "e", "scen',                                     # torn last line
    ])
    before = p.read_bytes()
    src = open_dialogues(tmp_path / "run")
    assert [r.id for r in src.records] == ["a", "d"]
    assert [n for n, _ in src.bad_lines] == [2, 3, 6]
    assert "not JSON" in src.bad_lines[0][1] and "persona" in src.bad_lines[1][1] and "torn" in src.bad_lines[2][1]
    assert src.path == p and src.folder == tmp_path / "run" and src.manifest is None
    assert p.read_bytes() == before  # read only: the torn tail is not cut


def test_open_dialogues_takes_any_jsonl_file_and_a_last_line_without_newline(tmp_path):
    p = _write_lines(tmp_path / "calls.jsonl", [json.dumps(minimal("a")) + "\n", json.dumps(minimal("b"))])
    src = open_dialogues(p)
    assert [r.id for r in src.records] == ["a", "b"] and src.bad_lines == []
    assert src.path == p and src.folder == tmp_path


def test_open_dialogues_reads_the_manifest_beside_the_file(tmp_path):
    run = tmp_path / "run"
    _write_lines(run / "dialogues.jsonl", [json.dumps(minimal("a")) + "\n"])
    man = RunManifest(created="now", scenario="insurance", scenario_file="f", scenario_sha256="0", group="sign",
                      personas=1, per_persona=1, max_rounds=4, seed=7, backend="embedded", model="smollm2",
                      prompt_mode="transcript", agent_instruction="sell")
    write_json_atomic(run / "manifest.json", man)
    assert open_dialogues(run).manifest == man


def test_open_dialogues_errors(tmp_path):
    with pytest.raises(RunStoreError, match="does not exist"):
        open_dialogues(tmp_path / "nothing")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(RunStoreError, match="holds no dialogues.jsonl"):
        open_dialogues(tmp_path / "empty_folder")
    bad = _write_lines(tmp_path / "bad.jsonl", ["[1, 2]\n", "not json\n"])
    with pytest.raises(RunStoreError, match=r"no line is a valid dialogue record \(line 1"):
        open_dialogues(bad)
    with pytest.raises(RunStoreError, match="empty"):
        open_dialogues(_write_lines(tmp_path / "empty.jsonl", []))
