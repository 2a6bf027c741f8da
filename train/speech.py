"""Train the speech LLM (Whisper encoder -> projector -> LLM) on the synthesized calls.

Read top to bottom; one function per phase, the training loop in ``train``.

Stage 0 (``train.speech_align``): the projector learns to spell the customer's
words in the LLM's own tokens with a CTC loss, without running the LLM.
Stage 1 (the published Ultravox recipe): Whisper encoder and LLM frozen, only the
projector learns. Stage 2 (optional): LoRA adapters on the LLM learn as well,
starting from a stage-1 projector with ``init_from``. The loss is cross-entropy
on the agent's reply tokens only; with ``kd_weight`` > 0 it is mixed with the
KL divergence to the frozen text model reading the ground-truth transcript
(its own reply distribution: the distillation target). Customer clips are
degraded on the fly by a telephony channel (8 kHz band, mu-law, noise).

The output folder holds only trained parts plus a config naming the frozen ones
(``mads_audio.checkpoint``), ``train_state.pt`` for resuming (optimizer, step), the
loss log ``loss.jsonl``, ``loss.png`` and ``summary.json``. Running the same
command again resumes where it stopped; batches are a pure function of
(seed, step), so a resumed run sees exactly the data it would have seen.

    mads train speech --data AUD --out SCKPT --steps 300
    python -m train.speech --data AUD --out SCKPT --steps 300
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mads_audio.augment import TelephonyConfig, telephony
from mads_audio.data import SpeechExample, load_clips, load_examples, read_audio

STATE_FILE = "train_state.pt"
LOG_FILE = "loss.jsonl"
PLOT_FILE = "loss.png"
SUMMARY_FILE = "summary.json"


class SpeechTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str = Field(description="output folder of `mads synth` (manifest.jsonl + clips); several, comma-separated")
    out: str = Field(description="checkpoint folder (created; an existing one is resumed)")
    # model
    llm: str = "smollm2"
    whisper: str = "base"
    stack: int = 8
    projector_hidden: int = 1024
    system: Literal["short", "full", "none"] = "short"
    max_context_turns: int = 4
    scenario: str | None = Field(None, description="scenario of the dialogues when the dataset does not say")
    # stages
    stage: Literal[0, 1, 2] = Field(1, description="0: CTC alignment of the projector (no LLM pass); "
                                    "1: projector on the reply loss; 2: + LoRA")
    init_from: str | None = Field(None, description="checkpoint whose projector (and LoRA) start this run")
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    # optimisation
    steps: int = 200
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 1e-3
    lora_lr: float = 2e-4
    warmup: int = 20
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    kd_weight: float = Field(0.0, ge=0.0, le=1.0)
    telephony_p: float = Field(0.5, ge=0.0, le=1.0, description="share of clips degraded by the phone channel")
    align_roles: Literal["user", "all"] = Field(
        "user", description="stage 0: spell the customer's clips only, or every voiced clip (the agent's too)")
    # data and bookkeeping
    test_fraction: float = 0.1
    limit: int | None = None
    eval_every: int = 50
    eval_examples: int = 32
    save_every: int = 50
    seed: int = 0
    threads: int = 2
    device: str | None = None


# --- data ---------------------------------------------------------------------------


def load_data(cfg: SpeechTrainConfig) -> tuple[list[SpeechExample], list[SpeechExample]]:
    """Examples of every folder in ``cfg.data`` (comma-separated: the same calls voiced by two engines, say). A
    dialogue's split depends on its id alone, so a call voiced twice is held out, or not, in both voicings."""
    folders = [d.strip() for d in cfg.data.split(",") if d.strip()]
    train, helds = [], []
    for d in folders:
        train += load_examples(d, "train", cfg.test_fraction, cfg.scenario)
        if cfg.stage == 0 and cfg.align_roles == "all":  # the agent's voiced lines too (held-out: customers only)
            train += load_clips(d, "train", cfg.test_fraction, role="agent")
        helds.append(load_examples(d, "test", cfg.test_fraction, cfg.scenario))
    train = train[: cfg.limit] if cfg.limit else train
    # held-out examples taken from each folder in turn, so every voicing is scored
    held = [ex for group in itertools.zip_longest(*helds) for ex in group if ex is not None][: cfg.eval_examples]
    if not train:
        raise SystemExit(f"{cfg.data}: no training examples (an agent turn right after a customer clip)")
    return train, held


