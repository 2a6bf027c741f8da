"""The ``mads`` command: a thin layer that parses options and calls one function per subcommand.

Subcommands of the other packages (synth, mads_audio, train, serve) are registered
by their own ``cli.register(app, train, eval_)`` functions, imported lazily so the
text core works without the audio or training extras installed.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

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

# module -> what the user must install when it is missing
PLUGINS = {
    "mads_text.text_cli": None,
    "mads_text.analysis_cli": None,
    "mads_text.loop_cli": None,
    "synth.cli": "the audio extra (pip install -e '.[audio]')",
    "mads_audio.cli": "the ml and audio extras",
    "train.cli": "the ml extra",
    "serve.cli": "the serve and audio extras",
}


def _register_plugins() -> None:
    for module, extra in PLUGINS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            # a missing optional dependency hides that package's commands, nothing else
            if e.name and (e.name == module or module.startswith(e.name + ".")):
                continue
            if extra is None:
                raise
            continue
        mod.register(app, train_app, eval_app)


def main() -> None:
    _register_plugins()
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
