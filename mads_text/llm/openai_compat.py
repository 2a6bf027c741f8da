"""Any OpenAI-compatible endpoint: vLLM's server, llama.cpp's server, hosted APIs."""

from __future__ import annotations

import os
import time

import httpx

from .base import Completion, GenParams, LLMBackend, LLMError, LLMUnavailable, Prompt, as_messages


class OpenAIBackend(LLMBackend):
    name = "openai"
    supports_json_schema = True

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        concurrency: int = 16,
        use_completions: bool = True,
    ):
        super().__init__(model)
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        # hosted chat-only APIs have no /completions; transcript mode then falls back to chat
        self.supports_raw = use_completions
        self._client: httpx.AsyncClient | None = None

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, "base_url": self.base_url}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=httpx.Timeout(self.timeout_s, connect=10.0),
                headers={"Authorization": f"Bearer {self.api_key}"},
                limits=httpx.Limits(max_connections=self.concurrency),
            )
        return self._client

    async def _complete(self, prompt: Prompt, params: GenParams) -> Completion:
        body: dict = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = params.stop[:4] if "api.openai.com" in self.base_url else params.stop
        if params.seed is not None:
            body["seed"] = params.seed
        raw = isinstance(prompt, str) and self.supports_raw
        if raw:
            path = "/completions"
            body["prompt"] = prompt
            if params.json_schema is not None:
                body["response_format"] = {"type": "json_schema", "json_schema": {"name": "out", "schema": params.json_schema}}
        else:
            path = "/chat/completions"
            body["messages"] = as_messages(prompt)
            if params.json_schema is not None:
                body["response_format"] = {"type": "json_schema", "json_schema": {"name": "out", "schema": params.json_schema}}
        t0 = time.perf_counter()
        try:
            resp = await self._http().post(path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            raise LLMUnavailable(f"cannot reach {self.base_url}: {e.__class__.__name__}: {e}") from e
        except httpx.HTTPError as e:
            raise LLMError(f"request to {self.base_url}{path} failed: {e.__class__.__name__}: {e}") from e
        if resp.status_code in (401, 403, 404):
            raise LLMUnavailable(f"{self.base_url}{path} answered {resp.status_code}: {resp.text[:300]}")
        if resp.status_code >= 400:
            raise LLMError(f"{self.base_url}{path} answered {resp.status_code}: {resp.text[:300]}")
        try:
            r = resp.json()
            ch = r["choices"][0]
            text = ch["text"] if raw else (ch["message"].get("content") or "")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise LLMError(f"unexpected response from {self.base_url}{path}: {resp.text[:300]}") from e
        usage = r.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=ch.get("finish_reason"),
            latency_s=time.perf_counter() - t0,
        )

    async def check(self) -> None:
        try:
            resp = await self._http().get("/models")
        except httpx.HTTPError as e:
            raise LLMUnavailable(f"cannot reach {self.base_url}: {e.__class__.__name__}: {e}") from e
        if resp.status_code in (401, 403):
            raise LLMUnavailable(f"{self.base_url} rejected the API key ({resp.status_code})")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
