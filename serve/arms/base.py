"""The arm interface: a caller's utterance in, the agent's audio out, plus text events.

Both arms share everything else (turn-taking, barge-in, recording, store,
outcome): the call asks an arm for its opening turn once, then for one reply
per finished caller utterance. An arm yields frames:

- ``TranscriptFrame(role="user")`` with what it understood of the utterance
  (an empty text means "no speech": the call ignores the utterance);
- ``TranscriptFrame(role="agent")`` with the agent's words, before the audio;
- ``OutputAudio`` chunks of the agent's speech (16 kHz float32);
- ``EventFrame("timing", {...})`` with stage timings in ms (asr_ms, llm_first_ms, llm_ms, tts_ms, ...).

When the call transcribes the caller while they speak, ``respond`` also gets
``heard``, whose ``text()`` is the utterance's transcript (awaiting it waits
only for the part after the last pause), and ``prepare`` gets the words so far
at each pause, to get ready for the reply. ``release`` is called once when a
call ends. Cancelling the iteration (barge-in, hang-up) must be safe at any await.
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mads_text.common.records import Turn
from mads_text.scenario import Scenario

from ..frames import Frame


class ArmUnavailable(RuntimeError):
    """The arm cannot run here (model or package missing); the message says what to install or pass."""


def speech_checkpoint(path: str):
    """A speech checkpoint's ``config.json`` (``CheckpointInfo``); a folder that is not one makes the arm unavailable."""
    from mads_audio.checkpoint import read_checkpoint_info
    from mads_audio.config import SpeechModelError

    try:
        return read_checkpoint_info(path)
    except SpeechModelError as e:
        raise ArmUnavailable(str(e)) from None


@dataclass
class CallContext:
    call_id: str
    scenario: Scenario
    caller: dict[str, Any]
    arm: str
    history: list[Turn] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    seed: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # per-call state an arm may keep

    @property
    def caller_name(self) -> str:
        return str(self.caller.get("name") or "Customer")


class Arm(abc.ABC):
    name: str = "arm"

    async def load(self) -> None:
        """Load models before the first call (the server calls this at start-up)."""

    def describe(self) -> dict[str, Any]:
        return {"arm": self.name}

    @abc.abstractmethod
    def opening(self, ctx: CallContext) -> AsyncIterator[Frame]:
        """The agent opens the call."""

    @abc.abstractmethod
    def respond(self, ctx: CallContext, utterance: np.ndarray, heard=None) -> AsyncIterator[Frame]:
        """React to one finished caller utterance (16 kHz float32)."""

    async def prepare(self, ctx: CallContext, partial: str, audio: np.ndarray | None = None) -> None:
        """The caller is still speaking and has said ``partial`` so far (Whisper's words for ``audio``)."""

    async def release(self, ctx: CallContext) -> None:
        """The call is over."""

    async def aclose(self) -> None:
        pass
