"""The one small LLM interface every stage talks to.

A request is either chat messages or a raw prompt (transcript mode); the answer
is text plus usage. Backends implement ``_complete``; caching and retries wrap
any backend (see ``cache.py`` and ``retry.py``).
"""

from __future__ import annotations

import abc
import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, Field


class LLMError(RuntimeError):
    """A request that failed for good (after retries), with a readable reason."""


class LLMUnavailable(LLMError):
    """The backend cannot be reached or loaded at all; retrying will not help."""


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class GenParams(BaseModel):
    temperature: float = 0.7
    max_tokens: int = 128
    top_p: float = 1.0
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    json_schema: dict[str, Any] | None = Field(
        None, description="Constrain the output to this JSON schema where the backend can"
    )
    dry_multiplier: float = Field(
        0.0, ge=0.0, description="llama.cpp's DRY penalty on repeating any stretch of the context (embedded backend; "
        "0 = off, others ignore it)"
    )


class Completion(BaseModel):
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    finish_reason: str | None = None
    latency_s: float = 0.0
    cached: bool = False


Prompt = str | list[Message]


def as_messages(prompt: Prompt) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [m.model_dump() for m in prompt]


def request_key(backend: str, model: str, prompt: Prompt, params: GenParams) -> str:
    """Stable key of everything that determines an answer."""
    body = {
        "backend": backend,
        "model": model,
        "prompt": prompt if isinstance(prompt, str) else as_messages(prompt),
        "params": params.model_dump(),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class LLMBackend(abc.ABC):
    """Async text generation. Implementations must be safe to call concurrently."""

    name: str = "base"
    #: raw-prompt completion (transcript mode) is available
    supports_raw: bool = True
    #: JSON-schema constrained decoding is available
    supports_json_schema: bool = False
    #: requests the backend serves at once (slots, batch size); the orchestrator sizes its pool by it
    concurrency: int = 1

    def __init__(self, model: str):
        self.model = model

    async def complete(self, prompt: Prompt, params: GenParams | None = None) -> Completion:
        return await self._complete(prompt, params or GenParams())

    @abc.abstractmethod
    async def _complete(self, prompt: Prompt, params: GenParams) -> Completion: ...

    async def check(self) -> None:
        """Fail fast with LLMUnavailable when the backend cannot answer at all."""
        await self._complete("Hi", GenParams(max_tokens=1, temperature=0.0))

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model}

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass
