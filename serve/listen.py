"""Listening to the caller: turn detection, transcription while the caller speaks, and endpointing.

``TurnDetector``: caller audio in, turn events out, from a streaming Silero VAD
scored one 32 ms window at a time: speech started, barge-in threshold crossed,
a pause inside the utterance (``Segment``: the audio since the previous cut,
ready to transcribe), and the end of the utterance. It remembers when each
stretch of audio arrived, so the end of speech has a clock time and latency
can be measured from it.

``Hearing``: the transcript of one utterance, made while it is spoken. Each
``Segment`` is transcribed as soon as its pause begins, on a worker thread, so
when the turn ends only the tail after the last pause (usually nothing) is
left to transcribe: the ASR time after the end of speech shrinks to the
transcription of the last phrase, which itself overlaps the end-of-turn wait.

Endpointing (``turn_complete`` and ``Endpointing``): a fixed silence is either
too long for a finished question or too short for someone who stops to think.
With a transcript at hand the wait depends on the words: after ``complete_ms``
of silence the turn ends when the words so far make a finished sentence (they
end with a full stop, question or exclamation mark and not with a word that
needs a continuation), otherwise it waits up to ``incomplete_ms``. Without a
transcriber (an arm that has no ASR) every turn ends after ``fixed_ms``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from mads_audio.vad import SAMPLE_RATE, WINDOW, SileroVAD, SpeechEnd, SpeechStart, VADConfig, VADSegmenter


@dataclass
class Endpointing:
    pause_ms: int = 160  # silence inside an utterance that cuts a segment for transcription
    complete_ms: int = 250  # silence that ends a turn whose words make a finished sentence
    incomplete_ms: int = 800  # silence that ends any turn when a transcriber is listening
    fixed_ms: int = 500  # silence that ends every turn when nothing transcribes while the caller speaks
    max_segment_s: float = 6.0  # speech without a pause is cut at its quietest window after this long


# a sentence that ends on one of these words is waiting for more ("I was thinking about the.")
DANGLING = frozenset(
    "a an the and or but so because if than my your our their its um uh er erm hmm like whether although".split()
)
# these end questions ("What is it about?", "Who am I talking to?") but rarely statements ("It is for.")
DANGLING_UNLESS_ASKED = frozenset(
    "to of for from with without about at by in on into as is are was were be been am do does did have has had "
    "can could would should will shall may might must when while where which who that then well also just very".split()
)
_END = re.compile(r"[.!?][\"')\]]*\s*$")
_WORDS = re.compile(r"[a-z']+")


def turn_complete(text: str) -> bool:
    """Whether transcribed words read as a finished turn: a sentence end, not an ellipsis, not a dangling word."""
    t = text.strip()
    if not t or not _END.search(t) or t.rstrip("\"')] ").endswith(("...", "\u2026", ",")):
        return False
    words = _WORDS.findall(t.lower())
    if not words or words[-1] in DANGLING:
        return False
    return words[-1] not in DANGLING_UNLESS_ASKED or t.rstrip("\"')] ").endswith("?")


@dataclass
class BargeIn:
    """Caller speech has lasted long enough to count as taking the floor."""

    sample: int


@dataclass
class Segment:
    """Audio of the current utterance since the previous cut, ending in a pause (or cut in a quiet window)."""

    audio: np.ndarray
    start_sample: int
    end_sample: int


@dataclass
class Utterance:
    audio: np.ndarray
    start_sample: int
    end_sample: int
    end_time: float  # monotonic time the last voiced audio arrived
    forced: bool
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # audio after the last Segment
    decided_at: float = 0.0  # monotonic time the turn was declared over


class TurnDetector:
    def __init__(self, vad: SileroVAD | None = None, config: VADConfig | None = None, barge_in_ms: int = 300,
                 endpointing: Endpointing | None = None, segments: bool = False):  # fmt: skip
        self.ep = endpointing or Endpointing()
        self.segments = segments
        self.segmenter = VADSegmenter(vad, config)
        self.threshold = self.segmenter.cfg.threshold
        self.pad = self.segmenter.cfg.speech_pad_ms * SAMPLE_RATE // 1000
        self.barge_in_samples = barge_in_ms * SAMPLE_RATE // 1000
        self._arrivals: collections.deque[tuple[int, float]] = collections.deque(maxlen=2000)
        self._received = 0
        self._fed = 0  # samples given to the segmenter (it scores them once a whole window is in)
        keep = int((self.segmenter.cfg.max_utterance_s + 2) * SAMPLE_RATE)
        self._audio = np.zeros(0, np.float32)  # the stream's most recent samples, for cutting segments
        self._audio_start = 0  # stream index of self._audio[0]
        self._keep = keep
        self._probs: collections.deque[tuple[int, float]] = collections.deque(maxlen=64)  # (window end, probability)
        self._speech_start: int | None = None
        self._last_voiced = 0
        self._cut = 0  # where the next segment starts
        self._voiced_since_cut = False
        self._paused = False
        self._barged = False

    @property
    def speaking(self) -> bool:
        return self.segmenter.speaking

    @property
    def received(self) -> int:
        return self._received

    @property
    def silence_ms(self) -> float:
        """Silence since the last voiced window of the utterance in progress (0 when nobody speaks)."""
        if not self.segmenter.speaking:
            return 0.0
        return (self.segmenter.position - self._last_voiced) * 1000 / SAMPLE_RATE

    def _time_of(self, sample: int) -> float:
        for end, t in self._arrivals:
            if end >= sample:
                return t
        return time.monotonic()

    def _slice(self, start: int, end: int) -> np.ndarray:
        a, b = max(start, self._audio_start) - self._audio_start, max(0, end - self._audio_start)
        return self._audio[a:b].copy()

    def feed(self, pcm: np.ndarray, now: float | None = None) -> list[SpeechStart | BargeIn | Segment | Utterance]:
        now = time.monotonic() if now is None else now
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        self._received += len(pcm)
        self._arrivals.append((self._received, now))
        self._audio = np.concatenate([self._audio, pcm])
        if len(self._audio) > self._keep:
            drop = len(self._audio) - self._keep
            self._audio, self._audio_start = self._audio[drop:], self._audio_start + drop
        out: list[SpeechStart | BargeIn | Segment | Utterance] = []
        # one window per segmenter call, so each window's probability can be read
        i = 0
        while i < len(pcm):
            piece = pcm[i : i + WINDOW - (self._fed - self.segmenter.position)]
            events = self.segmenter.feed(piece)
            self._fed += len(piece)
            i += len(piece)
            if self._fed == self.segmenter.position:
                self._window(self.segmenter.position, self.segmenter.last_probability, out)
            for ev in events:
                if isinstance(ev, SpeechStart):
                    self._speech_start = ev.sample
                    self._last_voiced = self.segmenter.position
                    self._cut = max(0, ev.sample - self.pad)
                    self._voiced_since_cut, self._paused, self._barged = True, False, False
                    out.append(ev)
                elif isinstance(ev, SpeechEnd):
                    out.append(self._utterance(ev, now))
        if (
            self.segmenter.speaking
            and self._speech_start is not None
            and not self._barged
            and self.segmenter.position - self._speech_start >= self.barge_in_samples
        ):
            self._barged = True
            out.append(BargeIn(self._speech_start))
        return out

    def _window(self, end: int, p: float, out: list) -> None:
        self._probs.append((end, p))
        if not self.segmenter.speaking:
            return
        if p >= self.threshold:
            self._last_voiced = end
            self._voiced_since_cut, self._paused = True, False
            if self.segments and (end - self._cut) >= self.ep.max_segment_s * SAMPLE_RATE:
                # no pause for a long time: cut at the quietest recent window, between words if anywhere
                recent = [(q, e) for e, q in self._probs if end - SAMPLE_RATE <= e <= end - 5 * WINDOW]
                if recent:
                    self._emit_segment(min(recent)[1], out)
            return
        silent = (end - self._last_voiced) * 1000 / SAMPLE_RATE
        if self.segments and not self._paused and silent >= self.ep.pause_ms and self._voiced_since_cut:
            self._paused = True
            self._emit_segment(min(end, self._last_voiced + self.pad), out)

    def _emit_segment(self, cut: int, out: list) -> None:
        out.append(Segment(self._slice(self._cut, cut), self._cut, cut))
        self._cut = cut
        self._voiced_since_cut = False

    def _utterance(self, ev: SpeechEnd, now: float) -> Utterance:
        end = min(self.segmenter.position, ev.last_voiced + self.pad)
        tail = self._slice(self._cut, end) if self._voiced_since_cut else np.zeros(0, np.float32)
        self._speech_start = None
        return Utterance(ev.audio, ev.start_sample, ev.last_voiced, self._time_of(ev.last_voiced), ev.forced, tail, now)

    def end_turn(self, now: float | None = None) -> Utterance | None:
        """Declare the utterance in progress over now (the endpointing decided), as the VAD would after its silence."""
        ends = self.segmenter.flush()
        return self._utterance(ends[0], time.monotonic() if now is None else now) if ends else None


class Hearing:
    """The transcript of one utterance, built segment by segment while it is spoken (see the module notes)."""

    def __init__(self, transcribe: Callable[[np.ndarray], Awaitable[str]],
                 on_text: Callable[[str, np.ndarray], None] | None = None):  # fmt: skip
        self._transcribe = transcribe
        self._on_text = on_text
        self._parts: list[asyncio.Task[str]] = []
        self._audio: list[np.ndarray] = []
        self._tail: np.ndarray | None = None
        self.segments = 0
        self.closed = False

    def add(self, audio: np.ndarray) -> None:
        if not self.closed:
            self._start(audio)

    def _start(self, audio: np.ndarray) -> None:
        if len(audio) < WINDOW:
            return
        task = asyncio.ensure_future(self._transcribe(audio))
        self._parts.append(task)
        self._audio.append(audio)
        self.segments += 1
        if self._on_text is not None:
            task.add_done_callback(lambda t: None if t.cancelled() or t.exception() else self._partial())

    def _partial(self) -> None:
        if not self.closed and self.ready and self._on_text is not None:
            # the audio with it, for an arm whose own ear gets ready on the same words (serve/arms/ear.py)
            self._on_text(self.text_so_far, np.concatenate(self._audio))

    def finish(self, tail: np.ndarray) -> None:
        # the tail is transcribed when the text is first asked for: the pipeline asks at once, an arm with its own
        # ear once its reply is out, so that Whisper does not take the cores from the LLM's first clause
        self._tail = tail
        self.closed = True

    @property
    def ready(self) -> bool:
        return all(t.done() for t in self._parts)

    @property
    def text_so_far(self) -> str:
        return " ".join(t.result().strip() for t in self._parts if t.done() and not t.cancelled() and not t.exception()).strip()

    async def text(self) -> str:
        if self._tail is not None:
            tail, self._tail = self._tail, None
            self._start(tail)
        parts = [await t for t in self._parts]
        return " ".join(p.strip() for p in parts if p.strip())

    def cancel(self) -> None:
        self.closed, self._tail = True, None
        for t in self._parts:
            t.cancel()


class JoinedHearing:
    """Utterances whose reply was dropped before it was transcribed, heard together with the one that followed."""

    def __init__(self, parts: list[Hearing]):
        self.parts = parts

    async def text(self) -> str:
        # every part's tail starts at once, not one after the other
        return " ".join(t for t in await asyncio.gather(*(h.text() for h in self.parts)) if t)

    def cancel(self) -> None:
        for h in self.parts:
            h.cancel()


class Listener:
    """One call's ear: turn events from the detector, the transcript made while the caller speaks, and the end
    of each turn decided from its silence and its words (``Endpointing``).

    ``feed`` returns ``SpeechStart``, ``BargeIn`` and ``Utterance`` events; ``take`` gives the responder an
    utterance's audio and transcript, joined with those of earlier utterances whose reply was dropped before
    they were transcribed (``committed`` forgets those once a caller turn is stored).
    """

    def __init__(self, asr, vad: SileroVAD | None, vad_cfg: VADConfig, barge_in_ms: int, ep: Endpointing,
                 on_partial: Callable[[str, np.ndarray], None] | None = None):  # fmt: skip
        self.asr = asr
        self.ep = ep
        # with words to judge the turn by, the VAD's own end is the longest wait; without, the only one
        vad_cfg = dataclasses.replace(vad_cfg, min_silence_ms=ep.incomplete_ms if asr else ep.fixed_ms)
        self.detector = TurnDetector(vad, vad_cfg, barge_in_ms, ep, segments=asr is not None)
        self.on_partial = on_partial
        self._hearing: Hearing | None = None
        self._pending: list[Hearing] = []
        self._pending_audio: np.ndarray | None = None

    @property
    def speaking(self) -> bool:
        return self.detector.speaking

    async def _transcribe(self, audio: np.ndarray) -> str:
        return (await asyncio.to_thread(self.asr.transcribe, audio)).text

    def feed(self, pcm: np.ndarray) -> list[SpeechStart | BargeIn | Utterance]:
        out = []
        for ev in self.detector.feed(pcm):
            if isinstance(ev, Segment):
                if self._hearing is not None:
                    self._hearing.add(ev.audio)
                continue
            if isinstance(ev, SpeechStart) and self.asr is not None:
                self._hearing = Hearing(self._transcribe, self.on_partial)
            out.append(ev)
        h = self._hearing
        if (h is not None and h.segments and self.detector.silence_ms >= self.ep.complete_ms and h.ready
                and turn_complete(h.text_so_far)):  # fmt: skip
            utt = self.detector.end_turn()  # the words make a finished sentence: no need to wait any longer
            if utt is not None:
                out.append(utt)
        return out

    def take(self, utt: Utterance) -> tuple[np.ndarray, Hearing | JoinedHearing | None]:
        audio = utt.audio if self._pending_audio is None else np.concatenate([self._pending_audio, utt.audio])
        self._pending_audio = audio
        if self._hearing is None:
            return audio, None
        self._hearing.finish(utt.tail)
        self._pending.append(self._hearing)
        self._hearing = None
        return audio, self._pending[0] if len(self._pending) == 1 else JoinedHearing(list(self._pending))

    def committed(self) -> None:
        self._pending_audio = None
        self._pending = []

    def close(self) -> None:
        for h in [self._hearing, *self._pending]:
            if h is not None:
                h.cancel()
