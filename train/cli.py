"""``mads train ...`` subcommands; each training area registers its own command here."""

from __future__ import annotations

import typer


def register(app: typer.Typer, train: typer.Typer, eval_: typer.Typer) -> None:
    from .labeler import register_labeler
    from .sft_cli import register_sft
    from .speech_cli import register_speech

    register_labeler(train)
    register_sft(train)
    register_speech(train)
