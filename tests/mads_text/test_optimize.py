"""Algorithm 1: stop rule, evolution, overwhelming flag, literal mode, resume, stratified loops, and a real killed run."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mads_text import metrics
from mads_text.common.records import DialogueRecord, Turn
from mads_text.decision import SYSTEM as DECISION_SYSTEM
from mads_text.evaluation import IterationAnalysis, build_feedback
from mads_text.llm.fake import ScriptedBackend
from mads_text.optimize import OptimizeConfig, OptimizeError, Optimizer, best_row
from mads_text.stratify import cluster_users

SOP = """Business SOP
Step 1: Opening
  Objective: Earn a minute of attention and explain the call.
  Strategic Points:
  • Explain the plan step by step, starting from the customer's job.
  • Quote the 288 RMB monthly premium early.
  Key Notes: Stay brief.
Step 2: Close
  Objective: Ask for a concrete commitment to the application link.
  Strategic Points:
  • Offer the 178 RMB starter plan when budget is the objection.
  • Ask a choice question.
  Key Notes: One question at a time."""


class World:
    """Scripted self-play: users accept only an agent that follows an evolved SOP (and, if set, only women)."""

    def __init__(self, women_only=False, evolve_reply=SOP, fail_evolution=False):
        self.women_only = women_only
        self.evolve_reply = evolve_reply
        self.fail_evolution = fail_evolution
        self.sim_calls = 0
        self.evolve_calls = 0

    def __call__(self, prompt, params):
        if isinstance(prompt, list) and prompt[0].content == DECISION_SYSTEM:  # the decision's check: agree
            return '{"quote": "", "choice": "A"}'
        if isinstance(prompt, list):  # the reflection prompt is the only other chat request here
            self.evolve_calls += 1
            if self.fail_evolution:
                raise RuntimeError("evolution crashed")
            return self.evolve_reply
        if prompt == "Hi":
            return "ok"
        self.sim_calls += 1
        if prompt.rstrip().endswith("Li Wei:"):  # the Dialog Agent's turn in transcript mode
            return "Let me explain our plan step by step." if "Business SOP" in prompt else "Do you want insurance?"
        transcript = prompt.split("Transcript:")[-1]
        woman = "- Gender: Female" in prompt
        if "step by step" in transcript and (woman or not self.women_only):
            return "Okay, send me the link. [ACCEPT]"
        if woman and self.women_only:
            return "Hmm, maybe. What does it cover exactly?"  # curious, undecided: talks until the round cap
        return "No thanks. [WITHDRAW]"


async def fake_analyzer(recs, out):
    chains = {r.id: (["Doubt", "Interested"] if r.outcome == "accept" else ["Doubt", "Refusal"])[: max(1, r.rounds)]
              for r in recs}
    h = metrics.chain_entropy(chains.values())
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"h_avg": h}))
    return IterationAnalysis(
        n_dialogues=len(recs), acceptance_rate=metrics.acceptance_rate(r.outcome for r in recs), h_avg=h,
        h_norm=metrics.h_norm(h), h_norm_paper=metrics.h_norm_paper(h), labeler="fake", labelled_ok=len(recs),
        chains=chains, judge={r.id: {"relevance": 2, "mean": 2.0} for r in recs},
    )


def cfg(**kw):
    base = dict(personas=4, per_persona=1, max_rounds=2, iterations=2, theta=0.5, overwhelm_margin=0.6, h_basic=0.0,
                evolve_attempts=1, seed=3)
    base.update(kw)
    return OptimizeConfig(**base)


def run(c, out, world):
    be = ScriptedBackend(world)
    return asyncio.run(Optimizer(c, out, backend=be, analyzer=fake_analyzer, progress=False).run())


def test_loop_stops_when_target_met(tmp_path):
    w = World()
    res = run(cfg(), tmp_path, w)
    rows = res["rows"]
    assert [r["k"] for r in rows] == [0, 1] and res["stopped_at"] == 1 and res["best_iteration"] == 1
    assert rows[0]["tau"] == 0.0 and rows[1]["tau"] == 1.0 and rows[0]["evolution_ok"] is True
    assert (tmp_path / "iter_1" / "prompt.txt").read_text().startswith("Business SOP")
    assert (tmp_path / "iter_0" / "prompt.txt").read_text().strip() == "sell a critical illness insurance policy (monthly 288 RMB)"
    assert not (tmp_path / "iter_2").exists() and w.evolve_calls == 1
    assert (tmp_path / "best_prompt.txt").read_text().startswith("Business SOP")
    for f in ("evaluation.json", "feedback.json", "evolution.json", "run/analysis/metrics.json", "run/dialogues.jsonl"):
        assert (tmp_path / "iter_0" / f).exists(), f
    fb = json.loads((tmp_path / "iter_0" / "feedback.json").read_text())
    assert len(fb["failed"]) == 4 and fb["failed"][0]["attitudes"] == ["Doubt", "Refusal"][: fb["failed"][0]["rounds"]]
    evo = json.loads((tmp_path / "iter_0" / "evolution.json").read_text())
    assert evo["reflection_prompt"].startswith("<task_description>") and "[Failure Case 1]" in evo["reflection_prompt"]
    table = (tmp_path / "table.md").read_text()
    assert "| 0 | p0" in table and "| 1 | p1" in table and "stop" in table
    recs = [DialogueRecord.model_validate_json(x) for x in (tmp_path / "iter_1/run/dialogues.jsonl").read_text().splitlines()]
    assert {r.prompt_version for r in recs} == {"p1"} and all("Business SOP" in r.agent_prompt for r in recs)


def test_overwhelming_flag_and_no_stop_without_entropy(tmp_path):
    res = run(cfg(overwhelm_margin=0.2), tmp_path / "a", World())
    assert res["rows"][1]["overwhelming"] and res["best_overwhelming"] and "overwhelming" in res["table"]
    # H never reaches H_basic: all K+1 prompts are scored, none stops
    res = run(cfg(h_basic=5.0), tmp_path / "b", World())
    assert [r["k"] for r in res["rows"]] == [0, 1, 2] and res["stopped_at"] is None
    assert res["best_iteration"] in (1, 2) and res["reason"].startswith("K = 2")


def test_literal_mode_and_failed_evolution(tmp_path):
    res = run(cfg(iterations=1, literal=True, h_basic=5.0), tmp_path / "lit", World())
    assert [r["k"] for r in res["rows"]] == [0]
    assert (tmp_path / "lit/iter_1/prompt.txt").exists() and not (tmp_path / "lit/iter_1/run").exists()
    res = run(cfg(iterations=1), tmp_path / "bad", World(evolve_reply="I would be friendlier."))
    assert res["rows"][0]["evolution_ok"] is False
    assert (tmp_path / "bad/iter_1/prompt.txt").read_text() == (tmp_path / "bad/iter_0/prompt.txt").read_text()
    assert "kept P (invalid SOP)" in res["table"]


def test_crash_then_resume_redoes_nothing(tmp_path):
    w = World(fail_evolution=True)
    with pytest.raises(RuntimeError, match="evolution crashed"):
        run(cfg(), tmp_path, w)
    n0 = len((tmp_path / "iter_0/run/dialogues.jsonl").read_text().splitlines())
    assert n0 == 4 and not (tmp_path / "iter_1").exists()
    w2 = World()
    res = run(cfg(), tmp_path, w2)
    assert res["stopped_at"] == 1 and w2.evolve_calls == 1
    # only iteration 1 was simulated: 4 dialogues x (1 agent call + 3 customer samples: the scripted yes comes before
    # the stance's objections are said, so it is sampled again twice and then kept as written)
    assert w2.sim_calls == 4 * (1 + 3)
    assert len((tmp_path / "iter_0/run/dialogues.jsonl").read_text().splitlines()) == 4
    # a finished loop reruns for free, and other settings are refused
    w3 = World()
    run(cfg(), tmp_path, w3)
    assert w3.sim_calls == 0 and w3.evolve_calls == 0
    with pytest.raises(OptimizeError, match="max_rounds"):
        run(cfg(max_rounds=3), tmp_path, World())


def test_stratified_loops(tmp_path):
    w = World(women_only=True)
    res = run(cfg(personas=6, iterations=1, theta=0.9, h_basic=0.0, stratify=True), tmp_path, w)
    st = res["stratified"]
    clusters = json.loads((tmp_path / "clusters.json").read_text())
    assert clusters["k"] == 2 and len(clusters["assignment"]) == 6
    assert set(st["clusters"]) == {"0", "1"} and "Stratified evolution" in st["table"]
    for c in st["clusters"]:
        assert (tmp_path / f"cluster_{c}/iter_0/run/dialogues.jsonl").exists()
        evo = json.loads((tmp_path / f"cluster_{c}/iter_0/evolution.json").read_text())
        assert "customer segment (cluster" in evo["reflection_prompt"]
    n_users = sum(d["users"] for d in st["clusters"].values())
    assert n_users == 6 and 0 <= st["summary"]["tau_stratified"] <= 1
    # the clusters' iteration 0 is the shared one: a cluster's iter_0 dialogues are copies, not new self-play
    shared = {json.loads(x)["id"] for x in (tmp_path / "iter_0/run/dialogues.jsonl").read_text().splitlines()}
    for c in st["clusters"]:
        ids = {json.loads(x)["id"] for x in (tmp_path / f"cluster_{c}/iter_0/run/dialogues.jsonl").read_text().splitlines()}
        assert ids <= shared


def _rec(i, outcome, user_text, rounds=2):
    turns = []
    for _ in range(rounds):
        turns += [Turn(role="agent", text="Hello there."), Turn(role="user", text=user_text)]
    return DialogueRecord(id=f"p{i}-d00", scenario="insurance", group="sign", persona={"gender": "Male", "age": 30 + i},
                          persona_id=f"p{i}", persona_prompt="", agent_prompt="", turns=turns, outcome=outcome,
                          rounds=rounds)


def test_clustering_separates_response_patterns():
    recs = [_rec(i, "accept", "Sounds great, what's the next step? Can you send it?") for i in range(4)]
    recs += [_rec(i, "withdraw", "No.") for i in range(4, 8)]
    chains = {r.id: (["Interested", "Acceptance"] if r.outcome == "accept" else ["Refusal", "Refusal"]) for r in recs}
    cl = cluster_users(recs, chains, 2, seed=0)
    a = cl["assignment"]
    assert len({a[f"p{i}"] for i in range(4)}) == 1 and len({a[f"p{i}"] for i in range(4, 8)}) == 1
    assert a["p0"] != a["p4"] and sorted(cl["sizes"].values()) == [4, 4]
    assert any("acceptance 100%" in d for d in cl["descriptions"].values())
    with pytest.raises(OptimizeError, match="at least 3 users"):
        cluster_users(recs[:2], chains, 3, seed=0)


def test_feedback_and_best_row():
    recs = [_rec(0, "withdraw", "No."), _rec(1, "accept", "Yes please.")]
    ana = asyncio.run(fake_analyzer(recs, __import__("pathlib").Path("/tmp/mads-test-fb")))
    fb = build_feedback(recs, ana, cfg(), seed=0)
    assert [d.id for d in fb.failed] == ["p0-d00"] and [d.id for d in fb.succeeded] == ["p1-d00"]
    assert fb.failed[0].customer.startswith("Male, 30") and fb.failed[0].judge == {"relevance": 2, "mean": 2.0}
    from mads_text.optimize import IterationRow

    def row(k, tau, stop=False, ow=False, mh=True):
        return IterationRow(k=k, prompt_version=f"p{k}", run="", n_dialogues=10, tau=tau, tau_ci95=(0, 1), h_avg=1,
                            h_norm=0.3, h_basic=0.5, theta=0.3, meets_theta=tau >= 0.3, meets_h=mh, stop=stop,
                            overwhelming=ow)

    assert best_row([row(0, 0.1), row(1, 0.2), row(2, 0.15)]).k == 1
    assert best_row([row(0, 0.1), row(1, 0.2, mh=False), row(2, 0.15)]).k == 2
    assert best_row([row(0, 0.1), row(1, 0.9, stop=True, ow=True)]).k == 1  # flagged, but where the loop stopped


@pytest.mark.slow
def test_killed_real_loop_resumes(tmp_path):
    """The embedded model end to end through the CLI, killed during the first self-play and resumed."""
    out = tmp_path / "opt"
    args = [sys.executable, "-m", "mads_text.cli", "optimize", "--scenario", "insurance", "--iterations", "1",
            "--personas", "2", "--per-persona", "1", "--max-rounds", "2", "--model", "smollm2", "--h-basic", "0",
            "--theta", "1.0", "--evolve-attempts", "2", "--evolve-max-tokens", "300", "--concurrency", "2",
            "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    path = out / "iter_0" / "run" / "dialogues.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline:
        if path.exists() and path.read_text().count("\n") >= 1:
            break
        if proc.poll() is not None:
            pytest.fail("optimize ended before it could be killed: " + proc.stdout.read().decode()[-2000:])
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = subprocess.run(args, capture_output=True, text=True, timeout=1200, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "| 0 | p0" in res.stdout and "| 1 | p1" in res.stdout and "H_basic = 0.0000" in res.stdout
    ids = [json.loads(x)["id"] for x in path.read_text().splitlines()]
    assert len(ids) == 2 == len(set(ids))
    result = json.loads((out / "result.json").read_text())
    assert [r["k"] for r in result["rows"]] == [0, 1]
    m = json.loads((out / "iter_0" / "run" / "analysis" / "metrics.json").read_text())
    assert m["labelers"]["attitude"] == "embedded" and (out / "iter_0" / "run" / "analysis" / "report.md").exists()
