"""``mads synth`` (voice a run) and ``mads voices`` (the voice bank and persona assignments)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mads_text.common.cli import fail

voices_app = typer.Typer(help="Persona voices: list and preview the bank, show or change assignments, rebuild the bank.",
                         no_args_is_help=True)  # fmt: skip



def synth_cmd(
    run: Path = typer.Argument(..., help="Run folder written by `mads simulate` (RUN/dialogues.jsonl)."),
    out: Path = typer.Option(..., help="Output folder AUD; rerunning the same command resumes into it."),
    engine: str = typer.Option("kokoro", help="TTS engine: kokoro (default), flite (fast smoke tests) or coqui (your weights)."),
    telephony: bool = typer.Option(False, help="Also write 8 kHz mu-law, 300-3400 Hz versions of every clip and call."),
    noise_snr: Optional[float] = typer.Option(None, help="Telephony: add line noise at this SNR in dB."),
    workers: int = typer.Option(1, min=1, help="Worker processes, or with --ray Ray actors (each loads the engine and Whisper)."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads per worker (default: cores / workers)."),
    asr: str = typer.Option("base", help="Whisper for the round-trip gate: base, tiny.en, a CTranslate2 folder, or none."),
    max_wer: float = typer.Option(0.35, help="Clips above this WER are re-synthesised with another voice seed, then flagged."),
    retakes: int = typer.Option(2, min=0, max=3, help="Re-syntheses per failing clip."),
    no_speaker_check: bool = typer.Option(False, "--no-speaker-check", help="Skip the speaker-embedding gate (resemblyzer)."),
    overlap_prob: float = typer.Option(0.0, min=0, max=1, help="Chance a turn starts before the previous one ends."),
    backchannel_prob: float = typer.Option(0.0, min=0, max=1, help="Chance the listener says 'mm-hmm' in a long turn."),
    gap: float = typer.Option(0.45, min=0.05, help="Median pause between turns in seconds."),
    seed: int = typer.Option(0, help="Seed of gaps, overlaps, backchannels and noise."),
    limit: Optional[int] = typer.Option(None, min=1, help="Voice at most this many new dialogues."),
    roles: str = typer.Option("agent,user", help="Roles to voice, comma-separated; 'user' voices only the customer "
                              "(what a speech model's alignment stage hears), the agent's lines stay as text."),
    hold_out_voices: str = typer.Option("", help="Kokoro bank voices given to no persona, comma-separated: speakers an "
                                        "evaluation set keeps to itself (docs/synth.md)."),
    hf: bool = typer.Option(True, help="Write the Hugging Face datasets folder AUD/hf."),
    redo: bool = typer.Option(False, help="Rebuild every dialogue (needed after changing audio settings)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Voice on a Ray cluster: 'auto' (running cluster), 'local' "
                                      "(start one here) or an address; --out must be a folder every node sees."),
    cpus_per_worker: float = typer.Option(1.0, help="With --ray: CPUs per actor (engine threads unless --threads)."),
    gpus_per_worker: float = typer.Option(0.0, help="With --ray: GPUs per actor."),
) -> None:
    """Voice every dialogue of a run: per-turn clips, stereo calls, transcripts, manifest, dataset, quality gates."""
    from .dialogue import SynthConfig
    from .engines import EngineUnavailable
    from .mix import MixConfig
    from .quality import QAConfig
    from .stage import SynthError, synth_run
    from .telephony import TelephonyConfig
    from .voice import VoiceError

    try:
        cfg = SynthConfig(
            engine=engine, seed=seed, telephony=telephony, tel=TelephonyConfig(noise_snr_db=noise_snr),
            mix=MixConfig(overlap_prob=overlap_prob, backchannel_prob=backchannel_prob, gap_median_s=gap),
            qa=QAConfig(asr=None if asr.lower() == "none" else asr, speaker=not no_speaker_check, max_wer=max_wer,
                        retakes=retakes),
            workers=workers, threads=threads, hf=hf, roles=[r.strip() for r in roles.split(",") if r.strip()],
            hold_out_voices=[v.strip() for v in hold_out_voices.split(",") if v.strip()],
        )  # fmt: skip
    except ValueError as e:
        fail(str(e))
    from mads_text.distributed import RaySpec, RayUnavailable

    spec = None
    if ray:
        spec = RaySpec(address=ray, workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
    try:
        res = synth_run(run, out, cfg, limit=limit, redo=redo, ray=spec)
    except (SynthError, EngineUnavailable, VoiceError, RayUnavailable) as e:
        fail(str(e))
    q = res.quality
    typer.echo(
        f"{out}: {res.produced} dialogues voiced, {res.skipped} already there, {res.redone} redone for a voice change; "
        f"{res.audio_s:.1f} s of audio in {res.wall_s:.1f} s ({res.audio_per_wall:.2f} audio s/s)"
    )
    typer.echo(
        f"quality: {q.get('n_clips')} clips, WER mean {q.get('wer_mean')}, flagged {q.get('flagged_clips')}, "
        f"same-speaker cos {q.get('same_speaker_cos_mean')}, different-speaker cos {q.get('diff_speaker_cos_mean')}"
    )


@voices_app.command("list")
def voices_list(engine: str = typer.Option("kokoro", help="kokoro or flite.")) -> None:
    """The voices persona assignment draws from, in the order it uses them."""
    if engine == "flite":
        from .engines.flite import GENDER, VOICES

        for n, f0 in VOICES.items():
            typer.echo(f"{n:6s} {GENDER[n]:6s} natural F0 {f0:.0f} Hz")
        return
    from .bank import load_bank

    bank = load_bank()
    if bank is None:
        fail("no Kokoro bank yet: run `mads voices search`")
    typer.echo(f"Kokoro bank ({bank.created}): distinct = d-vector cosine < {bank.threshold} to every earlier voice "
               f"of its gender; WER gate {bank.max_wer}")  # fmt: skip
    presets = {v: k for k, v in bank.presets.items()}
    for v in sorted(bank.voices, key=lambda v: (v.gender, v.rank)):
        mix = lambda w: "+".join(f"{k}:{x:g}" for k, x in w.items())
        typer.echo(
            f"{v.id} {v.gender:6s} rank {v.rank:2d} {'distinct' if v.distinct else 'near    '} F0 {v.f0_hz:5.0f} Hz "
            f"WER {v.wer:.2f} maxcos {'-' if v.max_cos is None else f'{v.max_cos:.2f}'} pitch {v.voice.pitch:.2f} "
            f"timbre {mix(v.voice.timbre)} prosody {mix(v.voice.prosody)} {presets.get(v.id, '')}"
        )


@voices_app.command("preview")
def voices_preview(
    out: Path = typer.Option(..., help="Folder for one WAV per voice."),
    text: str = typer.Option("Hello, this is a short preview of my voice. How does it sound to you?", help="What to say."),
    engine: str = typer.Option("kokoro"),
    aud: Optional[Path] = typer.Option(None, help="Preview the persona voices of this AUD folder instead of the bank."),
) -> None:
    """Write a WAV per bank voice (or per persona of an AUD folder) to listen to."""
    import soundfile as sf

    from .engines import get_engine
    from .voice import Voice

    out.mkdir(parents=True, exist_ok=True)
    items: list[tuple[str, Voice]] = []
    if aud is not None:
        from .stage import VOICES, load_voicebook

        if not (aud / VOICES).exists():
            fail(f"{aud / VOICES} not found")
        book = load_voicebook(aud, engine)
        items = [(k.replace(":", "_"), s.voice) for k, s in [*book.agents.items(), *book.personas.items()]]
    elif engine == "flite":
        from .engines.flite import VOICES as FV

        items = [(n, Voice(engine="flite", name=n)) for n in FV]
    else:
        from .bank import load_bank

        bank = load_bank()
        if bank is None:
            fail("no Kokoro bank yet: run `mads voices search`")
        items = [(v.id, Voice(preset=v.id)) for v in bank.voices]
    eng = get_engine(engine)
    for name, v in items:
        pcm, sr = eng.synthesize(text, v)
        sf.write(str(out / f"{name}.wav"), pcm, sr)
        typer.echo(f"{out / (name + '.wav')}  {len(pcm) / sr:.1f} s")


@voices_app.command("show")
def voices_show(aud: Path = typer.Argument(..., help="AUD folder.")) -> None:
    """Persona -> voice assignments of an AUD folder."""
    import json

    p = aud / "voices.json"
    if not p.exists():
        fail(f"{p} not found")
    doc = json.loads(p.read_text())
    for s in [*doc.get("agents", {}).values(), *doc.get("personas", {}).values()]:
        v = s["voice"]
        typer.echo(f"{s['speaker_id']:36s} {s['role']:5s} {s['gender']:6s} age {s.get('age')!s:4s} bank {s.get('bank_id')!s:4s} "
                   f"{'distinct' if s.get('distinct', True) else 'near'} pitch {v.get('pitch')} speed {v.get('speed')} "
                   f"{v.get('name') or v.get('preset') or ''}")  # fmt: skip


@voices_app.command("set")
def voices_set(
    aud: Path = typer.Argument(..., help="AUD folder."),
    speaker: str = typer.Argument(..., help="Persona id (or agent:<scenario>)."),
    preset: Optional[str] = typer.Option(None, help="Bank voice id or preset to use."),
    pitch: Optional[float] = typer.Option(None, help="New pitch factor."),
    speed: Optional[float] = typer.Option(None, help="New speed factor."),
) -> None:
    """Reassign one speaker's voice; the next `mads synth` redoes that speaker's dialogues."""
    from mads_text.common import runstore

    from .assign import VoiceBook

    p = aud / "voices.json"
    if not p.exists():
        fail(f"{p} not found")
    book = VoiceBook.model_validate_json(p.read_text())
    if speaker.startswith("agent:"):
        speaker = speaker.split(":", 1)[1]
    table = book.agents if speaker in book.agents else book.personas
    if speaker not in table:
        fail(f"{p}: no speaker '{speaker}'")
    s = table[speaker]
    upd = {k: v for k, v in {"preset": preset, "pitch": pitch, "speed": speed}.items() if v is not None}
    try:
        s.voice = s.voice.model_validate({**s.voice.model_dump(), **upd})
    except ValueError as e:
        fail(str(e))
    if preset:
        s.bank_id, s.variant, s.note = preset, 0, "set by hand"
    s.embedding = None
    runstore.write_json_atomic(p, book)
    typer.echo(f"{speaker}: {s.voice.model_dump_json()}")


@voices_app.command("search")
def voices_search(
    out: Path = typer.Option(Path(__file__).parent / "data" / "kokoro_bank.json", help="Bank file to write."),
    threshold: float = typer.Option(0.8, help="d-vector cosine below which two voices count as clearly distinct."),
    max_wer: float = typer.Option(0.1, help="Round-trip WER gate for a voice to enter the bank."),
    asr: str = typer.Option("base", help="Whisper preset or folder."),
    quick: bool = typer.Option(False, help="A small grid (minutes instead of an hour on 2 cores)."),
    from_bank: Optional[Path] = typer.Option(None, "--from", help="Reselect from this bank's measurements; no synthesis."),
) -> None:
    """Measure Kokoro blends (F0, WER, d-vectors) and write the voice bank."""
    from .voicesearch import reselect, search

    if from_bank is not None:
        if not from_bank.exists():
            fail(f"{from_bank} not found")
        bank = reselect(from_bank, out, threshold=threshold, max_wer=max_wer)
    else:
        bank = search(out, threshold=threshold, max_wer=max_wer, asr=asr, quick=quick)
    typer.echo(f"{out}: {len(bank.voices)} voices; {bank.summary}")


def register(app: typer.Typer, train: typer.Typer, eval_: typer.Typer) -> None:
    app.command("synth")(synth_cmd)
    app.add_typer(voices_app, name="voices")
