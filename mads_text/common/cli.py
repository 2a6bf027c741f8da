"""What every package's ``mads`` subcommands share: the error exit and the plugin group they register under.

Each package lists its ``register(app, train, eval_)`` function under the ``mads.commands`` entry-point group
(pyproject.toml); the root command loads whatever is installed, so the base layer never names the packages
built on it, and a missing optional extra hides only that package's commands.
"""

from __future__ import annotations

from typing import NoReturn

import typer

ENTRY_POINT_GROUP = "mads.commands"
# `mads --help` lists the commands in the order of the data flow; unknown plugins come last
HELP_ORDER = ("text", "analysis", "loop", "synth", "speech", "train", "serve")


def help_order(ep) -> tuple[int, str]:
    return (HELP_ORDER.index(ep.name) if ep.name in HELP_ORDER else len(HELP_ORDER), ep.name)


def fail(msg: str, code: int = 2) -> NoReturn:
    """Print ``error: msg`` in red on stderr and exit with ``code`` (2: bad input)."""
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)
