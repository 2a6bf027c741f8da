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
