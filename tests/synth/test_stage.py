"""The whole stage on a real SmolLM2 run: every dialogue voiced, layout, timing, speakers, WER, dataset."""

import json

import numpy as np
import pytest
import soundfile as sf

from mads_text.common.runstore import read_dialogues
from synth.textnorm import speakable

# bounds stated in docs/synth.md
SPEAKER_MARGIN = 0.15  # same-persona minus different-persona mean cosine (GE2E d-vectors)
WER_BOUND = 0.25  # mean round-trip WER of the default engine (Kokoro, Whisper base), after retakes
MANIFEST_KEYS = {"dialogue_id", "turn", "role", "text", "audio", "sample_rate", "duration", "speaker_id", "speaker_embedding"}


def _manifest(out):
    return [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]


def _check_voiced(run, out):
    recs = read_dialogues(run)
    lines = _manifest(out)
    assert len({(x["dialogue_id"], x["turn"]) for x in lines}) == len(lines), "no clip twice"
    for r in recs:
        want = [i for i, t in enumerate(r.turns) if speakable(t.text)]
        got = sorted(x["turn"] for x in lines if x["dialogue_id"] == r.id)
        assert got == want, r.id
        assert (out / "calls" / f"{r.id}.wav").exists() and (out / "calls" / f"{r.id}.json").exists()
    return recs, lines


def _frame_rms(x, sr, hop=0.01):
    n = int(sr * hop)
    k = len(x) // n
    return np.sqrt((x[: k * n].reshape(k, n) ** 2).mean(axis=1)), n


def _check_layout(out, recs):
    for r in recs:
        stereo, sr = sf.read(str(out / "calls" / f"{r.id}.wav"), dtype="float32")
        doc = json.loads((out / "calls" / f"{r.id}.json").read_text())
        assert stereo.ndim == 2 and stereo.shape[1] == 2 and doc["channels"] == {"left": "agent", "right": "user"}
        assert abs(len(stereo) / sr - doc["duration"]) < 1e-3
        for ch, role in ((0, "agent"), (1, "user")):
            rms, _ = _frame_rms(stereo[:, ch], sr)
            active = np.zeros(len(rms), bool)
            for e in doc["events"]:
                if e["role"] == role:
                    active[int(e["start"] * 100) : int(np.ceil(e["end"] * 100)) + 1] = True
            assert rms[~active].max(initial=0) < 1e-3, f"{r.id}: {role} channel has sound outside {role} speech"
            spoken = [e for e in doc["events"] if e["role"] == role and e["kind"] == "turn"]
            for e in spoken:
                seg = rms[int(e["start"] * 100) : int(e["end"] * 100)]
                assert seg.max() > 0.01, f"{r.id} turn {e['turn']}: silent"


def _check_durations(out, lines):
    by_call = {}
    for x in lines:
        info = sf.info(str(out / x["audio"]))
        assert info.samplerate == x["sample_rate"]
        assert abs(info.frames / info.samplerate - x["duration"]) < 1e-3
        assert abs((x["end"] - x["start"]) - x["duration"]) < 2e-3
        by_call.setdefault(x["dialogue_id"], []).append(x)
    for did, xs in by_call.items():
        doc = json.loads((out / "calls" / f"{did}.json").read_text())
        ev = {e["turn"]: e for e in doc["events"] if e["kind"] == "turn"}
        for x in xs:
            e = ev[x["turn"]]
            assert (e["start"], e["end"]) == (x["start"], x["end"])
            for w in e.get("words", []):
                assert e["start"] - 1e-3 <= w["start"] <= w["end"] <= e["end"] + 0.05
        assert doc["duration"] >= max(e["end"] for e in doc["events"])


@pytest.mark.slow
def test_kokoro_every_dialogue_voiced_with_contract_files(real_run, aud_kokoro):
    out, res = aud_kokoro
    recs, lines = _check_voiced(real_run, out)
    assert res.produced == len(recs) and res.audio_s > 0
    for x in lines:
        assert MANIFEST_KEYS <= set(x)
        assert len(x["speaker_embedding"]) == 256
        assert x["speaker_id"] == ("agent:insurance" if x["role"] == "agent" else x["persona_id"])
    q = json.loads((out / "quality.json").read_text())
    assert {"wer_mean", "same_speaker_cos_mean", "diff_speaker_cos_mean", "n_clips"} <= set(q)
    assert q["n_clips"] == len(lines)
    voices = json.loads((out / "voices.json").read_text())
    assert set(voices["personas"]) == {r.persona_id for r in recs}
    # same persona -> same voice in every dialogue
    for pid in voices["personas"]:
        emb = {json.dumps(x["speaker_embedding"]) for x in lines if x["speaker_id"] == pid and x["voice_seed"] == 0}
        assert len(emb) == 1


