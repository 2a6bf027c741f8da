"""``mads speech ...`` and ``mads eval speech``: option parsing around mads_audio's functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

speech_app = typer.Typer(help="Speech LLM: answer customer audio directly (no ASR step).", no_args_is_help=True)


def _context(path: Optional[str], texts: list[str]):
    """Context turns from a JSON file ([{role, text}] or a DialogueRecord) or alternating --say options."""
    from mads_text.common.records import Turn

    turns: list[Turn] = []
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise typer.BadParameter(f"{path}: cannot read context JSON: {e}") from e
        rows = data.get("turns", data) if isinstance(data, dict) else data
        try:
            turns = [Turn.model_validate(r) for r in rows]
        except ValueError as e:
            raise typer.BadParameter(f"{path}: each turn needs role (agent|user) and text: {e}") from e
    # --say alternates starting with the agent, which opens the call
    for i, t in enumerate(texts):
        turns.append(Turn(role="agent" if i % 2 == 0 else "user", text=t))
    return turns


@speech_app.command("reply")
def reply(
    ckpt: str = typer.Option(..., "--ckpt", help="speech checkpoint folder (from `mads train speech`)"),
    wav: str = typer.Option(..., "--wav", help="the customer's turn (any WAV/FLAC; resampled to 16 kHz)"),
    context: Optional[str] = typer.Option(None, help="JSON file with earlier turns [{role, text}]"),
    say: list[str] = typer.Option([], help="earlier turns as text, alternating agent/user, agent first"),
    scenario: Optional[str] = typer.Option(None, help="scenario for the system prompt and the agent's voice"),
    out: Optional[str] = typer.Option(None, help="write the voiced reply to this WAV"),
    max_tokens: int = typer.Option(60),
    temperature: float = typer.Option(0.0),
    seed: Optional[int] = typer.Option(None),
    threads: int = typer.Option(2),
    device: Optional[str] = typer.Option(None),
) -> None:
    """Answer one customer audio turn: reply tokens are printed as they come; --out voices them."""
    import numpy as np
    import torch

    from .data import read_audio
    from .infer import SpeechAgent

    torch.set_num_threads(threads)
    audio = read_audio(wav)
    agent = SpeechAgent(ckpt, scenario=scenario, device=device, max_new_tokens=max_tokens, temperature=temperature)
    turns = _context(context, say)
    if out:
        chunks = []
        for ch in agent.speak(audio, 16000, turns, seed=seed):
            sys.stdout.write(ch.text + " ")
            sys.stdout.flush()
            chunks.append(ch)
        sys.stdout.write("\n")
        if chunks:
            import soundfile as sf

            sr = chunks[0].sample_rate
            pcm = np.concatenate([c.pcm for c in chunks])
            sf.write(out, pcm, sr)
            typer.echo(f"wrote {out} ({len(pcm) / sr:.1f} s)", err=True)
        return
    ttft, n = None, 0
    for ev in agent.stream(audio, 16000, turns, seed=seed):
        if ttft is None and not ev.done:
            ttft = ev.elapsed_s
        sys.stdout.write(ev.text)
        sys.stdout.flush()
        n = ev.index
        last = ev
    sys.stdout.write("\n")
    gen = last.elapsed_s - (ttft or 0)
    typer.echo(f"first token {ttft or 0:.2f} s, {n} tokens, {(n - 1) / gen if n > 1 and gen > 0 else 0:.1f} tokens/s",
               err=True)


@speech_app.command("hear")
def hear(
    wav: list[str] = typer.Argument(..., help="clips (any WAV/FLAC; resampled to 16 kHz)"),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="CTC checkpoint (default: the one shipped for the default LLM)"),
    threads: int = typer.Option(2),
) -> None:
    """What a CTC checkpoint's ear hears in each clip: the text of the LLM tokens it emits (no LLM is run)."""
    from mads_text.common.cli import fail

    from .config import SpeechModelError
    from .data import DataError, read_audio
    from .ear import CTCEar, packaged_checkpoint

    path = ckpt or packaged_checkpoint()
    if path is None:
        fail("no --ckpt given and no checkpoint is shipped with this install")
    try:
        ear = CTCEar(path, threads=threads)
        for w in wav:
            h = ear.hear(read_audio(w))
            typer.echo(f"{w}\t{h.text}\t(confidence {h.confidence:.2f}, {h.seconds * 1000:.0f} ms)")
    except (SpeechModelError, DataError) as e:
        fail(str(e))


@speech_app.command("export")
def export(
    ckpt: str = typer.Option(..., "--ckpt", help="checkpoint folder to export"),
    out: str = typer.Option(..., "--out", help="folder for the float16 copy"),
) -> None:
    """Copy a projector checkpoint with float16 weights (what the package ships)."""
    from mads_text.common.cli import fail

    from .checkpoint import export_half
    from .config import SpeechModelError

    try:
        path = export_half(ckpt, out)
    except (SpeechModelError, OSError) as e:
        fail(str(e))
    size = sum(p.stat().st_size for p in path.iterdir()) / 2**20
    typer.echo(f"wrote {path} ({size:.1f} MiB)")


@speech_app.command("check-encoder")
def check_encoder(
    whisper: str = typer.Option("base", help="Whisper preset or CTranslate2 folder"),
    wav: Optional[str] = typer.Option(None, help="clip to compare on (default: a synthetic tone)"),
    threads: int = typer.Option(2),
) -> None:
    """Compare the rebuilt PyTorch encoder with CTranslate2's own encoder output."""
    import torch

    from .data import read_audio
    from .encoder import compare_with_ct2

    torch.set_num_threads(threads)
    res = compare_with_ct2(whisper, read_audio(wav) if wav else None)
    typer.echo(json.dumps(res, indent=2))


