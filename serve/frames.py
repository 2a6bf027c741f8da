"""Typed frames: everything that moves through a call is one of these.

Transports turn wire messages into frames (``protocol/``), the call's
processors consume and produce frames (``call.py``), and transports turn the
outgoing frames back into wire messages. Audio inside frames is always mono
float32 at 16 kHz.

``SYSTEM_FRAMES`` overtake queued data: an ``Interruption`` (barge-in) must stop
the agent's audio at once, not after the audio already queued in front of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np


@dataclass
class Frame:
    pass


# --- from the caller -----------------------------------------------------------


@dataclass
class StartFrame(Frame):
    """The caller opened the session (native ``start`` or Twilio ``start``)."""

    protocol: Literal["native", "twilio"]
    caller: dict[str, Any] = field(default_factory=dict)
    scenario: str | None = None
    arm: str | None = None  # an arm the caller asks for (web page); the split decides otherwise
    token: str | None = None  # browser fallback when no Authorization header could be sent
    stream_id: str | None = None  # Twilio streamSid / call SID
    call_sid: str | None = None


@dataclass
class InputAudio(Frame):
    pcm: np.ndarray


@dataclass
class PlaybackMark(Frame):
    """The caller reports that audio up to this mark has been played (Twilio ``mark`` echo)."""

    name: str


@dataclass
class Dtmf(Frame):
    digit: str


@dataclass
class Hangup(Frame):
    reason: str = "caller"


# --- to the caller -------------------------------------------------------------


@dataclass
class OutputAudio(Frame):
    pcm: np.ndarray
    turn: int  # index of the agent turn this audio belongs to


@dataclass
class TranscriptFrame(Frame):
    role: Literal["agent", "user"]
    text: str
    turn: int
    final: bool = True
    failed: bool = False  # an agent turn that is the fallback line: the model produced nothing speakable


@dataclass
class EventFrame(Frame):
    """A named event for the caller (call_started, agent_turn_end, outcome, ...)."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class MarkFrame(Frame):
    """Ask the caller to echo ``name`` once it has played everything sent before (Twilio ``mark``)."""

    name: str


@dataclass
class Interruption(Frame):
    """Barge-in: drop queued agent audio and tell the caller to flush what it buffered."""

    turn: int


@dataclass
class ErrorFrame(Frame):
    code: str
    message: str
    close_code: int | None = None  # websocket close code when the error ends the call


@dataclass
class EndFrame(Frame):
    """The call is over; the transport closes after sending everything in front of it."""

    reason: str
    close_code: int = 1000


SYSTEM_FRAMES = (Interruption, ErrorFrame)
