"""What a speech LLM is made of: the architecture and prompt framing, and the error every part raises.

Kept apart from the model so that reading or writing a checkpoint's config, or
refusing a bad one, never needs torch or the model weights.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SpeechModelError(RuntimeError):
    """A model or checkpoint that cannot be used; the message names the file or part."""


class LoraSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])


class SpeechLLMConfig(BaseModel):
    """Architecture and prompt framing; everything needed to rebuild the model around the trained parts."""

    model_config = ConfigDict(extra="forbid")
    llm: str = Field("smollm2", description="LLM preset (smollm2, qwen1.5b), a .gguf file or a local HF checkpoint folder")
    whisper: str = Field("base", description="Whisper preset (base, tiny.en) or a CTranslate2 folder")
    stack: int = Field(8, ge=1, description="encoder frames stacked per audio token (50 Hz / 8 = 6.25 tokens/s)")
    projector_hidden: int = Field(1024, ge=8)
    system: Literal["short", "full", "none"] = Field(
        "short", description="system prompt: short agent brief, the Dialog Agent's full prompt, or none"
    )
    max_context_turns: int = Field(4, ge=0, description="text turns kept before the audio turn")
    max_audio_s: float = Field(30.0, gt=0, le=30.0)
    lora: LoraSpec | None = None
    audio_tokens: Literal["frames", "ctc"] = Field(
        "frames",
        description="frames: every projected frame is an LLM input (Ultravox); ctc: the projector scores frames "
        "against the LLM's own token embeddings, blank frames are dropped and each kept run becomes the "
        "posterior-weighted mix of those embeddings",
    )
    ctc_vocab: list[int] | None = Field(
        None, description="ctc: the LLM token ids the projector can emit (the alignment stage's transcripts)"
    )

    @model_validator(mode="after")
    def _ctc_needs_vocab(self) -> "SpeechLLMConfig":
        if self.audio_tokens == "ctc" and not self.ctc_vocab:
            raise ValueError("audio_tokens 'ctc' needs ctc_vocab (the token ids the alignment stage trained on)")
        return self
