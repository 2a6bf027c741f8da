"""The shared call handling without sockets: turn-taking, barge-in, records (real VAD, flite speech)."""

import asyncio
import time

import numpy as np
from serve_helpers import ScriptedArm, needs_flite

from mads_text.scenario import load_scenario
from serve.arms.base import CallContext
from serve.call import Call, CallConfig
from serve.frames import EndFrame, EventFrame, InputAudio, Interruption, OutputAudio, TranscriptFrame
from serve.recording import StereoRecorder
from serve.store import CallStore

pytestmark = needs_flite

LONG = ("Hello, this is Li Wei from Anxin Insurance. I am calling about our critical illness plan, "
        "which pays half a million in one lump sum. It costs two hundred and eighty eight a month.")  # fmt: skip


def make_call(tmp_path, arm, **cfg):
    store = CallStore(tmp_path / "calls.sqlite")
    store.create_call("c1", arm="pipeline", assignment="split", protocol="native", scenario="insurance", caller={}, recording=None)
    sent: list[tuple[float, object]] = []

    async def send(frame):
        sent.append((time.monotonic(), frame))

    ctx = CallContext(call_id="c1", scenario=load_scenario("insurance"), caller={}, arm="pipeline")
    rec = StereoRecorder(tmp_path / "c1.wav")
    call = Call(ctx, arm, store, send, config=CallConfig(**cfg), recorder=rec)
    return call, store, sent


async def feed(call, pcm, rtf=4.0, frame=320):
    for i in range(0, len(pcm), frame):
        await call.on_frame(InputAudio(pcm[i : i + frame]))
        await asyncio.sleep(frame / 16000 / rtf)


async def wait_for(pred, timeout=30.0):
    t_end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > t_end:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


async def one_exchange(call, sent, utterance):
    """The opening, one caller utterance, the agent's answer, then the caller hangs up."""
    await call.start()
    await wait_for(lambda: any(isinstance(f, EventFrame) and f.name == "agent_turn_end" for _, f in sent))
    await call.pacer.drain()
    await feed(call, np.concatenate([utterance, np.zeros(16000, np.float32)]))
    await wait_for(lambda: sum(isinstance(f, EventFrame) and f.name == "agent_turn_end" for _, f in sent) == 2)
    await call.finish("caller_hangup", "caller")


def test_reply_to_an_utterance_with_latency_and_records(tmp_path, tts, speech):
    async def run():
        arm = ScriptedArm(tts, ["Hello, this is Li Wei.", "It is two eighty eight a month."])
        call, store, sent = make_call(tmp_path, arm, realtime_factor=4.0)
        await one_exchange(call, sent, speech["price"])
        return store, sent, arm

    store, sent, arm = asyncio.run(run())
    turns = store.turns("c1")
    assert [(t["idx"], t["role"]) for t in turns] == [(0, "agent"), (1, "user"), (2, "agent")]
    assert turns[2]["latency_ms"] is not None and 0 < turns[2]["latency_ms"] < 5000
    assert turns[0]["audio_ms"] > 500 and not turns[0]["interrupted"]
    assert len(arm.heard) == 1 and abs(arm.heard[0] - len(speech["price"]) / 16000) < 0.6
    kinds = [type(f).__name__ for _, f in sent]
    assert kinds[0] == "EventFrame" and "TranscriptFrame" in kinds and "OutputAudio" in kinds
    c = store.call("c1")
    assert c["status"] == "ended" and c["end_reason"] == "caller_hangup" and c["user_turns"] == 1


def test_barge_in_stops_agent_audio_at_once(tmp_path, tts, speech):
    async def run():
        arm = ScriptedArm(tts, [LONG, "Sure, go ahead."])
        call, store, sent = make_call(tmp_path, arm, realtime_factor=1.0, lead_ms=200)
        await call.start()
        await wait_for(lambda: any(isinstance(f, OutputAudio) for _, f in sent))
        await asyncio.sleep(1.0)  # the agent is mid-sentence
        t_speak = time.monotonic()
        await feed(call, speech["long"], rtf=1.0)
        await feed(call, np.zeros(16000, np.float32), rtf=2.0)
        await wait_for(lambda: sum(isinstance(f, EventFrame) and f.name == "agent_turn_end" for _, f in sent) >= 1)
        await call.finish("caller_hangup", "caller")
        return store, sent, t_speak

    store, sent, t_speak = asyncio.run(run())
    inter = [(t, f) for t, f in sent if isinstance(f, Interruption)]
    assert len(inter) == 1 and inter[0][1].turn == 0
    t_int = inter[0][0]
    # the interruption went out within ~0.6 s of the caller starting to speak (VAD + 300 ms floor)
    assert t_int - t_speak < 1.0
    # no audio of the interrupted turn after the interruption
    assert not [f for t, f in sent if isinstance(f, OutputAudio) and f.turn == 0 and t > t_int]
    full = len(arm_audio := [f for _, f in sent if isinstance(f, OutputAudio) and f.turn == 0])
    assert full > 0 and arm_audio
    turns = store.turns("c1")
    t0 = turns[0]
    assert t0["interrupted"] == 1 and 500 < t0["audio_ms"] < 4000
    # the caller's words were still heard and answered
    assert [t["role"] for t in turns][:3] == ["agent", "user", "agent"]
    assert any(e["name"] == "barge_in" for e in store.events("c1"))


