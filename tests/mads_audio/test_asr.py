import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from mads_audio.asr import ASRError, WhisperASR

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="flite makes the test speech")


def _say(text: str) -> np.ndarray:
    import soundfile as sf

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", f.name], check=True)
        x, _ = sf.read(f.name, dtype="float32")
    return x


@pytest.fixture(scope="module")
def tiny():
    return WhisperASR.shared("tiny.en", threads=1)


def test_tiny_en_transcribes_an_utterance(tiny):
    r = tiny.transcribe(_say("Hello, I would like to know the price of the policy."))
    words = set(r.text.lower().replace(",", "").replace(".", "").split())
    assert {"hello", "price", "policy"} <= words, r.text
    assert r.duration_s > 1.5 and r.latency_s > 0


def test_silence_gives_no_text(tiny):
    assert tiny.transcribe(np.zeros(16000 * 2, np.float32)).text == ""
    assert tiny.transcribe(np.zeros(800, np.float32)).text == ""  # too short to hold a word


def test_wrong_rate_is_refused(tiny):
    with pytest.raises(ASRError, match="16000 Hz"):
        tiny.transcribe(np.zeros(8000, np.float32), sample_rate=8000)


def test_unknown_model_names_itself():
    with pytest.raises(ASRError, match="neither a Whisper preset"):
        WhisperASR("no-such-model")


@pytest.mark.slow
def test_base_model_is_exact_on_clear_speech():
    asr = WhisperASR.shared("base", threads=1)
    r = asr.transcribe(_say("No thanks, I am not interested."))
    assert r.text.strip().lower().rstrip(".") == "no thanks, i am not interested"
