"""Stage 0 of `mads train speech`: a CTC-aligned projector, and `mads eval speech --controls`."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mads_audio"))

from speech_fixtures import SPEED_CONFIG_KW, tiny_dataset  # noqa: E402

from mads_audio.checkpoint import read_checkpoint_info  # noqa: E402
from mads_audio.config import SpeechLLMConfig  # noqa: E402
from mads_audio.data import load_examples, read_audio  # noqa: E402
from mads_audio.eval import EvalConfig, evaluate, format_report, paired, shuffled_order, spread  # noqa: E402
from train.speech import SpeechTrainConfig, train  # noqa: E402


def _cfg(out, **kw):
    base = dict(data=str(tiny_dataset()), out=str(out), whisper=SPEED_CONFIG_KW["whisper"],
                system=SPEED_CONFIG_KW["system"], max_context_turns=SPEED_CONFIG_KW["max_context_turns"],
                projector_hidden=SPEED_CONFIG_KW["projector_hidden"], stack=4, stage=0, batch_size=4, lr=3e-3,
                warmup=5, telephony_p=0.0, test_fraction=0.0, eval_every=1000, eval_examples=0, save_every=1000)
    base.update(kw)
    return SpeechTrainConfig(**base)


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    out = tmp_path_factory.mktemp("align") / "ckpt"
    summary = train(_cfg(out, steps=60), progress=False)
    return out, summary


def test_ctc_config_needs_its_vocabulary():
    with pytest.raises(ValueError, match="ctc_vocab"):
        SpeechLLMConfig(audio_tokens="ctc")


@pytest.mark.slow
def test_alignment_stage_spells_the_clips_in_llm_tokens(aligned):
    from mads_audio.model import SpeechLLM

    out, summary = aligned
    info = read_checkpoint_info(out)
    assert info.config.audio_tokens == "ctc" and info.config.stack == 4
    assert summary["ctc_vocab"] == len(info.config.ctc_vocab) > 10
    model = SpeechLLM.load(out, device="cpu")
    exs = load_examples(tiny_dataset(), "all", 0.0)
    heard = [model.heard(read_audio(e.user_audio)) for e in exs]
    # the projector learnt to spell what it was trained on (no LLM pass was needed for that)
    right = sum(h.lower().strip(" .?,") == e.user_spoken.lower().strip(" .?,") for h, e in zip(heard, exs))
    assert right >= len(exs) // 2, list(zip(heard, [e.user_spoken for e in exs]))
    # one LLM input per heard token, each a mix of the LLM's own embeddings: far fewer than the frames
    a = read_audio(exs[0].user_audio)
    emb = model.audio_embeds([a])[0]
    frames = model.projector.n_tokens(model.encode_audio([a])[1][0])
    ids = model.text_ids(heard[0])
    assert 0 < emb.shape[0] < frames and abs(emb.shape[0] - len(ids)) <= 2
    table = model.lm.get_input_embeddings().weight
    nearest = [int((table - e).norm(dim=1).argmin()) for e in emb]
    assert sum(n in ids for n in nearest) >= len(nearest) - 1


@pytest.mark.slow
def test_controls_show_the_aligned_model_listens_and_stage_one_continues(aligned, tmp_path):
    out, _ = aligned
    rep = evaluate(EvalConfig(ckpt=str(out), data=str(tiny_dataset()), split="all", test_fraction=0.0,
                              controls=True, asr=None, generate=0, untrained=False))
    c = rep["controls"]
    # on clips it has learnt to hear, another dialogue's audio and silence both cost the reply dearly
    assert c["shuffled"]["mean_diff"] > 0.3 and c["silence"]["mean_diff"] > 0.3
    assert c["shuffled"]["ci95"][0] > 0 and c["shuffled"]["true_better_share"] > 0.5
    assert rep["reply_loss"]["speech"] < rep["reply_loss"]["speech_shuffled_audio"]
    assert c["text_shuffled"]["mean_diff"] > 0.3  # a perfect ear's gap, beside the audio's
    assert rep["per_example"][0]["loss_text_shuffled"] > 0
    assert "shuffled audio minus true audio" in format_report(rep) and rep["heard"]["wer_corpus"] < 0.5
    # the reply-loss stage starts from the aligned projector and keeps its CTC audio tokens
    s1 = train(_cfg(tmp_path / "s1", stage=1, init_from=str(out), steps=2, lr=1e-4), progress=False)
    assert s1["steps"] == 2 and read_checkpoint_info(tmp_path / "s1").config.audio_tokens == "ctc"


@pytest.mark.slow
def test_the_ear_alone_hears_what_the_whole_model_hears(aligned, tmp_path):
    """The token path (encoder + projector, no LLM in torch) gives the ids the LLM's mixes are centred on."""
    from mads_audio.checkpoint import CheckpointInfo
    from mads_audio.config import SpeechModelError
    from mads_audio.ear import CTCEar
    from mads_audio.model import SpeechLLM

    out, _ = aligned
    ear = CTCEar(out, threads=2)
    model = SpeechLLM.load(out, device="cpu")
    for ex in load_examples(tiny_dataset(), "all", 0.0)[:4]:
        a = read_audio(ex.user_audio)
        h = ear.hear(a)
        assert h.text == model.heard(a)
        assert h.ids and set(h.ids) <= set(ear.vocab) and model.tokenizer.decode(h.ids).strip() == h.text
        assert 0 < h.confidence <= 1 and h.seconds > 0
    assert ear.hear(np.zeros(16000, np.float32)).text != ex.user_spoken  # silence is not the last clip
    info = read_checkpoint_info(out)
    frames = tmp_path / "frames"
    frames.mkdir()
    cfg = info.config.model_copy(update={"audio_tokens": "frames", "ctc_vocab": None})
    (frames / "config.json").write_text(CheckpointInfo(config=cfg).model_dump_json())
    with pytest.raises(SpeechModelError, match="not a CTC checkpoint"):
        CTCEar(frames)
    with pytest.raises(SpeechModelError, match="not a speech checkpoint"):
        CTCEar(tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("flite") is None, reason="the arm voices its reply with flite")
def test_the_served_ear_puts_what_it_heard_in_the_pipelines_prompt(aligned):
    """``mads serve`` with a CTC checkpoint: the audio arm is the pipeline arm with another ear, nothing else."""
    import asyncio

    from mads_audio.model import SpeechLLM
    from mads_text.common import assets
    from mads_text.llm.fake import ScriptedBackend
    from mads_text.scenario import load_scenario
    from serve.arms.base import ArmUnavailable, CallContext
    from serve.arms.ear import EarArm
    from serve.arms.parity import differences
    from serve.arms.pipeline import PipelineArm
    from serve.frames import TranscriptFrame
    from serve.tts import TTS, Voice

    class Embedded(ScriptedBackend):
        def __init__(self, reply, gguf="smollm2"):
            super().__init__(reply)
            self.gguf = gguf

        def describe(self):
            return {"backend": "embedded", "model": self.gguf, "path": str(assets.resolve_gguf(self.gguf))}

    out, _ = aligned
    scenario = load_scenario("insurance")
    prompts = []

    def reply(prompt, params):
        prompts.append(str(prompt))
        return "It is 288 RMB a month."

    pipe = PipelineArm(scenario, Embedded(reply), None, TTS("flite"), Voice(engine="flite", name="slt"), stream=False)
    arm = EarArm(pipe, str(out))
    assert differences(pipe.describe(), arm.describe()) == []  # same backbone, prompt and decoding
    assert arm.describe()["ear"]["tokens"] == len(read_checkpoint_info(out).config.ctc_vocab)
    other = PipelineArm(scenario, Embedded(reply, "qwen1.5b"), None, TTS("flite"), Voice(engine="flite", name="slt"))
    with pytest.raises(ArmUnavailable, match="tokens of"):
        EarArm(other, str(out))  # a Qwen pipeline cannot read SmolLM2's token ids

    ex, ex2 = load_examples(tiny_dataset(), "all", 0.0)[:2]
    audio, audio2 = read_audio(ex.user_audio), read_audio(ex2.user_audio)

    ctx_seen = []

    class Whisper:  # the words transcribed while the caller spoke, for the record
        async def text(self):
            return "whisper's words"

    async def call():
        await arm.load()
        prompts.clear()  # the warm-up's opening
        from mads_text.common.records import Turn

        ctx = CallContext(call_id="c1", scenario=scenario, caller={}, arm="audio",
                          history=[Turn(role="agent", text=scenario.agent.opening or "Hello.")])
        ctx_seen.append(ctx)
        frames = []
        for clip in (audio, audio2):
            async for f in arm.respond(ctx, clip, Whisper()):
                # as the call does: a user turn is added on its first frame, its text replaced by the final one
                if isinstance(f, TranscriptFrame) and f.role == "user":
                    if not f.final:
                        ctx.history.append(Turn(role="user", text=f.text))
                    else:
                        next(t for t in reversed(ctx.history) if t.role == "user").text = f.text
                if isinstance(f, TranscriptFrame) and f.role == "agent" and f.final:
                    ctx.history.append(Turn(role="agent", text=f.text))
                frames.append(f)
        return frames

    frames = asyncio.run(call())
    users = [f for f in frames if isinstance(f, TranscriptFrame) and f.role == "user"]
    agents = [f for f in frames if isinstance(f, TranscriptFrame) and f.role == "agent" and f.final]
    heard = SpeechLLM.load(out, device="cpu").heard(audio)
    assert users[0].text == heard and not users[0].final  # this turn's prompt holds what the ear heard
    assert users[-1].text == "whisper's words" and users[-1].final  # the record keeps Whisper's transcript
    assert agents and agents[0].text == "It is 288 RMB a month." and not agents[0].failed
    assert heard in prompts[0] and "whisper's words" not in prompts[0]
    # the next turn's prompt still reads the first line as the ear heard it, though the record now holds Whisper's
    heard2 = SpeechLLM.load(out, device="cpu").heard(audio2)
    assert heard in prompts[-1] and heard2 in prompts[-1] and "whisper's words" not in prompts[-1]
    assert [t.text for t in ctx_seen[0].history if t.role == "user"] == ["whisper's words"] * 2


