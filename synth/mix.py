"""Whole-call stereo: agent on the left channel, customer on the right, with natural turn timing.

Gaps between turns are drawn from a log-normal around half a second (phone
conversation gaps cluster at 200-700 ms). Optionally a turn starts before the
previous one has ended (overlap) and the listener drops a short backchannel
("mm-hmm") into a long turn, always on the listener's own channel and never
over the listener's own speech. Every placed sound is returned as an event, so
the transcript and the audio agree sample for sample.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

CHANNEL = {"agent": 0, "user": 1}  # 0 = left, 1 = right
BACKCHANNELS = ("Mm-hmm.", "Right.", "Okay.", "I see.", "Uh-huh.", "Yeah.")


class MixConfig(BaseModel):
    lead_in_s: float = Field(0.4, ge=0)
    tail_s: float = Field(0.5, ge=0)
    gap_median_s: float = Field(0.45, gt=0, description="median pause between turns")
    gap_spread: float = Field(0.35, ge=0, description="sigma of log gap")
    gap_min_s: float = Field(0.15, ge=0)
    gap_max_s: float = Field(1.5, gt=0)
    overlap_prob: float = Field(0.0, ge=0, le=1, description="chance a turn starts before the previous one ends")
    overlap_max_s: float = Field(0.5, ge=0)
    backchannel_prob: float = Field(0.0, ge=0, le=1, description="chance the listener backchannels in a long turn")
    backchannel_min_turn_s: float = Field(2.5, ge=0)


class Event(BaseModel):
    kind: Literal["turn", "backchannel"]
    turn: int = Field(description="index in the dialogue's turns; for a backchannel, the turn it lands in")
    role: Literal["agent", "user"]
    channel: Literal["left", "right"]
    text: str
    start: float
    end: float
    start_sample: int
    samples: int


def _gap(rng: np.random.Generator, cfg: MixConfig) -> float:
    g = float(np.exp(rng.normal(np.log(cfg.gap_median_s), cfg.gap_spread)))
    return float(np.clip(g, cfg.gap_min_s, cfg.gap_max_s))


def plan(
    clips: list[tuple[int, str, str, int]],
    sr: int,
    cfg: MixConfig,
    rng: np.random.Generator,
    backchannel_lengths: dict[str, list[tuple[str, int]]] | None = None,
) -> list[Event]:
    """Place turns (``(turn, role, text, n_samples)``) and backchannels on the timeline."""
    events: list[Event] = []
    t = int(cfg.lead_in_s * sr)
    prev_end = t
    prev_len = 0
    for k, (turn, role, text, n) in enumerate(clips):
        if k == 0:
            start = t
        elif cfg.overlap_prob and rng.random() < cfg.overlap_prob and prev_len:
            ov = rng.uniform(0.1, max(0.1, min(cfg.overlap_max_s, 0.3 * prev_len / sr)))
            start = max(events[-1].start_sample + 1, prev_end - int(ov * sr))
        else:
            start = prev_end + int(_gap(rng, cfg) * sr)
        ch = CHANNEL[role]
        events.append(Event(kind="turn", turn=turn, role=role, channel="left" if ch == 0 else "right", text=text,
                            start=start / sr, end=(start + n) / sr, start_sample=start, samples=n))  # fmt: skip
        prev_end, prev_len = start + n, n
    if cfg.backchannel_prob and backchannel_lengths:
        events += _backchannels(events, sr, cfg, rng, backchannel_lengths)
        events.sort(key=lambda e: (e.start_sample, e.kind != "turn"))
    return events


def _backchannels(turns: list[Event], sr: int, cfg: MixConfig, rng: np.random.Generator,
                  lengths: dict[str, list[tuple[str, int]]]) -> list[Event]:  # fmt: skip
    out: list[Event] = []
    margin = int(0.15 * sr)
    for ev in turns:
        listener = "user" if ev.role == "agent" else "agent"
        options = lengths.get(listener) or []
        if ev.samples < cfg.backchannel_min_turn_s * sr or not options or rng.random() >= cfg.backchannel_prob:
            continue
        text, n = options[int(rng.integers(len(options)))]
        at = ev.start_sample + int(rng.uniform(0.4, 0.75) * ev.samples)
        busy = [(e.start_sample - margin, e.start_sample + e.samples + margin) for e in [*turns, *out] if e.role == listener]
        if any(a < at + n and at < b for a, b in busy) or at + n > ev.start_sample + ev.samples:
            continue
        out.append(Event(kind="backchannel", turn=ev.turn, role=listener, channel="left" if listener == "agent" else "right",
                         text=text, start=at / sr, end=(at + n) / sr, start_sample=at, samples=n))  # fmt: skip
    return out


def render(events: list[Event], audio: dict[tuple[str, int, str], np.ndarray], sr: int, cfg: MixConfig) -> np.ndarray:
    """Stereo float32 ``(n, 2)``; ``audio`` maps (kind, turn, role) to the clip placed by each event."""
    total = max((e.start_sample + e.samples for e in events), default=0) + int(cfg.tail_s * sr)
    out = np.zeros((total, 2), dtype=np.float32)
    for e in events:
        pcm = audio[(e.kind, e.turn, e.role)]
        ch = 0 if e.channel == "left" else 1
        out[e.start_sample : e.start_sample + len(pcm), ch] += pcm
    peak = float(np.abs(out).max()) if len(out) else 0.0
    if peak > 0.99:  # only an overlap on one channel can push past full scale
        out *= 0.99 / peak
    return out
