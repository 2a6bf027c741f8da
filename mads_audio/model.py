"""The speech LLM: Whisper encoder -> stacked-frame projector -> causal LLM, and its prompt framing.

The dialogue so far stays text; only the customer's latest turn is audio. The
chat template is rendered with a placeholder as the content of that last user
message, the rendered text is cut at the placeholder, both halves are tokenized
and embedded, and the projected audio frames are spliced in between. Nothing is
added to the LLM's vocabulary, so the frozen LLM is exactly the text model.

The other concerns live beside this module: the architecture config
(``config``), turning a preset or GGUF into a loadable LLM (``llm``), decoding
(``sampling``) and the checkpoint folder (``checkpoint``); ``SpeechLLM.save`` and
``SpeechLLM.load`` are kept here as the model's own entry points to the latter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mads_text.common.records import Turn
from mads_text.prompts import CALL_CONNECTED

from . import checkpoint
from .config import LoraSpec, SpeechLLMConfig, SpeechModelError
from .encoder import AudioEncoder, EncoderError
from .llm import default_device, load_llm
from .projector import Projector
from .sampling import TokenEvent, decode

AUDIO_PLACEHOLDER = "<|audio|>"


# --- prompts -----------------------------------------------------------------------


def system_text(mode: str, scenario: str | None) -> str | None:
    """The system prompt of the speech agent for a scenario (None: the template's default)."""
    if mode == "none" or not scenario:
        return None
    from mads_text.scenario import load_scenario

    sc = load_scenario(scenario)
    if mode == "full":
        from mads_text.personas import render_agent_prompt

        return render_agent_prompt(sc)
    a = sc.agent
    return (
        f"You are {a.name} from {a.company}, on an outbound phone call. Your task: {a.meta_instruction}. "
        f"Product: {sc.product.name}. Answer the customer in one or two short spoken sentences."
    )


def chat_messages(context: Sequence[Turn], user_content: str, system: str | None, max_turns: int) -> list[dict]:
    """The Dialog Agent's chat framing: agent turns are the assistant, the customer is the user."""
    msgs: list[dict] = [{"role": "system", "content": system}] if system else []
    kept = list(context)[-max_turns:] if max_turns else []
    if len(kept) == len(context):
        # the full call: the agent spoke first, answering a "call connected" cue
        msgs.append({"role": "user", "content": CALL_CONNECTED})
    elif kept and kept[0].role == "user":
        kept = kept[1:]  # a cut history must not start with two user messages
    if not kept and msgs and msgs[-1]["role"] == "user":
        msgs.pop()
    for t in kept:
        role = "assistant" if t.role == "agent" else "user"
        if msgs and msgs[-1]["role"] == role:
            msgs[-1]["content"] += " " + t.text  # merge consecutive turns of one side
        else:
            msgs.append({"role": role, "content": t.text})
    if msgs and msgs[-1]["role"] == "user":
        msgs[-1]["content"] += " " + user_content
    else:
        msgs.append({"role": "user", "content": user_content})
    return msgs


@dataclass
class PromptParts:
    prefix: list[int]
    suffix: list[int]


@dataclass
class Sample:
    """One training/eval unit before embedding: audio of the user turn plus its text framing."""

    audio: np.ndarray
    context: list[Turn]
    user_text: str = ""
    reply: str = ""
    scenario: str | None = None


def ctc_emitted(best: Sequence[int], blank: int) -> list[int]:
    """Greedy CTC: the frames that emit a class (a run of one class emits once; blanks emit nothing)."""
    return [i for i, b in enumerate(best) if b < blank and (i == 0 or b != best[i - 1])]


def ctc_text(tokenizer, vocab: Sequence[int], best: Sequence[int]) -> str:
    """Greedy CTC decoding: merge repeats, drop blanks (class len(vocab)), map classes to token ids, detokenize."""
    return tokenizer.decode([int(vocab[best[i]]) for i in ctc_emitted(best, len(vocab))]).strip()


# --- the model ----------------------------------------------------------------------


class SpeechLLM(torch.nn.Module):
    """Frozen Whisper encoder, trainable projector, frozen LLM (LoRA adapters in stage 2)."""

    def __init__(
        self,
        config: SpeechLLMConfig | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.config = config or SpeechLLMConfig()
        self.device_name = device or default_device()
        self.llm_dtype = dtype or (torch.bfloat16 if self.device_name.startswith("cuda") else torch.float32)
        try:
            self.encoder = AudioEncoder(self.config.whisper, device=self.device_name)
        except EncoderError as e:
            raise SpeechModelError(f"Whisper '{self.config.whisper}': {e}") from e
        self.llm_path, self.tokenizer, lm = load_llm(self.config.llm, self.device_name, self.llm_dtype)
        self.lm = lm
        self.projector = self.fresh_projector(seed)
        if self.config.lora is not None:
            self.add_lora(self.config.lora)
        self._prompt_cache: dict[tuple, PromptParts] = {}

    # parts -------------------------------------------------------------------------

    def fresh_projector(self, seed: int = 0) -> Projector:
        """A projector as it is before training (seeded; the caller's RNG is left alone)."""
        emb = self.lm.get_input_embeddings().weight
        out_rms = float(emb.float().pow(2).mean().sqrt())
        vocab = self.config.ctc_vocab if self.config.audio_tokens == "ctc" else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            proj = Projector(self.encoder.dim, emb.shape[1], self.config.stack, self.config.projector_hidden, out_rms,
                             ctc_classes=len(vocab or []))
        if proj.ctc is not None:
            # each class starts as its token's direction in the LLM's embedding space: a frame projected near a
            # token's embedding scores that token (cosine x 5); blank starts as a constant
            with torch.no_grad():
                e = emb[torch.tensor(vocab)].float()
                e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-6)
                proj.ctc.weight.zero_()
                proj.ctc.weight[:-1] = 5.0 * e / (out_rms * emb.shape[1] ** 0.5)
                proj.ctc.bias.zero_()
                proj.ctc.bias[-1] = 1.0
        return proj.to(self.device_name)

    def add_lora(self, spec: LoraSpec, adapter_dir: Path | None = None) -> None:
        """Wrap the LLM with LoRA adapters: fresh ones from ``spec``, or trained ones from ``adapter_dir``."""
        from peft import LoraConfig, PeftModel, get_peft_model

        if adapter_dir is not None:
            self.lm = PeftModel.from_pretrained(self.lm, str(adapter_dir), is_trainable=False)
        else:
            cfg = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                             target_modules=spec.target_modules, task_type="CAUSAL_LM")
            self.lm = get_peft_model(self.lm, cfg)
        self.lm.eval()  # new LoRA dropout layers start in training mode; training calls .train() itself

    @property
    def causal(self):
        """The causal LM with LoRA layers (if any) active."""
        return self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm

    def teacher_context(self):
        """Context in which the LLM is the frozen text model (LoRA off), for distillation targets."""
        import contextlib

        return self.lm.disable_adapter() if hasattr(self.lm, "disable_adapter") else contextlib.nullcontext()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = list(self.projector.parameters())
        if self.config.lora is not None:
            params += [p for n, p in self.lm.named_parameters() if "lora_" in n]
        return params

    def set_trainable(self, projector: bool = True, lora: bool = True) -> None:
        self.projector.requires_grad_(projector)
        for n, p in self.lm.named_parameters():
            p.requires_grad_(lora and "lora_" in n)

    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    # prompts -----------------------------------------------------------------------

    def _render(self, msgs: list[dict]) -> str:
        tok = self.tokenizer
        if tok.chat_template:
            return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant:"

    def prompt_parts(self, context: Sequence[Turn], scenario: str | None, system: str | None = None) -> PromptParts:
        """Token ids before and after the audio, for the Dialog Agent's framing of this context."""
        # every epoch and every streamed turn frames the same contexts again; templating and tokenizing are slow
        key = (scenario, system, tuple((t.role, t.text) for t in context))
        hit = self._prompt_cache.get(key)
        if hit is not None:
            return hit
        sys_text = system if system is not None else system_text(self.config.system, scenario)
        clean = [Turn(role=t.role, text=t.text.replace(AUDIO_PLACEHOLDER, " ")) for t in context]
        text = self._render(chat_messages(clean, AUDIO_PLACEHOLDER, sys_text, self.config.max_context_turns))
        if text.count(AUDIO_PLACEHOLDER) != 1:
            raise SpeechModelError("the chat template did not keep the audio placeholder exactly once")
        before, after = text.split(AUDIO_PLACEHOLDER)
        enc = self.tokenizer([before, after], add_special_tokens=False)["input_ids"]
        parts = PromptParts(list(enc[0]), list(enc[1]))
        if len(self._prompt_cache) > 4096:
            self._prompt_cache.clear()
        self._prompt_cache[key] = parts
        return parts

    def reply_ids(self, reply: str) -> list[int]:
        """Target tokens: the reply and the end-of-turn token, so the model learns to stop."""
        return list(self.tokenizer(reply.strip(), add_special_tokens=False)["input_ids"]) + [self.eos_id()]

    def text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # embedding -----------------------------------------------------------------------

    def embed_tokens(self, ids: list[int]) -> torch.Tensor:
        emb = self.lm.get_input_embeddings()
        return emb(torch.tensor(ids, dtype=torch.long, device=emb.weight.device))

    def encode_audio(self, audio: list[np.ndarray]) -> tuple[torch.Tensor, list[int]]:
        """Frozen encoder: (hidden (B, T, d), valid frames per clip)."""
        max_n = int(self.config.max_audio_s * 16000)
        return self.encoder([np.asarray(a, dtype=np.float32).reshape(-1)[:max_n] for a in audio])

    def project(self, hidden: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        ys = self.projector.embed(hidden, lengths)
        if self.config.audio_tokens == "ctc":
            ys = [self.ctc_collapse(y) for y in ys]
        return [a.to(self.llm_dtype) for a in ys]

    # CTC audio tokens ----------------------------------------------------------------

    def ctc_embeddings(self) -> torch.Tensor:
        """The LLM's input embeddings of the CTC sub-vocabulary (V, D), frozen."""
        if getattr(self, "_ctc_emb", None) is None:
            w = self.lm.get_input_embeddings().weight
            self._ctc_emb = w[torch.tensor(self.config.ctc_vocab, device=w.device)].detach().float()
        return self._ctc_emb

    def ctc_log_probs(self, hidden: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        """Per clip, CTC log-probabilities (n_i, V + 1) over the sub-vocabulary and the blank (last)."""
        return [self.projector.ctc_logits(y).float().log_softmax(-1) for y in self.projector.embed(hidden, lengths)]

    def ctc_collapse(self, y: torch.Tensor) -> torch.Tensor:
        """Projected frames -> one LLM input per emitted token: blank frames dropped, a run of frames with the
        same best token merged, each position the posterior-weighted mix of the token embeddings (so the
        input stays differentiable for the reply-loss stage). Silence can give no position at all."""
        logp = self.projector.ctc_logits(y).float().log_softmax(-1)
        blank = logp.shape[1] - 1
        best = logp.argmax(-1).tolist()
        post = logp[:, :blank].softmax(-1)  # renormalised without the blank
        mixed = post @ self.ctc_embeddings()
        out, run = [], []
        for i, b in enumerate(best):
            if run and (b == blank or b != best[run[-1]] or i != run[-1] + 1):
                out.append(mixed[run].mean(0))
                run = []
            if b != blank:
                run.append(i)
        if run:
            out.append(mixed[run].mean(0))
        return torch.stack(out) if out else mixed.new_zeros(0, mixed.shape[1])

    def heard(self, audio: np.ndarray) -> str:
        """What the CTC head hears in a clip (greedy decoding), as text: a check that the projector listens."""
        if self.config.audio_tokens != "ctc":
            raise SpeechModelError("only a model with CTC audio tokens has a transcript of what it hears")
        with torch.no_grad():
            h, lens = self.encode_audio([audio])
            logp = self.ctc_log_probs(h, lens)[0]
        return ctc_text(self.tokenizer, self.config.ctc_vocab, logp.argmax(-1).tolist())

    def audio_embeds(self, audio: list[np.ndarray]) -> list[torch.Tensor]:
        h, lens = self.encode_audio(audio)
        return self.project(h, lens)

    def assemble(
        self, pieces: list[list[torch.Tensor]], targets: list[list[int]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """Right-pad per-sample embedding pieces into a batch.

        Returns inputs_embeds (B, L, D), attention_mask (B, L) and, per sample,
        (start, length) of its target tokens (the last piece when targets are given).
        """
        seqs = [torch.cat(p, dim=0) for p in pieces]
        width = max(s.shape[0] for s in seqs)
        d = seqs[0].shape[1]
        x = seqs[0].new_zeros(len(seqs), width, d)
        mask = torch.zeros(len(seqs), width, dtype=torch.long, device=x.device)
        spans = []
        for i, s in enumerate(seqs):
            x[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = 1
            n_t = len(targets[i]) if targets else 0
            spans.append((s.shape[0] - n_t, n_t))
        return x, mask, spans

    def target_logprobs(self, x, mask, spans, targets: list[list[int]]) -> list[torch.Tensor]:
        """Log-probabilities (n_i, V) predicting each target token; logits only where needed."""
        causal = self.causal
        hidden = causal.get_decoder()(inputs_embeds=x, attention_mask=mask).last_hidden_state
        head = causal.get_output_embeddings()
        rows = []
        for i, (start, n) in enumerate(spans):
            h = hidden[i, start - 1 : start - 1 + n]  # position p-1 predicts token p
            rows.append(torch.log_softmax(head(h).float(), dim=-1))
        return rows

    # training / scoring --------------------------------------------------------------

    def batch_pieces(self, samples: list[Sample], audio_emb: list[torch.Tensor] | None, text_user: bool = False):
        """Embedding pieces per sample: prompt prefix, audio (or the transcript), prompt suffix, reply."""
        pieces, targets = [], []
        for i, s in enumerate(samples):
            parts = self.prompt_parts(s.context, s.scenario)
            tgt = self.reply_ids(s.reply)
            mid = self.embed_tokens(self.text_ids(s.user_text)) if text_user else audio_emb[i]
            pieces.append([self.embed_tokens(parts.prefix), mid, self.embed_tokens(parts.suffix), self.embed_tokens(tgt)])
            targets.append(tgt)
        return pieces, targets

    def reply_loss(
        self,
        samples: list[Sample],
        audio_emb: list[torch.Tensor] | None = None,
        kd_weight: float = 0.0,
        text_user: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Mean cross-entropy over reply tokens; with ``kd_weight`` > 0 mixed with KL to the text model.

        The distillation target is the frozen text LLM's distribution over the same
        reply tokens when it reads the ground-truth transcript instead of the audio.
        ``text_user=True`` scores the text model itself (the transcript in place of audio).
        """
        if audio_emb is None and not text_user:
            audio_emb = self.audio_embeds([s.audio for s in samples])
        pieces, targets = self.batch_pieces(samples, audio_emb, text_user=text_user)
        x, mask, spans = self.assemble(pieces, targets)
        logp = self.target_logprobs(x, mask, spans, targets)
        tgt = [torch.tensor(t, device=lp.device) for t, lp in zip(targets, logp)]
        nll = torch.cat([-lp.gather(1, t[:, None])[:, 0] for lp, t in zip(logp, tgt)])
        out = {"ce": nll.mean(), "tokens": torch.tensor(nll.numel())}
        out["per_sample"] = torch.stack([-lp.gather(1, t[:, None])[:, 0].mean() for lp, t in zip(logp, tgt)]).detach()
        loss = out["ce"]
        if kd_weight > 0:
            with torch.no_grad(), self.teacher_context():
                tp, tt = self.batch_pieces(samples, None, text_user=True)
                tx, tmask, tspans = self.assemble(tp, tt)
                teacher = self.target_logprobs(tx, tmask, tspans, tt)
            kl = torch.cat([(t.exp() * (t - s)).sum(-1) for t, s in zip(teacher, logp)])
            out["kl"] = kl.mean()
            loss = (1 - kd_weight) * loss + kd_weight * out["kl"]
        out["loss"] = loss
        return out

    # generation ----------------------------------------------------------------------

    @torch.no_grad()
    def stream(
        self,
        audio: np.ndarray | None,
        context: Sequence[Turn] = (),
        *,
        scenario: str | None = None,
        system: str | None = None,
        user_text: str | None = None,
        max_new_tokens: int = 60,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Iterator[TokenEvent]:
        """Yield the reply as text pieces, one per generated token (greedy when temperature is 0).

        ``user_text`` instead of ``audio`` runs the same LLM on a transcript (the text model).
        """
        t0 = time.perf_counter()
        parts = self.prompt_parts(list(context), scenario, system)
        if user_text is not None:
            mid = self.embed_tokens(self.text_ids(user_text))
        else:
            if audio is None or np.asarray(audio).size < 160:
                raise SpeechModelError("no audio given (need at least 10 ms of 16 kHz PCM)")
            mid = self.audio_embeds([audio])[0]
        x = torch.cat([self.embed_tokens(parts.prefix), mid, self.embed_tokens(parts.suffix)])[None]
        yield from decode(self.causal, self.tokenizer, x, self.eos_id(), max_new_tokens=max_new_tokens,
                          temperature=temperature, top_p=top_p, seed=seed, t0=t0)

    def generate(self, audio, context=(), **kw) -> str:
        return "".join(ev.text for ev in self.stream(audio, context, **kw)).strip()

    # checkpoints (mads_audio.checkpoint) ----------------------------------------------

    def frozen_parts(self) -> dict[str, checkpoint.FrozenPart]:
        return checkpoint.frozen_parts(self)

    def save(self, out_dir: str | Path, step: int = 0, train_info: dict | None = None) -> Path:
        """Write only the trained parts plus config; files are replaced atomically."""
        return checkpoint.save(self, out_dir, step, train_info)

    @classmethod
    def load(
        cls,
        ckpt: str | Path,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        llm: str | None = None,
        strict_frozen: bool = False,
    ) -> "SpeechLLM":
        """Rebuild from a checkpoint folder; ``llm`` overrides the frozen LLM's location (same weights)."""
        return checkpoint.load(cls, ckpt, device=device, dtype=dtype, llm=llm, strict_frozen=strict_frozen)

    def load_trained(self, ckpt: Path, info: checkpoint.CheckpointInfo | None = None) -> None:
        checkpoint.load_trained(self, ckpt, info)


def describe(model: SpeechLLM) -> dict[str, Any]:
    """Sizes and settings of a built model, for logs and reports."""
    n_proj = sum(p.numel() for p in model.projector.parameters())
    n_lora = sum(p.numel() for n, p in model.lm.named_parameters() if "lora_" in n)
    return {
        "llm": model.config.llm,
        "whisper": model.config.whisper,
        "projector_params": n_proj,
        "lora_params": n_lora,
        "device": model.device_name,
        "config": json.loads(model.config.model_dump_json()),
    }
