"""`mads synth --ray`: actors on a local Ray instance write what one process writes, and resume the same way."""

import json

import pytest

ray = pytest.importorskip("ray")

from mads_text.common.records import DialogueRecord, Turn  # noqa: E402
from mads_text.distributed import RaySpec  # noqa: E402
from synth.dialogue import SynthConfig  # noqa: E402
from synth.quality import QAConfig  # noqa: E402
from synth.stage import synth_run  # noqa: E402

FAST = dict(engine="flite", qa=QAConfig(asr=None, speaker=False), hf=False)
KEYS = ("dialogue_id", "turn", "role", "text", "speaker_id")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def _two_dialogue_run(path):
    path.mkdir(parents=True, exist_ok=True)
    talk = [("agent", "Hello, I am calling about our health plan."), ("user", "Oh, what does it cover?"),
            ("agent", "It covers seventy illnesses for twelve dollars a month."), ("user", "Okay, I will think about it.")]
    with open(path / "dialogues.jsonl", "w") as f:
        for i, gender in enumerate(("female", "male")):
            rec = DialogueRecord(id=f"p{i:03d}_0", scenario="insurance", group="sign", persona_id=f"p{i:03d}",
                                 persona={"name": f"P{i}", "gender": gender, "age": 30 + 20 * i}, persona_prompt="",
                                 agent_prompt="", turns=[Turn(role=r, text=t) for r, t in talk], outcome="max_rounds",
                                 rounds=2)  # fmt: skip
            f.write(rec.model_dump_json() + "\n")
    return path


def _lines(out):
    return [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]


def _keys(out):
    return sorted(tuple(x[k] for k in KEYS) for x in _lines(out))


def test_ray_build_matches_one_process_and_resumes(tmp_path, local_ray):
    run = _two_dialogue_run(tmp_path / "run")
    one, sharded = tmp_path / "one", tmp_path / "ray"
    spec = RaySpec(address="local", workers=2)
    r1 = synth_run(run, one, SynthConfig(**FAST), progress=False)
    r2 = synth_run(run, sharded, SynthConfig(**FAST), progress=False, ray=spec)
    assert r1.produced == r2.produced == 2
    assert _keys(one) == _keys(sharded) and len(_keys(sharded)) == 8
    for x in _lines(one):
        assert (one / x["audio"]).read_bytes() == (sharded / x["audio"]).read_bytes()
    # drop one dialogue's manifest lines: the rerun voices that dialogue only
    lost = "p001_0"
    kept = [x for x in _lines(sharded) if x["dialogue_id"] != lost]
    (sharded / "manifest.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in kept))
    r3 = synth_run(run, sharded, SynthConfig(**FAST), progress=False, ray=spec)
    assert (r3.produced, r3.skipped) == (1, 1)
    after = _lines(sharded)
    assert after[: len(kept)] == kept and {x["dialogue_id"] for x in after[len(kept) :]} == {lost}
    assert _keys(sharded) == _keys(one)
    r4 = synth_run(run, sharded, SynthConfig(**FAST), progress=False, ray=spec)
    assert r4.produced == 0 and r4.skipped == 2