@pytest.mark.slow
def test_kokoro_stereo_layout_and_timestamps(aud_kokoro, real_run):
    out, _ = aud_kokoro
    recs = read_dialogues(real_run)
    _check_layout(out, recs)
    _check_durations(out, _manifest(out))


@pytest.mark.slow
def test_kokoro_speakers_consistent_and_distinct(aud_kokoro):
    q = json.loads((aud_kokoro[0] / "quality.json").read_text())
    assert q["speakers"] == 3
    assert q["same_speaker_cos_mean"] - q["diff_speaker_cos_mean"] >= SPEAKER_MARGIN, q


@pytest.mark.slow
def test_kokoro_round_trip_wer_bound(aud_kokoro):
    q = json.loads((aud_kokoro[0] / "quality.json").read_text())
    assert q["wer_mean"] is not None and q["wer_mean"] <= WER_BOUND, q
    assert q["asr"] == "base"


@pytest.mark.slow
def test_kokoro_telephony_and_hf_dataset(aud_kokoro, real_run):
    import io

    import datasets

    out, _ = aud_kokoro
    lines = _manifest(out)
    for x in lines:
        info = sf.info(str(out / x["audio_telephony"]))
        assert info.samplerate == 8000 and info.subtype == "ULAW"
    for did in {x["dialogue_id"] for x in lines}:
        info = sf.info(str(out / "calls_8k" / f"{did}.wav"))
        assert info.channels == 2 and info.samplerate == 8000
    ds = datasets.load_from_disk(str(out / "hf"))
    recs = read_dialogues(real_run)
    def answered(r, i):  # a spoken customer turn whose next agent turn is spoken too
        nxt = next((j for j in range(i + 1, len(r.turns)) if r.turns[j].role == "agent"), None)
        return nxt is not None and speakable(r.turns[i].text) and speakable(r.turns[nxt].text)

    want = sum(1 for r in recs for i, t in enumerate(r.turns) if t.role == "user" and answered(r, i))
    assert len(ds) == want
    assert {"user_audio", "agent_audio", "context", "agent_text", "persona_id", "run", "user_audio_8k"} <= set(ds.column_names)
    # decoding needs torchcodec + FFmpeg (not installed here); the raw bytes are the WAV files themselves
    raw = ds
    for col, feat in ds.features.items():
        if isinstance(feat, datasets.Audio):
            raw = raw.cast_column(col, datasets.Audio(decode=False))
    row = raw[0]
    pcm, sr = sf.read(io.BytesIO(row["user_audio"]["bytes"]))
    assert sr == 24000 and len(pcm) > 0
    assert row["context"][0]["role"] == "agent" and row["turn"] == len(row["context"])


def test_flite_overlaps_backchannels_layout_and_durations(aud_flite, real_run):
    out, _ = aud_flite
    recs, lines = _check_voiced(real_run, out)
    _check_layout(out, recs)
    _check_durations(out, lines)
    events = [e for r in recs for e in json.loads((out / "calls" / f"{r.id}.json").read_text())["events"]]
    assert all(e["channel"] == ("left" if e["role"] == "agent" else "right") for e in events)
    q = json.loads((out / "quality.json").read_text())
    assert q["wer_mean"] is None and q["same_speaker_cos_mean"] is not None
    assert all(len(x["speaker_embedding"]) == 256 for x in lines)  # GE2E of a reference sentence


@pytest.mark.slow
def test_voicing_only_the_customer_keeps_the_agents_words_as_text(real_run, tmp_path):
    """``--roles user``: what the alignment stage of the speech model hears, at half the cost."""
    from mads_audio.data import load_examples
    from synth.dialogue import SynthConfig
    from synth.quality import QAConfig
    from synth.stage import synth_run

    out = tmp_path / "aud_user"
    synth_run(real_run, out, SynthConfig(engine="flite", qa=QAConfig(asr=None, speaker=False), hf=False,
                                         roles=["user"]), progress=False)  # fmt: skip
    recs, lines = _check_voiced(real_run, out)  # every speakable turn is in the manifest, agent lines too
    agent = [x for x in lines if x["role"] == "agent"]
    user = [x for x in lines if x["role"] == "user"]
    assert agent and user
    assert all(x["audio"] is None and x["text"] for x in agent)
    assert all((out / x["audio"]).exists() for x in user)
    assert not any(p.name.endswith("_agent.wav") for p in (out / "clips").rglob("*.wav"))
    by_turn = {(r.id, i): t.text for r in recs for i, t in enumerate(r.turns)}
    assert all(x["source_text"] == by_turn[(x["dialogue_id"], x["turn"])] for x in agent)
    # the speech model's examples: each customer clip with the agent's written reply after it
    exs = load_examples(out, "all", 0.0)
    assert exs and all(e.reply and e.user_audio.endswith("_user.wav") for e in exs)
    with pytest.raises(ValueError, match="roles"):
        SynthConfig(roles=[])
