"""In-process vLLM engine for batch generation on a GPU (optional ``vllm`` extra).

All dialogues in flight submit their next turn; the micro-batcher hands them to
``LLM.generate``/``LLM.chat`` together so vLLM's continuous batching and prefix
cache (the shared persona/product headers) do the work.
"""

from __future__ import annotations

import threading
import time

from .base import Completion, GenParams, LLMUnavailable, Prompt, as_messages
from .batching import BatchingBackend


class VLLMBackend(BatchingBackend):
    name = "vllm"
    supports_json_schema = True
    batch_wait_s = 0.01

    def __init__(self, model: str, max_batch: int = 256, tensor_parallel_size: int = 1, **engine_kwargs):
        super().__init__(model, max_batch)
        self.engine_kwargs = {"enable_prefix_caching": True, "tensor_parallel_size": tensor_parallel_size, **engine_kwargs}
        self._llm = None
        self._lock = threading.Lock()

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, **{k: v for k, v in self.engine_kwargs.items()}}

    def _ensure(self):
        with self._lock:
            if self._llm is None:
                try:
                    from vllm import LLM
                except ImportError as e:
                    raise LLMUnavailable("the vllm backend needs `pip install -e '.[vllm]'` on a GPU machine") from e
                self._llm = LLM(model=self.model, **self.engine_kwargs)
        return self._llm

    @staticmethod
    def _sampling(params: GenParams):
        from vllm import SamplingParams

        kw = dict(
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop=params.stop or None,
            seed=params.seed,
        )
        if params.json_schema is not None:
            try:  # vLLM >= 0.10
                from vllm.sampling_params import StructuredOutputsParams

                kw["structured_outputs"] = StructuredOutputsParams(json=params.json_schema)
            except ImportError:
                from vllm.sampling_params import GuidedDecodingParams

                kw["guided_decoding"] = GuidedDecodingParams(json=params.json_schema)
        return SamplingParams(**kw)

    def _generate_batch(self, items: list[tuple[Prompt, GenParams]]) -> list[Completion]:
        llm = self._ensure()
        raw = [(i, p, q) for i, (p, q) in enumerate(items) if isinstance(p, str)]
        chat = [(i, p, q) for i, (p, q) in enumerate(items) if not isinstance(p, str)]
        out: list[Completion | None] = [None] * len(items)
        t0 = time.perf_counter()
        if raw:
            res = llm.generate([p for _, p, _ in raw], [self._sampling(q) for _, _, q in raw], use_tqdm=False)
            for (i, _, _), r in zip(raw, res):
                out[i] = self._to_completion(r, t0)
        if chat:
            res = llm.chat([as_messages(p) for _, p, _ in chat], [self._sampling(q) for _, _, q in chat], use_tqdm=False)
            for (i, _, _), r in zip(chat, res):
                out[i] = self._to_completion(r, t0)
        return out  # type: ignore[return-value]

    @staticmethod
    def _to_completion(r, t0: float) -> Completion:
        o = r.outputs[0]
        return Completion(
            text=o.text,
            prompt_tokens=len(r.prompt_token_ids or []),
            completion_tokens=len(o.token_ids),
            finish_reason=o.finish_reason,
            latency_s=time.perf_counter() - t0,
        )

    async def check(self) -> None:
        import asyncio

        await asyncio.to_thread(self._ensure)
