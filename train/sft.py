"""Supervised fine-tuning of a chat model on dialogues exported by ``mads export``.

Read top to bottom: configuration, data (chat template, loss only on the agent's
turns), model (LoRA through peft, or every weight), the training loop with
checkpoints that a rerun resumes from, evaluation on the held-out dialogues, and
the final save as a plain ``transformers`` folder that ``mads simulate --backend
transformers --model CKPT`` and ``mads eval mmp --backend transformers`` load.

Runs on a CPU with the embedded SmolLM2 (loaded from its GGUF file and
dequantized) for tests, and on a GPU with any local checkpoint folder.

Output folder ``CKPT``:
- ``config.json``, ``model.safetensors``, tokenizer files: the fine-tuned model (LoRA merged in);
- ``adapter/``: the LoRA adapter alone (LoRA runs);
- ``checkpoints/step-N/``: resumable training state (trainable weights, optimizer, scheduler, RNG);
- ``loss.jsonl`` and ``loss.png``: the loss curve (train every step, held-out at every evaluation);
- ``sft_report.json``: settings, data sizes, held-out loss of the base model and of the result, timings.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from mads_text.export import read_split


class SFTConfig(BaseModel):
    data: str = Field(..., description="Dataset folder written by `mads export`")
    base: str = Field("smollm2", description="Checkpoint folder, .gguf file or embedded preset name")
    out: str
    method: Literal["lora", "full"] = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    epochs: float = 3.0
    max_steps: int | None = Field(None, description="Optimizer steps; overrides epochs")
    lr: float | None = Field(None, description="Peak learning rate (default 2e-4 for LoRA, 2e-5 for full)")
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    batch_size: int = 1
    grad_accum: int = 4
    max_len: int = 1024
    eval_every: int = Field(10, description="Evaluate on the held-out split every N steps (0: only at start and end)")
    save_every: int = Field(20, description="Write a resumable checkpoint every N steps")
    keep_checkpoints: int = 2
    seed: int = 0
    device: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    gradient_checkpointing: bool = False
    check_generation: bool = Field(True, description="Reload the saved model and generate one held-out reply")

    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else (2e-4 if self.method == "lora" else 2e-5)


class SFTError(RuntimeError):
    pass


# --- data -----------------------------------------------------------------------------------


def encode(messages: list[dict], tok, max_len: int) -> dict | None:
    """Token ids of one conversation and its labels: the assistant's replies (and their end token) only.

    The chat template renders the conversation piece by piece; each assistant reply is what the full
    rendering adds after the prompt with the generation cue. Templates that do not render incrementally
    are refused rather than silently mislabelled.
    """
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise SFTError("the model's chat template does not render conversations incrementally; cannot mask labels")
        context = tok(prompt[len(done):], add_special_tokens=not done)["input_ids"]
        target = tok(full[len(prompt):], add_special_tokens=False)["input_ids"]
        ids += context + target
        labels += [-100] * len(context) + target
        done = full
    ids, labels = ids[:max_len], labels[:max_len]
    if all(x == -100 for x in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def collate(batch: list[dict], pad_id: int):
    import torch

    n = max(len(x["input_ids"]) for x in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, x in enumerate(batch):
        k = len(x["input_ids"])
        ids[i, :k] = torch.tensor(x["input_ids"])
        labels[i, :k] = torch.tensor(x["labels"])
        mask[i, :k] = 1
    return ids, labels, mask


def token_nll(model, batch: list[dict], pad_id: int):
    """Summed negative log-likelihood of the target tokens and their count."""
    import torch.nn.functional as F

    ids, labels, mask = collate(batch, pad_id)
    dev = next(model.parameters()).device
    ids, labels, mask = ids.to(dev), labels.to(dev), mask.to(dev)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    target = labels[:, 1:]
    nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100, reduction="sum")
    return nll, int((target != -100).sum())


def eval_loss(model, data: list[dict], pad_id: int, batch_size: int) -> float:
    """Mean per-token loss over the assistant tokens of ``data``."""
    import torch

    if not data:
        return float("nan")
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            nll, n = token_nll(model, data[i : i + batch_size], pad_id)
            total += float(nll)
            count += n
    model.train(was_training)
    return total / max(count, 1)


# --- model ------------------------------------------------------------------------------------


def load_base(cfg: SFTConfig):
    import torch

    from mads_text.llm.hf import load_causal_lm

    dtype = None
    if cfg.dtype != "auto":
        dtype = getattr(torch, cfg.dtype)
    elif torch.cuda.is_available():
        dtype = torch.bfloat16
    tok, model = load_causal_lm(cfg.base, cfg.device, dtype)
    # a GGUF file is dequantized on load; drop the quantizer marks or save_pretrained refuses later
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "_is_quantized_training_enabled"):
        if getattr(model, attr, False) is True:
            try:
                setattr(model, attr, False)
            except AttributeError:
                pass
    tok.padding_side = "right"
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        targets = [t for t in cfg.lora_targets if t in present]
        if not targets:
            raise SFTError(f"none of the LoRA target modules {cfg.lora_targets} exist in {cfg.base}")
        if cfg.gradient_checkpointing:
            model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(
            task_type="CAUSAL_LM", r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=targets,
        ))
    model.train()
    return tok, model


def trainable_state(model) -> dict:
    return {k: v.detach().cpu() for k, v in model.named_parameters() if v.requires_grad}


# --- checkpoints ---------------------------------------------------------------------------------


def latest_checkpoint(out: Path) -> Path | None:
    steps = sorted((out / "checkpoints").glob("step-*[0-9]"), key=lambda p: int(p.name.split("-")[1]))
    return steps[-1] if steps else None


def save_checkpoint(out: Path, step: int, model, opt, sched, extra: dict, keep: int) -> None:
    import torch

    final = out / "checkpoints" / f"step-{step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(trainable_state(model), tmp / "trainable.pt")
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    torch.save(sched.state_dict(), tmp / "scheduler.pt")
    rng = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **extra}, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)  # a checkpoint exists whole or not at all
    older = sorted((out / "checkpoints").glob("step-*[0-9]"), key=lambda p: int(p.name.split("-")[1]))[:-keep]
    for p in older:
        shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(ckpt: Path, model, opt, sched) -> dict:
    import torch

    state = torch.load(ckpt / "trainable.pt", map_location="cpu")
    missing = set(trainable_state(model)) - set(state)
    if missing:
        raise SFTError(f"{ckpt}: checkpoint does not match this model/method (missing {sorted(missing)[:3]})")
    model.load_state_dict(state, strict=False)
    opt.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu"))
    sched.load_state_dict(torch.load(ckpt / "scheduler.pt"))
    rng = torch.load(ckpt / "rng.pt", weights_only=False)
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((ckpt / "state.json").read_text())


# --- loss curve ----------------------------------------------------------------------------------


def plot_loss(log_path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()]
    tr = [(r["step"], r["train_loss"]) for r in rows if r.get("train_loss") is not None]
    ev = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if tr:
        ax.plot(*zip(*tr), label="train (assistant tokens)", lw=1)
    if ev:
        ax.plot(*zip(*ev), "o-", label="held-out", lw=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


# --- training --------------------------------------------------------------------------------------


def train(cfg: SFTConfig, progress: bool = True) -> dict:
    import torch

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "sft_config.json"
    if cfg_path.exists() and latest_checkpoint(out) is not None:
        old = json.loads(cfg_path.read_text())
        keys = ("data", "base", "method", "lora_r", "lora_targets", "max_len", "batch_size", "grad_accum", "seed")
        diff = [k for k in keys if old.get(k) != cfg.model_dump().get(k)]
        if diff:
            raise SFTError(f"{out} holds a training run with other settings ({', '.join(diff)}); use another --out")
    cfg_path.write_text(cfg.model_dump_json(indent=2))
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    t_start = time.perf_counter()

    # data
    train_ex, test_ex = read_split(cfg.data, "train"), []
    if (Path(cfg.data) / "test.jsonl").exists():
        test_ex = read_split(cfg.data, "test")
    tok, model = load_base(cfg)
    t_loaded = time.perf_counter()
    enc_train = [e for e in (encode(x["messages"], tok, cfg.max_len) for x in train_ex) if e]
    enc_test = [e for e in (encode(x["messages"], tok, cfg.max_len) for x in test_ex) if e]
    if not enc_train:
        raise SFTError(f"{cfg.data}: no training example has an assistant token within --max-len {cfg.max_len}")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    per_step = cfg.batch_size * cfg.grad_accum
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(enc_train) / per_step))
    warmup = int(cfg.warmup_ratio * total_steps)

    # optimizer and schedule: linear warm-up, then linear decay to zero
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.peak_lr(), weight_decay=cfg.weight_decay)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)

    # resume
    log_path = out / "loss.jsonl"
    step, base_loss = 0, None
    ckpt = latest_checkpoint(out)
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, opt, sched)
        step, base_loss = state["step"], state.get("base_eval_loss")
        if log_path.exists():  # forget log lines written after the checkpoint
            keep = [x for x in log_path.read_text().splitlines() if x.strip() and json.loads(x)["step"] <= step]
            log_path.write_text("".join(k + "\n" for k in keep))
    elif log_path.exists():
        log_path.unlink()
    log = open(log_path, "a", encoding="utf-8")

    def write_log(row: dict) -> None:
        log.write(json.dumps(row) + "\n")
        log.flush()

    if base_loss is None:
        base_loss = eval_loss(model, enc_test, pad_id, cfg.batch_size)  # LoRA starts as the identity
        write_log({"step": 0, "eval_loss": base_loss, "train_loss": None})

    def examples_for(step_idx: int) -> list[dict]:
        """The examples of one optimizer step: epochs are seeded permutations, so resuming needs only the step."""
        n = len(enc_train)
        picked = []
        for j in range(step_idx * per_step, (step_idx + 1) * per_step):
            epoch, pos = divmod(j, n)
            order = list(range(n))
            random.Random(cfg.seed * 100003 + epoch).shuffle(order)
            picked.append(enc_train[order[pos]])
        return picked

    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("[bold]sft"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                       TimeElapsedColumn())
        bar.start()
        task = bar.add_task("sft", total=total_steps, completed=step, info="")
    t_train = time.perf_counter()
    steps_run = 0
    eval_l = None
    try:
        while step < total_steps:
            batch = examples_for(step)
            n_tokens = sum(sum(1 for y in x["labels"][1:] if y != -100) for x in batch)
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for i in range(0, len(batch), cfg.batch_size):
                nll, _ = token_nll(model, batch[i : i + cfg.batch_size], pad_id)
                (nll / max(n_tokens, 1)).backward()  # token-weighted mean over the whole step
                total += nll.detach().item()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            steps_run += 1
            row = {"step": step, "train_loss": total / max(n_tokens, 1), "lr": sched.get_last_lr()[0],
                   "tokens": n_tokens, "elapsed_s": round(time.perf_counter() - t_start, 1)}
            if enc_test and ((cfg.eval_every and step % cfg.eval_every == 0) or step == total_steps):
                eval_l = row["eval_loss"] = eval_loss(model, enc_test, pad_id, cfg.batch_size)
            write_log(row)
            if step % cfg.save_every == 0 or step == total_steps:
                save_checkpoint(out, step, model, opt, sched, {"base_eval_loss": base_loss}, cfg.keep_checkpoints)
            if bar is not None:
                info = f"loss {row['train_loss']:.3f}" + (f"  held-out {eval_l:.3f}" if eval_l is not None else "")
                bar.update(task, advance=1, info=info)
    finally:
        log.close()
        if bar is not None:
            bar.stop()
    t_done = time.perf_counter()
    final_loss = eval_loss(model, enc_test, pad_id, cfg.batch_size) if eval_l is None else eval_l
    plot_loss(log_path, out / "loss.png")

    # save a plain transformers folder (LoRA merged in) plus the adapter on its own
    if cfg.method == "lora":
        model.save_pretrained(out / "adapter")
        model = model.merge_and_unload()
    model.config.use_cache = True
    model.save_pretrained(out, safe_serialization=True)
    tok.padding_side = "left"
    tok.save_pretrained(out)

    report = {
        "base": cfg.base,
        "method": cfg.method,
        "data": cfg.data,
        "train_examples": len(enc_train),
        "test_examples": len(enc_test),
        "steps": step,
        "steps_this_run": steps_run,
        "examples_per_step": per_step,
        "base_eval_loss": base_loss,
        "final_eval_loss": final_loss,
        "trainable_parameters": sum(p.numel() for p in params),
        "load_s": round(t_loaded - t_start, 1),
        "train_s": round(t_done - t_train, 1),
        "s_per_step": round((t_done - t_train) / steps_run, 2) if steps_run else None,
        "device": str(next(model.parameters()).device),
        "config": cfg.model_dump(),
    }
    if cfg.check_generation and test_ex:
        report["generation_check"] = check_generation(out, test_ex[0]["messages"])
    (out / "sft_report.json").write_text(json.dumps(report, indent=2))
    return report


def check_generation(ckpt: Path, messages: list[dict]) -> dict:
    """Reload the saved folder as any user would and generate the first assistant reply."""
    import torch

    from mads_text.llm.hf import load_causal_lm

    tok, lm = load_causal_lm(str(ckpt))
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    text = tok.apply_chat_template(messages[:first], tokenize=False, add_generation_prompt=True)
    enc = tok(text, return_tensors="pt", add_special_tokens=False).to(lm.device)
    with torch.no_grad():
        out = lm.generate(**enc, max_new_tokens=48, do_sample=False, pad_token_id=tok.pad_token_id)
    reply = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    return {"prompt_last": messages[first - 1]["content"][-200:], "reply": reply, "reference": messages[first]["content"]}
