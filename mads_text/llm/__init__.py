"""LLM layer: one async interface, several backends, cache and retries around any of them."""

from __future__ import annotations

from pathlib import Path

from .base import Completion, GenParams, LLMBackend, LLMError, LLMUnavailable, Message, Prompt
from .wrappers import CachedBackend, RetryingBackend

BACKENDS = ("embedded", "openai", "vllm", "transformers")

__all__ = [
    "BACKENDS",
    "CachedBackend",
    "Completion",
    "GenParams",
    "LLMBackend",
    "LLMError",
    "LLMUnavailable",
    "Message",
    "Prompt",
    "RetryingBackend",
    "make_backend",
]


def make_backend(
    backend: str = "embedded",
    model: str | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    cache: str | Path | None = None,
    retries: int = 3,
    timeout_s: float | None = -1,
    parallel: int | None = None,
    **kwargs,
) -> LLMBackend:
    """Build a backend by name; wraps it with retries and, when ``cache`` is a path, a request cache."""
    if backend == "embedded":
        from .embedded import EmbeddedBackend

        inner: LLMBackend = EmbeddedBackend(model, n_parallel=parallel or 4, **kwargs)
    elif backend == "openai":
        from .openai_compat import OpenAIBackend

        if not model:
            raise LLMUnavailable("the openai backend needs --model (the served model name)")
        inner = OpenAIBackend(model, base_url=base_url, api_key=api_key, concurrency=parallel or 16, **kwargs)
    elif backend == "vllm":
        from .vllm_backend import VLLMBackend

        if not model:
            raise LLMUnavailable("the vllm backend needs --model (a local checkpoint folder)")
        inner = VLLMBackend(model, max_batch=parallel or 256, **kwargs)
    elif backend == "transformers":
        from .hf import TransformersBackend

        inner = TransformersBackend(model or "smollm2", max_batch=parallel or 8, **kwargs)
    else:
        raise LLMUnavailable(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if timeout_s == -1:
        # an in-process request cannot be cancelled (its thread keeps decoding), so a timeout
        # would only pile retries onto a busy machine; remote endpoints get 5 minutes
        timeout_s = None if backend in ("embedded", "transformers", "vllm") else 300.0
    # the cache sits outside the retries so a cached answer never waits on a backoff
    wrapped: LLMBackend = RetryingBackend(inner, retries=retries, timeout_s=timeout_s)
    if cache:
        wrapped = CachedBackend(wrapped, cache)
    return wrapped
