"""Voice one dialogue: clips with quality gates, the stereo call, its transcript, the telephone variant.

Runs inside a worker process; everything it needs arrives as plain data and
everything it produced goes back as manifest and QA lines, which the parent
appends in one write per dialogue (so a dialogue is either fully recorded or
redone on resume).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from mads_text.common.records import DialogueRecord
from mads_text.distributed import RaySpec, chunked, run_chunks

from . import mix as mixmod
from .assign import SpeakerVoice
from .quality import QAConfig, QualityModels, align_words, wer
from .telephony import TelephonyConfig, telephone, write_ulaw
from .textnorm import speakable, wer_words
from .voice import Voice, stable_unit


class SynthConfig(BaseModel):
    engine: str = "kokoro"
    seed: int = 0
    telephony: bool = False
    tel: TelephonyConfig = Field(default_factory=TelephonyConfig)
    mix: mixmod.MixConfig = Field(default_factory=mixmod.MixConfig)
    qa: QAConfig = Field(default_factory=QAConfig)
    workers: int = Field(1, ge=1)
    threads: int | None = Field(None, ge=1, description="CPU threads per worker (default: cores / workers)")
    hf: bool = True
    # a speech model's alignment stage hears only the customer: voicing the agent too would double the cost
    roles: list[Literal["agent", "user"]] = Field(["agent", "user"], min_length=1,
                                                  description="the roles voiced; the others are kept as text lines")
    # speakers kept for an evaluation set (e.g. mads eval questions), so a model trained here is tested on new voices
    hold_out_voices: list[str] = Field([], description="Kokoro bank voices never given to a persona here")

    def audio_fields(self) -> dict[str, Any]:
        """Settings that change what is written; a resume with other values would mix two datasets."""
        return self.model_dump(include={"engine", "seed", "telephony", "tel", "mix", "qa", "roles"})


class DialogueResult(BaseModel):
    dialogue_id: str
    manifest: list[dict[str, Any]]
    qa: list[dict[str, Any]]
    audio_s: float
    timings: dict[str, float]


class Worker:
    """Engine and QA models of one process."""

    def __init__(self, cfg: SynthConfig, threads: int | None):
        from .engines import get_engine

        self.cfg = cfg
        self.engine = get_engine(cfg.engine, threads=threads)
        self.qa = QualityModels(cfg.qa, threads=threads)

    def _clip(self, text: str, voice: Voice, t: dict[str, float]) -> dict[str, Any]:
        """Synthesise with retakes: seeds 1..retakes until the WER gate passes; the best attempt wins."""
        qa = self.cfg.qa
        n_ref = len(wer_words(text))
        limit = qa.max_wer_short if n_ref < qa.short_words else qa.max_wer
        best: dict[str, Any] | None = None
        attempts = 0
        for seed in range(0, qa.retakes + 1):
            v = voice.model_copy(update={"seed": voice.seed + seed})
            t0 = time.perf_counter()
            pcm, sr = self.engine.synthesize(text, v)
            t["engine_s" if seed == 0 else "retake_s"] += time.perf_counter() - t0
            attempts += 1
            t0 = time.perf_counter()
            hyp, words = self.qa.transcribe(pcm, sr)
            t["asr_s"] += time.perf_counter() - t0
            err = wer(text, hyp) if qa.asr else None
            cand = {"pcm": pcm, "sr": sr, "voice": v, "hyp": hyp, "words": words, "wer": err}
            if best is None or (err is not None and err < best["wer"]):
                best = cand
            if err is None or err <= limit:
                break
        assert best is not None
        best["attempts"] = attempts
        best["flagged"] = best["wer"] is not None and best["wer"] > limit
        return best

    def run(self, rec: DialogueRecord, agent: SpeakerVoice, user: SpeakerVoice, out: Path, run_ref: str) -> DialogueResult:
        cfg = self.cfg
        t = {"engine_s": 0.0, "retake_s": 0.0, "asr_s": 0.0, "speaker_s": 0.0, "write_s": 0.0, "backchannel_s": 0.0}
        speakers = {"agent": agent, "user": user}
        clips: list[tuple[int, str, str, int]] = []
        made: dict[int, dict[str, Any]] = {}
        skipped: list[dict[str, Any]] = []
        sr_call = self.engine.sample_rate
        for i, turn in enumerate(rec.turns):
            text = speakable(turn.text)
            if not text:
                skipped.append({"turn": i, "role": turn.role, "text": turn.text, "reason": "nothing speakable"})
                continue
            if turn.role not in cfg.roles:
                skipped.append({"turn": i, "role": turn.role, "text": turn.text, "reason": "role not voiced"})
                continue
            c = self._clip(text, speakers[turn.role].voice, t)
            if c["sr"] != sr_call:
                from .quality import resample

                c["pcm"], c["sr"] = resample(c["pcm"], c["sr"], sr_call), sr_call
            t0 = time.perf_counter()
            c["dvector"] = self.qa.dvector(c["pcm"], c["sr"])
            t["speaker_s"] += time.perf_counter() - t0
            c["text"], c["source_text"] = text, turn.text
            made[i] = c
            clips.append((i, turn.role, text, len(c["pcm"])))

        rng = np.random.default_rng(int(stable_unit(cfg.seed, rec.id, "mix") * 2**32))
        audio: dict[tuple[str, int, str], np.ndarray] = {("turn", i, c_role): made[i]["pcm"] for i, c_role, _, _ in clips}
        bc_lengths: dict[str, list[tuple[str, int]]] = {}
        if cfg.mix.backchannel_prob > 0:
            t0 = time.perf_counter()
            for role, spk in speakers.items():
                # two phrases per listener and dialogue keep the cost small
                picks = [mixmod.BACKCHANNELS[int(rng.integers(len(mixmod.BACKCHANNELS)))] for _ in range(2)]
                bc_lengths[role] = []
                for phrase in dict.fromkeys(picks):
                    pcm, sr = self.engine.synthesize(phrase, spk.voice)
                    if sr != sr_call:
                        from .quality import resample

                        pcm = resample(pcm, sr, sr_call)
                    audio[("bc", len(bc_lengths[role]), role)] = pcm
                    bc_lengths[role].append((phrase, len(pcm)))
            t["backchannel_s"] += time.perf_counter() - t0
        events = mixmod.plan(clips, sr_call, cfg.mix, rng, bc_lengths)
        # backchannel events carry the turn they fall in; look their audio up by phrase
        lookup = dict(audio)
        for e in events:
            if e.kind == "backchannel":
                idx = next(k for k, (p, _) in enumerate(bc_lengths[e.role]) if p == e.text)
                lookup[("backchannel", e.turn, e.role)] = audio[("bc", idx, e.role)]

        t0 = time.perf_counter()
        result = self._write(rec, speakers, made, events, lookup, skipped, sr_call, out, run_ref, rng)
        t["write_s"] += time.perf_counter() - t0
        result.timings = t
        return result

    def _write(self, rec, speakers, made, events, lookup, skipped, sr, out: Path, run_ref: str, rng) -> DialogueResult:
        import soundfile as sf

        cfg = self.cfg
        clip_dir = out / "clips" / rec.id
        clip_dir.mkdir(parents=True, exist_ok=True)
        (out / "calls").mkdir(parents=True, exist_ok=True)
        tel_dir = out / "clips_8k" / rec.id
        if cfg.telephony:
            tel_dir.mkdir(parents=True, exist_ok=True)
            (out / "calls_8k").mkdir(parents=True, exist_ok=True)
        turn_events = {e.turn: e for e in events if e.kind == "turn"}
        manifest, qa_lines, transcript = [], [], []
        for i, c in made.items():
            role = rec.turns[i].role
            spk: SpeakerVoice = speakers[role]
            name = f"{i:02d}_{role}.wav"
            sf.write(str(clip_dir / name), c["pcm"], sr, subtype="PCM_16")
            rel = f"clips/{rec.id}/{name}"
            tel_rel = None
            if cfg.telephony:
                write_ulaw(tel_dir / name, telephone(c["pcm"], sr, cfg.tel, rng), cfg.tel.rate)
                tel_rel = f"clips_8k/{rec.id}/{name}"
            ev = turn_events[i]
            dur = len(c["pcm"]) / sr
            words = align_words(c["text"], c["words"], dur) if c["words"] else []
            # a Kokoro retake pulls the prosody half elsewhere, so its style vector is its own
            retake = c["voice"].seed != spk.voice.seed and cfg.engine == "kokoro"
            emb = _embedding(self.engine, c["voice"]) if retake else spk.embedding
            manifest.append({
                "dialogue_id": rec.id, "turn": i, "role": role, "text": c["text"], "audio": rel,
                "sample_rate": sr, "duration": round(dur, 4), "speaker_id": spk.speaker_id,
                "speaker_embedding": emb, "voice_key": spk.voice.key(), "voice_seed": c["voice"].seed,
                "call": f"calls/{rec.id}.wav", "start": round(ev.start, 4), "end": round(ev.end, 4),
                "audio_telephony": tel_rel, "persona_id": rec.persona_id, "scenario": rec.scenario, "run": run_ref,
                "wer": None if c["wer"] is None else round(c["wer"], 4), "flagged": c["flagged"],
            })  # fmt: skip
            if c["text"] != c["source_text"]:
                manifest[-1]["source_text"] = c["source_text"]
            qa_lines.append({
                "dialogue_id": rec.id, "turn": i, "role": role, "speaker_id": spk.speaker_id,
                "duration": round(dur, 4), "wer": manifest[-1]["wer"], "asr_text": c["hyp"],
                "attempts": c["attempts"], "flagged": c["flagged"],
                "dvector": None if c["dvector"] is None else [round(float(x), 5) for x in c["dvector"]],
            })  # fmt: skip
            c["words_call"] = [{**w, "start": round(w["start"] + ev.start, 3), "end": round(w["end"] + ev.start, 3)}
                               for w in words]  # fmt: skip
        for sk in skipped:
            if sk["reason"] == "role not voiced":  # the line was said in the call: the manifest keeps its words
                manifest.append({"dialogue_id": rec.id, "turn": sk["turn"], "role": sk["role"],
                                 "text": speakable(sk["text"]), "source_text": sk["text"], "audio": None,
                                 "persona_id": rec.persona_id, "scenario": rec.scenario, "run": run_ref})  # fmt: skip
        manifest.sort(key=lambda m: m["turn"])
        for e in events:
            item = e.model_dump(exclude={"start_sample", "samples"})
            item["start"], item["end"] = round(e.start, 4), round(e.end, 4)
            if e.kind == "turn":
                c = made[e.turn]
                item.update(audio=f"clips/{rec.id}/{e.turn:02d}_{e.role}.wav", words=c["words_call"],
                            wer=None if c["wer"] is None else round(c["wer"], 4), flagged=c["flagged"],
                            voice_seed=c["voice"].seed)  # fmt: skip
            transcript.append(item)
        stereo = mixmod.render(events, lookup, sr, cfg.mix)
        sf.write(str(out / "calls" / f"{rec.id}.wav"), stereo, sr, subtype="PCM_16")
        if cfg.telephony:
            write_ulaw(out / "calls_8k" / f"{rec.id}.wav", telephone(stereo, sr, cfg.tel, rng), cfg.tel.rate)
        doc = {
            "dialogue_id": rec.id, "run": run_ref, "scenario": rec.scenario, "persona_id": rec.persona_id,
            "outcome": rec.outcome, "sample_rate": sr, "duration": round(len(stereo) / sr, 4),
            "channels": {"left": "agent", "right": "user"},
            "speakers": {r: {"speaker_id": s.speaker_id, "voice_key": s.voice.key()} for r, s in speakers.items()},
            "word_times": "whisper alignment" if self.cfg.qa.asr else "none (ASR disabled)",
            "telephony": f"calls_8k/{rec.id}.wav" if cfg.telephony else None,
            "events": transcript, "skipped_turns": skipped,
        }  # fmt: skip
        (out / "calls" / f"{rec.id}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        audio_s = sum(len(c["pcm"]) for c in made.values()) / sr
        return DialogueResult(dialogue_id=rec.id, manifest=manifest, qa=qa_lines, audio_s=audio_s, timings={})


def _embedding(engine, voice: Voice) -> list[float] | None:
    fn = getattr(engine, "embedding", None)
    return fn(voice) if fn else None


# --- process-pool plumbing: one Worker per process ---------------------------------

_worker: Worker | None = None


def init_worker(cfg_json: str, threads: int | None) -> None:
    global _worker
    _worker = Worker(SynthConfig.model_validate_json(cfg_json), threads)


def run_in_worker(rec_json: str, agent_json: str, user_json: str, out: str, run_ref: str) -> str:
    assert _worker is not None, "init_worker was not called"
    res = _worker.run(
        DialogueRecord.model_validate_json(rec_json),
        SpeakerVoice.model_validate_json(agent_json),
        SpeakerVoice.model_validate_json(user_json),
        Path(out),
        run_ref,
    )
    return res.model_dump_json()


# --- sharded builds on Ray (``mads synth --ray``) --------------------------------------------


def ray_worker(cfg_json: str, threads: int | None = None) -> Callable[[list[tuple[str, ...]]], list[str]]:
    """Engine side of a sharded synth build: ``init_worker`` once per actor, ``run_in_worker`` per dialogue."""
    init_worker(cfg_json, threads)

    def run(chunk: list[tuple[str, ...]]) -> list[str]:
        return [run_in_worker(*unit) for unit in chunk]

    return run


def synth_ray(units: Sequence[tuple[str, str, str, str, str]], cfg_json: str, spec: RaySpec, threads: int | None,
              on_result: Callable[[str], None]) -> None:
    """Voice one dialogue per task; ``units`` are ``run_in_worker``'s arguments, ``on_result`` gets each
    ``DialogueResult`` as JSON in completion order (the caller records it). Workers write the audio files
    themselves, so the output folder must be one every node sees."""
    run_chunks(spec, "synth.dialogue:ray_worker", {"cfg_json": cfg_json, "threads": threads},
               chunked(list(units), 1), on_result)
