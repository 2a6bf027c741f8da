"""`mads train speech`: a few CPU steps on some dialogues lower the reply loss on held-out ones; resumable."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mads_audio"))

from speech_fixtures import SPEED_CONFIG_KW, tiny_dataset  # noqa: E402

from mads_audio.data import load_examples, read_audio  # noqa: E402
from mads_audio.model import Sample, SpeechLLM  # noqa: E402
from train.speech import SpeechTrainConfig, batch_indices, lr_factor, train  # noqa: E402


def _cfg(out, **kw):
    base = dict(data=str(tiny_dataset()), out=str(out), whisper=SPEED_CONFIG_KW["whisper"],
                system=SPEED_CONFIG_KW["system"], max_context_turns=SPEED_CONFIG_KW["max_context_turns"],
                projector_hidden=SPEED_CONFIG_KW["projector_hidden"], batch_size=2, lr=3e-3, warmup=2,
                telephony_p=0.5, test_fraction=0.0, eval_every=1000, eval_examples=0, save_every=2)
    base.update(kw)
    return SpeechTrainConfig(**base)


def test_batches_are_a_pure_function_of_seed_and_step():
    a = [batch_indices(s, 10, 4, seed=1) for s in range(5)]
    assert a == [batch_indices(s, 10, 4, seed=1) for s in range(5)]
    flat = [i for b in a for i in b]
    assert sorted(flat[:10]) == list(range(10))  # the first epoch visits every example once
    cfg = _cfg("/tmp/x", steps=100, warmup=10)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(99, cfg) == pytest.approx(cfg.min_lr_ratio, abs=0.01)


# the split is by a hash of the dialogue id: at 0.45, d000 and d005 of the six tiny calls are held out
HELD_OUT_FRACTION = 0.45


def _samples(exs):
    return [Sample(audio=read_audio(e.user_audio), context=e.context, user_text=e.user_text, reply=e.reply,
                   scenario=e.scenario) for e in exs]


@pytest.mark.slow
def test_training_lowers_held_out_reply_loss_resumes_and_reloads(tmp_path):
    train_exs = load_examples(tiny_dataset(), "train", HELD_OUT_FRACTION)
    held_exs = load_examples(tiny_dataset(), "test", HELD_OUT_FRACTION)
    # whole dialogues are held out: none of their turns, not even the shared opening's context, was trained on
    assert len({e.dialogue_id for e in held_exs}) == 2 and len(train_exs) == 8
    assert not {e.dialogue_id for e in train_exs} & {e.dialogue_id for e in held_exs}

    out = tmp_path / "sckpt"
    kw = dict(lr=1e-2, test_fraction=HELD_OUT_FRACTION, eval_examples=len(held_exs))
    first = train(_cfg(out, steps=4, **kw), progress=False)
    assert first["steps"] == 4 and first["train_examples"] == 8 and first["held_out_examples"] == len(held_exs)
    state = torch.load(out / "train_state.pt", weights_only=False)
    assert state["step"] == 4
    # the same command with more steps continues from step 4
    summary = train(_cfg(out, steps=8, **kw), progress=False)
    rows = [json.loads(x) for x in (out / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 9))
    assert (out / "loss.png").stat().st_size > 1000 and summary["steps"] == 8
    info = json.loads((out / "config.json").read_text())
    assert info["trained"] == ["projector"] and info["step"] == 8
    assert info["frozen"]["llm"]["name"] == "smollm2" and info["train"]["config"]["steps"] == 8

    # trained vs untrained projector on the held-out dialogues' clips, clean audio
    model = SpeechLLM.load(out, device="cpu")
    held = _samples(held_exs)
    with torch.no_grad():
        trained = model.reply_loss(held)["ce"].item()
        model.projector.load_state_dict(model.fresh_projector(0).state_dict())
        untrained = model.reply_loss(held)["ce"].item()
    # the training run's own held-out evaluation saw the same numbers (step 0: the untrained projector)
    assert summary["eval_loss_initial"] == pytest.approx(untrained, abs=1e-3)
    assert summary["eval_loss_final"] == pytest.approx(trained, abs=1e-3)
    # eight steps on the other four dialogues move the held-out loss by about 0.22 nats here (4.38 -> 4.16);
    # 0.1 leaves room for other CPUs' math, not for a projector that learnt nothing beyond its training clips
    assert trained < untrained - 0.1, (trained, untrained)

    # the reloaded checkpoint answers a customer clip it never trained on
    reloaded = SpeechLLM.load(out, device="cpu")
    reply = reloaded.generate(held[0].audio, held[0].context, max_new_tokens=12)
    assert reply.strip(), "no reply generated from audio"


@pytest.mark.slow
def test_stage_two_adds_lora_from_a_stage_one_checkpoint(tmp_path):
    s1 = tmp_path / "s1"
    train(_cfg(s1, steps=1), progress=False)
    s2 = tmp_path / "s2"
    summary = train(_cfg(s2, steps=2, stage=2, init_from=str(s1), lora_r=2, kd_weight=0.5), progress=False)
    assert summary["stage"] == 2
    info = json.loads((s2 / "config.json").read_text())
    assert info["trained"] == ["projector", "lora"] and (s2 / "lora" / "adapter_model.safetensors").exists()
    rows = [json.loads(x) for x in (s2 / "loss.jsonl").read_text().splitlines() if '"loss"' in x]
    assert all(r["kl"] >= 0 for r in rows) and any(r["kl"] > 0 for r in rows)


def test_settings_change_is_refused_on_resume(tmp_path):
    out = tmp_path / "ck"
    out.mkdir()
    torch.save({"step": 1, "optimizer": {}, "config": {**_cfg(out).model_dump(), "stack": 4}}, out / "train_state.pt")
    from train.speech import try_resume

    with pytest.raises(SystemExit, match="stack"):
        try_resume(None, None, _cfg(out))


def test_cli_registers_train_speech():
    import typer
    from typer.testing import CliRunner

    from train.speech_cli import register_speech

    app = typer.Typer()
    register_speech(app)

    @app.command("other")
    def other() -> None:  # a second command keeps typer in sub-command mode
        pass

    res = CliRunner().invoke(app, ["speech", "--help"])
    assert res.exit_code == 0, res.output
    for opt in ("--data", "--out", "--stage", "--kd-weight", "--telephony-p", "--init-from"):
        assert opt in res.output
