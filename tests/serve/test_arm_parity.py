"""Parity of the arms: one prompt source and one decoding configuration, described by each arm, checked before an
A/B runs (stand-in speech model and LLM; flite voice)."""

import asyncio

import numpy as np
import pytest
from serve_helpers import ScriptedArm, needs_flite

from mads_audio.checkpoint import CheckpointInfo
from mads_audio.config import SpeechLLMConfig
from mads_audio.sampling import TokenEvent
from mads_text.agents import DialogAgent
from mads_text.common import assets
from mads_text.common.records import Turn
from mads_text.llm.fake import ScriptedBackend
from mads_text.scenario import load_scenario
from serve.arms.audio import AudioArm
from serve.arms.base import CallContext
from serve.arms.parity import ArmMismatch, differences, sha256_text
from serve.arms.pipeline import FALLBACK_LINE, PipelineArm
from serve.frames import OutputAudio, TranscriptFrame
from serve.server import ServerConfig, VoiceServer
from serve.store import CallStore
from serve.tts import Voice

pytestmark = needs_flite
SOP = "Open warmly, ask about the family's cover, then offer a callback with the plan's terms."
VOICE = Voice(engine="flite", name="slt")


class EmbeddedLike(ScriptedBackend):
    """A scripted LLM that describes itself as llama.cpp serving the SmolLM2 GGUF."""

    def describe(self):
        return {"backend": "embedded", "model": "smollm2", "path": str(assets.resolve_gguf("smollm2"))}


def checkpoint(tmp_path, llm="smollm2"):
    """A speech checkpoint's config alone: enough for the arm to describe itself (the model is a stand-in)."""
    d = tmp_path / "sckpt"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(CheckpointInfo(config=SpeechLLMConfig(llm=llm, whisper="tiny.en")).model_dump_json())
    return str(d)


def arms(tmp_path, tts, mode="chat", temperature=0.0, llm="smollm2", **kw):
    scenario = load_scenario("insurance")
    same = {"prompt_k": SOP, "max_tokens": 40, "temperature": temperature, "top_p": 0.9}
    pipe = PipelineArm(scenario, EmbeddedLike([]), None, tts, VOICE, prompt_mode=mode, **same, **kw)
    pipe.stream = True  # as on llama.cpp: replies streamed, redrawn at the same temperature
    return pipe, AudioArm(scenario, checkpoint(tmp_path, llm), tts, VOICE, **same)


def test_both_arms_describe_one_prompt_source_and_one_decoding(tmp_path, tts):
    pipe, audio = arms(tmp_path, tts)
    p, a = pipe.describe(), audio.describe()
    assert differences(p, a) == []
    # the audio arm's system prompt is the Dialog Agent's, with the product facts and the evolved SOP
    system = DialogAgent(load_scenario("insurance"), EmbeddedLike([]), mode="chat", prompt_k=SOP).system_prompt
    assert audio.system == system and SOP in system and "Product metadata" in system
    assert a["prompt_sha256"] == p["prompt_sha256"] == sha256_text(system)
    assert a["backbone"] == p["backbone"] == str(assets.resolve_gguf("smollm2").resolve())
    assert a["decoding"] == {"greedy": True, "max_tokens": 40, "stop": ["\nCustomer:", "\nLi Wei:"]}
    # what the speech model cannot match is said, not hidden
    assert any(u.startswith("sampler:") for u in a["unmatched"]) and any(u.startswith("runtime:") for u in a["unmatched"])


def test_differences_in_prompt_decoding_or_backbone_are_listed(tmp_path, tts):
    pipe, audio = arms(tmp_path, tts, temperature=0.7)
    diffs = differences(pipe.describe(), audio.describe())
    # llama.cpp adds top_k and min_p to temperature and top_p; the speech model's sampler has neither
    assert [d.split(":")[0] for d in diffs] == ["decoding.top_k", "decoding.min_p"], diffs
    assert "pipeline 40, audio None" in diffs[0]
    pipe, audio = arms(tmp_path, tts, mode="transcript")
    diffs = differences(pipe.describe(), audio.describe())
    assert diffs[0].startswith("prompt_sha256:") and any(d.startswith("decoding.stop") for d in diffs)
    pipe, audio = arms(tmp_path, tts, use_caller_name=True)
    assert [d.split(":")[0] for d in differences(pipe.describe(), audio.describe())] == ["decoding.stop"]
    pipe, audio = arms(tmp_path, tts, llm="qwen1.5b")
    assert [d.split(":")[0] for d in differences(pipe.describe(), audio.describe())] == ["backbone"]


class FakeSpeechModel:
    """Stands in for the speech LLM: records how it is asked to decode, answers with scripted token pieces."""

    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    def stream(self, audio, context, **kw):
        self.calls.append({"audio": audio, "context": list(context), **kw})
        for i, piece in enumerate(self.replies.pop(0)):
            yield TokenEvent(piece, i, i, 0.01, 100)
        yield TokenEvent("", 0, 99, 0.02, 100, done=True, finish="stop")


