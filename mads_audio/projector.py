"""Frame stacking + MLP projector from Whisper hidden states into the LLM's embedding space.

Whisper's encoder emits 50 frames per second; stacking ``stack`` neighbours
(8 by default, as in Ultravox) gives 6.25 audio tokens per second, so a
5-second customer turn costs the LLM about 32 positions. The MLP is a SwiGLU
block between two norms; the output norm's gain starts at the RMS of the LLM's
own token embeddings so that, before any training, audio tokens already sit at
the scale the LLM expects (an untrained projector is then a fair baseline).

With ``ctc_classes`` > 0 the projector also carries a CTC head: a linear map from
its output to a sub-vocabulary of LLM tokens plus a blank (the last class). The
alignment stage trains it against transcripts without running the LLM at all;
``SpeechLLM`` then feeds the LLM posterior-weighted mixes of its own token
embeddings for the frames that are not blank.
"""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, init: float = 1.0, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), float(init)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Projector(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, stack: int = 8, hidden: int = 1024, out_rms: float = 1.0,
                 ctc_classes: int = 0):
        super().__init__()
        self.in_dim, self.out_dim, self.stack, self.hidden = in_dim, out_dim, stack, hidden
        self.norm_in = RMSNorm(in_dim * stack)
        self.up = nn.Linear(in_dim * stack, 2 * hidden)
        self.down = nn.Linear(hidden, out_dim)
        self.norm_out = RMSNorm(out_dim, init=out_rms)
        self.ctc = nn.Linear(out_dim, ctc_classes + 1) if ctc_classes else None

    def ctc_logits(self, y: torch.Tensor) -> torch.Tensor:
        """Projector outputs (n, out_dim) -> CTC logits (n, classes + 1); the blank is the last class."""
        if self.ctc is None:
            raise ValueError("this projector has no CTC head")
        return self.ctc(y.to(self.ctc.weight.dtype))

    def stack_frames(self, h: torch.Tensor) -> torch.Tensor:
        """(T, d) -> (ceil(T / stack), d * stack), zero-padding the last group."""
        t, d = h.shape
        pad = (-t) % self.stack
        if pad:
            h = torch.cat([h, h.new_zeros(pad, d)])
        return h.reshape(-1, d * self.stack)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Stacked frames (..., d * stack) -> LLM embeddings (..., out_dim)."""
        a, g = self.up(self.norm_in(h)).chunk(2, dim=-1)
        return self.norm_out(self.down(nn.functional.silu(g) * a))

    def embed(self, hidden: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        """Encoder output (B, T, d) with valid lengths -> one (n_i, out_dim) tensor per clip."""
        p = self.up.weight
        out = []
        for i, n in enumerate(lengths):
            x = self.stack_frames(hidden[i, : max(1, n)].to(p.device, p.dtype))
            out.append(self(x))
        return out

    def n_tokens(self, frames: int) -> int:
        return max(1, -(-frames // self.stack))
