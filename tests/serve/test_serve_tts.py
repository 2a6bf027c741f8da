"""The server says what the training audio says: one speakable clean-up, and nothing spoken when nothing is left."""

import numpy as np

import synth.textnorm
from serve import tts
from serve.tts import TTS, Voice


def test_the_server_uses_the_synthesis_stages_clean_up():
    assert tts.speakable is synth.textnorm.speakable
    reply = "(The call has connected. Greet the customer and open the conversation.) *smiles* Hello! [ACCEPT]"
    assert tts.speakable(reply) == "Hello!"


def test_nothing_speakable_gives_silence_without_an_engine(monkeypatch):
    import synth.engines

    def no_engine(*a, **kw):
        raise AssertionError("an engine was asked to voice nothing")

    monkeypatch.setattr(synth.engines, "get_engine", no_engine)
    for text in ("[WITHDRAW]", "(pause)", "*nods*", "...", ""):
        pcm = TTS().synthesize(text, Voice(engine="flite", name="slt"))
        assert isinstance(pcm, np.ndarray) and pcm.size == 0, text
