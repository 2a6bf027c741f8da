"""Fast checks of the pieces that need no speech model: text clean-up, mixing, telephony, voices, stats."""

import numpy as np
import pytest

from synth import mix
from synth.assign import VoiceBook, age_shape, agent_speaker, assign_personas, persona_age, persona_gender
from synth.bank import load_bank, resolve
from synth.quality import align_words, speaker_stats, wer
from synth.telephony import TelephonyConfig, telephone, write_ulaw
from synth.textnorm import sentence_complete, speakable, wer_words
from synth.voice import Voice


def test_speakable_strips_markers_and_stage_directions():
    assert speakable("Sure, send me the link. [ACCEPT]") == "Sure, send me the link."
    assert speakable("*smiles* Well (pause) okay **fine**") == "Well okay fine"
    assert speakable("[WITHDRAW]") == ""
    assert speakable("  ...  ") == ""
    # stage directions of any length, nested ones too (the server's clean-up removed long ones before the merge)
    cue = "(The call has connected. Greet the customer and open the conversation.)"
    assert speakable(f"{cue} Hello, this is Li Wei.") == "Hello, this is Li Wei."
    assert speakable("Well (sighs (quietly)) okay.") == "Well okay."
    assert speakable("Hi (unclosed") == "Hi (unclosed"  # no closing bracket: nothing to call a direction


def test_speakable_keeps_numbers_prices_and_spoken_symbols():
    assert speakable("It is 288 RMB per month.") == "It is 288 RMB per month."
    assert speakable("288.") == "288."
    assert speakable("It's 50% off & free, $5 or €4 or ¥30 😊") == "It's 50% off & free, $5 or €4 or ¥30"
    assert speakable("__really__ good, #1 plan") == "really good, 1 plan"  # markup goes, its words stay
    assert speakable("Hello\u2026 there") == "Hello... there"


def test_a_streamed_sentence_is_voiced_once_long_enough_or_at_the_end():
    assert not sentence_complete("Yes.")  # too short alone: waits for the next sentence
    assert sentence_complete("Yes.", done=True)
    assert sentence_complete("It costs 288 a month. ") and sentence_complete('He said "call me later."')
    assert not sentence_complete("It costs 288 a month and")


def test_wer_normalises_numbers_case_and_contractions():
    assert wer_words("It's 1,200 RMB, I'm sure.") == ["it's", "one", "thousand", "two", "hundred", "rmb", "i", "am", "sure"]
    assert wer("I can't pay 300 a month.", "i cannot pay three hundred a month") == 0.0
    assert wer("one two three four", "one two four") == pytest.approx(0.25)
    assert wer("", "") == 0.0


def test_plan_gaps_and_channels():
    sr = 1000
    clips = [(0, "agent", "a", 2000), (1, "user", "b", 1500), (2, "agent", "c", 800), (3, "user", "d", 3000)]
    cfg = mix.MixConfig()
    ev = mix.plan(clips, sr, cfg, np.random.default_rng(1))
    assert [e.turn for e in ev] == [0, 1, 2, 3]
    assert ev[0].start == pytest.approx(cfg.lead_in_s)
    for a, b in zip(ev, ev[1:]):
        gap = b.start - a.end
        assert cfg.gap_min_s - 1e-3 <= gap <= cfg.gap_max_s + 1e-3
    assert {e.channel for e in ev if e.role == "agent"} == {"left"} and {e.channel for e in ev if e.role == "user"} == {"right"}
    stereo = mix.render(ev, {("turn", e.turn, e.role): np.full(e.samples, 0.5, np.float32) for e in ev}, sr, cfg)
    assert stereo.shape == (ev[-1].start_sample + 3000 + int(cfg.tail_s * sr), 2)
    for e in ev:
        ch, other = (0, 1) if e.role == "agent" else (1, 0)
        seg = stereo[e.start_sample : e.start_sample + e.samples]
        assert np.all(seg[:, ch] == 0.5) and np.all(seg[:, other] == 0)


