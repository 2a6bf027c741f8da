"""The Kokoro engine: the pitch input spliced into the graph moves F0 and keeps timing."""

import numpy as np
import pytest

from synth.voice import Voice

TEXT = "Thanks for calling, I have a few minutes right now."


@pytest.fixture(scope="module")
def kokoro():
    from synth.engines import get_engine

    return get_engine("kokoro")


@pytest.mark.slow
def test_pitch_knob_scales_f0_and_keeps_duration(kokoro):
    from synth.voicesearch import median_f0

    assert kokoro.has_pitch, "the onnx package splices the f0_scale input into the cached graph"
    base = Voice(timbre={"jm_kumo": 1}, prosody={"jm_kumo": 1})
    a, sr = kokoro.synthesize(TEXT, base)
    b, _ = kokoro.synthesize(TEXT, base.model_copy(update={"pitch": 1.3}))
    assert sr == 24000 and a.dtype == np.float32 and np.abs(a).max() <= 1.0
    ratio = median_f0(b, sr) / median_f0(a, sr)
    assert 1.2 < ratio < 1.4, ratio
    assert abs(len(a) - len(b)) / len(a) < 0.05


@pytest.mark.slow
def test_style_is_a_blend_and_retakes_change_the_voice(kokoro):
    v = Voice(timbre={"jf_nezumi": 1}, prosody={"jf_nezumi": 0.5, "jm_kumo": 0.5})
    st = kokoro.style(v)
    assert st.shape == (510, 1, 256)
    np.testing.assert_allclose(st[:, 0, :128], kokoro.styles["jf_nezumi"][:, 0, :128], atol=1e-6)
    mix = 0.5 * kokoro.styles["jf_nezumi"][:, 0, 128:] + 0.5 * kokoro.styles["jm_kumo"][:, 0, 128:]
    np.testing.assert_allclose(st[:, 0, 128:], mix, atol=1e-6)
    retake = kokoro.style(v.model_copy(update={"seed": 1}))
    assert np.allclose(retake[..., :128], st[..., :128]) and not np.allclose(retake[..., 128:], st[..., 128:])
    assert len(kokoro.embedding(v)) == 256
    # the same voice and text give the same samples (retakes need the seed to differ)
    a, _ = kokoro.synthesize("Yes.", v)
    b, _ = kokoro.synthesize("Yes.", v)
    assert np.array_equal(a, b)
