"""Speech LLM: prompt splice, reply-only loss, streaming generation, checkpoints of trained parts only."""

import json

import numpy as np
import pytest
import torch
from speech_fixtures import SPEED_CONFIG_KW, tiny_dataset, tiny_model

from mads_audio.checkpoint import PROJECTOR_FILE
from mads_audio.config import LoraSpec, SpeechLLMConfig, SpeechModelError
from mads_audio.data import load_examples, read_audio
from mads_audio.model import AUDIO_PLACEHOLDER, Sample, SpeechLLM, chat_messages
from mads_text.common.records import Turn

pytestmark = pytest.mark.slow  # loads SmolLM2 and Whisper tiny.en

T = lambda role, text: Turn(role=role, text=text)  # noqa: E731


def test_chat_framing_follows_the_dialog_agent():
    ctx = [T("agent", "Hello, Li Wei here."), T("user", "Hi."), T("agent", "Do you have a minute?")]
    full = chat_messages(ctx, AUDIO_PLACEHOLDER, "SYS", max_turns=4)
    assert [m["role"] for m in full] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert full[1]["content"].startswith("(The call has connected")
    assert full[-1]["content"] == AUDIO_PLACEHOLDER
    cut = chat_messages(ctx, AUDIO_PLACEHOLDER, None, max_turns=2)
    # a cut history drops the leading customer turn so roles still alternate
    assert [m["role"] for m in cut] == ["assistant", "user"]
    assert chat_messages([], AUDIO_PLACEHOLDER, None, max_turns=0) == [{"role": "user", "content": AUDIO_PLACEHOLDER}]


def _samples(n=2):
    exs = load_examples(tiny_dataset())[:n]
    return [Sample(audio=read_audio(e.user_audio), context=e.context, user_text=e.user_text, reply=e.reply,
                   scenario=e.scenario) for e in exs]


def test_prompt_is_cut_at_the_audio_placeholder():
    m = tiny_model()
    ctx = [T("agent", f"Hello {AUDIO_PLACEHOLDER} there.")]
    parts = m.prompt_parts(ctx, "insurance")
    before = m.tokenizer.decode(parts.prefix)
    assert before.endswith("<|im_start|>user\n") and "Hello" in before and AUDIO_PLACEHOLDER not in before
    assert m.tokenizer.decode(parts.suffix) == "<|im_end|>\n<|im_start|>assistant\n"


def test_loss_counts_reply_tokens_only_and_ignores_batch_padding():
    m = tiny_model()
    s = _samples(2)
    with torch.no_grad():
        both = m.reply_loss(s)
        one = [m.reply_loss([x])["ce"].item() for x in s]
    assert int(both["tokens"]) == sum(len(m.reply_ids(x.reply)) for x in s)
    assert np.allclose(both["per_sample"].numpy(), one, atol=1e-4)


def test_text_path_equals_the_plain_language_model_loss():
    m = tiny_model()
    s = _samples(1)[0]
    with torch.no_grad():
        ours = m.reply_loss([s], text_user=True)["ce"].item()
        parts = m.prompt_parts(s.context, s.scenario)
        prompt = parts.prefix + m.text_ids(s.user_text) + parts.suffix
        tgt = m.reply_ids(s.reply)
        ids = torch.tensor([prompt + tgt])
        labels = torch.tensor([[-100] * len(prompt) + tgt])
        ref = m.lm(input_ids=ids, labels=labels).loss.item()
    assert abs(ours - ref) < 1e-4


def test_gradients_reach_the_projector_only():
    m = tiny_model()
    m.projector.zero_grad(set_to_none=True)
    out = m.reply_loss(_samples(1))
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.projector.parameters())
    assert all(p.grad is None for p in m.lm.parameters())
    m.projector.zero_grad(set_to_none=True)


def test_streaming_is_greedy_deterministic_and_stops():
    m = tiny_model()
    s = _samples(1)[0]
    evs = list(m.stream(s.audio, s.context, max_new_tokens=12))
    assert evs[-1].done and evs[-1].finish in ("stop", "length")
    assert len(evs) <= 13 and all(not e.done for e in evs[:-1])
    assert [e.elapsed_s for e in evs] == sorted(e.elapsed_s for e in evs)
    assert "".join(e.text for e in evs).strip() == m.generate(s.audio, s.context, max_new_tokens=12)
    with pytest.raises(SpeechModelError, match="no audio"):
        next(m.stream(np.zeros(10, np.float32), []))


def test_checkpoint_holds_trained_parts_and_names_frozen_ones(tmp_path):
    m = tiny_model()
    out = m.save(tmp_path / "ck", step=3)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["config.json", PROJECTOR_FILE]
    assert sum(p.stat().st_size for p in out.iterdir()) < 20e6  # no LLM or Whisper weights inside
    info = json.loads((out / "config.json").read_text())
    assert info["frozen"]["llm"]["name"] == "smollm2" and info["frozen"]["whisper"]["name"] == "tiny.en"
    assert info["trained"] == ["projector"] and info["step"] == 3
    m2 = SpeechLLM.load(out, device="cpu")
    for (k, a), (_, b) in zip(m.projector.state_dict().items(), m2.projector.state_dict().items()):
        assert torch.equal(a, b), k
    s = _samples(1)[0]
    assert m2.generate(s.audio, s.context, max_new_tokens=6) == m.generate(s.audio, s.context, max_new_tokens=6)


def test_lora_checkpoint_round_trip(tmp_path):
    cfg = SpeechLLMConfig(**SPEED_CONFIG_KW, lora=LoraSpec(r=2, alpha=4))
    m = SpeechLLM(cfg, device="cpu")
    with torch.no_grad():  # make the adapter non-trivial
        for n, p in m.lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    s = _samples(1)
    out = m.save(tmp_path / "ck")
    assert (out / "lora" / "adapter_model.safetensors").exists()
    assert json.loads((out / "config.json").read_text())["trained"] == ["projector", "lora"]
    m2 = SpeechLLM.load(out, device="cpu")
    with torch.no_grad():
        a, b = m.reply_loss(s)["ce"].item(), m2.reply_loss(s)["ce"].item()
        with m2.teacher_context():  # LoRA off: the frozen text model
            c = m2.reply_loss(s)["ce"].item()
    assert abs(a - b) < 1e-4 and abs(a - c) > 1e-4


def test_missing_checkpoint_is_reported(tmp_path):
    with pytest.raises(SpeechModelError, match="config.json missing"):
        SpeechLLM.load(tmp_path)