def batch_indices(step: int, n: int, per_step: int, seed: int) -> list[int]:
    """The examples of one optimizer step: walk a fresh permutation per epoch."""
    out = []
    for k in range(per_step):
        pos = step * per_step + k
        epoch, i = divmod(pos, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(int(perm[i]))
    return out


class AudioStore:
    """Decoded clips and, for clean clips, their frozen-encoder output (a big saving over epochs)."""

    def __init__(self, model, max_items: int = 4096):
        self.model = model
        self.pcm: dict[str, np.ndarray] = {}
        self.hidden: dict[str, object] = {}
        self.max_items = max_items

    def audio(self, ex: SpeechExample) -> np.ndarray:
        if ex.user_audio not in self.pcm:
            self.pcm[ex.user_audio] = read_audio(ex.user_audio)
        return self.pcm[ex.user_audio]

    def embeds(self, exs: list[SpeechExample], degrade: list[bool], rng_seeds: list[list[int]], tel: TelephonyConfig):
        """Projected audio embeddings per example (gradients flow into the projector only)."""
        hidden, lengths = [None] * len(exs), [0] * len(exs)
        todo = []
        for i, ex in enumerate(exs):
            if not degrade[i] and ex.user_audio in self.hidden:
                hidden[i], lengths[i] = self.hidden[ex.user_audio]
            else:
                todo.append(i)
        if todo:
            clips = []
            for i in todo:
                a = self.audio(exs[i])
                if degrade[i]:
                    a = telephony(a, np.random.default_rng(rng_seeds[i]), tel.model_copy(update={"p": 1.0}))
                clips.append(a)
            h, lens = self.model.encode_audio(clips)
            for j, i in enumerate(todo):
                hidden[i], lengths[i] = h[j : j + 1, : lens[j]].cpu(), lens[j]
                if not degrade[i] and len(self.hidden) < self.max_items:
                    self.hidden[exs[i].user_audio] = (hidden[i], lengths[i])
        return [self.model.project(hd.to(self.model.device_name), [n])[0] for hd, n in zip(hidden, lengths)]


def samples_of(exs: list[SpeechExample], store: AudioStore):
    from mads_audio.model import Sample

    return [Sample(audio=store.audio(e), context=e.context, user_text=e.user_text, reply=e.reply,
                   scenario=e.scenario) for e in exs]


# --- model --------------------------------------------------------------------------


def build_model(cfg: SpeechTrainConfig):
    from mads_audio.checkpoint import read_checkpoint_info
    from mads_audio.config import LoraSpec, SpeechLLMConfig
    from mads_audio.model import SpeechLLM

    lora = LoraSpec(r=cfg.lora_r, alpha=cfg.lora_alpha, target_modules=cfg.lora_targets) if cfg.stage == 2 else None
    arch = SpeechLLMConfig(llm=cfg.llm, whisper=cfg.whisper, stack=cfg.stack, projector_hidden=cfg.projector_hidden,
                           system=cfg.system, max_context_turns=cfg.max_context_turns, lora=lora)
    if cfg.init_from:
        # the architecture comes from the stage-1 checkpoint; only LoRA is added here
        base = read_checkpoint_info(cfg.init_from).config
        arch = base.model_copy(update={"lora": lora or base.lora})
    model = SpeechLLM(arch, device=cfg.device, seed=cfg.seed)
    if cfg.init_from:
        model.load_trained(Path(cfg.init_from))
    model.set_trainable(projector=True, lora=cfg.stage == 2)
    return model


def make_optimizer(model, cfg: SpeechTrainConfig):
    import torch

    groups = [{"params": list(model.projector.parameters()), "lr": cfg.lr, "base_lr": cfg.lr}]
    lora = [p for n, p in model.lm.named_parameters() if "lora_" in n and p.requires_grad]
    if lora:
        groups.append({"params": lora, "lr": cfg.lora_lr, "base_lr": cfg.lora_lr})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))


