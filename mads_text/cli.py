"""The ``mads`` command: a thin layer that parses options and calls one function per subcommand.

Every package registers its subcommands with its own ``register(app, train, eval_)``, found through the
``mads.commands`` entry points (pyproject.toml), so this base module names none of the packages built on it
and the text core works without the audio or training extras installed.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points

import typer

from .common.cli import ENTRY_POINT_GROUP, help_order

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

app = typer.Typer(
    name="mads",
    help="MADS: multi-agent dialogue simulation for persuasion (text self-play, analysis, audio, serving).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
train_app = typer.Typer(help="Train labelers, SFT text models and speech LLMs.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate models (MakeMePay).", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")


def _register_plugins() -> None:
    eps = list(entry_points(group=ENTRY_POINT_GROUP))
    ours = {ep.value.split(":")[0].split(".")[0] for ep in eps}
    for ep in sorted(eps, key=help_order):
        try:
            register = ep.load()
        except ModuleNotFoundError as e:
            # a missing optional extra hides that package's commands; a missing module of our own is a bug
            if e.name and e.name.split(".")[0] in ours:
                raise
            continue
        register(app, train_app, eval_app)


def main() -> None:
    _register_plugins()
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