def register(app: typer.Typer, train: typer.Typer, eval_: typer.Typer) -> None:
    app.add_typer(speech_app, name="speech")

    @eval_.command("speech")
    def eval_speech(
        ckpt: str = typer.Option(..., "--ckpt"),
        data: str = typer.Option(..., "--data", help="output folder of `mads synth`"),
        split: str = typer.Option("test", help="test (held-out dialogues), train or all"),
        test_fraction: float = typer.Option(0.1, help="must match the value used for training"),
        limit: int = typer.Option(64, help="examples to score"),
        per_dialogue: Optional[int] = typer.Option(None, help="at most this many turns per dialogue, evenly spaced"),
        batch_size: int = typer.Option(4),
        untrained: bool = typer.Option(True, help="also score an untrained projector"),
        controls: bool = typer.Option(False, help="also score each turn with another dialogue's audio and with "
                                      "silence: does the model use what it hears?"),
        telephony: bool = typer.Option(False, help="hear every clip through the phone channel (fixed seed)"),
        asr: Optional[str] = typer.Option("base", help="Whisper preset for the cascade; 'none' skips it"),
        generate: int = typer.Option(8, help="examples whose replies are generated and compared"),
        max_tokens: int = typer.Option(40),
        scenario: Optional[str] = typer.Option(None),
        json_out: Optional[str] = typer.Option(None, "--json", help="write the full report here"),
        threads: int = typer.Option(2),
        device: Optional[str] = typer.Option(None),
    ) -> None:
        """Speech LLM vs text model vs ASR cascade on held-out synthesized turns."""
        from .eval import EvalConfig, evaluate, format_report, write_report

        cfg = EvalConfig(ckpt=ckpt, data=data, split=split, test_fraction=test_fraction, limit=limit,
                         per_dialogue=per_dialogue,
                         batch_size=batch_size, untrained=untrained, controls=controls, telephony=telephony, asr=None if asr in (None, "none") else asr,
                         generate=generate, max_new_tokens=max_tokens, scenario=scenario, threads=threads,
                         device=device)
        rep = evaluate(cfg)
        typer.echo(format_report(rep))
        if json_out:
            write_report(rep, json_out)
            typer.echo(f"wrote {json_out}", err=True)

    @eval_.command("questions")
    def eval_questions(
        out: str = typer.Option(..., "--out", help="folder for the clips, answers.jsonl and report.json (resumable)"),
        scenario: str = typer.Option("insurance", help="built-in scenario name or YAML path"),
        questions: Optional[str] = typer.Option(None, help="question-set YAML (default: the one shipped for the scenario)"),
        voices: int = typer.Option(4, help="persona voices drawn from the scenario's priors"),
        per_phrasing: int = typer.Option(1, help="voices per phrasing"),
        engine: str = typer.Option("kokoro", help="TTS engine for the questions: kokoro or flite"),
        ckpt: Optional[str] = typer.Option(None, "--ckpt", help="speech-LLM checkpoint: adds the speech arm"),
        speech_path: str = typer.Option("tokens", help="tokens: a CTC checkpoint's ear feeds its token ids to the "
                                        "same Dialog Agent and backend as the text arms; torch: the checkpoint's own LLM"),
        phone: bool = typer.Option(True, help="also ask every clip through a phone line"),
        asr: str = typer.Option("base", help="Whisper preset for the cascade"),
        backend: str = typer.Option("embedded"),
        model: Optional[str] = typer.Option(None, help="LLM for the text-reading arms (default: the embedded default)"),
        temperature: float = typer.Option(0.7),
        max_tokens: int = typer.Option(60),
        concurrency: int = typer.Option(4),
        limit: Optional[int] = typer.Option(None, help="at most this many clips"),
        seed: int = typer.Option(0),
        threads: int = typer.Option(2),
        json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
    ) -> None:
        """Spoken product questions: does each arm's reply state the fact asked about? (text = perfect ear,
        cascade = Whisper + the Dialog Agent, speech = the checkpoint, shuffled = control)."""
        import asyncio

        from mads_text.common.cli import fail
        from mads_text.llm import LLMUnavailable

        from .config import SpeechModelError
        from .question_eval import QuestionEvalConfig, evaluate, format_report

        arms = ["text", "cascade", "shuffled", *(["speech"] if ckpt else [])]
        try:
            cfg = QuestionEvalConfig(scenario=scenario, questions=questions, out=out, voices=voices,
                                     per_phrasing=per_phrasing, engine=engine,
                                     variants=["clean", "phone"] if phone else ["clean"], arms=arms, ckpt=ckpt,
                                     speech_path=speech_path, asr=asr, backend=backend, model=model,
                                     temperature=temperature, max_tokens=max_tokens, seed=seed,
                                     concurrency=concurrency, limit=limit, threads=threads)  # fmt: skip
        except ValueError as e:
            fail(str(e))
        try:
            rep = asyncio.run(evaluate(cfg, progress=lambda s: typer.echo(s, err=True)))
        except LLMUnavailable as e:
            fail(f"LLM backend unavailable: {e}")
        except (ValueError, OSError, SpeechModelError) as e:
            fail(str(e))
        typer.echo(json.dumps(rep, indent=2) if json_out else format_report(rep))
