"""Stereo call recordings: left channel the agent, right channel the caller, 16 kHz PCM16 WAV.

The caller's audio is the clock: it arrives continuously (phones and browsers
stream silence too), and each block of it is written with whatever agent audio
falls in the same span. Agent audio is placed where the caller's stream stood
when it was sent (up to the send-ahead lead early) and cut where a barge-in
stopped it. The WAV header is patched after every write and the file flushed,
so a recording read after a crash is valid up to the last block.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from .audio import RATE


class StereoRecorder:
    def __init__(self, path: str | Path, flush_every_s: float = 1.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "wb")  # noqa: SIM115 - open for the whole call, closed in close()
        self._wav = wave.open(self._fh, "wb")  # noqa: SIM115
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RATE)
        self.clock = 0  # caller samples received
        self.written = 0  # frames in the file
        self._user: list[np.ndarray] = []
        self._user_len = 0
        self._agent = np.zeros(0, dtype=np.float32)  # agent audio from `written` on
        self._agent_end = 0  # absolute sample where queued agent audio ends
        self._flush_every = int(flush_every_s * RATE)
        self.closed = False

    def user(self, pcm: np.ndarray) -> None:
        if self.closed:
            return
        self._user.append(np.asarray(pcm, dtype=np.float32))
        self._user_len += len(pcm)
        self.clock += len(pcm)
        if self._user_len >= self._flush_every:
            self._write_user_block()

    def agent(self, pcm: np.ndarray) -> None:
        if self.closed:
            return
        start = max(self._agent_end, self.clock)
        end = start + len(pcm)
        need = end - self.written
        if need > len(self._agent):
            self._agent = np.concatenate([self._agent, np.zeros(need - len(self._agent), dtype=np.float32)])
        self._agent[start - self.written : end - self.written] += pcm
        self._agent_end = end

    def cut_agent(self) -> None:
        """Barge-in: agent audio after the caller's current position was never played."""
        keep = max(0, self.clock - self.written)
        self._agent = self._agent[:keep]
        self._agent_end = min(self._agent_end, self.clock)

    def _write_user_block(self) -> None:
        if not self._user:
            return
        user = np.concatenate(self._user)
        self._user, self._user_len = [], 0
        self._emit(user)

    def _emit(self, user: np.ndarray) -> None:
        n = len(user)
        agent = self._agent[:n]
        if len(agent) < n:
            agent = np.concatenate([agent, np.zeros(n - len(agent), dtype=np.float32)])
        self._agent = self._agent[n:]
        frames = np.stack([agent, user], axis=1)
        self._wav.writeframes((np.clip(frames, -1.0, 32767 / 32768) * 32768).round().astype("<i2").tobytes())
        self._fh.flush()
        self.written += n

    def close(self) -> None:
        """Write what is left, including agent audio past the caller's last sample."""
        if self.closed:
            return
        self._write_user_block()
        tail = max(0, self._agent_end - self.written)
        if tail:
            self._emit(np.zeros(tail, dtype=np.float32))
        self._wav.close()
        self._fh.close()
        self.closed = True

    @property
    def duration_s(self) -> float:
        return self.written / RATE
