"""The LLM labelers' prompt texts (the paper's Summary prompts, Appendix A.4, and two single-item prompts), the
JSON schemas that constrain decoding, and how a dialogue is rendered into the prompts."""

from __future__ import annotations

from typing import Any

from ...attitude import STATES
from ...common.records import DialogueRecord
from ...strategies import STRATEGIES, STRATEGY_DEFS, STRATEGY_LABELS

EVIDENCE_CHARS = 100

COA_PROMPT = """<core_task>
  Analyze the evolution of user attitudes towards specific events/topics in the provided conversation history. Must analyze attitudes for EVERY round of dialogue, without omitting any round, and each round can only have ONE attitude.
  Also determine if the user ultimately shows intent to accept the sales pitch (such as leaving contact information, inquiring about details, scheduling viewing appointments, or expressing purchase interest.
</core_task>
<predefined_attitude_states>
{attitude_description}
</predefined_attitude_states>
<analysis_requirements>
  Round-by-Round Analysis: Must analyze user attitude in every round of dialogue
  Single Attitude: Only one primary attitude state can be selected per round
  State Restriction: Strictly select from predefined set, no other vocabulary allowed
  Evidence Support: Each attitude judgment must have specific textual evidence
  Sales Outcome Assessment: Clearly determine if user accepts the sales pitch (Acceptance criteria: {acceptance_criteria})
</analysis_requirements>
<input_source>
{dialog_history}
</input_source>
<output_format>
  Answer with one JSON object only: {{"rounds": [{{"round": 1, "attitude": "<state>", "evidence": "<user words>"}}, ...], "accepted": true|false, "accept_evidence": "<user words>"}}. The conversation has {n_rounds} user rounds, so "rounds" has exactly {n_rounds} entries, in order.
</output_format>"""

DEFAULT_ACCEPTANCE = "clearly scheduling time and place, agreeing to purchase, or making other specific commitment behaviors"

P4G_PROMPT = """<task_description>
Extract the persuasion strategies used by the assistant in the conversation based on the Persuasion Strategy Definition Table. Output in JSON format a list of all strategy codes used throughout the conversation history, along with the reasoning for each strategy selection and where they appear in the original text.
Note: Do not force-map or extract strategies. Only extract a strategy when its usage fully satisfies the Strategy Description.
</task_description>
<strategy_definition_table>
{strategy_description}
</strategy_definition_table>
<output_format>
{{
  "total_strategies": ["List of strategy codes"],
  "strategy_details": [
    {{
      "strategy_id": "Strategy code",
      "strategy_name": "Strategy name",
      "reason": "Explanation for choosing this strategy",
      "occurrences": [
        {{"turn": "Conversation turn number", "original_text": "Original text excerpt", "explanation": "How this excerpt demonstrates the strategy"}}
      ]
    }}
  ]
}}
</output_format>
<input_source>
{dialog_history}
</input_source>
<additional_instructions>
Only include strategies when they clearly match the strategy description criteria. Provide detailed reasoning and specific text examples for each identified strategy.
</additional_instructions>"""

SENTENCE_STRATEGY_PROMPT = """Classify the persuasion strategy of one sentence said by the persuader.

<strategy_definition_table>
{strategy_description}
</strategy_definition_table>

<context>
{context}
</context>

<sentence>
{sentence}
</sentence>

Answer with one JSON object: {{"strategy": "<one strategy name from the table, or {non_strategy}>"}}."""

TURN_ATTITUDE_PROMPT = """Classify the attitude the user expresses in their latest turn of a persuasion conversation.

<predefined_attitude_states>
{attitude_description}
</predefined_attitude_states>

<context>
{context}
</context>

<user_turn>
{text}
</user_turn>

Answer with one JSON object: {{"attitude": "<one state name>", "evidence": "<user words>"}}."""


# --- schemas for constrained decoding ----------------------------------------------------------


def _str(max_len: int) -> dict:
    return {"type": "string", "maxLength": max_len}


def coa_schema(n_rounds: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "rounds": {
                "type": "array",
                "minItems": n_rounds,
                "maxItems": n_rounds,
                "items": {
                    "type": "object",
                    "properties": {
                        "round": {"type": "integer"},
                        "attitude": {"type": "string", "enum": list(STATES)},
                        "evidence": _str(EVIDENCE_CHARS),
                    },
                    "required": ["round", "attitude", "evidence"],
                    "additionalProperties": False,
                },
            },
            "accepted": {"type": "boolean"},
            "accept_evidence": _str(EVIDENCE_CHARS),
        },
        "required": ["rounds", "accepted", "accept_evidence"],
        "additionalProperties": False,
    }


def p4g_schema(max_strategies: int = 10, max_occurrences: int = 3) -> dict[str, Any]:
    codes = [s.code for s in STRATEGY_DEFS]
    return {
        "type": "object",
        "properties": {
            "total_strategies": {"type": "array", "items": {"type": "string", "enum": codes}, "maxItems": max_strategies},
            "strategy_details": {
                "type": "array",
                "maxItems": max_strategies,
                "items": {
                    "type": "object",
                    "properties": {
                        "strategy_id": {"type": "string", "enum": codes},
                        "strategy_name": {"type": "string", "enum": list(STRATEGIES)},
                        "reason": _str(EVIDENCE_CHARS),
                        "occurrences": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": max_occurrences,
                            "items": {
                                "type": "object",
                                "properties": {
                                    "turn": {"type": "integer"},
                                    "original_text": _str(EVIDENCE_CHARS),
                                    "explanation": _str(EVIDENCE_CHARS),
                                },
                                "required": ["turn", "original_text", "explanation"],
                                "additionalProperties": False,
                            },
                        },
                    },
                    "required": ["strategy_id", "strategy_name", "reason", "occurrences"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["total_strategies", "strategy_details"],
        "additionalProperties": False,
    }


def sentence_strategy_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"strategy": {"type": "string", "enum": list(STRATEGY_LABELS)}},
        "required": ["strategy"],
        "additionalProperties": False,
    }


def turn_attitude_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"attitude": {"type": "string", "enum": list(STATES)}, "evidence": _str(EVIDENCE_CHARS)},
        "required": ["attitude", "evidence"],
        "additionalProperties": False,
    }


# --- rendering ----------------------------------------------------------------------------------


def render_history(record: DialogueRecord, agent: str = "Assistant", user: str = "User") -> str:
    """Turns grouped into numbered rounds; round k holds the agent turn(s) before user turn k and user turn k."""
    lines, k, open_round = [], 0, False
    for t in record.turns:
        if not open_round:
            k += 1
            lines.append(f"Round {k}:")
            open_round = True
        lines.append(f"  {agent if t.role == 'agent' else user}: {t.text}")
        if t.role == "user":
            open_round = False
    return "\n".join(lines)


def render_agent_turns(record: DialogueRecord) -> str:
    """The history with numbered turns, as the strategy prompt's occurrences refer to them."""
    lines, k = [], 0
    for t in record.turns:
        if t.role == "agent":
            k += 1
            lines.append(f"Turn {k} Assistant: {t.text}")
        else:
            lines.append(f"        User: {t.text}")
    return "\n".join(lines)
