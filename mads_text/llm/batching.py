"""Micro-batching for backends that generate many prompts in one call (transformers, vLLM).

Requests arriving within ``batch_wait_s`` of each other are handed to
``_generate_batch`` together; each caller awaits its own future.
"""

from __future__ import annotations

import abc
import asyncio

from .base import Completion, GenParams, LLMBackend, LLMError, Prompt


class BatchingBackend(LLMBackend):
    batch_wait_s: float = 0.02

    def __init__(self, model: str, max_batch: int):
        super().__init__(model)
        self.concurrency = max_batch
        self._queue: list[tuple[Prompt, GenParams, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    @abc.abstractmethod
    def _generate_batch(self, items: list[tuple[Prompt, GenParams]]) -> list[Completion]:
        """Blocking; runs on a worker thread."""

    def _batch_key(self, params: GenParams) -> tuple:
        return ()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.batch_wait_s)
        batch, self._queue = self._queue, []
        self._flusher = None
        groups: dict[tuple, list] = {}
        for item in batch:
            groups.setdefault(self._batch_key(item[1]), []).append(item)
        for group in groups.values():
            for start in range(0, len(group), self.concurrency):
                chunk = group[start : start + self.concurrency]
                try:
                    results = await asyncio.to_thread(self._generate_batch, [(p, q) for p, q, _ in chunk])
                except Exception as e:  # noqa: BLE001 - surfaced to every waiter
                    for _, _, fut in chunk:
                        if not fut.done():
                            fut.set_exception(LLMError(f"{self.name} generation failed: {e}"))
                    continue
                for (_, _, fut), r in zip(chunk, results):
                    if not fut.done():
                        fut.set_result(r)

    async def _complete(self, prompt: Prompt, params: GenParams) -> Completion:
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((prompt, params, fut))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())
        return await fut
