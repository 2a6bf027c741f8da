"""Alignment stage of the speech LLM: the projector learns to spell the customer's words in the LLM's tokens.

No backpropagation through the LLM. Whisper features of every customer clip are
computed once and kept in memory (a clip is degraded by the telephony channel
with probability ``telephony_p``, drawn once per clip). Each step the projector
maps a batch of them to CTC log-probabilities over the LLM tokens that occur in
the training transcripts plus a blank, and the CTC loss against the tokenized
spoken text trains it. The LLM lends only its tokenizer and its input embeddings
(the CTC head starts at them; at inference a kept frame becomes the posterior-
weighted mix of them), so a step costs the projector alone, for any backbone.

The checkpoint is an ordinary speech checkpoint with ``audio_tokens: ctc``:
``mads eval speech`` scores it, ``mads serve --audio-model`` serves it, and
``mads train speech --stage 1 --init-from ALIGN`` continues on the LLM's reply loss.

    mads train speech --stage 0 --data AUD --out ALIGN --llm qwen1.5b --stack 4 --steps 1500
"""

from __future__ import annotations

import json
import time

import numpy as np

from mads_audio.augment import TelephonyConfig, telephony
from mads_audio.data import SpeechExample, read_audio

from .speech import (
    LOG_FILE,
    SUMMARY_FILE,
    SpeechTrainConfig,
    batch_indices,
    lr_factor,
    make_optimizer,
    plot_losses,
    prepare,
    read_log,
    save,
    try_resume,
)


def spoken(ex: SpeechExample) -> str:
    """What the clip says: the text as the TTS spoke it (numbers as written digits where it kept them)."""
    return (ex.user_spoken or ex.user_text).strip()


def token_vocab(tokenizer, texts: list[str]) -> list[int]:
    """Sorted ids of every token in the transcripts: the classes the CTC head can emit (besides the blank)."""
    ids: set[int] = set()
    for t in texts:
        ids.update(tokenizer(t, add_special_tokens=False)["input_ids"])
    return sorted(ids)


def build_model(cfg: SpeechTrainConfig, vocab: list[int]):
    from mads_audio.config import SpeechLLMConfig
    from mads_audio.model import SpeechLLM

    arch = SpeechLLMConfig(llm=cfg.llm, whisper=cfg.whisper, stack=cfg.stack, projector_hidden=cfg.projector_hidden,
                           system=cfg.system, max_context_turns=cfg.max_context_turns, audio_tokens="ctc",
                           ctc_vocab=vocab)
    model = SpeechLLM(arch, device=cfg.device, seed=cfg.seed)
    model.set_trainable(projector=True, lora=False)
    return model


def encode_all(model, exs: list[SpeechExample], cfg: SpeechTrainConfig, degrade: bool, progress: bool):
    """Frozen-encoder output per clip (float16, valid frames only), computed once."""
    import torch
    from tqdm import tqdm

    tel = TelephonyConfig(p=1.0)
    feats = []
    with torch.no_grad():
        for i, ex in enumerate(tqdm(exs, desc="whisper features", unit="clip", disable=not progress)):
            a = read_audio(ex.user_audio)
            if degrade and np.random.default_rng([cfg.seed, i, 7]).random() < cfg.telephony_p:
                a = telephony(a, np.random.default_rng([cfg.seed, i, 8]), tel)
            h, lens = model.encode_audio([a])
            feats.append(h[0, : lens[0]].to(torch.float16).cpu())
    return feats


def targets_of(model, exs: list[SpeechExample]) -> list[list[int]]:
    """Per clip, the spoken text as indices into the CTC sub-vocabulary (tokens outside it are dropped)."""
    index = {t: i for i, t in enumerate(model.config.ctc_vocab)}
    return [[index[t] for t in model.text_ids(spoken(e)) if t in index] for e in exs]


def too_short(model, feats, targets) -> int:
    """Clips with fewer audio tokens than CTC needs (one per target token plus a blank between repeats):
    their loss is zeroed, so a high count means ``stack`` is too large for the speaking rate."""
    n = 0
    for f, t in zip(feats, targets):
        need = len(t) + sum(a == b for a, b in zip(t, t[1:]))
        n += model.projector.n_tokens(f.shape[0]) < need
    return n


def ctc_batch_loss(model, feats, targets):
    """Mean CTC loss of a batch (per target token, as torch's 'mean' reduction)."""
    import torch

    logps = [model.ctc_log_probs(f[None].float(), [f.shape[0]])[0] for f in feats]
    width = max(lp.shape[0] for lp in logps)
    blank = logps[0].shape[1] - 1
    x = logps[0].new_zeros(width, len(logps), blank + 1)
    for i, lp in enumerate(logps):
        x[: lp.shape[0], i] = lp
    flat = torch.tensor([t for ts in targets for t in ts], dtype=torch.long)
    return torch.nn.functional.ctc_loss(
        x, flat, torch.tensor([lp.shape[0] for lp in logps]), torch.tensor([len(t) for t in targets]),
        blank=blank, reduction="mean", zero_infinity=True,
    ), logps


