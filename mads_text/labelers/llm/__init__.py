"""LLM labelers: the paper's Summary prompts (Appendix A.4) through any :class:`LLMBackend`.

* CoA classifier (``attitude``): one request per dialogue gives one of the 16 states for every
  user round plus the accept / not-accept judgement with evidence.
* P4G strategy classifier (``strategy``): one request per dialogue lists the strategies used, with
  reasons and occurrences; it is sampled three times and a strategy is kept when at
  least two samples name it (pass@3, >= 2 votes).

Answers are JSON validated with pydantic (``answers``). Where the backend supports it the JSON
schema (``prompts``) also constrains decoding (the schema fixes the number of rounds and the
allowed state names, so a small model cannot skip a round or invent a state). A
bad answer is sent back with the validation error for a bounded number of repair
attempts; a dialogue that still fails is returned with ``ok=False``.
"""

from __future__ import annotations

from ...attitude import COARSE
from ...strategies import BY_CODE, NON_STRATEGY_DEFINITION
from .answers import (
    CoAAnswer,
    CoARound,
    Occurrence,
    P4GAnswer,
    StrategyDetail,
    _ask_json,
    _run,
    _short,
    extract_json,
    gather_limited,
    parse_coa,
    parse_p4g,
)
from .attitude import LLMAttitudeLabeler
from .prompts import (
    COA_PROMPT,
    DEFAULT_ACCEPTANCE,
    EVIDENCE_CHARS,
    P4G_PROMPT,
    SENTENCE_STRATEGY_PROMPT,
    TURN_ATTITUDE_PROMPT,
    coa_schema,
    p4g_schema,
    render_agent_turns,
    render_history,
    sentence_strategy_schema,
    turn_attitude_schema,
)
from .strategy import LLMStrategyLabeler, attribute_occurrences

__all__ = [
    "BY_CODE",
    "COARSE",
    "COA_PROMPT",
    "DEFAULT_ACCEPTANCE",
    "EVIDENCE_CHARS",
    "NON_STRATEGY_DEFINITION",
    "P4G_PROMPT",
    "SENTENCE_STRATEGY_PROMPT",
    "TURN_ATTITUDE_PROMPT",
    "CoAAnswer",
    "CoARound",
    "LLMAttitudeLabeler",
    "LLMStrategyLabeler",
    "Occurrence",
    "P4GAnswer",
    "StrategyDetail",
    "_ask_json",
    "_run",
    "_short",
    "attribute_occurrences",
    "coa_schema",
    "extract_json",
    "gather_limited",
    "p4g_schema",
    "parse_coa",
    "parse_p4g",
    "render_agent_turns",
    "render_history",
    "sentence_strategy_schema",
    "turn_attitude_schema",
]
