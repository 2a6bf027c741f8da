"""Streaming inference API, voicing through the synthesis engine, CLI registration and evaluation."""

import asyncio

import numpy as np
import pytest
from speech_fixtures import tiny_dataset, tiny_model

from mads_audio.data import load_examples, read_audio
from mads_audio.infer import SpeechAgent, agent_tts, to_16k


def test_pcm_of_any_rate_and_type_becomes_16k_float():
    x = (np.sin(np.arange(8000) / 5) * 10000).astype(np.int16)
    y = to_16k(x, 8000)
    assert y.dtype == np.float32 and len(y) == 16000 and np.abs(y).max() < 0.4
    stereo = np.stack([y, y], axis=1)
    assert np.allclose(to_16k(stereo, 16000), y)


def _clip():
    e = load_examples(tiny_dataset())[0]
    return read_audio(e.user_audio), e.context


@pytest.mark.slow
def test_reply_streams_tokens_and_voices_each_sentence():
    spoken = []

    def tts(text):
        spoken.append(text)
        return np.zeros(160 * len(text), np.float32), 16000

    agent = SpeechAgent(tiny_model(), tts=tts, max_new_tokens=24)
    audio, ctx = _clip()
    r = agent.reply(audio, 16000, ctx)
    assert r.tokens >= 1 and 0 < r.ttft_s <= r.total_s and r.prompt_tokens > 10
    chunks = list(agent.speak(audio, 16000, ctx))
    assert " ".join(c.text for c in chunks).split() == r.text.split()
    assert spoken == [c.text for c in chunks] and all(len(c.pcm) > 0 for c in chunks)
    assert [c.elapsed_s for c in chunks] == sorted(c.elapsed_s for c in chunks)


@pytest.mark.slow
def test_async_stream_gives_the_same_tokens():
    agent = SpeechAgent(tiny_model(), tts=lambda t: (np.zeros(1, np.float32), 16000), max_new_tokens=8)
    audio, ctx = _clip()

    async def collect():
        return [ev async for ev in agent.astream(audio, 16000, ctx)]

    evs = asyncio.run(collect())
    assert [e.token for e in evs] == [e.token for e in agent.stream(audio, 16000, ctx)]


def test_agent_voice_comes_from_the_synthesis_engine():
    pytest.importorskip("synth.engines")
    import shutil

    if shutil.which("flite") is None:
        pytest.skip("flite not installed")
    speak = agent_tts("insurance", engine="flite")
    pcm, sr = speak("Thank you for your time.")
    assert sr >= 8000 and len(pcm) / sr > 0.5 and np.abs(pcm).max() > 0.01


def test_cli_registers_speech_commands():
    import typer
    from typer.testing import CliRunner

    from mads_audio.cli import register

    app, train, ev = typer.Typer(), typer.Typer(), typer.Typer()
    app.add_typer(ev, name="eval")
    register(app, train, ev)

    @ev.command("other")
    def other() -> None:
        pass

    runner = CliRunner()
    res = runner.invoke(app, ["speech", "reply", "--help"])
    assert res.exit_code == 0 and "--ckpt" in res.output and "--wav" in res.output
    res = runner.invoke(app, ["eval", "speech", "--help"])
    assert res.exit_code == 0 and "--untrained" in res.output


@pytest.mark.slow
def test_evaluation_reports_speech_text_and_cascade(tmp_path):
    from mads_audio.eval import EvalConfig, evaluate, format_report

    ck = tiny_model().save(tmp_path / "ck")
    rep = evaluate(EvalConfig(ckpt=str(ck), data=str(tiny_dataset()), split="all", limit=2, batch_size=2,
                              asr="tiny.en", generate=1, max_new_tokens=8))
    loss = rep["reply_loss"]
    assert set(loss) == {"speech", "speech_untrained_projector", "text_ground_truth", "text_asr_cascade"}
    assert all(np.isfinite(v) and v > 0 for v in loss.values())
    # the checkpoint is the untrained projector itself
    assert abs(loss["speech"] - loss["speech_untrained_projector"]) < 1e-4
    assert 0 <= rep["asr"]["wer_mean"] <= 1.0
    assert -1 <= rep["similarity"]["speech_vs_text_reply"] <= 1
    assert "reply loss" in format_report(rep)