def lr_factor(step: int, cfg: SpeechTrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio``."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


# --- evaluation ------------------------------------------------------------------------


def evaluate(model, exs: list[SpeechExample], store: AudioStore, batch_size: int) -> float | None:
    """Mean per-token reply loss on held-out examples, clean audio, no gradients."""
    import torch

    if not exs:
        return None
    total, tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(exs), batch_size):
            chunk = exs[i : i + batch_size]
            emb = store.embeds(chunk, [False] * len(chunk), [[0]] * len(chunk), TelephonyConfig())
            out = model.reply_loss(samples_of(chunk, store), emb)
            n = int(out["tokens"])
            total += float(out["ce"]) * n
            tokens += n
    model.train()
    return total / max(1, tokens)


# --- checkpoints -------------------------------------------------------------------------


def save(model, opt, cfg: SpeechTrainConfig, step: int, log: list[dict]) -> None:
    import torch

    out = Path(cfg.out)
    info = {"config": json.loads(cfg.model_dump_json()), "git_revision": git_revision(), "argv": sys.argv}
    model.save(out, step=step, train_info=info)
    state = {"step": step, "optimizer": opt.state_dict(), "config": json.loads(cfg.model_dump_json())}
    tmp = out / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out / STATE_FILE)
    plot_losses(log, out / PLOT_FILE, ctc=cfg.stage == 0)


def try_resume(model, opt, cfg: SpeechTrainConfig) -> int:
    """Step to continue from (0 for a fresh run); refuses a folder trained with another setup."""
    import torch

    out = Path(cfg.out)
    if not (out / STATE_FILE).exists():
        return 0
    state = torch.load(out / STATE_FILE, map_location="cpu", weights_only=False)
    old = state.get("config", {})
    fixed = ("llm", "whisper", "stack", "projector_hidden", "system", "stage", "lora_r", "lora_targets", "seed",
             "batch_size", "grad_accum")
    diff = {k: (old.get(k), getattr(cfg, k)) for k in fixed if old.get(k) != getattr(cfg, k)}
    if diff:
        raise SystemExit(f"{out} was trained with other settings {diff}; use a new --out or the same settings")
    model.load_trained(out)
    opt.load_state_dict(state["optimizer"])
    return int(state["step"])


