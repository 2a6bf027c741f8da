"""Attitude and strategy labelers (``llm`` and ``embedded``) behind one interface; see ``base.py``."""

from __future__ import annotations

from .base import (
    AttitudeLabeler,
    AttitudeResult,
    DialogueLabels,
    ItemLabel,
    Labeler,
    LabelItem,
    RoundLabel,
    SentenceStrategy,
    StrategyLabeler,
    StrategyResult,
    split_sentences,
)

LABELERS = ("embedded", "llm")

__all__ = [
    "LABELERS",
    "AttitudeLabeler",
    "AttitudeResult",
    "DialogueLabels",
    "ItemLabel",
    "LabelItem",
    "Labeler",
    "RoundLabel",
    "SentenceStrategy",
    "StrategyLabeler",
    "StrategyResult",
    "make_labeler",
    "split_sentences",
]


def make_labeler(task: str, kind: str = "embedded", backend=None, heads: str | None = None, **kwargs) -> Labeler:
    """``task`` strategy|attitude, ``kind`` embedded|llm (llm needs an LLM ``backend``)."""
    if task not in ("strategy", "attitude"):
        raise ValueError(f"task must be 'strategy' or 'attitude', not {task!r}")
    if kind == "embedded":
        from .embedded import EmbeddedAttitudeLabeler, EmbeddedStrategyLabeler

        return EmbeddedStrategyLabeler(heads) if task == "strategy" else EmbeddedAttitudeLabeler(heads)
    if kind == "llm":
        if backend is None:
            raise ValueError("the llm labeler needs an LLM backend")
        from .llm import LLMAttitudeLabeler, LLMStrategyLabeler

        return LLMStrategyLabeler(backend, **kwargs) if task == "strategy" else LLMAttitudeLabeler(backend, **kwargs)
    raise ValueError(f"unknown labeler {kind!r}; choose one of {', '.join(LABELERS)}")
