"""The speech LLM: Whisper encoder -> stacked-frame projector -> causal LLM.

The dialogue so far stays text; only the customer's latest turn is audio. The
chat template is rendered with a placeholder as the content of that last user
message, the rendered text is cut at the placeholder, both halves are tokenized
and embedded, and the projected audio frames are spliced in between. Nothing is
added to the LLM's vocabulary, so the frozen LLM is exactly the text model.

A checkpoint folder holds only what training changed (``projector.safetensors``,
optionally a LoRA adapter in ``lora/``) plus ``config.json``, which names the
frozen parts (LLM, Whisper) and fingerprints them so a mismatch is reported.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from mads_text.common import assets
from mads_text.common.records import Turn

from .encoder import AudioEncoder, EncoderError
from .projector import Projector

CONFIG_FILE = "config.json"
PROJECTOR_FILE = "projector.safetensors"
LORA_DIR = "lora"
CHECKPOINT_VERSION = 1
AUDIO_PLACEHOLDER = "<|audio|>"
# the opening user message of the Dialog Agent's chat framing (mads_text.prompts.CALL_CONNECTED)
CALL_CONNECTED_FALLBACK = "(The call has connected. Greet the customer and open the conversation.)"


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


class FrozenPart(BaseModel):
    name: str
    path: str
    fingerprint: str


class CheckpointInfo(BaseModel):
    """``SCKPT/config.json``."""

    model_config = ConfigDict(extra="allow")
    version: int = CHECKPOINT_VERSION
    kind: str = "mads-speech-llm"
    config: SpeechLLMConfig
    frozen: dict[str, FrozenPart] = Field(default_factory=dict)
    trained: list[str] = Field(default_factory=lambda: ["projector"])
    step: int = 0
    created: str = ""
    train: dict[str, Any] = Field(default_factory=dict)


# --- frozen parts ------------------------------------------------------------------


def fingerprint(path: Path) -> str:
    """Cheap identity of a file or folder: sizes plus a hash of each file's first and last MiB."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        if f.suffix in (".json", ".safetensors", ".bin", ".gguf", ".model") or not path.is_dir():
            size = f.stat().st_size
            h.update(f"{f.name}:{size}".encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), 2)
                    h.update(fh.read())
    return h.hexdigest()[:16]