def test_no_speech_is_ignored_and_decision_ends_the_call(tmp_path, tts, speech):
    async def run():
        class Deciding(ScriptedArm):
            async def respond(self, ctx, utterance):
                self.heard.append(1.0)
                # the first utterance is heard as noise: the call must ignore it
                yield TranscriptFrame("user", "Okay, sign me up." if len(self.heard) > 1 else "", -1)
                if len(self.heard) > 1:
                    async for f in self._say("Wonderful, thank you!"):
                        yield f

        arm = Deciding(tts, ["Hello."])
        call, store, sent = make_call(tmp_path, arm, realtime_factor=4.0)
        await call.start()
        await wait_for(lambda: any(isinstance(f, EventFrame) and f.name == "agent_turn_end" for _, f in sent))
        await feed(call, np.concatenate([speech["price"], np.zeros(12000, np.float32)]))  # heard as no speech
        await asyncio.sleep(0.3)
        await feed(call, np.concatenate([speech["yes"], np.zeros(12000, np.float32)]))
        await asyncio.wait_for(call.done.wait(), 30)
        return store, sent, call

    store, sent, _ = asyncio.run(run())
    assert isinstance(sent[-1][1], EndFrame) and sent[-1][1].reason == "decision"
    c = store.call("c1")
    assert (c["outcome"], c["intention"], c["end_reason"], c["user_turns"]) == ("accepted", 1, "decision", 1)
    assert any(e["name"] == "no_speech" for e in store.events("c1"))


def test_idle_timeout_closes_with_policy_code(tmp_path, tts):
    async def run():
        call, store, sent = make_call(tmp_path, ScriptedArm(tts, ["Hi."]), idle_timeout_s=0.5, realtime_factor=4.0)
        await call.start()
        await asyncio.wait_for(call.done.wait(), 10)
        return store, sent, call

    store, sent, call = asyncio.run(run())
    assert call.end_frame.close_code == 1008 and call.end_frame.reason == "idle_timeout"
    assert any(getattr(f, "code", None) == "idle_timeout" for _, f in sent)
    assert store.call("c1")["end_reason"] == "idle_timeout"


def test_hang_up_mid_turn_records_what_was_played(tmp_path, tts):
    async def run():
        call, store, sent = make_call(tmp_path, ScriptedArm(tts, [LONG]), realtime_factor=1.0, lead_ms=200)
        await call.start()
        await wait_for(lambda: any(isinstance(f, OutputAudio) for _, f in sent))
        await asyncio.sleep(1.5)  # the agent is mid-sentence when the caller hangs up
        await call.finish("caller_hangup", "caller")
        return store

    store = asyncio.run(run())
    t0 = store.turns("c1")[0]
    assert t0["interrupted"] == 1 and t0["audio_ms"] is not None and 1000 < t0["audio_ms"] < 2500, t0
    assert t0["ended_at"] is not None


def test_hang_up_while_the_agent_prepares_its_turn_records_it_as_unheard(tmp_path, tts):
    class Slow(ScriptedArm):
        async def _say(self, text):
            yield TranscriptFrame("agent", text, -1)
            await asyncio.sleep(30)  # synthesis that never finishes before the hang-up

    async def run():
        call, store, sent = make_call(tmp_path, Slow(tts, ["Hello there."]), realtime_factor=4.0)
        await call.start()
        await wait_for(lambda: store.turns("c1"))
        await call.finish("caller_hangup", "caller")
        return store

    t0 = asyncio.run(run()).turns("c1")[0]
    assert (t0["interrupted"], t0["audio_ms"]) == (1, 0)


def test_a_fallback_turn_is_stored_as_failed(tmp_path, tts, speech):
    from serve.arms.pipeline import FALLBACK_LINE

    class Fallback(ScriptedArm):
        """The model says nothing speakable in its reply: the arm speaks the fallback line and flags the turn."""

        async def _say(self, text):
            async for f in super()._say(text):
                if isinstance(f, TranscriptFrame):
                    yield TranscriptFrame("agent", text, -1, final=False, failed=text == FALLBACK_LINE)
                    f = TranscriptFrame("agent", text, -1, final=True, failed=text == FALLBACK_LINE)
                yield f

    async def run():
        call, store, sent = make_call(tmp_path, Fallback(tts, ["Hello, this is Li Wei.", FALLBACK_LINE]), realtime_factor=4.0)
        await one_exchange(call, sent, speech["price"])
        return store

    turns = asyncio.run(run()).turns("c1")
    assert [(t["role"], t["failed"]) for t in turns] == [("agent", 0), ("user", 0), ("agent", 1)]
    assert turns[2]["text"] == FALLBACK_LINE
