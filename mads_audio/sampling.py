"""Token-by-token decoding of a reply once the prompt is embedded: the sampler and the streaming loop.

The prompt reaches the LLM as embeddings (text tokens with audio frames spliced
in), so ``transformers``' ``generate`` cannot be used as is; this loop feeds the
embedded prompt once, then one token id at a time through the KV cache, and
yields every token as soon as it exists, which is what lets the server start
speaking before the reply is finished.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class TokenEvent:
    text: str
    token: int
    index: int
    elapsed_s: float
    prompt_tokens: int
    done: bool = False
    finish: str | None = None


def next_token(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> int:
    """Greedy when ``temperature`` is 0, else a draw from the tempered distribution cut to its top-p mass."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, -1)
    if top_p < 1.0:
        sp, si = probs.sort(descending=True)
        # keep a token while the mass before it is under top_p, so the most likely one always stays
        keep = sp.cumsum(0) - sp < top_p
        probs = torch.zeros_like(probs).scatter(0, si[keep], sp[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=gen))


@torch.no_grad()
def decode(
    causal,
    tokenizer,
    prompt: torch.Tensor,
    eos_id: int,
    *,
    max_new_tokens: int = 60,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    t0: float | None = None,
) -> Iterator[TokenEvent]:
    """Reply events from the embedded prompt (1, L, D); the last one has ``done=True``.

    ``t0`` is when the caller started (before encoding the audio), so ``elapsed_s``
    of the first event is the real time to first token.
    """
    from transformers import DynamicCache

    t0 = time.perf_counter() if t0 is None else t0
    gen = torch.Generator(device=prompt.device)
    if seed is not None:
        gen.manual_seed(seed)
    cache = DynamicCache()
    # the cache object is updated in place; newer transformers name the argument ``cache``
    ckw = "cache" if "cache" in inspect.signature(causal.forward).parameters else "past_key_values"
    out = causal(inputs_embeds=prompt, use_cache=True, logits_to_keep=1, **{ckw: cache})
    ids: list[int] = []
    shown = ""
    n_prompt = prompt.shape[1]
    for i in range(max_new_tokens):
        nxt = next_token(out.logits[0, -1].float(), temperature, top_p, gen)
        if nxt == eos_id:
            yield TokenEvent("", nxt, i, time.perf_counter() - t0, n_prompt, done=True, finish="stop")
            return
        ids.append(nxt)
        # decode the whole reply each time: a token's text can depend on its neighbours (spaces, merges)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        # hold back a piece that ends inside a multi-byte character
        delta = "" if text.endswith("\ufffd") else text[len(shown):]
        if delta:
            shown = text
        yield TokenEvent(delta, nxt, i, time.perf_counter() - t0, n_prompt)
        out = causal(input_ids=torch.tensor([[nxt]], device=prompt.device), use_cache=True, **{ckw: cache})
    yield TokenEvent("", -1, max_new_tokens, time.perf_counter() - t0, n_prompt, done=True, finish="length")
