"""The ear shipped for the default LLM: a CTC checkpoint's encoder and projector, no LLM (flite voices)."""

import shutil

import numpy as np
import pytest

from mads_audio.ear import CTCEar, packaged_checkpoint
from mads_audio.eval import corpus_wer

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("flite") is None, reason="flite speaks the lines")]

LINES = [
    "How much does it cost per month?",
    "No thanks, I am not interested. Goodbye.",
    "Okay, sign me up. Please send me the application link.",
    "Is there a waiting period before I can claim?",
]


@pytest.fixture(scope="module")
def ear():
    path = packaged_checkpoint()
    assert path is not None, "the package ships mads_audio/checkpoints/qwen1.5b-ctc"
    return CTCEar(path, threads=2)


def _say(text, name="rms"):
    from serve.tts import TTS, Voice

    return TTS("flite").synthesize(text, Voice(engine="flite", name=name))


def test_the_shipped_ear_hears_the_default_llms_tokens(ear):
    assert ear.config.llm == "qwen1.5b" and ear.config.audio_tokens == "ctc" and len(ear.vocab) > 1000
    heard = [ear.hear(_say(t, v)) for t in LINES for v in ("rms", "slt")]
    refs = [t for t in LINES for _ in ("rms", "slt")]
    assert corpus_wer(refs, [h.text for h in heard]) < 0.35, [h.text for h in heard]
    # the tokens are the LLM's own: its tokenizer writes them back as the text
    assert all(ear.tokenizer.decode(h.ids).strip() == h.text for h in heard)
    assert "month" in heard[0].text.lower() and "interested" in heard[2].text.lower()


def test_silence_and_noise_are_heard_as_next_to_nothing(ear):
    quiet = ear.hear(np.zeros(32000, np.float32))
    noise = ear.hear(np.random.default_rng(0).normal(0, 0.01, 32000).astype(np.float32))
    spoken = ear.hear(_say(LINES[3]))
    assert len(quiet.ids) <= 2 and len(noise.ids) <= 3, (quiet.text, noise.text)
    assert len(spoken.ids) >= 6