def audio_reply(tmp_path, tts, replies, temperature=0.7):
    _, arm = arms(tmp_path, tts, temperature=temperature)
    model = FakeSpeechModel(replies)
    arm.agent = type("Agent", (), {"model": model})()
    history = [Turn(role="agent", text="Hello, this is Li Wei."), Turn(role="user", text="Hi."),
               Turn(role="agent", text="Do you have a minute?")]  # fmt: skip

    async def run():
        ctx = CallContext(call_id="a1", scenario=load_scenario("insurance"), caller={}, arm="audio", history=list(history))
        return [f async for f in arm.respond(ctx, np.zeros(8000, np.float32))]

    frames = asyncio.run(run())
    return [f for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"], frames, model, arm


def test_the_audio_arm_decodes_with_the_shared_settings_and_stops_where_the_pipeline_would(tmp_path, tts):
    agent, frames, model, arm = audio_reply(tmp_path, tts, [["It costs two hundred ", "a month.", "\nCustomer", ": great, I buy"]])
    [call] = model.calls
    assert (call["system"], call["temperature"], call["top_p"], call["max_new_tokens"]) == (arm.system, 0.7, 0.9, 40)
    assert len(call["context"]) == 3  # the whole call so far, as the pipeline's prompt has it
    assert agent[-1].final and agent[-1].text == "It costs two hundred a month." and not agent[-1].failed
    assert any(isinstance(f, OutputAudio) for f in frames)


def test_an_audio_reply_with_nothing_speakable_is_redrawn_then_a_failed_fallback(tmp_path, tts):
    agent, frames, model, _ = audio_reply(tmp_path, tts, [["(nods)"], [""], ["\nCustomer: yes"]])
    assert len(model.calls) == 3 and len({c["seed"] for c in model.calls}) == 3  # three draws, as the pipeline's
    assert agent[-1].text == FALLBACK_LINE and agent[-1].final and all(f.failed for f in agent)
    assert sum(len(f.pcm) for f in frames if isinstance(f, OutputAudio)) > 8000  # still heard, never silence

    agent, _, model, _ = audio_reply(tmp_path, tts, [["(nods)"], ["Of course, it is cheap."]])
    assert len(model.calls) == 2 and agent[-1].text == "Of course, it is cheap." and not agent[-1].failed

    # greedy: a redraw would repeat the same reply, so there is none
    agent, _, model, _ = audio_reply(tmp_path, tts, [["(nods)"], ["unused"]], temperature=0.0)
    assert len(model.calls) == 1 and agent[-1].failed


def test_a_pipeline_fallback_turn_is_marked_failed(tts):
    from test_pipeline_arm import opening_frames, streamed

    agent = [f for f in opening_frames(tts, lambda prompt, params: "(speaking)") if isinstance(f, TranscriptFrame)]
    assert agent[-1].text == FALLBACK_LINE and all(f.failed for f in agent)
    frames, _, _ = streamed(tts, [["(speaking)"], ["Of course, ", "it costs two hundred a month."]])
    agent = [f for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent"]
    assert agent[-1].text == "Of course, it costs two hundred a month." and not any(f.failed for f in agent)


class Described(ScriptedArm):
    def __init__(self, tts, name, desc):
        super().__init__(tts)
        self.name, self.desc = name, desc

    def describe(self):
        return {"arm": self.name, **self.desc}


def test_an_ab_whose_arms_differ_does_not_start_unless_allowed(tmp_path, tts):
    same = {"backbone": "/models/smollm2.gguf", "prompt_sha256": "ab12", "decoding": {"greedy": True, "max_tokens": 40}}
    other = {**same, "decoding": {"greedy": False, "temperature": 0.7, "max_tokens": 40}}

    def server(audio_desc, allow=False):
        arms = {"pipeline": Described(tts, "pipeline", same), "audio": Described(tts, "audio", audio_desc)}
        return VoiceServer(ServerConfig(port=0, token="t", split={"pipeline": 0.5, "audio": 0.5}, allow_mismatch=allow),
                           load_scenario("insurance"), arms, CallStore(tmp_path / "c.sqlite"), vad=object())  # fmt: skip

    server(dict(same))  # the same but for the ear: starts
    with pytest.raises(ArmMismatch) as e:
        server(other)
    msg = str(e.value)
    assert "decoding.greedy: pipeline True, audio False" in msg and "decoding.temperature" in msg and "--allow-mismatch" in msg
    server(other, allow=True)


def test_mads_serve_refuses_a_mismatched_ab_with_the_differences(tmp_path):
    import typer
    from typer.testing import CliRunner

    from serve.cli import serve_cmd

    app = typer.Typer()
    app.command("serve")(serve_cmd)
    app.command("other")(lambda: None)
    res = CliRunner().invoke(app, ["serve", "--no-auth", "--db", str(tmp_path / "c.sqlite"), "--model", "smollm2",
                                   "--asr", "tiny.en", "--audio-model", checkpoint(tmp_path), "--prompt-mode", "transcript",
                                   "--no-recordings"])  # fmt: skip
    assert res.exit_code != 0
    out = res.output
    assert "differ in more than the ear" in out and "prompt_sha256" in out and "--allow-mismatch" in out, out