def test_shuffled_control_never_hears_its_own_dialogue():
    dialogues = ["a"] * 3 + ["b"] * 2 + ["c"] * 4 + ["d"] * 3
    order = shuffled_order(dialogues)
    assert sorted(order) == list(range(len(dialogues)))  # every clip is heard once
    assert all(dialogues[j] != dialogues[i] for i, j in enumerate(order))
    assert shuffled_order(["a", "a"]) == [1, 0]  # one dialogue: at least another turn


def test_spread_keeps_evenly_spaced_turns_per_dialogue():
    from mads_audio.data import SpeechExample

    exs = [SpeechExample(id=f"{d}:{t}", dialogue_id=d, turn=t, user_text="x", user_audio="a.wav", reply="y")
           for d, n in (("a", 5), ("b", 1), ("c", 2)) for t in range(n)]
    assert [e.id for e in spread(exs, 2)] == ["a:0", "a:4", "b:0", "c:0", "c:1"]
    assert [e.id for e in spread(exs, 3)][:3] == ["a:0", "a:2", "a:4"] and len(spread(exs, 1)) == 3


def test_paired_difference_and_interval():
    true = np.array([1.0, 1.0, 1.0, 1.0])
    r = paired(true + np.array([0.5, 0.5, 0.5, 0.5]), true, np.array([1, 2, 3, 4]))
    assert r["mean_diff"] == pytest.approx(0.5) and r["ci95"] == pytest.approx([0.5, 0.5])
    assert r["true_better_share"] == 1.0
    r = paired(true, true + np.array([0.2, -0.2, 0.2, -0.2]), np.ones(4))
    assert r["ci95"][0] < 0 < r["ci95"][1] and r["true_better_share"] == 0.5


def test_mads_train_speech_names_a_bad_option_or_folder(tmp_path):
    import typer
    from typer.testing import CliRunner

    from train.speech_cli import register_speech

    app, train_app = typer.Typer(), typer.Typer()
    app.add_typer(train_app, name="train")
    register_speech(train_app)
    res = CliRunner().invoke(app, ["train", "speech", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--stage",
                                   "0", "--align-roles", "some"])  # fmt: skip
    assert res.exit_code == 2 and "align_roles" in res.output
    res = CliRunner().invoke(app, ["train", "speech", "--data", f"{tmp_path / 'none'}", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no manifest.jsonl" in res.output