def read_log(path: Path, upto: int) -> list[dict]:
    """Loss log entries up to ``upto`` (entries past the last checkpoint are dropped on resume)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        if row.get("step", 0) <= upto:
            rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def plot_losses(log: list[dict], path: Path, ctc: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [(r["step"], r["loss"]) for r in log if "loss" in r]
    ev = [(r["step"], r["eval_loss"]) for r in log if r.get("eval_loss") is not None]
    if not tr and not ev:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if tr:
        ax.plot(*zip(*tr), label="train (CTC, per target token)" if ctc else "train (reply tokens)", lw=1)
    if ev:
        ax.plot(*zip(*ev), "o-", label="held-out CTC loss" if ctc else "held-out reply loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# --- the loop --------------------------------------------------------------------------


def prepare(cfg: SpeechTrainConfig) -> tuple[Path, list[SpeechExample], list[SpeechExample]]:
    """Threads, seed, offline mode, the output folder and the data: the same for every stage."""
    import torch

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    return out, *load_data(cfg)


def train(cfg: SpeechTrainConfig, progress: bool = True) -> dict:
    import torch
    from tqdm import tqdm

    if cfg.stage == 0:
        from .speech_align import train as align

        return align(cfg, progress)

    out, train_exs, held = prepare(cfg)
    model = build_model(cfg)
    opt = make_optimizer(model, cfg)
    start = try_resume(model, opt, cfg)
    log = read_log(out / LOG_FILE, start)
    store = AudioStore(model)
    tel = TelephonyConfig(p=cfg.telephony_p)
    per_step = cfg.batch_size * cfg.grad_accum

    if start == 0:
        first = {"step": 0, "eval_loss": evaluate(model, held, store, cfg.batch_size)}
        log.append(first)
        with open(out / LOG_FILE, "a") as f:
            f.write(json.dumps(first) + "\n")
    model.train()
    bar = tqdm(total=cfg.steps, initial=start, desc="speech", unit="step", disable=not progress)
    t_run = time.perf_counter()
    done_here = 0
    for step in range(start, cfg.steps):
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * lr_factor(step, cfg)
        idx = batch_indices(step, len(train_exs), per_step, cfg.seed)
        stats = {"loss": 0.0, "ce": 0.0, "kl": 0.0, "tokens": 0}
        for a in range(cfg.grad_accum):
            chunk_idx = idx[a * cfg.batch_size : (a + 1) * cfg.batch_size]
            exs = [train_exs[i] for i in chunk_idx]
            seeds = [[cfg.seed, step, a, k] for k in range(len(exs))]
            degrade = [np.random.default_rng(s).random() < tel.p for s in seeds]
            emb = store.embeds(exs, degrade, [s + [1] for s in seeds], tel)
            res = model.reply_loss(samples_of(exs, store), emb, kd_weight=cfg.kd_weight)
            (res["loss"] / cfg.grad_accum).backward()
            stats["loss"] += float(res["loss"]) / cfg.grad_accum
            stats["ce"] += float(res["ce"]) / cfg.grad_accum
            stats["kl"] += float(res.get("kl", 0.0)) / cfg.grad_accum
            stats["tokens"] += int(res["tokens"])
        params = [p for g in opt.param_groups for p in g["params"]]
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        opt.step()
        opt.zero_grad(set_to_none=True)
        done_here += 1
        row = {"step": step + 1, **{k: round(v, 5) if isinstance(v, float) else v for k, v in stats.items()},
               "grad_norm": round(gnorm, 4), "lr": opt.param_groups[0]["lr"],
               "steps_per_s": round(done_here / (time.perf_counter() - t_run), 4)}
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            row["eval_loss"] = evaluate(model, held, store, cfg.batch_size)
        log.append(row)
        with open(out / LOG_FILE, "a") as f:
            f.write(json.dumps(row) + "\n")
        bar.set_postfix(loss=f"{stats['loss']:.3f}", eval=row.get("eval_loss") and f"{row['eval_loss']:.3f}")
        bar.update(1)
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            save(model, opt, cfg, step + 1, log)
    bar.close()
    if start >= cfg.steps and not (out / "config.json").exists():
        save(model, opt, cfg, start, log)
    summary = summarize(log, cfg, len(train_exs), len(held))
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    plot_losses(log, out / PLOT_FILE)
    return summary


def summarize(log: list[dict], cfg: SpeechTrainConfig, n_train: int, n_held: int) -> dict:
    tr = [r["loss"] for r in log if "loss" in r]
    ev = [r for r in log if r.get("eval_loss") is not None]
    k = max(1, min(10, len(tr) // 4))
    return {
        "steps": max([r["step"] for r in log] or [0]),
        "train_examples": n_train,
        "held_out_examples": n_held,
        "train_loss_first": float(np.mean(tr[:k])) if tr else None,
        "train_loss_last": float(np.mean(tr[-k:])) if tr else None,
        "eval_loss_initial": ev[0]["eval_loss"] if ev else None,
        "eval_loss_final": ev[-1]["eval_loss"] if ev else None,
        "steps_per_s": log[-1].get("steps_per_s") if log else None,
        "stage": cfg.stage,
        "kd_weight": cfg.kd_weight,
    }


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, field in SpeechTrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if name == "lora_targets":
            p.add_argument(flag, nargs="+", default=None)
        else:
            kind = {"stage": int, "steps": int, "batch_size": int, "grad_accum": int, "seed": int, "threads": int,
                    "limit": int, "eval_every": int, "save_every": int, "eval_examples": int, "warmup": int,
                    "stack": int, "projector_hidden": int, "max_context_turns": int, "lora_r": int,
                    "lora_alpha": int}.get(name, float if field.annotation is float else str)
            p.add_argument(flag, type=kind, default=None, help=field.description)
    args = {k: v for k, v in vars(p.parse_args(argv)).items() if v is not None}
    cfg = SpeechTrainConfig.model_validate(args)
    print(json.dumps(train(cfg), indent=2))


if __name__ == "__main__":
    main()
