"""The pipeline arm: what it makes of what the LLM returns, whole or streamed (scripted LLM, stand-in token streams, real flite voice)."""

import asyncio

import numpy as np
import pytest
from serve_helpers import needs_flite

from mads_text.llm.fake import ScriptedBackend
from mads_text.scenario import load_scenario
from serve.arms.base import CallContext
from serve.arms.pipeline import FALLBACK_LINE, PipelineArm
from serve.frames import EventFrame, OutputAudio, TranscriptFrame
from serve.tts import Voice

pytestmark = needs_flite


def opening_frames(tts, replies):
    scenario = load_scenario("insurance").model_copy(update={"agent": load_scenario("insurance").agent.model_copy(update={"opening": None})})
    arm = PipelineArm(scenario, ScriptedBackend(replies), None, tts, Voice(engine="flite", name="slt"))

    async def run():
        ctx = CallContext(call_id="p1", scenario=scenario, caller={}, arm="pipeline")
        return [f async for f in arm.opening(ctx)]

    return asyncio.run(run())


@pytest.mark.parametrize("reply", ["(speaking)", "[END]", "*smiles* (pause)", "...", ""])
def test_a_reply_with_nothing_speakable_is_handled_like_an_empty_one(tts, reply):
    frames = opening_frames(tts, lambda prompt, params: reply)
    agent = [f for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"]
    audio = [f for f in frames if isinstance(f, OutputAudio)]
    assert agent and agent[-1].text == FALLBACK_LINE
    assert sum(len(f.pcm) for f in audio) > 8000  # the caller hears the fallback line, not silence


def test_stage_directions_around_words_keep_the_words(tts):
    frames = opening_frames(tts, lambda prompt, params: "(smiles) Hello, this is Li Wei from Anxin Insurance.")
    agent = [f for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"]
    assert "Li Wei" in agent[-1].text and any(isinstance(f, OutputAudio) for f in frames)


class FakeStream:
    """A token stream in place of llama.cpp's, to check what the arm voices and when."""

    streams = True

    def __init__(self, replies):
        self.replies = list(replies)
        self.prompts, self.slots, self.prefilled = [], [], []
        self._free = [0, 1]

    def acquire(self):
        return self._free.pop(0) if self._free else None

    def release(self, slot):
        self._free.append(slot)

    async def prefill(self, prompt, slot):
        self.prefilled.append((prompt, slot))

    async def stream(self, prompt, params, slot=None):
        from serve.arms.llm_stream import Piece

        self.prompts.append(prompt)
        self.slots.append(slot)
        pieces = self.replies.pop(0)
        for p in pieces:
            await asyncio.sleep(0.01)
            yield Piece(p)
        yield Piece("", True, "stop", {"prompt_new_tokens": 12, "prompt_tokens": 400})


def streamed(tts, pieces_per_reply, history=()):
    from mads_text.common.records import Turn

    scenario = load_scenario("insurance")
    arm = PipelineArm(scenario, ScriptedBackend(["Fallback from the Dialog Agent."] * 3), None, tts, Voice(engine="flite", name="slt"))
    arm.llm, arm.stream = FakeStream(pieces_per_reply), True

    class Heard:
        async def text(self):
            return "How much does it cost?"

    async def run():
        ctx = CallContext(call_id="s1", scenario=scenario, caller={}, arm="pipeline")
        ctx.history += [Turn(role="agent", text="Hello, this is Li Wei from Anxin Insurance."), *history]
        out = []
        async for f in arm.respond(ctx, np.zeros(16000, np.float32), Heard()):
            out.append(f)
        return out, ctx, arm

    return asyncio.run(run())


def test_the_first_clause_is_voiced_before_the_reply_is_finished(tts):
    words = "Sure, of course, I can tell you that. It costs two hundred and eighty eight a month.".split(" ")
    frames, ctx, arm = streamed(tts, [[w + " " for w in words]])
    agent = [f for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"]
    audio_at = [i for i, f in enumerate(frames) if isinstance(f, OutputAudio)]
    # the first clause is voiced while the rest is still to come; later chunks are whole sentences
    assert [a.text for a in agent[:3]] == ["Sure, of course,", "Sure, of course, I can tell you that.",
                                           "Sure, of course, I can tell you that. It costs two hundred and eighty eight a month."]
    assert not agent[0].final and len(audio_at) == 3 and audio_at[0] < frames.index(agent[1])
    assert agent[-1].final and agent[-1].text == "Sure, of course, I can tell you that. It costs two hundred and eighty eight a month."
    timing = [f.data for f in frames if isinstance(f, EventFrame) and f.name == "timing"][-1]
    assert timing["llm_first_ms"] < timing["llm_ms"] and timing["prompt_new_tokens"] == 12 and "asr_ms" in timing
    assert arm.llm.slots == [0]  # the call holds its slot for all its turns


def test_the_reply_ends_where_the_model_starts_speaking_for_the_caller(tts):
    frames, _, _ = streamed(tts, [["Great. ", "It is cheap. Agent", ": and you? Customer: okay, I buy"]])
    agent = [f.text for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"]
    assert agent[-1] == "Great. It is cheap."


def test_a_first_clause_goes_out_at_a_comma(tts):
    frames, _, _ = streamed(tts, [["Well, I under", "stand your worry, ", "and the plan covers it."]])
    agent = [f.text for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"]
    assert agent[0] == "Well, I understand your worry,"


def test_a_stream_with_nothing_speakable_is_drawn_again_then_handled_like_an_empty_reply(tts):
    frames, _, arm = streamed(tts, [["(speaking", ")"], ["Customer: yes"], ["(nods)"]])
    agent = [f for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"]
    assert agent[-1].text == FALLBACK_LINE and any(isinstance(f, OutputAudio) for f in frames)
    assert len(arm.llm.prompts) == 3  # three draws with new seeds, as the Dialog Agent would make

    frames, _, arm = streamed(tts, [["(speaking)"], ["Of course, ", "it costs two hundred a month."]])
    assert [f.text for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"][-1] == "Of course, it costs two hundred a month."


def test_a_streamed_reply_passes_the_dialog_agents_checks(tts):
    from mads_text.common.records import Turn

    history = [Turn(role="user", text="Hi."), Turn(role="agent", text="It pays cash on diagnosis."),
               Turn(role="user", text="I'm not sure I can afford it.")]
    # the agent speaking as the customer, a narrator, the private reminder read out: each is drawn again
    frames, _, arm = streamed(tts, [["Okay, I want to buy ", "the policy today."],
                                    ["Li Wei says that ", "Fang agrees."],
                                    ["Li Wei answers that with the facts above, ", "in a sentence or two."]], history)
    agent = [f for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"]
    assert len(arm.llm.prompts) == 3 and agent[-1].text == FALLBACK_LINE
    frames, _, _ = streamed(tts, [["Li Wei says that ", "Fang agrees."], ["The starter plan ", "is 178 RMB a month."]], history)
    assert [f.text for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"][-1] == "The starter plan is 178 RMB a month."


def test_a_sentence_said_before_is_not_said_again(tts):
    frames, _, _ = streamed(tts, [["Hello, this is Li Wei from Anxin Insurance. ", "It costs two hundred a month."]])
    agent = [f.text for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"]
    assert agent[-1] == "It costs two hundred a month."


def test_a_sentence_said_before_is_not_said_again_clause_by_clause(tts):
    from mads_text.common.records import Turn

    said = "Shall I send you the link? If 288 RMB a month is too much, the 178 RMB starter plan is there too."
    words = "Sure. If 288 RMB a month is too much, the 178 RMB starter plan is there too. It covers 28 illnesses.".split(" ")
    history = [Turn(role="user", text="Hmm."), Turn(role="agent", text=said), Turn(role="user", text="I see.")]
    frames, _, _ = streamed(tts, [[w + " " for w in words]], history)
    agent = [f.text for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"]
    assert agent[-1] == "Sure. It covers 28 illnesses."  # neither clause of the repeated sentence was voiced
    # a clause that only opens like an earlier sentence is voiced, once its sentence turns out new
    words = "If 288 RMB a month is too much, we can talk about the yearly price.".split(" ")
    frames, _, _ = streamed(tts, [[w + " " for w in words]], history)
    agent = [f.text for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"]
    assert agent[-1] == "If 288 RMB a month is too much, we can talk about the yearly price."


def test_prepare_prefills_the_prompt_with_the_words_so_far(tts):
    scenario = load_scenario("insurance")
    arm = PipelineArm(scenario, ScriptedBackend([]), None, tts, Voice(engine="flite", name="slt"))
    arm.llm, arm.stream = FakeStream([]), True

    async def run():
        from mads_text.common.records import Turn

        ctx = CallContext(call_id="s2", scenario=scenario, caller={}, arm="pipeline")
        await arm.prepare(ctx, "How much")  # nothing said yet: nothing to prefill
        ctx.history.append(Turn(role="agent", text="Hello there."))
        await arm.prepare(ctx, "How much does it")
        await arm.release(ctx)
        return arm.llm

    llm = asyncio.run(run())
    [(prompt, slot)] = llm.prefilled
    assert prompt.endswith("Customer: How much does it\nLi Wei:") and slot == 0 and llm._free == [1, 0]


def test_the_ear_arm_gets_ready_on_what_its_own_ear_hears(tts):
    """While the caller speaks, the audio arm prefills with its ear's words, not Whisper's (a stand-in ear)."""
    from types import SimpleNamespace

    from mads_text.common.records import Turn
    from serve.arms.ear import EarArm

    scenario = load_scenario("insurance")
    pipe = PipelineArm(scenario, ScriptedBackend([]), None, tts, Voice(engine="flite", name="slt"))
    pipe.llm, pipe.stream = FakeStream([]), True
    arm = EarArm.__new__(EarArm)  # the pipeline arm with another ear, without loading a checkpoint
    arm.__dict__.update(pipe.__dict__)
    heard_lengths = []

    def hear(audio):
        heard_lengths.append(len(audio))
        return SimpleNamespace(text="How much is" if len(audio) < 16000 else "")

    arm.ear = SimpleNamespace(hear=hear)

    async def run():
        ctx = CallContext(call_id="e1", scenario=scenario, caller={}, arm="audio")
        ctx.history.append(Turn(role="agent", text="Hello there."))
        await arm.prepare(ctx, "How much does it", np.zeros(8000, np.float32))
        await arm.prepare(ctx, "How much does it cost", np.zeros(24000, np.float32))  # the ear heard nothing yet
        await arm.prepare(ctx, "")  # the agent's turn is over: the caller's prefix only
        await arm.release(ctx)

    asyncio.run(run())
    assert heard_lengths == [8000, 24000]
    prompts = [p for p, _ in pipe.llm.prefilled]
    assert len(prompts) == 2 and prompts[0].endswith("Customer: How much is\nLi Wei:")
    assert not any("How much does it" in p for p in prompts)
