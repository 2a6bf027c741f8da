"""Streaming voice activity detection with Silero VAD on onnxruntime (no torch needed).

The ONNX graph shipped in ``silero-vad`` scores 512-sample windows of 16 kHz
audio (256 at 8 kHz) and carries a recurrent state plus the last 64 samples of
context between calls. ``SileroVAD`` holds the one inference session (shared by
every stream: onnxruntime sessions are safe to run from several threads) and
``VADState`` holds what belongs to one stream. ``VADSegmenter`` turns the
per-window probabilities into utterances for turn-taking: a start confirmed
after ``min_speech_ms`` of speech, an end after ``min_silence_ms`` of silence,
with a little padding kept on both sides so Whisper hears word edges.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

SAMPLE_RATE = 16000
WINDOW = 512  # samples per model call at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window the model expects in front
DEFAULT_ONNX = "silero_vad.onnx"


class VADError(RuntimeError):
    pass


def default_model_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VADError("silero-vad is not installed (pip install silero-vad==6.2.3)")
    p = Path(next(iter(spec.submodule_search_locations))) / "data" / DEFAULT_ONNX
    if not p.exists():
        raise VADError(f"{p} not found; reinstall silero-vad==6.2.3")
    return p


@dataclass
class VADState:
    """Recurrent state and context of one audio stream."""

    state: np.ndarray = field(default_factory=lambda: np.zeros((2, 1, 128), dtype=np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT, dtype=np.float32))

    def reset(self) -> None:
        self.state[:] = 0.0
        self.context[:] = 0.0


class SileroVAD:
    """The Silero ONNX model; ``probability`` scores one 32 ms window of 16 kHz float32 audio."""

    _shared: ClassVar[dict[tuple[str, int], SileroVAD]] = {}
    _lock = threading.Lock()

    def __init__(self, path: str | Path | None = None, threads: int = 1):
        import onnxruntime as ort

        self.path = Path(path) if path else default_model_path()
        if not self.path.exists():
            raise VADError(f"{self.path}: VAD model file not found")
        opts = ort.SessionOptions()
        # one thread per call: windows are tiny and many streams run side by side
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # the graph logs unused initialisers at load
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    @classmethod
    def shared(cls, path: str | Path | None = None, threads: int = 1) -> SileroVAD:
        """One session per process and model file."""
        key = (str(path or ""), threads)
        with cls._lock:
            if key not in cls._shared:
                cls._shared[key] = cls(path, threads)
            return cls._shared[key]

    def probability(self, window: np.ndarray, state: VADState) -> float:
        if window.shape != (WINDOW,):
            raise VADError(f"a VAD window is {WINDOW} samples of 16 kHz audio, got shape {window.shape}")
        x = np.concatenate([state.context, window.astype(np.float32, copy=False)])[None, :]
        out, new_state = self.session.run(None, {"input": x, "state": state.state, "sr": self._sr})
        state.state = new_state
        state.context = x[0, -CONTEXT:].copy()
        return float(out[0, 0])

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Per-window speech probability of a whole clip (fresh state), for offline checks."""
        st = VADState()
        n = len(audio) // WINDOW
        return np.array([self.probability(audio[i * WINDOW : (i + 1) * WINDOW], st) for i in range(n)])


@dataclass
class SpeechStart:
    """Speech confirmed; ``sample`` is where it began in the stream (before padding)."""

    sample: int


@dataclass
class SpeechEnd:
    """End of an utterance: ``audio`` holds it with padding; ``last_voiced`` is the stream sample where speech stopped."""

    start_sample: int
    last_voiced: int
    audio: np.ndarray
    forced: bool = False  # cut by max_utterance_s or flush, not by silence

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass
class VADConfig:
    threshold: float = 0.5
    neg_threshold: float | None = None  # default threshold - 0.15: hysteresis against flicker
    min_speech_ms: int = 160
    min_silence_ms: int = 500
    speech_pad_ms: int = 160
    max_utterance_s: float = 20.0


