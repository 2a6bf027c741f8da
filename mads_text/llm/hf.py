"""Local checkpoints through ``transformers`` (a folder, or a GGUF file dequantized on load).

Requests that arrive together are generated as one left-padded batch, which is
what makes this backend usable for self-play on a GPU; on a CPU it mainly
serves to run checkpoints fine-tuned by ``mads train sft``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from .base import Completion, GenParams, LLMUnavailable, Prompt, as_messages
from .batching import BatchingBackend


def load_causal_lm(model: str, device: str | None = None, dtype=None):
    """Load (tokenizer, model) from a folder or a .gguf file / preset name."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise LLMUnavailable(f"the transformers backend needs the ml extra: {e}") from e
    from ..common import assets

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    p = Path(model).expanduser()
    kwargs: dict = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        if p.is_dir():
            tok = AutoTokenizer.from_pretrained(p, local_files_only=True)
            lm = AutoModelForCausalLM.from_pretrained(p, local_files_only=True, **kwargs)
        else:
            gguf = assets.resolve_gguf(model)
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
            lm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True, **kwargs)
    except (OSError, ValueError, assets.AssetError) as e:
        raise LLMUnavailable(f"cannot load checkpoint '{model}': {e}") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    lm.to(device).eval()
    return tok, lm


class TransformersBackend(BatchingBackend):
    name = "transformers"
    supports_json_schema = False

    def __init__(self, model: str, device: str | None = None, max_batch: int = 8):
        super().__init__(model, max_batch)
        self.device = device
        self._tok = None
        self._lm = None
        self._lock = threading.Lock()

    def _ensure(self):
        with self._lock:
            if self._lm is None:
                self._tok, self._lm = load_causal_lm(self.model, self.device)
        return self._tok, self._lm

    def _render(self, prompt: Prompt) -> str:
        tok, _ = self._ensure()
        if isinstance(prompt, str):
            return prompt
        if tok.chat_template:
            return tok.apply_chat_template(as_messages(prompt), tokenize=False, add_generation_prompt=True)
        return "\n".join(f"{m['role']}: {m['content']}" for m in as_messages(prompt)) + "\nassistant:"

    def _generate_batch(self, items: list[tuple[Prompt, GenParams]]) -> list[Completion]:
        import torch

        tok, lm = self._ensure()
        texts = [self._render(p) for p, _ in items]
        params = items[0][1]
        enc = tok(texts, return_tensors="pt", padding=True).to(lm.device)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = lm.generate(
                **enc,
                max_new_tokens=params.max_tokens,
                do_sample=params.temperature > 0,
                temperature=max(params.temperature, 1e-5) if params.temperature > 0 else None,
                top_p=params.top_p if params.temperature > 0 else None,
                pad_token_id=tok.pad_token_id,
            )
        dt = time.perf_counter() - t0
        results = []
        n_in = enc["input_ids"].shape[1]
        for i, (_, p) in enumerate(items):
            gen_ids = out[i, n_in:]
            text = tok.decode(gen_ids, skip_special_tokens=True)
            finish = "length"
            for s in p.stop:
                j = text.find(s)
                if j >= 0:
                    text, finish = text[:j], "stop"
            n_gen = int((gen_ids != tok.pad_token_id).sum())
            if tok.eos_token_id is not None and (gen_ids == tok.eos_token_id).any():
                finish = "stop"
            n_prompt = int(enc["attention_mask"][i].sum())
            results.append(Completion(text=text, prompt_tokens=n_prompt, completion_tokens=n_gen,
                                      finish_reason=finish, latency_s=dt))
        return results

    def _batch_key(self, params: GenParams) -> tuple:
        # generate() takes one sampling setting per call; stop strings are applied per item
        return (params.max_tokens, params.temperature, params.top_p)

    async def _complete(self, prompt: Prompt, params: GenParams) -> Completion:
        await asyncio.to_thread(self._ensure)
        return await super()._complete(prompt, params)

    async def check(self) -> None:
        await asyncio.to_thread(self._ensure)
