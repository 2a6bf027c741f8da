import shutil

import numpy as np
import pytest

from mads_audio.vad import WINDOW, SileroVAD, SpeechEnd, SpeechStart, VADConfig, VADError, VADSegmenter, speech_segments

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="flite makes the test speech")


def _say(text: str, voice: str = "slt") -> np.ndarray:
    import subprocess
    import tempfile

    import soundfile as sf

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", f.name], check=True)
        x, sr = sf.read(f.name, dtype="float32")
    assert sr == 16000
    return x


@pytest.fixture(scope="module")
def clip():
    a = _say("Hello, yes, I am interested. Tell me more about the price.")
    b = _say("No thanks.", "rms")
    sil = np.zeros(16000, np.float32)
    x = np.concatenate([sil, a, sil, sil, b, sil])
    return x, (1.0, 1.0 + len(a) / 16000), (3.0 + len(a) / 16000, 3.0 + (len(a) + len(b)) / 16000)


def test_segments_match_where_speech_is(clip):
    x, (a0, a1), (b0, b1) = clip
    segs = speech_segments(x)
    assert len(segs) == 2
    for (s, e), (ref_s, ref_e) in zip(segs, [(a0, a1), (b0, b1)]):
        assert abs(s - ref_s) < 0.3 and abs(e - ref_e) < 0.4


def test_streaming_chunk_size_does_not_change_events(clip):
    x = clip[0]
    whole = VADSegmenter()
    ev_whole = whole.feed(x) + whole.flush()
    parts = VADSegmenter()
    ev_parts = []
    rng = np.random.default_rng(0)
    i = 0
    while i < len(x):
        n = int(rng.integers(37, 900))
        ev_parts += parts.feed(x[i : i + n])
        i += n
    ev_parts += parts.flush()
    assert [type(e) for e in ev_whole] == [type(e) for e in ev_parts] == [SpeechStart, SpeechEnd, SpeechStart, SpeechEnd]
    for a, b in zip(ev_whole, ev_parts):
        if isinstance(a, SpeechEnd):
            assert a.start_sample == b.start_sample and a.last_voiced == b.last_voiced
            np.testing.assert_array_equal(a.audio, b.audio)


def test_utterance_audio_keeps_the_words(clip):
    x, (a0, a1), _ = clip
    seg = VADSegmenter()
    ends = [e for e in seg.feed(x) if isinstance(e, SpeechEnd)]
    first = ends[0]
    # the padded utterance covers the spoken span and little silence
    assert first.duration_s >= (a1 - a0) - 0.3
    assert first.duration_s <= (a1 - a0) + 0.8
    assert not first.forced


def test_silence_and_quiet_noise_are_not_speech():
    rng = np.random.default_rng(1)
    assert speech_segments(np.zeros(16000 * 3, np.float32)) == []
    assert speech_segments((rng.standard_normal(16000 * 3) * 0.003).astype(np.float32)) == []


def test_long_speech_is_cut_at_max_utterance(clip):
    a = np.tile(clip[0][16000:40000], 4)
    seg = VADSegmenter(config=VADConfig(max_utterance_s=2.0, min_silence_ms=2000))
    ends = [e for e in seg.feed(a) if isinstance(e, SpeechEnd)]
    assert ends and ends[0].forced and ends[0].duration_s <= 2.2


def test_window_shape_is_checked():
    vad = SileroVAD.shared()
    from mads_audio.vad import VADState

    with pytest.raises(VADError, match="512 samples"):
        vad.probability(np.zeros(WINDOW - 1, np.float32), VADState())
