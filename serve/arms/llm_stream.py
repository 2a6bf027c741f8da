"""Token streaming and prompt pre-filling on the embedded llama.cpp runtime, for the pipeline arm.

The text core's backend interface returns whole completions, which is all
self-play needs; a call needs the reply as it is generated, so its first
clause can be voiced while the rest is still being written. llama.cpp's
server streams through a callback whose return value stops the generation, so
a reply dropped by a barge-in stops costing CPU at the next token.

Each call holds one llama.cpp slot (``id_slot``) for its whole length: a slot
keeps the tokens of the last prompt it served, and a call's next prompt is its
previous one plus the reply and the caller's new line, so only those new
tokens are evaluated, and no other call can evict them. A slot's cache is not
shared with other slots, so ``warm`` evaluates the agent's prompt header once
on every slot of the pool before the first call, and a new call starts from
it. ``prefill`` evaluates a prompt without generating (its cache is what the
next request on the slot starts from); the arm sends the caller's words there
while the caller is still speaking.

Backends other than the embedded one have no stream here: ``stream`` then
yields the whole completion as one piece.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from mads_text.llm import GenParams, LLMBackend, LLMError
from mads_text.llm.base import Prompt


@dataclass
class Piece:
    text: str
    done: bool = False
    finish_reason: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)  # usage and llama.cpp timings, on the last piece


class StreamingLLM:
    def __init__(self, backend: LLMBackend, pool: int = 4):
        self.backend = backend
        inner = backend.unwrap() if hasattr(backend, "unwrap") else backend
        # the streaming call needs the runtime's server and its request format, which the backend keeps to itself
        self._server_of = getattr(inner, "_get_server", None)
        self._body_of = getattr(inner, "_request", None)
        slots = int(getattr(inner, "slots", 0) or getattr(inner, "concurrency", 0) or 0)
        self.pool = list(range(min(pool, slots))) if self.streams else []
        self._free = collections.deque(self.pool)

    @property
    def streams(self) -> bool:
        return self._server_of is not None and self._body_of is not None

    def acquire(self) -> int | None:
        """A slot for a new call; None when every slot of the pool is held (llama.cpp then picks one itself)."""
        return self._free.popleft() if self._free else None

    def release(self, slot: int | None) -> None:
        if slot is not None and slot in self.pool and slot not in self._free:
            self._free.append(slot)

    async def warm(self, prompt: Prompt) -> None:
        """Evaluate ``prompt`` on every slot of the pool, so every call starts with it cached."""
        await asyncio.gather(*(self.prefill(prompt, slot) for slot in self.pool))

    def _body(self, prompt: Prompt, params: GenParams, slot: int | None) -> dict[str, Any]:
        body = dict(self._body_of(prompt, params))
        body["cache_prompt"] = True
        if slot is not None:
            body["id_slot"] = slot
        return body

    async def prefill(self, prompt: str, slot: int | None) -> None:
        if not self.streams or not isinstance(prompt, str):
            return
        body = self._body(prompt, GenParams(max_tokens=0, temperature=0.0), slot)
        await asyncio.to_thread(self._server_of().handle_completions, body)

    async def stream(self, prompt: Prompt, params: GenParams, slot: int | None = None) -> AsyncIterator[Piece]:
        if not self.streams or not isinstance(prompt, str):
            c = await self.backend.complete(prompt, params)
            yield Piece(c.text, True, c.finish_reason, {"prompt_tokens": c.prompt_tokens, "cached_tokens": c.cached_tokens,
                                                        "completion_tokens": c.completion_tokens})  # fmt: skip
            return
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        body = {**self._body(prompt, params, slot), "stream": True}

        def on_chunk(chunk: dict[str, Any]) -> bool:
            loop.call_soon_threadsafe(q.put_nowait, chunk)
            return stop.is_set()  # True stops the generation

        def run() -> None:
            try:
                self._server_of().handle_completions(body, on_chunk)
            except Exception as e:  # noqa: BLE001 - reaches the consumer below
                loop.call_soon_threadsafe(q.put_nowait, LLMError(f"llama.cpp stream failed: {e}"))
            finally:
                loop.call_soon_threadsafe(q.put_nowait, None)

        worker = loop.run_in_executor(None, run)
        try:
            while True:
                chunk = await q.get()
                if chunk is None:
                    yield Piece("", True)
                    return
                if isinstance(chunk, Exception):
                    raise chunk
                if "choices" not in chunk:
                    raise LLMError(f"llama.cpp returned an error: {chunk.get('error', chunk)}")
                ch = chunk["choices"][0]
                if ch.get("finish_reason"):
                    yield Piece(ch.get("text") or "", True, ch["finish_reason"], _stats(chunk))
                    return
                if ch.get("text"):
                    yield Piece(ch["text"])
        finally:
            stop.set()  # a consumer that left (barge-in, hang-up) stops the generation at its next token
            worker.add_done_callback(lambda f: f.exception())


def _stats(chunk: dict[str, Any]) -> dict[str, Any]:
    usage, timings = chunk.get("usage") or {}, chunk.get("timings") or {}
    return {
        "prompt_tokens": usage.get("prompt_tokens"),
        "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "prompt_new_tokens": timings.get("prompt_n"),
        "prompt_ms": timings.get("prompt_ms"),
        "draft_tokens": timings.get("draft_n"),
        "draft_accepted": timings.get("draft_n_accepted"),
    }
