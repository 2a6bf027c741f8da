"""What the LLM labelers (and the judge) do with an answer: the pydantic answer models, JSON extraction and
validation, the ask-validate-repair loop, and the small async helpers they share."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from ...attitude import normalize_state
from ...llm import GenParams, LLMBackend, LLMError, LLMUnavailable, Message
from ...strategies import normalize_strategy

T = TypeVar("T")
R = TypeVar("R")

# --- answer models ------------------------------------------------------------------------------


class CoARound(BaseModel):
    round: int | None = None
    attitude: str
    evidence: str = ""


class CoAAnswer(BaseModel):
    rounds: list[CoARound]
    accepted: bool
    accept_evidence: str = ""


class Occurrence(BaseModel):
    turn: int | str | None = None
    original_text: str = ""
    explanation: str = ""


class StrategyDetail(BaseModel):
    strategy_id: str
    strategy_name: str = ""
    reason: str = ""
    occurrences: list[Occurrence] = Field(default_factory=list)


class P4GAnswer(BaseModel):
    total_strategies: list[str] = Field(default_factory=list)
    strategy_details: list[StrategyDetail] = Field(default_factory=list)


# --- parsing ----------------------------------------------------------------------------------

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def extract_json(text: str) -> Any:
    """The first JSON object in ``text`` (code fences and chatter around it are ignored)."""
    s = _FENCE.sub("", text.strip())
    start = s.find("{")
    if start < 0:
        raise ValueError("no JSON object in the answer")
    obj, _ = json.JSONDecoder().raw_decode(s[start:])
    return obj


def parse_coa(text: str, n_rounds: int) -> CoAAnswer:
    """Validate a CoA answer: exactly ``n_rounds`` rounds, every attitude one of the 16 states."""
    try:
        ans = CoAAnswer.model_validate(extract_json(text))
    except (ValueError, ValidationError) as e:
        raise ValueError(f"not the expected JSON object: {_short(e)}") from e
    if len(ans.rounds) != n_rounds:
        raise ValueError(f"'rounds' has {len(ans.rounds)} entries, the conversation has {n_rounds} user rounds")
    for r in ans.rounds:
        r.attitude = normalize_state(r.attitude)
    return ans


def parse_p4g(text: str) -> P4GAnswer:
    try:
        ans = P4GAnswer.model_validate(extract_json(text))
    except (ValueError, ValidationError) as e:
        raise ValueError(f"not the expected JSON object: {_short(e)}") from e
    ans.total_strategies = [normalize_strategy(s) for s in ans.total_strategies]
    for d in ans.strategy_details:
        d.strategy_id = normalize_strategy(d.strategy_id)
    return ans


def _short(e: Exception, n: int = 300) -> str:
    s = str(e).replace("\n", " ")
    return s if len(s) <= n else s[:n] + "..."


# --- asking -------------------------------------------------------------------------------------


async def _ask_json(
    backend: LLMBackend,
    prompt: str,
    schema: dict,
    parse,
    params: GenParams,
    max_attempts: int,
) -> tuple[Any, int]:
    """Ask, validate, and on a bad answer ask again with the error shown; returns (parsed, attempts)."""
    use_schema = getattr(backend, "supports_json_schema", False)
    messages = [Message(role="user", content=prompt)]
    last = "no answer"
    for attempt in range(1, max_attempts + 1):
        p = params.model_copy(update={
            "json_schema": schema if use_schema else None,
            "seed": None if params.seed is None else params.seed + attempt - 1,
            # a deterministic retry would repeat the same mistake
            "temperature": params.temperature if attempt == 1 else max(params.temperature, 0.4),
        })
        try:
            c = await backend.complete(messages, p)
        except LLMUnavailable:
            raise
        except LLMError as e:
            last = f"backend error: {e}"
            continue
        try:
            return parse(c.text), attempt
        except ValueError as e:
            last = str(e)
            messages = [
                Message(role="user", content=prompt),
                Message(role="assistant", content=c.text[:4000]),
                Message(role="user", content=f"That answer is invalid: {last}. Reply again with the corrected JSON object only."),
            ]
    raise ValueError(f"no valid answer after {max_attempts} attempts: {last}")


def _run(coro):
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    raise RuntimeError("call the async method (alabel / alabel_dialogues) from inside an event loop")


async def gather_limited(fn: Callable[[T], Awaitable[R]], items: Iterable[T], limit: int) -> list[R]:
    """``fn`` over ``items`` with at most ``limit`` calls running at once; results in the order of ``items``."""
    sem = asyncio.Semaphore(limit)

    async def one(item: T) -> R:
        async with sem:
            return await fn(item)

    return list(await asyncio.gather(*(one(it) for it in items)))