def evaluate(model, feats, targets, texts: list[str]) -> dict:
    """Held-out CTC loss and the word error rate of what the projector hears (greedy CTC decoding)."""
    import torch

    from mads_audio.eval import corpus_wer
    from mads_audio.model import ctc_text

    if not feats:
        return {}
    model.eval()
    with torch.no_grad():
        loss, logps = ctc_batch_loss(model, feats, targets)
        heard = [ctc_text(model.tokenizer, model.config.ctc_vocab, lp.argmax(-1).tolist()) for lp in logps]
    model.train()
    return {"eval_loss": round(float(loss), 5), "eval_wer": round(corpus_wer(texts, heard), 4), "heard": heard}


def train(cfg: SpeechTrainConfig, progress: bool = True) -> dict:
    import torch
    from transformers import AutoTokenizer

    from mads_audio.llm import llm_folder

    out, train_exs, held = prepare(cfg)

    if (out / "config.json").exists():  # resuming: the classes are the ones already trained
        from mads_audio.checkpoint import read_checkpoint_info

        vocab = read_checkpoint_info(out).config.ctc_vocab or []
    else:
        tokenizer = AutoTokenizer.from_pretrained(llm_folder(cfg.llm), local_files_only=True)
        vocab = token_vocab(tokenizer, [spoken(e) for e in train_exs])
    model = build_model(cfg, vocab)
    opt = make_optimizer(model, cfg)
    start = try_resume(model, opt, cfg)
    log = read_log(out / LOG_FILE, start)

    t0 = time.perf_counter()
    feats = encode_all(model, train_exs, cfg, degrade=True, progress=progress)
    held_feats = encode_all(model, held, cfg, degrade=False, progress=progress)
    feature_s = time.perf_counter() - t0
    tgts, held_tgts = targets_of(model, train_exs), targets_of(model, held)
    held_texts = [spoken(e) for e in held]
    short = too_short(model, feats, tgts)
    if short > 0.05 * len(feats):
        print(f"warning: {short} of {len(feats)} clips are too short for CTC at stack {cfg.stack}; "
              "a smaller --stack gives more audio tokens per second", flush=True)

    def record(row: dict) -> None:
        log.append(row)
        with open(out / LOG_FILE, "a") as f:
            f.write(json.dumps(row) + "\n")

    if start == 0:
        first = evaluate(model, held_feats, held_tgts, held_texts)
        record({"step": 0, **{k: v for k, v in first.items() if k != "heard"}})
    from tqdm import tqdm

    model.train()
    bar = tqdm(total=cfg.steps, initial=start, desc="align", unit="step", disable=not progress)
    t_run, done_here = time.perf_counter(), 0
    for step in range(start, cfg.steps):
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * lr_factor(step, cfg)
        idx = batch_indices(step, len(train_exs), cfg.batch_size, cfg.seed)
        loss, _ = ctc_batch_loss(model, [feats[i] for i in idx], [tgts[i] for i in idx])
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.projector.parameters(), cfg.grad_clip))
        opt.step()
        opt.zero_grad(set_to_none=True)
        done_here += 1
        row = {"step": step + 1, "loss": round(loss.item(), 5), "grad_norm": round(gnorm, 4),
               "lr": opt.param_groups[0]["lr"], "steps_per_s": round(done_here / (time.perf_counter() - t_run), 4)}
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            row.update({k: v for k, v in evaluate(model, held_feats, held_tgts, held_texts).items() if k != "heard"})
        record(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", wer=row.get("eval_wer"))
        bar.update(1)
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            save(model, opt, cfg, step + 1, log)
    bar.close()
    if start >= cfg.steps and not (out / "config.json").exists():
        save(model, opt, cfg, start, log)
    final = evaluate(model, held_feats, held_tgts, held_texts)
    ev = [r for r in log if r.get("eval_wer") is not None]
    summary = {
        "stage": 0,
        "steps": max([r["step"] for r in log] or [0]),
        "train_examples": len(train_exs),
        "held_out_examples": len(held),
        "ctc_vocab": len(vocab),
        "too_short_clips": short,
        "feature_s": round(feature_s, 1),
        "train_s": round(time.perf_counter() - t_run, 1),
        "steps_per_s": log[-1].get("steps_per_s") if log else None,
        "eval_loss_initial": ev[0]["eval_loss"] if ev else None,
        "eval_loss_final": final.get("eval_loss"),
        "heard_wer_initial": ev[0]["eval_wer"] if ev else None,
        "heard_wer_final": final.get("eval_wer"),
        "heard_examples": [{"spoken": t, "heard": h} for t, h in zip(held_texts, final.get("heard", []))][:8],
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    plot_losses(log, out / "loss.png", ctc=True)
    return summary