def llm_folder(name: str) -> Path:
    """A local HF folder for ``name``: as given, or a GGUF preset/file dequantized once into the cache.

    Converting SmolLM2's GGUF takes ~40 s (the tokenizer is rebuilt in Python); the
    saved fp32 folder loads in under a second, so every later run uses it.
    """
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists():
            raise SpeechModelError(f"{p}: not a Hugging Face checkpoint folder (no config.json)")
        return p
    try:
        gguf = assets.resolve_gguf(name)
    except assets.AssetError as e:
        raise SpeechModelError(str(e)) from e
    out = assets.cache_dir() / "models" / "hf" / f"{gguf.stem}-{gguf.stat().st_size}"
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    lm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    # the GGUF quantizer marker blocks save_pretrained although the weights are already dequantized
    lm.hf_quantizer = None
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    lm.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_llm(name: str, device: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = llm_folder(name)
    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        lm = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as e:
        raise SpeechModelError(f"cannot load LLM '{name}' from {folder}: {e}") from e
    if tok.eos_token_id is None:
        raise SpeechModelError(f"LLM '{name}': tokenizer has no end-of-sequence token")
    lm.requires_grad_(False)
    return folder, tok, lm.to(device).eval()


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


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


def _call_connected() -> str:
    try:
        from mads_text import prompts

        return prompts.CALL_CONNECTED
    except (ImportError, AttributeError):
        return CALL_CONNECTED_FALLBACK


def chat_messages(context: Sequence[Turn], user_content: str, system: str | None, max_turns: int) -> list[dict]:
    """The Dialog Agent's chat framing: agent turns are the assistant, the customer is the user."""
    msgs: list[dict] = [{"role": "system", "content": system}] if system else []
    kept = list(context)[-max_turns:] if max_turns else []
    if len(kept) == len(context):
        # the full call: the agent spoke first, answering a "call connected" cue
        msgs.append({"role": "user", "content": _call_connected()})
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


# --- the model ----------------------------------------------------------------------


class SpeechLLM(torch.nn.Module):
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
            self._add_lora(self.config.lora)
        self._prompt_cache: dict[tuple, PromptParts] = {}

    # parts -------------------------------------------------------------------------

    def fresh_projector(self, seed: int = 0) -> Projector:
        """A projector as it is before training (seeded; the caller's RNG is left alone)."""
        emb = self.lm.get_input_embeddings().weight
        out_rms = float(emb.float().pow(2).mean().sqrt())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            proj = Projector(self.encoder.dim, emb.shape[1], self.config.stack, self.config.projector_hidden, out_rms)
        return proj.to(self.device_name)

    def _add_lora(self, spec: LoraSpec, adapter_dir: Path | None = None) -> None:
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
        return [a.to(self.llm_dtype) for a in self.projector.embed(hidden, lengths)]

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
    ) -> Iterator["TokenEvent"]:
        """Yield the reply as text pieces, one per generated token (greedy when temperature is 0).

        ``user_text`` instead of ``audio`` runs the same LLM on a transcript (the text model).
        """
        from transformers import DynamicCache

        t0 = time.perf_counter()
        parts = self.prompt_parts(list(context), scenario, system)
        if user_text is not None:
            mid = self.embed_tokens(self.text_ids(user_text))
        else:
            if audio is None or np.asarray(audio).size < 160:
                raise SpeechModelError("no audio given (need at least 10 ms of 16 kHz PCM)")
            mid = self.audio_embeds([audio])[0]
        x = torch.cat([self.embed_tokens(parts.prefix), mid, self.embed_tokens(parts.suffix)])[None]
        gen = torch.Generator(device=x.device)
        if seed is not None:
            gen.manual_seed(seed)
        causal = self.causal
        cache = DynamicCache()
        # the cache object is updated in place; newer transformers name the argument ``cache``
        ckw = "cache" if "cache" in inspect.signature(causal.forward).parameters else "past_key_values"
        out = causal(inputs_embeds=x, use_cache=True, logits_to_keep=1, **{ckw: cache})
        ids: list[int] = []
        shown = ""
        n_prompt = x.shape[1]
        for i in range(max_new_tokens):
            logits = out.logits[0, -1].float()
            if temperature > 0:
                probs = torch.softmax(logits / temperature, -1)
                if top_p < 1.0:
                    sp, si = probs.sort(descending=True)
                    keep = sp.cumsum(0) - sp < top_p
                    probs = torch.zeros_like(probs).scatter(0, si[keep], sp[keep])
                nxt = int(torch.multinomial(probs / probs.sum(), 1, generator=gen))
            else:
                nxt = int(logits.argmax())
            if nxt == self.eos_id():
                yield TokenEvent("", nxt, i, time.perf_counter() - t0, n_prompt, done=True, finish="stop")
                return
            ids.append(nxt)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            # hold back a piece that ends inside a multi-byte character
            delta = "" if text.endswith("\ufffd") else text[len(shown):]
            if delta:
                shown = text
            yield TokenEvent(delta, nxt, i, time.perf_counter() - t0, n_prompt)
            out = causal(input_ids=torch.tensor([[nxt]], device=x.device), use_cache=True, **{ckw: cache})
        yield TokenEvent("", -1, max_new_tokens, time.perf_counter() - t0, n_prompt, done=True, finish="length")

    def generate(self, audio, context=(), **kw) -> str:
        return "".join(ev.text for ev in self.stream(audio, context, **kw)).strip()

    # checkpoints ---------------------------------------------------------------------

    def frozen_parts(self) -> dict[str, FrozenPart]:
        w = self.encoder.folder / "model.bin"
        return {
            "llm": FrozenPart(name=self.config.llm, path=str(self.llm_path), fingerprint=fingerprint(self.llm_path)),
            "whisper": FrozenPart(name=self.config.whisper, path=str(self.encoder.folder), fingerprint=fingerprint(w)),
        }

    def save(self, out_dir: str | Path, step: int = 0, train_info: dict | None = None) -> Path:
        """Write only the trained parts plus config; files are replaced atomically."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        sd = {k: v.detach().float().cpu().contiguous() for k, v in self.projector.state_dict().items()}
        tmp = out / (PROJECTOR_FILE + ".tmp")
        save_file(sd, str(tmp), metadata={"in_dim": str(self.projector.in_dim), "out_dim": str(self.projector.out_dim)})
        os.replace(tmp, out / PROJECTOR_FILE)
        trained = ["projector"]
        if self.config.lora is not None:
            tmp_dir = out / (LORA_DIR + ".tmp")
            shutil.rmtree(tmp_dir, ignore_errors=True)
            self.lm.save_pretrained(str(tmp_dir))
            shutil.rmtree(out / LORA_DIR, ignore_errors=True)
            os.replace(tmp_dir, out / LORA_DIR)
            trained.append("lora")
        info = CheckpointInfo(
            config=self.config,
            frozen=self.frozen_parts(),
            trained=trained,
            step=step,
            created=time.strftime("%Y-%m-%dT%H:%M:%S"),
            train=train_info or {},
        )
        tmp = out / (CONFIG_FILE + ".tmp")
        tmp.write_text(info.model_dump_json(indent=2))
        os.replace(tmp, out / CONFIG_FILE)
        return out

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
        info = read_checkpoint_info(ckpt)
        ckpt = Path(ckpt)
        cfg = info.config.model_copy(update={"lora": None, **({"llm": llm} if llm else {})})
        model = cls(cfg, device=device, dtype=dtype)
        model.config = model.config.model_copy(update={"lora": info.config.lora})
        mismatched = [
            k for k, part in info.frozen.items()
            if k in model.frozen_parts() and part.fingerprint != model.frozen_parts()[k].fingerprint
        ]
        if mismatched:
            msg = f"{ckpt}: frozen part(s) {mismatched} differ from the ones this checkpoint was trained with"
            if strict_frozen:
                raise SpeechModelError(msg)
            import warnings

            warnings.warn(msg, stacklevel=2)
        model.load_trained(ckpt, info)
        return model.eval()

    def load_trained(self, ckpt: Path, info: CheckpointInfo | None = None) -> None:
        from safetensors.torch import load_file

        info = info or read_checkpoint_info(ckpt)
        p = Path(ckpt) / PROJECTOR_FILE
        if not p.exists():
            raise SpeechModelError(f"{p}: projector weights missing")
        sd = load_file(str(p), device=str(self.device_name))
        try:
            self.projector.load_state_dict(sd)
        except RuntimeError as e:
            raise SpeechModelError(f"{p}: projector does not fit this encoder/LLM pair: {e}") from e
        if "lora" in info.trained:
            if not (Path(ckpt) / LORA_DIR).exists():
                raise SpeechModelError(f"{ckpt}: config says LoRA was trained but {LORA_DIR}/ is missing")
            if hasattr(self.lm, "get_base_model"):  # already wrapped (resuming): load weights in place
                from peft import set_peft_model_state_dict
                from safetensors.torch import load_file as lf

                set_peft_model_state_dict(self.lm, lf(str(Path(ckpt) / LORA_DIR / "adapter_model.safetensors")))
            else:
                self._add_lora(info.config.lora or LoraSpec(), adapter_dir=Path(ckpt) / LORA_DIR)


@dataclass
class TokenEvent:
    text: str
    token: int
    index: int
    elapsed_s: float
    prompt_tokens: int
    done: bool = False
    finish: str | None = None


def read_checkpoint_info(ckpt: str | Path) -> CheckpointInfo:
    p = Path(ckpt) / CONFIG_FILE
    if not p.exists():
        raise SpeechModelError(f"{ckpt}: not a speech checkpoint ({CONFIG_FILE} missing)")
    try:
        return CheckpointInfo.model_validate_json(p.read_text())
    except ValueError as e:
        raise SpeechModelError(f"{p}: invalid checkpoint config: {e}") from e


def describe(model: SpeechLLM) -> dict[str, Any]:
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
