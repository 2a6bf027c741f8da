"""Sharded self-play and labelling on a local Ray instance (two CPU workers, the small embedded models)."""

import asyncio
import json
import os
import signal

import pytest

ray = pytest.importorskip("ray")

from mads_text.common.runstore import read_dialogues  # noqa: E402
from mads_text.distributed import chunked, simulate_ray, stable_shard  # noqa: E402
from mads_text.orchestrator import SimulationConfig, simulate  # noqa: E402

CFG = dict(scenario="insurance", group="sign", personas=4, per_persona=2, max_rounds=2, seed=3, model="smollm2",
           concurrency=2)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def test_deterministic_sharding():
    assert [stable_shard(f"p{i}", 4) for i in range(8)] == [stable_shard(f"p{i}", 4) for i in range(8)]
    assert chunked(list(range(5)), 2) == [[0, 1], [2, 3], [4]]


@pytest.mark.slow
def test_ray_run_matches_single_process(tmp_path, local_ray):
    cfg = SimulationConfig(**CFG)
    asyncio.run(simulate(cfg, tmp_path / "single", progress=False))
    res = simulate_ray(cfg, tmp_path / "ray", address="local", workers=2)
    assert res.produced == 8
    single = {r.id: r for r in read_dialogues(tmp_path / "single")}
    sharded = {r.id: r for r in read_dialogues(tmp_path / "ray")}
    assert single.keys() == sharded.keys() and len(sharded) == 8
    for i, r in sharded.items():
        s = single[i]
        assert (r.persona, r.persona_prompt, r.agent_prompt, r.seed) == (s.persona, s.persona_prompt, s.agent_prompt, s.seed)
        assert r.turns[0].role == "agent" and r.outcome in ("accept", "withdraw", "max_rounds", "undecided")
    # a rerun has nothing left to do
    again = simulate_ray(cfg, tmp_path / "ray", address="local", workers=2)
    assert again.produced == 0 and len(read_dialogues(tmp_path / "ray")) == 8


def _worker_pids():
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="ignore")
            except OSError:
                continue
            if "ray::_Worker" in cmd:
                pids.append(int(pid))
    return pids


@pytest.mark.slow
def test_killed_worker_is_recovered_without_loss_or_duplicates(tmp_path, local_ray):
    killed = []

    def kill_one(rec):
        if not killed:
            pids = _worker_pids()
            assert pids, "no Ray worker process found"
            os.kill(pids[-1], signal.SIGKILL)
            killed.append(pids[-1])

    cfg = SimulationConfig(**{**CFG, "seed": 4})
    res = simulate_ray(cfg, tmp_path / "run", address="local", workers=2, on_record=kill_one)
    assert killed
    recs = read_dialogues(tmp_path / "run")
    ids = [r.id for r in recs]
    assert len(ids) == 8 and len(set(ids)) == 8 and res.produced == 8


# --- labelling on Ray (`mads analyze --ray`) -------------------------------------------------

USER_TURNS = [
    "I'm not sure I need more insurance, it sounds expensive.",
    "Hmm, what exactly does it cover?",
    "That actually sounds useful. How much per month?",
    "No thanks, I'm not interested at all.",
    "Okay, I'll sign up. Send me the form.",
    "Why would I trust your company?",
]


def _labelling_run(path):
    from mads_text.common.records import DialogueRecord, Turn

    path.mkdir(parents=True, exist_ok=True)
    with open(path / "dialogues.jsonl", "w") as f:
        for d in range(5):
            turns = []
            for k in range(3):
                turns.append(Turn(role="agent", text=f"Our plan covers 70 illnesses. It costs {10 + d + k} dollars a month."))
                turns.append(Turn(role="user", text=USER_TURNS[(d + 2 * k) % len(USER_TURNS)]))
            rec = DialogueRecord(id=f"p{d:03d}_0", scenario="insurance", group="sign", persona={"name": str(d)},
                                 persona_prompt="", agent_prompt="", turns=turns,
                                 outcome=("accept", "withdraw", "max_rounds")[d % 3], rounds=3)
            f.write(rec.model_dump_json() + "\n")
    return path


def _labels(run):
    return {x["dialogue_id"]: x for x in map(json.loads, (run / "analysis" / "labels.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_ray_labelling_matches_single_process_and_resumes(tmp_path, local_ray):
    import shutil

    from mads_text.analysis import LabelingConfig, analyze_run
    from mads_text.distributed import RaySpec

    single = _labelling_run(tmp_path / "single")
    cfg = LabelingConfig()
    m1 = analyze_run(single, cfg, n_boot=50, progress=False)
    # the Ray copy starts from an interrupted labelling: two dialogues done, three to go on two actors
    sharded = tmp_path / "ray"
    shutil.copytree(single, sharded)
    labels = sharded / "analysis" / "labels.jsonl"
    labels.write_text("\n".join(labels.read_text().splitlines()[:2]) + "\n")
    m2 = analyze_run(sharded, cfg, n_boot=50, progress=False, ray=RaySpec(address="local", workers=2))
    lines = labels.read_text().splitlines()
    assert len(lines) == 5 and len({json.loads(x)["dialogue_id"] for x in lines}) == 5
    assert _labels(single) == _labels(sharded)
    skip = {"created", "run", "code_revision", "packages"}
    assert {k: v for k, v in m1.items() if k not in skip} == {k: v for k, v in m2.items() if k not in skip}
