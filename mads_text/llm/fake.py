"""A scripted backend for unit tests of control flow (never for end-to-end checks)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .base import Completion, GenParams, LLMBackend, LLMError, Prompt


class ScriptedBackend(LLMBackend):
    """Returns replies in order, or from ``fn(prompt, params)``; an Exception item is raised."""

    name = "scripted"
    supports_json_schema = True

    def __init__(self, replies: Iterable[str | Exception] | Callable[[Prompt, GenParams], str] = (), concurrency: int = 4):
        super().__init__("scripted")
        self.fn = replies if callable(replies) else None
        self.replies = [] if callable(replies) else list(replies)
        self.calls: list[tuple[Prompt, GenParams]] = []
        self.concurrency = concurrency

    async def _complete(self, prompt: Prompt, params: GenParams) -> Completion:
        self.calls.append((prompt, params))
        if self.fn is not None:
            out = self.fn(prompt, params)
        elif self.replies:
            out = self.replies.pop(0)
        else:
            raise LLMError("scripted backend ran out of replies")
        if isinstance(out, Exception):
            raise out
        return Completion(text=out, prompt_tokens=len(str(prompt)) // 4, completion_tokens=max(1, len(out) // 4))
