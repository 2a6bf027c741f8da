"""``mads train speech``: parses options and calls ``train.speech.train``."""

from __future__ import annotations

import json
from typing import Optional

import typer


def register_speech(train: typer.Typer) -> None:
    @train.command("speech")
    def speech(
        data: str = typer.Option(..., "--data", help="output folder of `mads synth` (AUD); several, comma-separated"),
        out: str = typer.Option(..., "--out", help="checkpoint folder; rerun the same command to resume"),
        llm: str = typer.Option("smollm2", help="LLM preset, .gguf file or local HF folder (e.g. from `mads train sft`)"),
        whisper: str = typer.Option("base", help="Whisper preset (base, tiny.en) or CTranslate2 folder"),
        stage: int = typer.Option(1, min=0, max=2, help="0: CTC alignment (no LLM pass); 1: projector on the reply loss; "
                                "2: projector + LoRA on the LLM"),
        init_from: Optional[str] = typer.Option(None, help="checkpoint to start from (stage 2 after stage 1)"),
        steps: int = typer.Option(200, min=1),
        batch_size: int = typer.Option(4, min=1),
        grad_accum: int = typer.Option(1, min=1),
        lr: float = typer.Option(1e-3, help="projector learning rate"),
        lora_lr: float = typer.Option(2e-4),
        lora_r: int = typer.Option(8),
        warmup: int = typer.Option(20),
        kd_weight: float = typer.Option(0.0, min=0.0, max=1.0, help="weight of KL to the text model's reply distribution"),
        telephony_p: float = typer.Option(0.5, min=0.0, max=1.0, help="share of clips degraded by a phone channel"),
        align_roles: str = typer.Option("user", help="stage 0: clips to spell, user (the customer's) or all (the "
                                        "agent's voiced lines too; synthesize them with `mads synth --roles agent,user`)"),
        system: str = typer.Option("short", help="system prompt: short | full | none"),
        max_context_turns: int = typer.Option(4, help="text turns kept before the audio turn"),
        stack: int = typer.Option(8, help="Whisper frames stacked per audio token"),
        projector_hidden: int = typer.Option(1024),
        scenario: Optional[str] = typer.Option(None, help="scenario of the dialogues when the dataset does not say"),
        test_fraction: float = typer.Option(0.1, help="share of dialogues held out"),
        limit: Optional[int] = typer.Option(None, help="use at most this many training examples"),
        eval_every: int = typer.Option(50),
        eval_examples: int = typer.Option(32),
        save_every: int = typer.Option(50),
        seed: int = typer.Option(0),
        threads: int = typer.Option(2, help="CPU threads for torch"),
        device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda when present)"),
    ) -> None:
        """Train the speech LLM (stage 1 projector; stage 2 adds LoRA) on a synthesized audio dataset."""
        from mads_audio.data import DataError
        from mads_text.common.cli import fail

        from .speech import SpeechTrainConfig
        from .speech import train as run

        try:
            cfg = SpeechTrainConfig(
                data=data, out=out, llm=llm, whisper=whisper, stage=stage, init_from=init_from, steps=steps,
                batch_size=batch_size, grad_accum=grad_accum, lr=lr, lora_lr=lora_lr, lora_r=lora_r,
                lora_alpha=2 * lora_r, warmup=warmup, kd_weight=kd_weight, telephony_p=telephony_p, system=system,
                align_roles=align_roles,
                max_context_turns=max_context_turns, stack=stack, projector_hidden=projector_hidden, scenario=scenario,
                test_fraction=test_fraction, limit=limit, eval_every=eval_every, eval_examples=eval_examples,
                save_every=save_every, seed=seed, threads=threads, device=device,
            )
        except ValueError as e:
            fail(str(e))
        try:
            result = run(cfg)
        except DataError as e:  # a folder that is not a synthesized dataset: nothing was trained yet
            fail(str(e))
        typer.echo(json.dumps(result, indent=2))
