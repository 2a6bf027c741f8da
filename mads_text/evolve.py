"""Evolution step of the Optimization Agent: reflect on the dialogues and rewrite the Business SOP.

The reflection prompt is the paper's Optimization Agent template (Appendix A.4),
kept verbatim. Its ``{dialog_history}`` is filled with the evaluation feedback DF:
a one-line summary of the iteration, then failed dialogues (and a few successful
ones, which the template asks to learn from) with the customer's profile, the
outcome, the attitude chain and the judge scores. The answer must have the SOP
shape (``Business SOP`` / ``Step N: phase`` / ``Objective`` / ``Strategic Points``
bullets / ``Key Notes``); an answer without it is retried a bounded number of
times, the last try with JSON-constrained decoding where the backend supports it.
When every try fails, the previous prompt is kept and the failure recorded.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from .common.records import Turn
from .llm import GenParams, LLMBackend, LLMError, Message
from .scenario import Scenario

OPTIMIZATION_AGENT_TEMPLATE = """<task_description>
  Based on the conversation history, conduct a deep reflection and optimize the Assistant System Prompt.
</task_description>
<analysis_framework>
  1. Task Achievement Assessment
    - [Success Cases] If expected goals were met, identify key success factors and integrate them into business SOP
    - [Failure Cases] If goals were not achieved, analyze root causes and develop specific improvement measures
  2. Strategy Effect Review
    - Effective Strategies: Which conversation techniques, pacing, and methods produced positive results?
    - Areas for Improvement: What aspects were lacking and how did they manifest?
    - Customer Response: At which points did customers show interest or resistance?
  3. Optimization Action Plan
    - Propose executable improvement solutions for identified issues
    - Consider differentiated handling strategies for various customer types
</analysis_framework>
<output_requirements>
  Based on the above analysis, output a complete Updated Business SOP in the following format:
  Business SOP
  Step 1: {Phase Name}
    Objective: {Specific goal description}
    Strategic Points:
    • {Specific executable strategy 1}
    • {Specific executable strategy 2}
    • ...
    Key Notes: {Critical reminders}
  Step 2: {Phase Name}
  [Continue with similar format...]
</output_requirements>
<constraints>
  - All strategies must be based on background knowledge to ensure information accuracy
  - SOP content should be actionable, avoiding vague descriptions
  - Prioritize retention of verified effective strategies
</constraints>
<reference_information>
  Background
    {background}
  Assistant System Prompt
    {prompt_k}
  Chat History
    {dialog_history}
</reference_information>
<final_instruction>
  Get Started with the analysis and optimization!
