"""Reading the synthesis stage's manifest into speech-LLM examples; telephony augmentation."""

import json

import numpy as np
import pytest

from mads_audio.augment import TelephonyConfig, band_limit, mulaw, telephony
from mads_audio.data import DataError, load_examples, split_of


def _write(aud, lines, tail=""):
    aud.mkdir(parents=True, exist_ok=True)
    (aud / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + tail)


def _call(did, texts, **extra):
    rows = []
    for i, t in enumerate(texts):
        role = "agent" if i % 2 == 0 else "user"
        rows.append({"dialogue_id": did, "turn": i, "role": role, "text": t, "audio": f"clips/{did}/{i:02d}_{role}.wav",
                     "sample_rate": 24000, "duration": 1.0, "speaker_id": role, "scenario": "insurance", **extra})
    return rows


def test_every_agent_turn_after_a_customer_clip_is_an_example(tmp_path):
    lines = _call("d1", ["Hello.", "Hi, who is this?", "Li Wei from Anxin.", "What do you sell?", "Insurance."])
    lines[3]["source_text"] = "What do you sell??"  # the written form is what the LLM reads and writes
    _write(tmp_path, lines)
    ex = load_examples(tmp_path)
    assert [e.id for e in ex] == ["d1:2", "d1:4"]
    assert ex[1].user_text == "What do you sell??" and ex[1].user_spoken == "What do you sell?"
    assert [t.text for t in ex[1].context] == ["Hello.", "Hi, who is this?", "Li Wei from Anxin."]
    assert ex[1].reply == "Insurance." and ex[1].scenario == "insurance"
    assert ex[1].user_audio == str(tmp_path / "clips/d1/03_user.wav")


def test_split_is_by_dialogue_and_stable(tmp_path):
    lines = [x for i in range(40) for x in _call(f"dlg{i}", ["a", "b", "c", "d", "e"])]
    _write(tmp_path, lines)
    test = load_examples(tmp_path, "test", test_fraction=0.25)
    train = load_examples(tmp_path, "train", test_fraction=0.25)
    assert test and train
    assert not {e.dialogue_id for e in test} & {e.dialogue_id for e in train}
    assert all(split_of(e.dialogue_id, 0.25) == "test" for e in test)
    assert len(test) + len(train) == len(load_examples(tmp_path))


def test_flagged_clips_are_skipped_and_telephony_audio_selectable(tmp_path):
    lines = _call("d1", ["Hello.", "Hi.", "Good day.", "Bye.", "Bye now."], audio_telephony="clips_8k/x.wav")
    lines[1]["flagged"] = True
    _write(tmp_path, lines)
    assert [e.id for e in load_examples(tmp_path)] == ["d1:4"]
    assert len(load_examples(tmp_path, skip_flagged=False)) == 2
    assert load_examples(tmp_path, audio_key="audio_telephony")[0].user_audio.endswith("clips_8k/x.wav")


def test_bad_manifest_lines_are_named(tmp_path):
    lines = _call("d1", ["Hello.", "Hi.", "Bye."])
    _write(tmp_path, lines, tail='{"dialogue_id": "d2", "turn": 0, "ro')  # torn tail: ignored
    assert len(load_examples(tmp_path)) == 1
    lines[1]["role"] = "customer"
    _write(tmp_path, lines)
    with pytest.raises(DataError, match=r"manifest.jsonl:2: field 'role'"):
        load_examples(tmp_path)
    with pytest.raises(DataError, match="no manifest.jsonl"):
        load_examples(tmp_path / "nothing")


def _tone(freqs, seconds=1.0, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    return sum(np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32) * 0.2


def _band_energy(x, lo, hi, sr=16000):
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return spec[(f >= lo) & (f < hi)].sum()


def test_phone_band_removes_high_and_low_frequencies():
    x = _tone([100, 1000, 6000])
    y = band_limit(x)
    assert _band_energy(y, 5000, 8000) < 1e-3 * _band_energy(x, 5000, 8000)
    assert _band_energy(y, 900, 1100) > 0.5 * _band_energy(x, 900, 1100)
    assert _band_energy(y, 50, 150) < 0.2 * _band_energy(x, 50, 150)


def test_mulaw_round_trip_is_close_but_quantised():
    x = _tone([440])
    y = mulaw(x)
    assert np.abs(x - y).max() < 0.02 and not np.array_equal(x, y)


def test_telephony_is_deterministic_per_seed_and_clean_when_p_is_zero():
    x = _tone([300, 2000])
    a = telephony(x, np.random.default_rng(5), TelephonyConfig(p=1.0))
    b = telephony(x, np.random.default_rng(5), TelephonyConfig(p=1.0))
    assert np.array_equal(a, b) and a.shape == x.shape and not np.allclose(a, x)
    assert np.array_equal(telephony(x, np.random.default_rng(5), TelephonyConfig(p=0.0)), x)


def test_agent_clips_for_the_alignment_stage_and_several_folders(tmp_path):
    from mads_audio.data import load_clips
    from train.speech import SpeechTrainConfig, load_data

    lines = [x for i in range(30) for x in _call(f"dlg{i}", ["Hello, Li Wei here.", "Hi.", "It is 288 RMB.", "Ok."])]
    lines[2]["source_text"] = "It is 288 RMB!"
    lines[4]["audio"] = None  # a line kept as text (`mads synth --roles user`): no clip to hear
    _write(tmp_path / "a", lines)
    _write(tmp_path / "b", lines)
    clips = load_clips(tmp_path / "a", role="agent")
    assert len(clips) == 2 * 30 - 1 and all(c.id.endswith(":agent") and not c.reply for c in clips)
    assert clips[1].user_spoken == "It is 288 RMB." and clips[1].user_text == "It is 288 RMB!"
    train = load_clips(tmp_path / "a", "train", 0.25, role="agent")
    assert train and all(split_of(c.dialogue_id, 0.25) == "train" for c in train)
    with pytest.raises(DataError, match="manifest"):
        load_clips(tmp_path / "none")

    def cfg(**kw):
        return SpeechTrainConfig(data=f"{tmp_path / 'a'},{tmp_path / 'b'}", out=str(tmp_path / "o"), test_fraction=0.25,
                                 eval_examples=6, **kw)  # fmt: skip

    tr, held = load_data(cfg())
    one = load_examples(tmp_path / "a", "train", 0.25)
    assert len(tr) == 2 * len(one)  # both folders
    assert len(held) == 6 and {h.user_audio.split("/")[-4] for h in held} == {"a", "b"}  # each folder scored
    tr_all, held_all = load_data(cfg(stage=0, align_roles="all"))
    assert len(tr_all) == len(tr) + 2 * len(train) and [h.id for h in held_all] == [h.id for h in held]
    assert len(load_data(cfg(align_roles="all"))[0]) == len(tr)  # only the alignment stage spells the agent's lines
