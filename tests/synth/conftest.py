"""A small real run (SmolLM2 self-play) voiced once per session with Kokoro and once with flite."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SIMULATE = ["simulate", "--scenario", "insurance", "--group", "sign", "--personas", "3", "--per-persona", "2",
            "--max-rounds", "2", "--seed", "11", "--model", "smollm2", "--concurrency", "2"]  # fmt: skip


@pytest.fixture(scope="session")
def real_run(tmp_path_factory):
    # MADS_SYNTH_TEST_RUN reuses an existing small run folder while iterating on this package
    if os.environ.get("MADS_SYNTH_TEST_RUN"):
        return Path(os.environ["MADS_SYNTH_TEST_RUN"])
    run = tmp_path_factory.mktemp("synth") / "run"
    out = subprocess.run([sys.executable, "-m", "mads_text.cli", *SIMULATE, "--out", str(run)],
                         capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def aud_kokoro(real_run, tmp_path_factory):
    """The default engine and gates, with the telephone variant."""
    from synth.dialogue import SynthConfig
    from synth.stage import synth_run

    out = tmp_path_factory.mktemp("synth") / "aud_kokoro"
    res = synth_run(real_run, out, SynthConfig(telephony=True), progress=False)
    return out, res


@pytest.fixture(scope="session")
def aud_flite(real_run, tmp_path_factory):
    """flite with overlaps and backchannels; ASR off (speed), speaker vectors on."""
    from synth.dialogue import SynthConfig
    from synth.mix import MixConfig
    from synth.quality import QAConfig
    from synth.stage import synth_run

    out = tmp_path_factory.mktemp("synth") / "aud_flite"
    cfg = SynthConfig(engine="flite", mix=MixConfig(overlap_prob=0.3, backchannel_prob=0.5, backchannel_min_turn_s=1.5),
                      qa=QAConfig(asr=None), hf=False)  # fmt: skip
    res = synth_run(real_run, out, cfg, progress=False)
    return out, res