</final_instruction>"""

# Appended only to the constrained last try: the same content as JSON, rendered back to the SOP text.
JSON_SUFFIX = (
    "\n\nWrite only the Updated Business SOP, as JSON: "
    '{"steps": [{"phase": ..., "objective": ..., "strategic_points": [...], "key_notes": ...}, ...]} '
    "with 3 to 6 steps."
)

SOP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "steps": {
            "type": "array",
            "minItems": 2,
            "maxItems": 6,
            "items": {
                "type": "object",
                "properties": {
                    "phase": {"type": "string", "minLength": 3, "maxLength": 60},
                    "objective": {"type": "string", "minLength": 10, "maxLength": 200},
                    "strategic_points": {
                        "type": "array", "minItems": 1, "maxItems": 4,
                        "items": {"type": "string", "minLength": 10, "maxLength": 200},
                    },
                    "key_notes": {"type": "string", "minLength": 5, "maxLength": 200},
                },
                "required": ["phase", "objective", "strategic_points", "key_notes"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["steps"],
    "additionalProperties": False,
}


# --- feedback DF -------------------------------------------------------------------------


class DialogueFeedback(BaseModel):
    id: str
    outcome: str
    rounds: int
    customer: str = Field("", description="A short profile line of the User Agent")
    turns: list[Turn]
    attitudes: list[str] | None = Field(None, description="Attitude state per user round (CoA)")
    judge: dict[str, Any] | None = None
    success: bool = False


class Feedback(BaseModel):
    """DF of Algorithm 1: what EVALUATE hands to EVOLUTION."""

    n_dialogues: int
    acceptance_rate: float
    h_avg: float | None = None
    failed: list[DialogueFeedback] = Field(default_factory=list)
    succeeded: list[DialogueFeedback] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Extra observations, e.g. per-cluster traits")


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _judge_line(j: dict[str, Any]) -> str:
    parts = []
    for k, v in j.items():
        if isinstance(v, (bool, int, float)) and k not in ("round", "rounds"):
            parts.append(f"{k.replace('_', ' ')} {str(v).lower() if isinstance(v, bool) else v}")
    return ", ".join(parts)


def render_case(kind: str, n: int, d: DialogueFeedback, turn_chars: int = 280) -> str:
    head = f"[{kind} Case {n}] customer: {d.customer or 'unknown'}; outcome: {d.outcome} after {d.rounds} rounds"
    lines = [head]
    if d.attitudes:
        lines.append("  Attitude chain: " + " -> ".join(d.attitudes))
    if d.judge:
        jl = _judge_line(d.judge)
        if jl:
            lines.append("  Judge scores (0-3): " + jl)
    for t in d.turns:
        lines.append(f"  {'Assistant' if t.role == 'agent' else 'User'}: {_clip(t.text, turn_chars)}")
    return "\n".join(lines)


def render_dialog_history(fb: Feedback, max_chars: int = 7000, max_failed: int = 6, max_success: int = 2) -> str:
    """The ``{dialog_history}`` slot: summary line, failure cases, then success cases, within ``max_chars``."""
    summary = f"Summary: {fb.n_dialogues} simulated calls, acceptance rate {100 * fb.acceptance_rate:.1f}%"
    if fb.h_avg is not None:
        summary += f", average attitude-transition entropy {fb.h_avg:.3f}"
    blocks = [summary + "."] + list(fb.notes)
    used = sum(len(b) + 1 for b in blocks)
    cases = [("Failure", d) for d in fb.failed[:max_failed]] + [("Success", d) for d in fb.succeeded[:max_success]]
    counters = {"Failure": 0, "Success": 0}
    for kind, d in cases:
        counters[kind] += 1
        text = render_case(kind, counters[kind], d)
        if used + len(text) > max_chars:
            text = render_case(kind, counters[kind], d, turn_chars=120)
            if used + len(text) > max_chars:
                continue
        blocks.append(text)
        used += len(text) + 1
    return "\n".join(blocks)


def background_of(scenario: Scenario) -> str:
    a = scenario.agent
    return (
        f"{scenario.description}\n    Product metadata:\n"
        + "\n".join("      " + line for line in scenario.product.metadata.strip().splitlines())
        + f"\n    Caller: {a.name} from {a.company}, outbound phone call."
        + f"\n    Success means the customer commits: {scenario.acceptance_criteria}."
    )


def reflection_prompt(prompt_k: str, fb: Feedback, scenario: Scenario, history_chars: int = 7000) -> str:
    # plain replacement: the template's own braces ({Phase Name}, ...) are part of the text
    return (
        OPTIMIZATION_AGENT_TEMPLATE.replace("{background}", background_of(scenario))
        .replace("{prompt_k}", prompt_k.strip())
        .replace("{dialog_history}", render_dialog_history(fb, history_chars))
    )


# --- SOP shape ------------------------------------------------------------------------------

STEP_RE = re.compile(r"^\s*(?:[#*>\-\s]*)\s*Step\s*(\d+)\s*[:：.\-–]\s*(.*)$", re.IGNORECASE | re.MULTILINE)
HEADER_RE = re.compile(r"^[#*\s>]*(?:updated\s+)?business\s+sop\b.*$", re.IGNORECASE | re.MULTILINE)
BULLET_RE = re.compile(r"^\s*(?:[•\-*]|\d+[.)])\s+\S", re.MULTILINE)


def _strip_markdown(text: str) -> str:
    text = re.sub(r"```[a-zA-Z]*", "", text)
    text = text.replace("**", "").replace("__", "")
    text = re.sub(r"^\s*#{1,6}\s*", "", text, flags=re.MULTILINE)
    return text.strip()


def extract_sop(text: str, truncated: bool = False) -> tuple[str | None, list[str]]:
    """The Business SOP part of an answer, normalised, or None with the reasons it is not one.

    A truncated answer (token limit) keeps its complete steps only.
    """
    body = _strip_markdown(text)
    m = HEADER_RE.search(body)
    if m:
        body = body[m.end():]
    else:
        s = STEP_RE.search(body)
        if s is None:
            return None, ["no 'Business SOP' header and no 'Step N:' lines"]
        body = body[s.start():]
    steps = list(STEP_RE.finditer(body))
    if truncated and len(steps) > 2:
        body = body[: steps[-1].start()]  # the last step may be cut mid-way
        steps = steps[:-1]
    body = body.strip()
    # everything after the SOP (closing remarks, tags) is not part of it
    tail = re.search(r"^\s*(?:</|Note:|This (?:updated )?SOP|In summary|Summary:)", body, re.MULTILINE | re.IGNORECASE)
    if tail and tail.start() > (steps[-1].start() if steps else 0):
        body = body[: tail.start()].strip()
    reasons = []
    if len(steps) < 2:
        reasons.append(f"{len(steps)} 'Step N:' line(s), need at least 2")
    if len(re.findall(r"\bObjective\b", body, re.IGNORECASE)) < 2:
        reasons.append("fewer than 2 'Objective' lines")
    if not re.search(r"Strategic\s+Points", body, re.IGNORECASE):
        reasons.append("no 'Strategic Points'")
    if len(BULLET_RE.findall(body)) < 2:
        reasons.append("fewer than 2 bullet points")
    if "{Phase Name}" in body or "{Specific" in body:
        reasons.append("template placeholders copied")
    if len(body) < 150:
        reasons.append("too short")
    if reasons:
        return None, reasons
    body = re.sub(r"\n{3,}", "\n\n", body)
    return "Business SOP\n" + body, []


def render_sop_json(obj: dict[str, Any]) -> str:
    lines = ["Business SOP"]
    for i, s in enumerate(obj["steps"], 1):
        lines.append(f"Step {i}: {s['phase'].strip()}")
        lines.append(f"  Objective: {s['objective'].strip()}")
        lines.append("  Strategic Points:")
        lines += [f"  • {p.strip()}" for p in s["strategic_points"]]
        lines.append(f"  Key Notes: {s['key_notes'].strip()}")
    return "\n".join(lines)


# --- the step ------------------------------------------------------------------------------


class Attempt(BaseModel):
    kind: Literal["text", "json"]
    raw: str
    valid: bool
    reasons: list[str] = Field(default_factory=list)
    finish_reason: str | None = None
    completion_tokens: int = 0
    latency_s: float = 0.0


class EvolutionResult(BaseModel):
    prompt: str = Field(..., description="The new prompt_k, or the previous one when every try failed")
    ok: bool
    previous: str
    attempts: list[Attempt]
    reflection_prompt: str
    model: str = ""


async def evolve(
    prompt_k: str,
    feedback: Feedback,
    scenario: Scenario,
    backend: LLMBackend,
    *,
    attempts: int = 3,
    params: GenParams | None = None,
    structured_fallback: bool = True,
    history_chars: int = 7000,
    seed: int = 0,
) -> EvolutionResult:
    """EVOLUTION(P, DF): the updated Business SOP, or P itself after ``attempts`` failed tries."""
    params = params or GenParams(temperature=0.7, max_tokens=1200)
    text = reflection_prompt(prompt_k, feedback, scenario, history_chars)
    tries: list[Attempt] = []
    use_json = structured_fallback and backend.supports_json_schema
    for i in range(max(1, attempts)):
        as_json = use_json and i == attempts - 1 and attempts > 1
        p = params.model_copy(update={"seed": seed * 1000 + i})
        if as_json:
            p = p.model_copy(update={"json_schema": SOP_SCHEMA, "temperature": min(p.temperature, 0.3)})
        try:
            c = await backend.complete([Message(role="user", content=text + (JSON_SUFFIX if as_json else ""))], p)
        except LLMError as e:
            tries.append(Attempt(kind="json" if as_json else "text", raw="", valid=False, reasons=[f"LLM error: {e}"]))
            continue
        if as_json:
            try:
                sop, reasons = extract_sop(render_sop_json(json.loads(c.text)))
            except (ValueError, KeyError, TypeError) as e:
                sop, reasons = None, [f"invalid JSON: {e}"]
        else:
            sop, reasons = extract_sop(c.text, truncated=c.finish_reason == "length")
        if sop is not None and _same(sop, prompt_k):
            sop, reasons = None, ["identical to the previous prompt"]
        tries.append(Attempt(kind="json" if as_json else "text", raw=c.text, valid=sop is not None, reasons=reasons,
                             finish_reason=c.finish_reason, completion_tokens=c.completion_tokens,
                             latency_s=c.latency_s))
        if sop is not None:
            return EvolutionResult(prompt=sop, ok=True, previous=prompt_k, attempts=tries, reflection_prompt=text,
                                   model=backend.model)
    return EvolutionResult(prompt=prompt_k, ok=False, previous=prompt_k, attempts=tries, reflection_prompt=text,
                           model=backend.model)


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).lower() == " ".join(b.split()).lower()


def pick_cases(items: list[DialogueFeedback], k: int, seed: int) -> list[DialogueFeedback]:
    """Up to ``k`` cases, spread over different customers, in a seeded order."""
    rng = random.Random(seed)
    pool = sorted(items, key=lambda d: d.id)
    rng.shuffle(pool)
    seen: set[str] = set()
    first, rest = [], []
    for d in pool:
        (rest if d.customer in seen else first).append(d)
        seen.add(d.customer)
    return (first + rest)[:k]
