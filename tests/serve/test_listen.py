"""Listening: segments cut at pauses, the transcript made while the caller speaks, and endpointing by the words
(real Silero VAD and flite speech; the ASR is a stand-in that says what it was given, so timing is exact)."""

import asyncio
from dataclasses import dataclass

import numpy as np
import pytest
from serve_helpers import needs_flite

from mads_audio.vad import VADConfig
from serve.listen import Endpointing, Listener, Segment, TurnDetector, Utterance, turn_complete

pytestmark = needs_flite


@pytest.mark.parametrize(
    "text, complete",
    [("How much does it cost per month?", True), ("No thanks, I'm not interested.", True), ("Okay!", True),
     ("I was thinking about the.", False), ("So what I want to know is", False), ("Well, um...", False),
     ("Let me think, and", False), ("", False), ("Yes, I'd like that. But", False), ("It's for my wife.", True),
     ("What is it about?", True), ("It is for.", False), ("Tell me more about it.", True), ("Can you send it to me?", True)],
)  # fmt: skip
def test_turn_complete(text, complete):
    assert turn_complete(text) is complete


@dataclass
class Said:
    text: str


class Parrot:
    """ASR stand-in: the words of each segment, looked up by its length, so tests know what each cut holds."""

    def __init__(self, words):
        self.words = words
        self.heard: list[float] = []

    def transcribe(self, audio):
        self.heard.append(len(audio) / 16000)
        return Said(self.words(len(audio) / 16000, len(self.heard)))


def phrase(tts, text):
    from serve.tts import Voice

    return tts.synthesize(text, Voice(engine="flite", name="rms"))


def test_segments_are_cut_at_pauses_and_the_tail_is_what_is_left(tts):
    a, b = phrase(tts, "Hi, yes, this is James."), phrase(tts, "How much does it cost per month?")
    audio = np.concatenate([np.zeros(8000), a, np.zeros(6400), b, np.zeros(16000)]).astype(np.float32)
    det = TurnDetector(config=VADConfig(min_silence_ms=800), endpointing=Endpointing(pause_ms=160), segments=True)
    events = [ev for i in range(0, len(audio), 320) for ev in det.feed(audio[i : i + 320])]
    segs = [e for e in events if isinstance(e, Segment)]
    [utt] = [e for e in events if isinstance(e, Utterance)]
    assert len(segs) >= 2  # one at the pause between the phrases, one when the question ends
    assert abs(len(segs[0].audio) / 16000 - len(a) / 16000) < 0.6
    assert segs[1].start_sample == segs[0].end_sample  # contiguous cuts
    assert len(utt.tail) == 0  # the question was already cut at its trailing pause: nothing left for the end
    assert utt.decided_at >= utt.end_time


def run_listener(tts, words, silence_s=1.5, ep=None, partials=None):
    """Feed one question and silence in 20 ms frames; return (silence ms when the turn ended, transcript, parrot)."""
    parrot = Parrot(words)
    speech = phrase(tts, "How much does it cost per month for my wife and me?")
    audio = np.concatenate([np.zeros(4800), speech]).astype(np.float32)
    on_partial = None if partials is None else (lambda text, pcm: partials.append((text, pcm, len(speech))))
    listener = Listener(parrot, None, VADConfig(), 300, ep or Endpointing(), on_partial)

    async def go():
        ended = None
        frames = [audio[i : i + 320] for i in range(0, len(audio), 320)] + [np.zeros(320, np.float32)] * int(silence_s * 50)
        for k, f in enumerate(frames):
            for ev in listener.feed(f):
                if isinstance(ev, Utterance):
                    ended = (k, ev)
            if ended:
                break
            await asyncio.sleep(0.004)  # the stand-in ASR runs on a worker thread
        k, utt = ended
        _, heard = listener.take(utt)
        silence_ms = ((k + 1) * 320 - utt.end_sample) / 16  # from the last voiced window to the decision
        return silence_ms, await heard.text(), utt

    silence_ms, text, utt = asyncio.run(go())
    return silence_ms, text, parrot, utt


def test_a_finished_sentence_ends_the_turn_after_a_short_silence(tts):
    partials = []
    silence_ms, text, parrot, utt = run_listener(tts, lambda dur, n: "How much does it cost per month for my wife and me?",
                                                 partials=partials)  # fmt: skip
    assert 250 <= silence_ms < 400  # not the 800 ms an unfinished sentence gets, nor the old fixed 500 ms
    assert text == "How much does it cost per month for my wife and me?"
    assert utt.forced and len(parrot.heard) == 1  # one pass, made during the pause; none left for the end
    # the words so far reach the call with the audio they were heard in (an arm with its own ear hears that)
    [(words, pcm, n)] = partials
    assert words == text and abs(len(pcm) - n) / 16000 < 0.6 and pcm.dtype == np.float32


def test_an_unfinished_sentence_waits_for_the_longer_silence(tts):
    silence_ms, text, parrot, utt = run_listener(tts, lambda dur, n: "How much does it cost per month for")
    assert 800 <= silence_ms <= 900
    assert text == "How much does it cost per month for" and not utt.forced


def test_without_segments_every_turn_waits_the_fixed_silence(tts):
    listener = Listener(None, None, VADConfig(), 300, Endpointing())
    speech = phrase(tts, "How much does it cost?")
    audio = np.concatenate([speech, np.zeros(16000)]).astype(np.float32)
    for k in range(0, len(audio), 320):
        evs = [e for e in listener.feed(audio[k : k + 320]) if isinstance(e, Utterance)]
        if evs:
            break
    silence_ms = (k + 320 - evs[0].end_sample) / 16
    assert 500 <= silence_ms <= 560
    assert listener.take(evs[0])[1] is None


def test_a_tail_is_transcribed_when_asked_for_and_joined_tails_at_once():
    from serve.listen import Hearing, JoinedHearing

    started, finished = [], []

    async def transcribe(audio):
        started.append(len(finished))  # how many passes had ended when this one began
        await asyncio.sleep(0.05)
        finished.append(len(audio))
        return str(len(audio))

    async def go():
        a, b = Hearing(transcribe), Hearing(transcribe)
        a.finish(np.zeros(8000, np.float32))
        b.finish(np.zeros(9600, np.float32))
        await asyncio.sleep(0.01)
        assert started == []  # nothing is transcribed before someone asks (the audio arm asks after its reply)
        return await JoinedHearing([a, b]).text()

    assert asyncio.run(go()) == "8000 9600" and started == [0, 0]  # both tails at once, joined in order
