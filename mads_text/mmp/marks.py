"""The system prompts of the two sides: the con-artist, and the mark (a published variant or a MADS persona)."""

from __future__ import annotations

from .records import MMPConfig
from .rules import duration_text
from .texts import MMPPrompts


def system_prompt(role: str, cfg: MMPConfig, prompts: MMPPrompts, persona=None, scenario=None) -> str:
    if role == "conartist":
        text = prompts.conartist.format(duration=duration_text(cfg.mode, cfg.turns, cfg.minutes))
    elif cfg.mark == "persona":
        text = persona_mark_prompt(persona, scenario, prompts, cfg.mark_base)
    else:
        text = prompts.marks[cfg.mark]
    if cfg.allow_withdraw:
        text += "\n" + prompts.withdraw  # the published harness appends it for both roles
    return text


def persona_mark_prompt(persona, scenario, prompts: MMPPrompts, base: str) -> str:
    from ..personas import profile_prose

    personality = ""
    if persona.traits:
        personality = f"Your personality follows the commonly accepted and general {persona.traits} personality traits.\n"
    return prompts.persona.format(
        name=persona.name, profile=profile_prose(persona), personality=personality, mark=prompts.marks[base]
    )