def test_overlaps_and_backchannels_stay_off_the_listeners_speech():
    sr = 1000
    clips = [(i, "agent" if i % 2 == 0 else "user", "x", 4000) for i in range(12)]
    cfg = mix.MixConfig(overlap_prob=1.0, backchannel_prob=1.0)
    bc = {"agent": [("Mm-hmm.", 400)], "user": [("Right.", 300)]}
    ev = mix.plan(clips, sr, cfg, np.random.default_rng(3), bc)
    turns = [e for e in ev if e.kind == "turn"]
    assert any(b.start < a.end for a, b in zip(turns, turns[1:])), "overlap_prob=1 gives overlaps"
    bcs = [e for e in ev if e.kind == "backchannel"]
    assert bcs
    for b in bcs:
        own = [t for t in turns if t.role == b.role]
        assert all(b.end <= t.start or b.start >= t.end for t in own)
        host = next(t for t in turns if t.turn == b.turn)
        assert host.role != b.role and host.start <= b.start and b.end <= host.end


def test_telephony_band_rate_and_ulaw(tmp_path):
    import soundfile as sf

    sr = 24000
    t = np.arange(sr) / sr
    low, mid, high = (0.3 * np.sin(2 * np.pi * f * t) for f in (80, 1000, 3900))
    cfg = TelephonyConfig()

    def level(x):
        y = telephone(x.astype(np.float32), sr, cfg)
        return float(np.sqrt(np.mean(y[2000:] ** 2)))

    assert level(mid) > 0.15
    # G.712-like: speech band kept, rumble gone, the edge above 3.4 kHz well down
    assert level(low) < 0.05 * level(mid) and level(high) < 0.25 * level(mid)
    stereo = np.stack([mid, np.zeros_like(mid)], axis=1).astype(np.float32)
    y = telephone(stereo, sr, TelephonyConfig(noise_snr_db=20), np.random.default_rng(0))
    assert y.shape == (8000, 2)
    write_ulaw(tmp_path / "x.wav", y)
    info = sf.info(str(tmp_path / "x.wav"))
    assert info.samplerate == 8000 and info.subtype == "ULAW" and info.channels == 2


def test_speaker_stats_match_brute_force():
    rng = np.random.default_rng(0)
    vecs = {k: [rng.standard_normal(8) for _ in range(n)] for k, n in (("a", 3), ("b", 4), ("c", 1))}
    st = speaker_stats(vecs)
    unit = {k: [v / np.linalg.norm(v) for v in vs] for k, vs in vecs.items()}
    same = [a @ b for vs in unit.values() for i, a in enumerate(vs) for b in vs[i + 1 :]]
    flat = [(k, v) for k, vs in unit.items() for v in vs]
    diff = [a @ b for i, (ka, a) in enumerate(flat) for kb, b in flat[i + 1 :] if ka != kb]
    assert st.same_speaker_cos_mean == pytest.approx(np.mean(same), abs=1e-4)
    assert st.diff_speaker_cos_mean == pytest.approx(np.mean(diff), abs=1e-4)
    assert st.speakers == 3 and st.clips_embedded == 8


def test_align_words_takes_whisper_times_and_fills_gaps():
    hyp = [{"word": "Hello,", "start": 0.1, "end": 0.5}, {"word": "there", "start": 0.6, "end": 0.9},
           {"word": "friend.", "start": 1.5, "end": 2.0}]  # fmt: skip
    out = align_words("Hello there my friend.", hyp, 2.2)
    assert [w["word"] for w in out] == ["Hello", "there", "my", "friend."]
    assert out[0]["start"] == 0.1 and out[3]["end"] == 2.0
    assert out[2]["aligned"] is False and 0.9 <= out[2]["start"] <= out[2]["end"] <= 1.5


