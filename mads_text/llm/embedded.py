"""Embedded backend: a GGUF model served in-process by llama.cpp (xllamacpp).

The server's slots decode concurrent requests in one batch, so dialogues in flight
share the forward passes. There are ``cache_slots`` slots per request in flight: each
slot keeps the prompt it last served, and a self-play call alternates between two
prompts (the agent's and the customer's transcript) and the decision's question, so
one slot each lets every turn reuse its prompt prefix instead of evaluating it again. Calls block inside C++ with the
GIL released; we run each on a worker thread and cap them at the slot count.

``speculative`` (or ``MADS_LLM_SPECULATIVE``) turns on llama.cpp's n-gram speculative decoding: tokens are drafted
from n-grams already in the context and verified in one batch, so replies that repeat the prompt (product facts,
the other speaker's words) decode several tokens per forward pass. It needs no second model and samples from the same
distribution (with sampling the exact text can differ: drafts verified in a batch change the floating-point sums).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from .base import Completion, GenParams, LLMBackend, LLMError, LLMUnavailable, Prompt, as_messages

_SERVERS: dict[tuple, object] = {}
_SERVERS_LOCK = threading.Lock()
SPECULATIVE = ("ngram-simple", "ngram-mod", "ngram-map-k", "ngram-map-k4v", "ngram-cache")


def _env_int(name: str) -> int | None:
    """A whole-number setting from the environment (unset or empty: None), or a clear error naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise LLMUnavailable(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise LLMUnavailable(f"{name} must not be negative, got {value}")
    return value


def _load_server(path: Path, n_parallel: int, n_ctx_per_slot: int, threads: int, speculative: str | None = None):
    key = (str(path), n_parallel, n_ctx_per_slot, threads, speculative)
    with _SERVERS_LOCK:
        if key in _SERVERS:
            return _SERVERS[key]
        try:
            import xllamacpp as xl
        except ImportError as e:  # pragma: no cover - core dependency
            raise LLMUnavailable(f"xllamacpp is not installed: {e}") from e
        p = xl.CommonParams()
        p.model.path = str(path)
        p.n_parallel = n_parallel
        p.n_ctx = n_ctx_per_slot * n_parallel
        p.cpuparams.n_threads = threads
        p.cpuparams_batch.n_threads = threads
        p.warmup = False
        # llama.cpp keeps evicted prompts in host RAM, up to 8 GiB by default: three simulate processes at concurrency 12
        # each reached 8 GiB resident and one was killed on a 24 GiB machine. MADS_LLM_CACHE_RAM_MIB caps it (0: off)
        cache_ram = _env_int("MADS_LLM_CACHE_RAM_MIB")
        if cache_ram is not None:
            p.cache_ram_mib = cache_ram
        if speculative:
            p.speculative.types = [getattr(xl.common_speculative_type, "COMMON_SPECULATIVE_TYPE_" + speculative.upper().replace("-", "_"))]
        # llama.cpp logs every slot event; MADS_LLAMA_LOG=1 brings the log back for debugging
        p.verbosity = 1 if os.environ.get("MADS_LLAMA_LOG") else -1
        try:
            server = xl.Server(p)
        except Exception as e:
            raise LLMUnavailable(f"could not load GGUF model {path}: {e}") from e
        _SERVERS[key] = server
        return server


class EmbeddedBackend(LLMBackend):
    name = "embedded"
    supports_raw = True
    supports_json_schema = True

    def __init__(
        self,
        model: str | None = None,
        n_parallel: int = 4,
        cache_slots: int = 3,
        n_ctx_per_slot: int = 4096,
        threads: int | None = None,
        speculative: str | None = None,
    ):
        from ..common import assets

        speculative = speculative or os.environ.get("MADS_LLM_SPECULATIVE") or None
        if speculative is not None and speculative not in SPECULATIVE:
            raise LLMUnavailable(f"speculative decoding '{speculative}' is not one of {', '.join(SPECULATIVE)}")

        try:
            path = assets.resolve_gguf(model)
        except assets.AssetError as e:
            raise LLMUnavailable(str(e)) from e
        super().__init__(model or assets.DEFAULT_LLM_PRESET)
        self.path = path
        self.concurrency = n_parallel
        self.slots = n_parallel * max(1, cache_slots)
        self.n_ctx_per_slot = n_ctx_per_slot
        # MADS_LLM_THREADS: fewer threads than cores when other work shares the machine (llama.cpp threads
        # spin while they wait for each other, so an oversubscribed machine slows them down many times over)
        self.threads = threads or _env_int("MADS_LLM_THREADS") or max(1, min(os.cpu_count() or 2, 8))
        self.speculative = speculative
        self._server = None
        self._sem: asyncio.Semaphore | None = None
        self._sem_loop = None

    def _get_server(self):
        if self._server is None:
            self._server = _load_server(self.path, self.slots, self.n_ctx_per_slot, self.threads, self.speculative)
        return self._server

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "model": self.model,
            "path": str(self.path),
            "n_parallel": self.concurrency,
            "slots": self.slots,
            "n_ctx_per_slot": self.n_ctx_per_slot,
            "threads": self.threads,
            "speculative": self.speculative,
        }

    def _request(self, prompt: Prompt, params: GenParams) -> dict:
        body: dict = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = int(params.seed) & 0x7FFFFFFF
        if params.dry_multiplier:
            # whole context; stretches up to 4 tokens ("288 RMB per month") may come back, longer ones are penalised
            body.update(dry_multiplier=params.dry_multiplier, dry_allowed_length=4, dry_penalty_last_n=self.n_ctx_per_slot)
        schema = None
        if params.json_schema is not None:
            # llguidance otherwise lets small models pad JSON with newlines until max_tokens
            schema = {"x-guidance": {"whitespace_flexible": False}, **params.json_schema}
        if isinstance(prompt, str):
            body["prompt"] = prompt
            if schema is not None:
                body["json_schema"] = schema
        else:
            body["messages"] = as_messages(prompt)
            if schema is not None:
                body["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
        return body

    def _call(self, prompt: Prompt, params: GenParams) -> Completion:
        server = self._get_server()
        body = self._request(prompt, params)
        t0 = time.perf_counter()
        try:
            if isinstance(prompt, str):
                r = server.handle_completions(body)
            else:
                r = server.handle_chat_completions(body)
        except Exception as e:  # the binding raises plain exceptions for bad requests
            raise LLMError(f"llama.cpp request failed: {e}") from e
        dt = time.perf_counter() - t0
        if not isinstance(r, dict) or "choices" not in r:
            msg = r.get("error", r) if isinstance(r, dict) else r
            raise LLMError(f"llama.cpp returned an error: {msg}")
        ch = r["choices"][0]
        text = ch["text"] if isinstance(prompt, str) else (ch.get("message") or {}).get("content") or ""
        usage = r.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)),
            finish_reason=ch.get("finish_reason"),
            latency_s=dt,
        )

    async def _complete(self, prompt: Prompt, params: GenParams) -> Completion:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem_loop is not loop:  # a semaphore belongs to one event loop
            self._sem, self._sem_loop = asyncio.Semaphore(self.concurrency), loop
        async with self._sem:
            return await asyncio.to_thread(self._call, prompt, params)

    async def check(self) -> None:
        await asyncio.to_thread(self._get_server)
