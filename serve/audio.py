"""Sample formats on the wire and inside a call.

Inside the server every signal is mono float32 at 16 kHz in [-1, 1]. The native
protocol carries PCM16 little-endian at 16 kHz; Twilio carries G.711 μ-law at
8 kHz. The μ-law codec is written out here because ``audioop`` left the
standard library in Python 3.13.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import resample_poly

RATE = 16000
TWILIO_RATE = 8000

_BIAS = 0x84
_CLIP = 32635


def pcm16_to_float(data: bytes) -> np.ndarray:
    if len(data) % 2:
        raise ValueError(f"PCM16 audio needs an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2").tobytes()


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst:
        return np.asarray(x, dtype=np.float32)
    from math import gcd

    g = gcd(src, dst)
    return resample_poly(np.asarray(x, dtype=np.float32), dst // g, src // g).astype(np.float32)


def _build_decode_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.int16)
    for i in range(256):
        u = ~i & 0xFF
        sign = u & 0x80
        exponent = (u >> 4) & 0x07
        mantissa = u & 0x0F
        sample = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
        table[i] = -sample if sign else sample
    return table


_ULAW_DECODE = _build_decode_table()


def ulaw_decode(data: bytes) -> np.ndarray:
    """G.711 μ-law bytes -> float32 at the same rate."""
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype(np.float32) / 32768.0


def ulaw_encode(x: np.ndarray) -> bytes:
    """float32 -> G.711 μ-law bytes (same rate)."""
    s = (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int32)
    sign = np.where(s < 0, 0x80, 0)
    mag = np.minimum(np.abs(s), _CLIP) + _BIAS
    # exponent = position of the highest set bit above bit 7
    exponent = np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    u = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return u.astype(np.uint8).tobytes()


class StreamResampler:
    """Rational-rate resampling of a stream cut into small chunks, without clicks at the cuts.

    Resampling each 20 ms chunk on its own restarts the filter every chunk; here
    the FIR state and the decimation phase carry over from one chunk to the next.
    """

    def __init__(self, src: int, dst: int, taps_per_phase: int = 24):
        from math import gcd

        from scipy.signal import firwin

        g = gcd(src, dst)
        self.up, self.down = dst // g, src // g
        cutoff = 1.0 / max(self.up, self.down)  # relative to the Nyquist rate of the upsampled stream
        n = taps_per_phase * max(self.up, self.down) | 1
        self.h = (firwin(n, cutoff * 0.92) * self.up).astype(np.float64)
        self.zi = np.zeros(len(self.h) - 1)
        self.phase = 0  # index of the next kept sample in the upsampled stream

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import lfilter

        x = np.asarray(x, dtype=np.float64)
        if self.up == 1 and self.down == 1:
            return x.astype(np.float32)
        u = np.zeros(len(x) * self.up)
        u[:: self.up] = x
        y, self.zi = lfilter(self.h, 1.0, u, zi=self.zi)
        out = y[self.phase :: self.down]
        self.phase = (self.phase - len(u)) % self.down
        return out.astype(np.float32)


def twilio_to_internal(payload: bytes, resampler: StreamResampler | None = None) -> np.ndarray:
    x = ulaw_decode(payload)
    return resampler(x) if resampler else resample(x, TWILIO_RATE, RATE)


def internal_to_twilio(x: np.ndarray, resampler: StreamResampler | None = None) -> bytes:
    return ulaw_encode(resampler(x) if resampler else resample(x, RATE, TWILIO_RATE))


def rms_dbfs(x: np.ndarray) -> float:
    if len(x) == 0:
        return -120.0
    r = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20 * np.log10(max(r, 1e-6))
