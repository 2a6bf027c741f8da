"""Wrappers that apply to any backend: a SQLite request cache and bounded retries."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import threading
from pathlib import Path

from .base import Completion, GenParams, LLMBackend, LLMError, LLMUnavailable, Prompt, request_key

log = logging.getLogger(__name__)


class _Delegating(LLMBackend):
    def __init__(self, inner: LLMBackend):
        self.inner = inner
        self.model = inner.model
        self.name = inner.name
        self.supports_raw = inner.supports_raw
        self.supports_json_schema = inner.supports_json_schema
        self.concurrency = inner.concurrency

    def describe(self) -> dict:
        return self.inner.describe()

    async def check(self) -> None:
        await self.inner.check()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def unwrap(self) -> LLMBackend:
        inner = self.inner
        return inner.unwrap() if isinstance(inner, _Delegating) else inner


class RetryingBackend(_Delegating):
    """Timeouts and transient errors get ``retries`` more tries with jittered exponential backoff.

    ``LLMUnavailable`` (unreachable endpoint, missing model) is not retried beyond
    the first backoff: it will not fix itself within a dialogue.
    """

    def __init__(self, inner: LLMBackend, retries: int = 3, timeout_s: float | None = 300.0, backoff_s: float = 1.0):
        super().__init__(inner)
        self.retries = retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s

    async def _complete(self, prompt: Prompt, params: GenParams) -> Completion:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                coro = self.inner.complete(prompt, params)
                if self.timeout_s:
                    return await asyncio.wait_for(coro, self.timeout_s)
                return await coro
            except asyncio.TimeoutError:
                last = LLMError(f"{self.name} request timed out after {self.timeout_s:.0f} s")
            except LLMUnavailable as e:
                last = e
                if attempt >= 1:
                    break
            except LLMError as e:
                last = e
            if attempt < self.retries:
                delay = self.backoff_s * (2**attempt) * (0.5 + random.random())
                log.warning("LLM request failed (%s); retry %d/%d in %.1fs", last, attempt + 1, self.retries, delay)
                await asyncio.sleep(delay)
        assert last is not None
        if isinstance(last, LLMUnavailable):
            raise last
        raise LLMError(f"{last} (gave up after {self.retries + 1} attempts)") from last


class CachedBackend(_Delegating):
    """Answers keyed on the full request (backend, model, prompt, all params incl. seed).

    Reruns of a seeded run are then free and exact. One SQLite file, WAL mode, so
    several processes can share it.
    """

    def __init__(self, inner: LLMBackend, path: str | Path):
        super().__init__(inner)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def _get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        c = Completion.model_validate(json.loads(row[0]))
        c.cached = True
        return c

    def _put(self, key: str, c: Completion) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions (key, value) VALUES (?, ?)", (key, c.model_dump_json())
            )
            self._db.commit()

    async def _complete(self, prompt: Prompt, params: GenParams) -> Completion:
        key = request_key(self.inner.name, self.inner.model, prompt, params)
        hit = self._get(key)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        c = await self.inner.complete(prompt, params)
        self._put(key, c)
        return c

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()
        await self.inner.aclose()