class VADSegmenter:
    """Feed 16 kHz float32 audio of one stream in any chunk sizes; get SpeechStart/SpeechEnd events."""

    def __init__(self, vad: SileroVAD | None = None, config: VADConfig | None = None):
        self.vad = vad or SileroVAD.shared()
        self.cfg = config or VADConfig()
        self.neg = self.cfg.neg_threshold if self.cfg.neg_threshold is not None else max(0.01, self.cfg.threshold - 0.15)
        self.state = VADState()
        self._pending = np.zeros(0, dtype=np.float32)
        self._pos = 0  # stream samples already scored
        pad = int(self.cfg.speech_pad_ms * SAMPLE_RATE / 1000)
        self._pad = pad
        self._history = np.zeros(0, dtype=np.float32)  # recent audio kept for the pre-roll
        self._voiced_run = 0  # consecutive voiced samples while not yet confirmed
        self._silence_run = 0
        self._candidate_start: int | None = None
        self._speaking = False
        self._utt: list[np.ndarray] = []
        self._utt_start = 0
        self._last_voiced = 0
        self.last_probability = 0.0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def position(self) -> int:
        """Samples of the stream scored so far."""
        return self._pos

    def reset(self) -> None:
        self.__init__(self.vad, self.cfg)

    def feed(self, audio: np.ndarray) -> list[SpeechStart | SpeechEnd]:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        buf = np.concatenate([self._pending, audio]) if len(self._pending) else audio
        events: list[SpeechStart | SpeechEnd] = []
        n = len(buf) // WINDOW
        for i in range(n):
            events.extend(self._window(buf[i * WINDOW : (i + 1) * WINDOW]))
        self._pending = buf[n * WINDOW :].copy()
        return events

    def flush(self) -> list[SpeechEnd]:
        """End of stream: close an utterance in progress."""
        if self._speaking:
            return [self._close(forced=True)]
        return []

    def _window(self, w: np.ndarray) -> list[SpeechStart | SpeechEnd]:
        p = self.vad.probability(w, self.state)
        self.last_probability = p
        start_of_window = self._pos
        self._pos += WINDOW
        out: list[SpeechStart | SpeechEnd] = []
        min_speech = self.cfg.min_speech_ms * SAMPLE_RATE // 1000
        min_silence = self.cfg.min_silence_ms * SAMPLE_RATE // 1000
        if not self._speaking:
            self._history = np.concatenate([self._history, w])
            if p >= self.cfg.threshold:
                if self._candidate_start is None:
                    self._candidate_start = start_of_window
                self._voiced_run += WINDOW
                if self._voiced_run >= min_speech:
                    self._speaking = True
                    self._silence_run = 0
                    self._last_voiced = self._pos
                    keep = (self._pos - self._candidate_start) + self._pad
                    self._utt = [self._history[-keep:].copy()]
                    self._utt_start = max(0, self._candidate_start - self._pad)
                    out.append(SpeechStart(self._candidate_start))
            elif p < self.neg:
                self._voiced_run = 0
                self._candidate_start = None
            # bounded pre-roll: candidate speech plus padding is all we ever need
            limit = self._pad + min_speech + 2 * WINDOW
            if len(self._history) > limit:
                self._history = self._history[-limit:]
            return out
        self._utt.append(w.copy())
        if p >= self.neg:
            self._silence_run = 0
            if p >= self.cfg.threshold:
                self._last_voiced = self._pos
        else:
            self._silence_run += WINDOW
        if self._silence_run >= min_silence:
            out.append(self._close(forced=False))
        elif (self._pos - self._utt_start) >= self.cfg.max_utterance_s * SAMPLE_RATE:
            out.append(self._close(forced=True))
        return out

    def _close(self, forced: bool) -> SpeechEnd:
        audio = np.concatenate(self._utt) if self._utt else np.zeros(0, dtype=np.float32)
        # trim the trailing silence down to the padding
        tail = (self._pos - self._last_voiced) - self._pad
        if tail > 0 and not forced:
            audio = audio[: max(0, len(audio) - tail)]
        ev = SpeechEnd(self._utt_start, self._last_voiced, audio, forced)
        self._speaking = False
        self._utt = []
        self._voiced_run = 0
        self._silence_run = 0
        self._candidate_start = None
        self._history = np.zeros(0, dtype=np.float32)
        return ev


def speech_segments(audio: np.ndarray, config: VADConfig | None = None) -> list[tuple[float, float]]:
    """(start_s, end_s) of each utterance in a 16 kHz clip, for offline use and tests."""
    seg = VADSegmenter(config=config)
    out: list[tuple[float, float]] = []
    for ev in seg.feed(audio) + seg.flush():
        if isinstance(ev, SpeechEnd):
            out.append((ev.start_sample / SAMPLE_RATE, ev.last_voiced / SAMPLE_RATE))
    return out
