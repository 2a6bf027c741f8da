from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from serve_helpers import ServerThread


@pytest.fixture(scope="session")
def tts():
    from serve.tts import TTS

    return TTS("flite")


@pytest.fixture(scope="session")
def speech(tts):
    """Caller utterances (16 kHz float32) made once per session."""
    from serve.tts import Voice

    v = Voice(engine="flite", name="rms")
    return {
        "price": tts.synthesize("Hi, yes. How much does it cost per month?", v),
        "no": tts.synthesize("No thanks, I am not interested. Goodbye.", v),
        "yes": tts.synthesize("Okay, sign me up. Please send me the application link.", v),
        "long": tts.synthesize(
            "Wait, wait, hold on a second, I have a question about the waiting period and the price.", v
        ),
    }


@pytest.fixture(scope="session")
def pipeline_server(tmp_path_factory):
    """The real pipeline arm (SmolLM2 + Whisper tiny.en + flite) behind a real socket, shared by the slow tests."""
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed")
    from serve.app import ServeOptions, build_server

    db = tmp_path_factory.mktemp("e2e") / "calls.sqlite"
    opts = ServeOptions(port=0, token="e2e-token", db=db, model="smollm2", asr="tiny.en", max_tokens=32,
                        realtime_factor=3.0, max_calls=4, idle_timeout_s=60, max_turns=4, outcome="rules",
                        llm_threads=1)  # fmt: skip  # one thread: the callers, ASR and TTS share the 2 cores in this process
    st = ServerThread(lambda: build_server(opts))
    srv = st.start()
    yield srv
    st.stop()


@pytest.fixture(scope="session")
def speech_checkpoint(tmp_path_factory):
    """A speech-LLM checkpoint for the audio arm: MADS_AUDIO_CHECKPOINT when given, else an untrained
    one (SmolLM2 + Whisper tiny.en, projector at initialisation). The untrained model tests the
    machinery only: its replies do not answer the caller."""
    given = os.environ.get("MADS_AUDIO_CHECKPOINT")
    if given:
        return Path(given)
    try:
        from mads_audio.config import SpeechLLMConfig
        from mads_audio.model import SpeechLLM
    except ImportError as e:
        pytest.skip(f"speech LLM runtime not installed: {e}")
    out = tmp_path_factory.mktemp("sckpt")
    SpeechLLM(SpeechLLMConfig(llm="smollm2", whisper="tiny.en"), device="cpu").save(out)
    return out


@pytest.fixture(scope="session")
def audio_server(tmp_path_factory, speech_checkpoint):
    """Both arms loaded, every call sent to the audio arm by the split. With the untrained SmolLM2 checkpoint the
    arms match (same LLM, chat prompt, greedy decoding); a checkpoint given by MADS_AUDIO_CHECKPOINT may not."""
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed")
    from serve.app import ServeOptions, build_server

    db = tmp_path_factory.mktemp("e2e-audio") / "calls.sqlite"
    opts = ServeOptions(port=0, token="e2e-token", db=db, model="smollm2", asr="tiny.en", max_tokens=24, split="audio=1",
                        audio_model=str(speech_checkpoint), realtime_factor=3.0, idle_timeout_s=120, max_turns=4,
                        outcome="rules", prompt_mode="chat", temperature=0.0, llm_threads=1,
                        allow_mismatch=bool(os.environ.get("MADS_AUDIO_CHECKPOINT")))  # fmt: skip
    st = ServerThread(lambda: build_server(opts))
    srv = st.start()
    yield srv
    st.stop()
