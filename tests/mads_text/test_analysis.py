"""Run analysis: labels files, metrics.json, figures, report, compare, judge, bare dialogue files, and the CLI commands."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from mads_text import metrics as M
from mads_text.analysis import (
    AnalysisError,
    LabelingConfig,
    analyze_records,
    analyze_run,
    compare_runs,
    read_round_labels,
)
from mads_text.attitude import STATES
from mads_text.common.records import DialogueRecord, Turn
from mads_text.judge import Judge, JudgeResult, JudgeScores, filter_by_scores, summarize
from mads_text.llm.fake import ScriptedBackend
from mads_text.p4g import DEFAULT_P4G

CHAINS = {
    "d1": ["Doubt", "Hesitant", "Interested", "Acceptance"],
    "d2": ["Refusal", "Refusal"],
    "d3": ["Doubt", "Interested", "Seeking Value"],
}
STRATS = {"d1": ["logical-appeal", "emotion-appeal"], "d2": [], "d3": ["logical-appeal"]}


def make_run(path, chains=CHAINS, outcomes=None, group="sign"):
    outcomes = outcomes or {"d1": "accept", "d2": "withdraw", "d3": "max_rounds"}
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "dialogues.jsonl", "w") as f:
        for did, chain in chains.items():
            turns = []
            for k in range(len(chain)):
                turns.append(Turn(role="agent", text=f"Agent turn {k + 1}. Our plan covers 70 illnesses."))
                turns.append(Turn(role="user", text=f"User reply {k + 1}."))
            rec = DialogueRecord(id=did, scenario="insurance", group=group, persona={"name": did}, persona_prompt="",
                                 agent_prompt="", turns=turns, outcome=outcomes[did], rounds=len(chain))
            f.write(rec.model_dump_json() + "\n")
    return path


def write_bare_dialogues(path, chains=CHAINS, outcomes=None, bad_line_after=None):
    """Records with only the documented minimal fields (id, scenario, persona, turns), and no manifest."""
    outcomes = outcomes or {}
    lines = []
    for did, chain in chains.items():
        turns = []
        for k in range(len(chain)):
            turns += [{"role": "agent", "text": f"Agent turn {k + 1}. Our plan covers 70 illnesses."},
                      {"role": "user", "text": f"User reply {k + 1}."}]
        rec = {"id": did, "scenario": "insurance", "persona": {"name": did}, "turns": turns}
        if did in outcomes:
            rec["outcome"] = outcomes[did]
        lines.append(json.dumps(rec))
        if did == bad_line_after:
            lines.append('{"id": "half a rec')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_round_labels(path, chains):
    with open(path, "w") as f:
        for did, chain in chains.items():
            for k, s in enumerate(chain, 1):
                f.write(json.dumps({"dialogue_id": did, "round": k, "state": s}) + "\n")
    return path


def write_dialogue_labels(path, chains, strats):
    with open(path, "w") as f:
        for did, chain in chains.items():
            f.write(json.dumps({"dialogue_id": did, "rounds": [{"round": k, "state": s} for k, s in enumerate(chain, 1)],
                                "strategy_set": strats.get(did, [])}) + "\n")
    return path


def test_metrics_from_given_labels(tmp_path):
    run = make_run(tmp_path / "run")
    labels = write_dialogue_labels(tmp_path / "labels.jsonl", CHAINS, STRATS)
    m = analyze_run(run, LabelingConfig(labels_file=str(labels)), n_boot=50, progress=False)
    # hand computation: Doubt -> {Hesitant, Interested} and Interested -> {Acceptance, Seeking Value} each
    # split 50/50 (ln 2); Hesitant and Refusal rows are deterministic (0); H_avg divides by all 16 rows
    assert m["h_avg"] == pytest.approx(2 * math.log(2) / 16, abs=1e-6)
    assert m["h_norm"] == pytest.approx(2 * math.log(2) / 16 / math.log(16), abs=1e-6)
    assert m["h_norm_paper"] == pytest.approx(2 * math.log(2) / 16 / 2.77, abs=1e-6)
    assert m["states"] == list(STATES)
    t = np.array(m["transition_matrix"])
    assert t.shape == (16, 16)
    assert t[STATES.index("Doubt"), STATES.index("Hesitant")] == pytest.approx(0.5)
    assert m["n_transitions"] == 3 + 1 + 2
    assert m["acceptance_rate"] == pytest.approx(1 / 3, abs=1e-6)
    sp = m["strategies_per_dialogue"]
    assert sp["mean"] == pytest.approx(1.0) and sp["sd"] == pytest.approx(1.0)  # C_str 2, 0, 1
    assert m["n_dialogues"] == 3 and m["n_unlabelled"] == 0
    a = run / "analysis"
    for name in ("labels.jsonl", "metrics.json", "transition_heatmap.png", "strategies.png", "report.md"):
        assert (a / name).exists(), name
    assert (a / "transition_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    report = (a / "report.md").read_text()
    assert "transition_heatmap.png" in report and "strategies.png" in report and "H_avg" in report
    saved = json.loads((a / "metrics.json").read_text())
    assert saved["h_avg"] == m["h_avg"] and saved["labelers"]["attitude"] == "file:labels.jsonl"


@pytest.mark.slow
def test_per_round_label_lines_and_missing_dialogue_is_marked(tmp_path):
    run = make_run(tmp_path / "run")
    partial = {k: v for k, v in CHAINS.items() if k != "d2"}
    labels = write_round_labels(tmp_path / "rounds.jsonl", partial)
    assert read_round_labels(labels)["d1"][4] == "Acceptance"
    # per-round lines carry no strategies: the embedded strategy labeler fills them in
    m = analyze_run(run, LabelingConfig(labels_file=str(labels)), n_boot=20, progress=False)
    assert m["n_dialogues"] == 3 and m["n_labelled"] == 2 and m["unlabelled_ids"] == ["d2"]
    lines = {json.loads(x)["dialogue_id"]: json.loads(x) for x in (run / "analysis" / "labels.jsonl").read_text().splitlines()}
    assert set(lines) == {"d1", "d2", "d3"}  # marked, not dropped
    assert lines["d2"]["attitude_ok"] is False and "no labels" in lines["d2"]["errors"][0]
    assert lines["d1"]["strategy_labeler"] == "embedded" and lines["d1"]["strategies"]
    assert "Dialogues without attitude labels (1)" in (run / "analysis" / "report.md").read_text()


def test_bad_labels_file_names_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"dialogue_id": "d1", "round": 1, "state": "Grumpy"}\n')
    with pytest.raises(AnalysisError, match="bad.jsonl:1.*Grumpy"):
        read_round_labels(bad)
    bad.write_text('{"dialogue_id": "d1", "round": 0, "state": "Refusal"}\n')
    with pytest.raises(AnalysisError, match="1-based"):
        read_round_labels(bad)


def test_bare_dialogues_file_gives_unknown_provenance_and_acceptance_over_known_outcomes(tmp_path):
    dialogues = write_bare_dialogues(tmp_path / "bare" / "dialogues.jsonl", outcomes={"d1": "accept", "d3": "withdraw"})
    labels = write_dialogue_labels(tmp_path / "labels.jsonl", CHAINS, STRATS)
    m = analyze_run(tmp_path / "bare", LabelingConfig(labels_file=str(labels)), n_boot=20, progress=False)
    assert m["run"]["manifest"] is None and m["run"]["model"] == "unknown" and m["run"]["group"] == "unknown"
    assert m["run"]["scenario"] == "insurance" and m["run"]["dialogues"] == str(dialogues)
    assert m["outcomes"] == {"accept": 1, "unknown": 1, "withdraw": 1}
    assert m["acceptance_rate"] == pytest.approx(0.5)  # d2 said nothing: left out, as "error" is
    assert "known" in m["definitions"]["acceptance_rate"]
    assert m["h_avg"] == pytest.approx(2 * math.log(2) / 16, abs=1e-6)  # the same chains as a full run
    assert json.loads((tmp_path / "bare" / "analysis" / "metrics.json").read_text())["run"]["manifest"] is None

    # a loose file: no outcome known at all, outputs where --out says
    loose = write_bare_dialogues(tmp_path / "loose.jsonl")
    m = analyze_run(loose, LabelingConfig(labels_file=str(labels)), n_boot=20, progress=False, out_dir=tmp_path / "o")
    assert m["acceptance_rate"] is None and m["acceptance_rate_ci95"] == [None, None]
    assert (tmp_path / "o" / "metrics.json").exists() and not (tmp_path / "analysis").exists()


def test_compare_identical_and_disjoint(tmp_path):
    a = make_run(tmp_path / "a", group="base")
    b = make_run(tmp_path / "b", group="sign")
    other = {"x1": ["Active", "Cooperative", "Satisfied"], "x2": ["Attention", "Consideration"]}
    c = make_run(tmp_path / "c", chains=other, outcomes={"x1": "accept", "x2": "accept"}, group="busi")
    for run, chains in ((a, CHAINS), (b, CHAINS), (c, other)):
        lab = write_dialogue_labels(tmp_path / f"{run.name}.jsonl", chains, STRATS)
        analyze_run(run, LabelingConfig(labels_file=str(lab)), n_boot=20, progress=False)
    res = compare_runs([a, b, c], tmp_path / "cmp", baseline=a, n_boot=30)
    rows = {r["name"]: r for r in res["runs"]}
    assert rows["base"]["is_baseline"]
    assert rows["sign"]["js"] == pytest.approx(0.0, abs=1e-9)
    assert rows["busi"]["js"] == pytest.approx(math.log(2))  # no transition in common: the maximum
    for f in ("compare.json", "compare.md", "compare_heatmaps.png", "compare_strategies.png"):
        assert (tmp_path / "cmp" / f).exists()
    assert "JS" in (tmp_path / "cmp" / "compare.md").read_text()


def test_compare_needs_analysis(tmp_path):
    run = make_run(tmp_path / "r")
    with pytest.raises(AnalysisError, match="mads analyze"):
        compare_runs([run], tmp_path / "o")


# --- judge -----------------------------------------------------------------------------------------


def _scores(v, ok=True):
    return JudgeResult(dialogue_id=f"d{v}", ok=ok, scores=JudgeScores(authenticity=v, relevance=v, consistency=v,
                       efficiency=v, human_likeness=v, task_success=v >= 2) if ok else None)


def test_filter_by_mean_and_quantile():
    res = [_scores(0), _scores(1), _scores(2), _scores(3), JudgeResult(dialogue_id="bad", ok=False, error="x")]
    kept, info = filter_by_scores(res, min_mean=1.0)
    assert kept == ["d1", "d2", "d3"] and info["unjudged"] == 1
    kept, info = filter_by_scores(res, quantile=0.5)  # median of 0,1,2,3 is 1.5
    assert kept == ["d2", "d3"] and info["quantile_threshold"] == pytest.approx(1.5)
    kept, _ = filter_by_scores(res, require_success=True)
    assert kept == ["d2", "d3"]
    s = summarize(res)
    assert s["mean"] == pytest.approx(1.5) and s["task_success_rate"] == 0.5 and s["judged"] == 4


def test_judge_control_flow():
    good = json.dumps({"authenticity": 2, "relevance": 3, "consistency": 2, "efficiency": 1, "human_likeness": 2,
                       "task_success": False, "reason": "ok"})
    be = ScriptedBackend(['{"authenticity": 7}', good])
    rec = DialogueRecord(id="d", scenario="insurance", group="sign", persona={}, persona_prompt="", agent_prompt="",
                         turns=[Turn(role="agent", text="Hi"), Turn(role="user", text="Hello")], outcome="max_rounds",
                         rounds=1)
    import asyncio

    r = asyncio.run(Judge(be).ajudge(rec))
    assert r.ok and r.mean == pytest.approx(2.0) and len(be.calls) == 2
    assert be.calls[0][1].json_schema["properties"]["relevance"]["enum"] == [0, 1, 2, 3]
    r = asyncio.run(Judge(ScriptedBackend(["x"] * 3)).ajudge(rec))
    assert not r.ok and r.error


# --- the CLI (root app with the plugins registered) ----------------------------------------------------


@pytest.fixture(scope="module")
def cli():
    from mads_text import cli as root

    root._register_plugins()
    return root.app


def test_cli_analyze_with_labels_and_compare(tmp_path, cli):
    run = make_run(tmp_path / "run")
    labels = write_dialogue_labels(tmp_path / "labels.jsonl", CHAINS, STRATS)
    r = CliRunner().invoke(cli, ["analyze", str(run), "--labels", str(labels), "--bootstrap", "20"])
    assert r.exit_code == 0, r.output
    assert "H_avg 0.0866" in r.output  # 2 ln2 / 16 = 0.08664
    r = CliRunner().invoke(cli, ["compare", str(run), str(run), "--out", str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "dialogues.jsonl" in r.output


@pytest.mark.slow
def test_cli_label_and_embedded_analyze(tmp_path, cli):
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(json.dumps(x) for x in [
        {"id": "1", "text": "No, I am not going to donate.", "context": "Would you donate $1?"},
        {"id": "2", "text": "Sure, I'll give a dollar!", "context": ["Hi", "Would you donate $1?"]},
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    r = CliRunner().invoke(cli, ["label", "--task", "attitude", "--in", str(inp), "--out", str(out)])
    assert r.exit_code == 0, r.output
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["label"] for g in got] == ["negative", "acceptance"] and all(g["state"] in STATES for g in got)
    # resume: nothing left to do
    r = CliRunner().invoke(cli, ["label", "--task", "attitude", "--in", str(inp), "--out", str(out)])
    assert "0 labelled, 2 already there" in r.output
    sout = tmp_path / "s.jsonl"
    r = CliRunner().invoke(cli, ["label", "--task", "strategy", "--in", str(inp), "--out", str(sout)])
    assert r.exit_code == 0, r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1"}\n')
    r = CliRunner().invoke(cli, ["label", "--task", "strategy", "--in", str(bad), "--out", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 2 and "bad.jsonl:1" in r.output

    run = make_run(tmp_path / "run")
    r = CliRunner().invoke(cli, ["analyze", str(run), "--bootstrap", "20"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in (run / "analysis" / "labels.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    for line, (did, chain) in zip(lines, CHAINS.items()):
        assert line["dialogue_id"] == did and len(line["rounds"]) == len(chain)
        assert all(rd["state"] in STATES for rd in line["rounds"])
        assert line["attitude_labeler"] == "embedded"
    m = json.loads((run / "analysis" / "metrics.json").read_text())
    assert 0 <= m["h_avg"] <= math.log(16) and len(m["transition_matrix"]) == 16


@pytest.mark.slow
def test_cli_analyze_folder_holding_only_dialogues(tmp_path, cli):
    run = tmp_path / "bare"
    write_bare_dialogues(run / "dialogues.jsonl", outcomes={"d1": "accept"}, bad_line_after="d1")
    r = CliRunner().invoke(cli, ["analyze", str(run), "--bootstrap", "20"])
    assert r.exit_code == 0, r.output
    assert "dialogues.jsonl:2: skipped" in r.output and "no manifest.json" in r.output
    m = json.loads((run / "analysis" / "metrics.json").read_text())
    assert m["n_dialogues"] == 3 and m["n_labelled"] == 3 and m["labelers"]["attitude"] == "embedded"
    assert m["run"]["manifest"] is None and m["run"]["skipped_lines"][0]["line"] == 2
    assert m["acceptance_rate"] == 1.0  # the only known outcome
    lines = [json.loads(x) for x in (run / "analysis" / "labels.jsonl").read_text().splitlines()]
    assert [x["dialogue_id"] for x in lines] == list(CHAINS)
    assert [len(x["rounds"]) for x in lines] == [len(c) for c in CHAINS.values()]  # rounds from the turns


@pytest.mark.skipif(not (DEFAULT_P4G / "annotated_dialog.csv").exists(), reason=f"P4G data not found at {DEFAULT_P4G}")
@pytest.mark.slow
def test_human_labels_on_p4g(tmp_path):
    from mads_text.p4g import human_round_coarse, load_p4g

    recs = load_p4g(DEFAULT_P4G, "annotated")[:6]
    m = analyze_records(recs, tmp_path / "a", LabelingConfig(labeler="human"), "p4g", n_boot=20, progress=False)
    lines = [json.loads(x) for x in (tmp_path / "a" / "labels.jsonl").read_text().splitlines()]
    for rec, line in zip(recs, lines):
        human = human_round_coarse(rec)
        for h, rd in zip(human, line["rounds"]):
            if h is not None:
                assert rd["coarse"] == h and rd["source"] == "human+embedded"
            else:
                assert rd["source"] == "no attitude" and rd["state"] == "Indifference"
        assert line["strategy_labeler"] == "human"
    assert m["n_labelled"] == 6 and m["h_avg"] > 0
    assert M.h_avg(np.array(m["transition_matrix"])) == pytest.approx(m["h_avg"], abs=1e-5)
