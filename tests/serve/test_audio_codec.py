import numpy as np
import pytest

from serve.audio import (
    StreamResampler,
    float_to_pcm16,
    internal_to_twilio,
    pcm16_to_float,
    resample,
    twilio_to_internal,
    ulaw_decode,
    ulaw_encode,
)


def test_pcm16_round_trip_and_odd_length():
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    np.testing.assert_allclose(pcm16_to_float(float_to_pcm16(x)), x, atol=1 / 32768 + 1e-6)
    with pytest.raises(ValueError, match="even number"):
        pcm16_to_float(b"\x00\x01\x02")


def test_ulaw_matches_g711_quantisation():
    rng = np.random.default_rng(0)
    x = np.clip(rng.standard_normal(20000) * 0.3, -1, 1).astype(np.float32)
    y = ulaw_decode(ulaw_encode(x))
    # μ-law keeps about 8 bits relative to the magnitude: error bounded by a fraction of |x|
    err = np.abs(y - x)
    assert np.all(err <= 0.07 * np.abs(x) + 2e-3)
    snr = 10 * np.log10(np.mean(x**2) / np.mean(err**2))
    assert snr > 30
    # silence encodes as 0xFF and decodes to exactly zero
    assert ulaw_encode(np.zeros(4, np.float32)) == b"\xff" * 4
    assert np.all(ulaw_decode(b"\xff\x7f") == 0)


def test_stream_resampler_has_no_seams():
    t = np.arange(16000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    r = StreamResampler(16000, 8000)
    chunked = np.concatenate([r(x[i : i + 320]) for i in range(0, len(x), 320)])
    r2 = StreamResampler(16000, 8000)
    whole = r2(x)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert len(chunked) == 8000
    # the level of a tone well inside the band survives
    assert abs(np.sqrt(np.mean(chunked[400:] ** 2)) - 0.3536) < 0.01


def test_twilio_path_round_trip_keeps_a_tone():
    t = np.arange(3200) / 16000
    x = (0.4 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    down, up = StreamResampler(16000, 8000), StreamResampler(8000, 16000)
    raw = internal_to_twilio(x, down)
    assert len(raw) == 1600  # 8 kHz, one byte a sample
    back = twilio_to_internal(raw, up)
    assert len(back) == 3200
    # compare after the filters' delay
    lag = int(np.argmax(np.correlate(back[800:2400], x[800:1600], "valid")))
    seg = back[800 + lag : 1600 + lag]
    assert np.corrcoef(seg, x[800:1600])[0, 1] > 0.99
    assert len(resample(x, 16000, 24000)) == 4800
