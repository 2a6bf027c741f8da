"""``mads train sft``: registered on the ``train`` app by ``train/cli.py`` through ``register_sft(train)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer


def sft_cmd(
    data: Path = typer.Option(..., help="Dataset folder written by `mads export` (train.jsonl, test.jsonl)."),
    base: str = typer.Option("smollm2", help="Base model: checkpoint folder, .gguf file, or embedded preset (smollm2, qwen1.5b)."),
    out: Path = typer.Option(..., help="Output folder; rerunning the same command resumes from its last checkpoint."),
    method: str = typer.Option("lora", help="lora (peft adapters, merged into the saved model) or full."),
    epochs: float = typer.Option(3.0, help="Passes over the training split."),
    max_steps: Optional[int] = typer.Option(None, help="Optimizer steps (overrides --epochs)."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate (default 2e-4 LoRA, 2e-5 full)."),
    batch_size: int = typer.Option(1, min=1, help="Conversations per forward pass."),
    grad_accum: int = typer.Option(4, min=1, help="Forward passes per optimizer step."),
    max_len: int = typer.Option(1024, min=16, help="Tokens per conversation (longer ones are cut at the end)."),
    lora_r: int = typer.Option(16, help="LoRA rank."),
    lora_alpha: int = typer.Option(32, help="LoRA alpha."),
    eval_every: int = typer.Option(10, help="Held-out evaluation every N steps (0: start and end only)."),
    save_every: int = typer.Option(20, help="Resumable checkpoint every N steps."),
    seed: int = typer.Option(0, help="Seed for data order and initialisation."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
    dtype: str = typer.Option("auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16."),
    gradient_checkpointing: bool = typer.Option(False, help="Trade compute for memory (large models)."),
    check_generation: bool = typer.Option(True, help="Reload the saved model and generate one held-out reply."),
) -> None:
    """Fine-tune a chat model on exported MADS dialogues (loss on the Dialog Agent's turns only)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from mads_text.export import ExportError
    from mads_text.llm import LLMUnavailable

    from .sft import SFTConfig, SFTError, train

    try:
        cfg = SFTConfig(
            data=str(data), base=base, out=str(out), method=method, epochs=epochs, max_steps=max_steps, lr=lr,
            batch_size=batch_size, grad_accum=grad_accum, max_len=max_len, lora_r=lora_r, lora_alpha=lora_alpha,
            eval_every=eval_every, save_every=save_every, seed=seed, device=device, dtype=dtype,
            gradient_checkpointing=gradient_checkpointing, check_generation=check_generation,
        )
        rep = train(cfg)
    except (ValueError, ExportError, SFTError, LLMUnavailable) as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from e
    typer.echo(
        f"{out}: {rep['steps']} steps ({rep['train_examples']} train / {rep['test_examples']} held-out dialogues); "
        f"held-out loss base {rep['base_eval_loss']:.4f} -> fine-tuned {rep['final_eval_loss']:.4f}; "
        f"{rep['s_per_step']} s/step on {rep['device']}"
    )
    if "generation_check" in rep:
        typer.echo(f"generation check: {rep['generation_check']['reply'][:200]!r}")


def register_sft(train: typer.Typer) -> None:
    train.command("sft")(sft_cmd)


if __name__ == "__main__":  # `python -m train.sft_cli ...` works before the `mads train` group is wired
    _app = typer.Typer(add_completion=False)
    _app.command()(sft_cmd)
    _app()