def test_persona_fields_and_age_shape():
    assert persona_gender({"gender": "Female"}, "x") == "female"
    assert persona_gender({"gender": "Male"}, "x") == "male"
    assert persona_gender({}, "x") in ("female", "male")
    assert persona_age({"age": 58}) == 58 and persona_age({"age_range": "25-30"}) == 27 and persona_age({}) is None
    young, old = age_shape(22, "female"), age_shape(70, "female")
    assert young[0] > 1 > old[0] and young[1] > old[1]


def _personas(n):
    return [(f"p{i:03d}", {"gender": "Female" if i % 2 else "Male", "age": 20 + 3 * i}) for i in range(n)]


def test_kokoro_assignment_is_deterministic_gendered_and_spreads_before_sharing():
    bank = load_bank()
    assert bank is not None, "synth/data/kokoro_bank.json ships with the package"
    a = VoiceBook(engine="kokoro")
    a.agents["insurance"] = agent_speaker("insurance", {"engine": "kokoro", "preset": "agent_female"}, "kokoro")
    assign_personas(a, _personas(12))
    b = VoiceBook(engine="kokoro")
    b.agents["insurance"] = agent_speaker("insurance", {"engine": "kokoro", "preset": "agent_female"}, "kokoro")
    assign_personas(b, list(reversed(_personas(12))))
    assert a.model_dump() == b.model_dump(), "same personas, same voices, whatever the input order"
    for s in a.personas.values():
        assert bank.by_id(s.bank_id).gender == s.gender
    for gender in ("female", "male"):
        distinct = [v.id for v in bank.voices if v.gender == gender and v.distinct]
        taken = [s.bank_id for s in a.personas.values() if s.gender == gender]
        n_first = min(len(distinct), len(taken))
        # the first personas of a gender never share a voice while distinct ones are free
        firsts = [s.bank_id for s in a.personas.values() if s.gender == gender and s.distinct]
        assert len(set(firsts)) == len(firsts) >= min(n_first, len(distinct) - (gender == a.agents["insurance"].gender))
    # adding personas later keeps the earlier ones
    before = {k: v.voice for k, v in a.personas.items()}
    assign_personas(a, _personas(14))
    assert all(a.personas[k].voice == v for k, v in before.items()) and len(a.personas) == 14


def test_held_out_voices_are_given_to_nobody_and_bad_names_are_errors():
    from synth.voice import VoiceError

    bank = load_bank()
    held = [v.id for v in bank.voices if v.gender == "male"][:1] + [v.id for v in bank.voices if v.gender == "female"][:2]
    book = VoiceBook(engine="kokoro")
    assign_personas(book, _personas(60), hold_out=held)  # more personas than voices: every other voice is shared
    used = {s.bank_id for s in book.personas.values()}
    assert not used & set(held) and len(used) == len(bank.voices) - len(held)
    with pytest.raises(VoiceError, match="not in the Kokoro bank"):
        assign_personas(VoiceBook(engine="kokoro"), _personas(2), hold_out=["zz99"])
    with pytest.raises(VoiceError, match="every Kokoro bank voice"):
        assign_personas(VoiceBook(engine="kokoro"), _personas(2), hold_out=[v.id for v in bank.voices])
    with pytest.raises(VoiceError, match="flite"):
        assign_personas(VoiceBook(engine="flite"), _personas(2), hold_out=held)


def test_presets_resolve_and_bad_voices_are_named():
    v = resolve(Voice(preset="agent_male"))
    assert v.timbre and v.prosody
    from synth.voice import VoiceError

    with pytest.raises(VoiceError, match="preset"):
        resolve(Voice(preset="nope"))
    with pytest.raises(ValueError):
        Voice(timbre={"jf_alpha": -1})


def test_coqui_missing_gives_a_clear_error():
    import importlib.util

    if importlib.util.find_spec("TTS") is not None:
        pytest.skip("Coqui TTS is installed here")
    from synth.engines import EngineUnavailable, get_engine

    with pytest.raises(EngineUnavailable, match="coqui"):
        get_engine("coqui")
    with pytest.raises(EngineUnavailable, match="unknown TTS engine"):
        get_engine("nope")
