"""Held-out evaluation of the speech LLM against the text model and the ASR cascade.

On held-out synthesized turns (whole dialogues never seen in training) it reports:

- reply loss (nats per token of the ground-truth agent reply) of
  the speech model hearing the audio, the same model with an untrained projector
  (the floor training must beat), the text model reading the ground-truth
  transcript (the ceiling: what a perfect ASR would give) and the text model
  reading the cascade's ASR transcript (what the pipeline arm gets);
- the cascade's ASR word error rate (faster-whisper with the bundled Whisper);
- for a subset, generated replies: the speech model's reply compared with the
  text model's reply to the ground-truth transcript (MiniLM cosine similarity),
  and both with the reference reply;
- where the speech model wins or loses: per-example loss differences against
  the cascade, bucketed by ASR error and by clip length;
- with ``controls``, whether the model listens at all: the same turns scored
  with the audio of a turn from another dialogue (shuffled) and with silence of
  the same length. A model that ignores its ear scores all three alike; the
  paired differences come with bootstrap intervals over turns.

The text model is the speech model's own LLM with LoRA switched off, so the
comparison isolates what listening instead of reading costs or gains.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from .data import SpeechExample, load_examples, read_audio
from .model import Sample, SpeechLLM


class EvalConfig(BaseModel):
    ckpt: str
    data: str
    split: str = "test"
    test_fraction: float = 0.1
    limit: int = 64
    per_dialogue: int | None = Field(None, ge=1, description="at most this many turns per dialogue, evenly spaced "
                                     "(spreads a small --limit over more calls)")
    batch_size: int = 4
    untrained: bool = Field(True, description="also score an untrained projector (same seed as training)")
    controls: bool = Field(False, description="also score each turn with another dialogue's audio and with silence")
    telephony: bool = Field(False, description="hear every clip through the phone channel (seeded per clip)")
    asr: str | None = Field("base", description="Whisper preset for the cascade; None skips it")
    generate: int = Field(8, description="examples whose replies are generated and compared")
    max_new_tokens: int = 40
    similarity: bool = True
    scenario: str | None = None
    threads: int = 2
    device: str | None = None


def _hear(e: SpeechExample, cfg: EvalConfig, k: int) -> np.ndarray:
    a = read_audio(e.user_audio)
    if cfg.telephony:
        from .augment import TelephonyConfig, telephony

        a = telephony(a, np.random.default_rng([k, 11]), TelephonyConfig(p=1.0))
    return a


def _losses(model: SpeechLLM, samples: list[Sample], batch_size: int, mode: str) -> np.ndarray:
    """Per-example mean reply loss; mode: audio | text (transcript in ``user_text``)."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(samples), batch_size):
            chunk = samples[i : i + batch_size]
            if mode == "text":
                with model.teacher_context():
                    r = model.reply_loss(chunk, text_user=True)
            else:
                r = model.reply_loss(chunk)
            out.extend(r["per_sample"].float().cpu().tolist())
    return np.array(out)


def _token_counts(model: SpeechLLM, samples: list[Sample]) -> np.ndarray:
    return np.array([len(model.reply_ids(s.reply)) for s in samples])


def _wavg(losses: np.ndarray, weights: np.ndarray) -> float:
    return float((losses * weights).sum() / max(1, weights.sum()))


def _wer(ref: str, hyp: str) -> float:
    import jiwer

    norm = lambda s: " ".join("".join(c.lower() if c.isalnum() or c == "'" else " " for c in s).split())  # noqa: E731
    r, h = norm(ref), norm(hyp)
    if not r:
        return 0.0 if not h else 1.0
    return float(jiwer.wer(r, h))


def corpus_wer(refs: list[str], hyps: list[str]) -> float:
    """Word errors over all turns divided by reference words (long turns weigh more than in the mean)."""
    n = [max(1, len(r.split())) for r in refs]
    return float(sum(_wer(r, h) * k for r, h, k in zip(refs, hyps, n)) / max(1, sum(n)))


def _cosines(a: list[str], b: list[str]) -> list[float]:
    from sentence_transformers import SentenceTransformer

    from mads_text.common import assets

    enc = SentenceTransformer(str(assets.minilm_dir()), device="cpu")
    ea = enc.encode(a, normalize_embeddings=True)
    eb = enc.encode(b, normalize_embeddings=True)
    return [float(x @ y) for x, y in zip(ea, eb)]


def _buckets(values: np.ndarray, diff: np.ndarray, edges: list[float], label: str) -> list[dict[str, Any]]:
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (values >= lo) & (values < hi) if hi != edges[-1] else (values >= lo) & (values <= hi)
        if lo == hi:
            m = values == lo
        if m.any():
            rows.append({
                label: f"[{lo:g}, {hi:g}]" if lo != hi else f"{lo:g}",
                "n": int(m.sum()),
                "speech_minus_cascade_loss": float(diff[m].mean()),
                "speech_better_share": float((diff[m] < 0).mean()),
            })
    return rows


def spread(exs: list[SpeechExample], k: int) -> list[SpeechExample]:
    """At most ``k`` examples per dialogue, evenly spaced over its turns, dialogues in their order."""
    by: dict[str, list[SpeechExample]] = {}
    for e in exs:
        by.setdefault(e.dialogue_id, []).append(e)
    out = []
    for xs in by.values():
        idx = sorted({round(i * (len(xs) - 1) / max(1, k - 1)) for i in range(min(k, len(xs)))}) if k > 1 else [0]
        out += [xs[i] for i in idx]
    return out


def shuffled_order(dialogues: list[str]) -> list[int]:
    """For each turn, the turn whose audio it hears in the shuffled control: never its own and, when no dialogue
    holds more than half the turns, never one of its own dialogue (a rotation by the largest dialogue's size over
    turns grouped by dialogue)."""
    n = len(dialogues)
    order = sorted(range(n), key=lambda i: (dialogues[i], i))
    sizes: dict[str, int] = {}
    for d in dialogues:
        sizes[d] = sizes.get(d, 0) + 1
    k = max(sizes.values()) if n > 1 else 0
    k = k if 0 < k <= n // 2 else min(1, n - 1)
    out = [0] * n
    for pos, i in enumerate(order):
        out[i] = order[(pos + k) % n]
    return out


def paired(control: np.ndarray, true: np.ndarray, w: np.ndarray, seed: int = 0, n_boot: int = 2000) -> dict[str, Any]:
    """Control minus true audio: token-weighted mean difference, a 95 % bootstrap interval over turns, and the
    share of turns where the true audio gives the lower loss."""
    d = control - true
    rng = np.random.default_rng(seed)
    boots = [_wavg(d[idx], w[idx]) for idx in (rng.integers(0, len(d), len(d)) for _ in range(n_boot))]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"mean_diff": _wavg(d, w), "ci95": [float(lo), float(hi)], "true_better_share": float((d > 0).mean()),
            "n": int(len(d))}


def _controls(model: SpeechLLM, exs: list[SpeechExample], samples: list[Sample], speech: np.ndarray,
              text: np.ndarray, w: np.ndarray, cfg: EvalConfig) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    order = shuffled_order([e.dialogue_id for e in exs])
    shuffled = [Sample(audio=samples[j].audio, context=s.context, user_text=samples[j].user_text, reply=s.reply,
                       scenario=s.scenario) for s, j in zip(samples, order)]
    silent = [Sample(audio=np.zeros_like(s.audio), context=s.context, user_text=s.user_text, reply=s.reply,
                     scenario=s.scenario) for s in samples]
    losses = {"shuffled": _losses(model, shuffled, cfg.batch_size, "audio"),
              "silence": _losses(model, silent, cfg.batch_size, "audio"),
              "text_shuffled": _losses(model, shuffled, cfg.batch_size, "text")}
    rep = {name: paired(v, speech, w) for name, v in losses.items() if name != "text_shuffled"}
    # the same shuffle read as ground-truth text: how much a perfect ear could gain over the wrong turn
    rep["text_shuffled"] = paired(losses["text_shuffled"], text, w)
    rep["shuffled_from"] = [exs[j].id for j in order]
    return rep, losses


def _heard(model: SpeechLLM, exs: list[SpeechExample], samples: list[Sample]) -> dict[str, Any]:
    heard = [model.heard(s.audio) for s in samples]
    refs = [e.user_spoken or e.user_text for e in exs]
    return {"wer_corpus": corpus_wer(refs, heard), "texts": heard}


def evaluate(cfg: EvalConfig, progress: bool = True) -> dict[str, Any]:
    import torch

    torch.set_num_threads(cfg.threads)
    exs: list[SpeechExample] = load_examples(cfg.data, cfg.split, cfg.test_fraction, cfg.scenario)  # type: ignore[arg-type]
    if cfg.per_dialogue:
        exs = spread(exs, cfg.per_dialogue)
    exs = exs[: cfg.limit]
    if not exs:
        raise ValueError(f"{cfg.data}: no '{cfg.split}' examples to evaluate")
    t0 = time.perf_counter()
    model = SpeechLLM.load(cfg.ckpt, device=cfg.device)
    samples = [Sample(audio=_hear(e, cfg, k), context=e.context, user_text=e.user_text, reply=e.reply,
                      scenario=e.scenario) for k, e in enumerate(exs)]
    w = _token_counts(model, samples)
    report: dict[str, Any] = {"ckpt": cfg.ckpt, "data": cfg.data, "split": cfg.split, "examples": len(exs),
                              "reply_tokens": int(w.sum()), "telephony": cfg.telephony,
                              "audio_tokens": model.config.audio_tokens}
    speech = _losses(model, samples, cfg.batch_size, "audio")
    text = _losses(model, samples, cfg.batch_size, "text")
    loss = {"speech": _wavg(speech, w), "text_ground_truth": _wavg(text, w)}
    control_losses: dict[str, np.ndarray] = {}
    if cfg.controls:
        report["controls"], control_losses = _controls(model, exs, samples, speech, text, w, cfg)
        loss["speech_shuffled_audio"] = _wavg(control_losses["shuffled"], w)
        loss["speech_silence"] = _wavg(control_losses["silence"], w)
        loss["text_shuffled_transcript"] = _wavg(control_losses["text_shuffled"], w)
    heard = _heard(model, exs, samples) if model.config.audio_tokens == "ctc" else None
    if heard:
        report["heard"] = {"wer_corpus": heard["wer_corpus"]}
    if cfg.untrained:
        trained = {k: v.clone() for k, v in model.projector.state_dict().items()}
        seed = json.loads((Path(cfg.ckpt) / "config.json").read_text()).get("train", {}).get("config", {}).get("seed", 0)
        model.projector.load_state_dict(model.fresh_projector(int(seed)).state_dict())
        untrained = _losses(model, samples, cfg.batch_size, "audio")
        model.projector.load_state_dict(trained)
        loss["speech_untrained_projector"] = _wavg(untrained, w)
    per_example: list[dict[str, Any]] = [
        {"id": e.id, "user_text": e.user_text, "duration_s": round(len(s.audio) / 16000, 2), "reply_tokens": int(n),
         "loss_speech": float(a), "loss_text": float(b)}
        for e, s, n, a, b in zip(exs, samples, w, speech, text)
    ]
    for name, v in control_losses.items():
        for p, x in zip(per_example, v):
            p[f"loss_{name}"] = float(x)
    if heard:
        for p, h in zip(per_example, heard["texts"]):
            p["heard"] = h
    if cfg.asr:
        from .asr import WhisperASR

        asr = WhisperASR.shared(cfg.asr, threads=cfg.threads)
        hyps = [asr.transcribe(s.audio).text for s in samples]
        wers = np.array([_wer(e.user_spoken or e.user_text, h) for e, h in zip(exs, hyps)])
        casc = [Sample(audio=s.audio, context=s.context, user_text=h, reply=s.reply, scenario=s.scenario)
                for s, h in zip(samples, hyps)]
        cascade = _losses(model, casc, cfg.batch_size, "text")
        loss["text_asr_cascade"] = _wavg(cascade, w)
        report["asr"] = {"model": cfg.asr, "wer_mean": float(wers.mean()),
                         "wer_corpus": corpus_wer([e.user_spoken or e.user_text for e in exs], hyps)}
        diff = speech - cascade
        report["speech_vs_cascade"] = {
            "speech_better_share": float((diff < 0).mean()),
            "by_asr_wer": _buckets(wers, diff, [0.0, 0.0, 0.2, 10.0], "asr_wer"),
            "by_duration_s": _buckets(np.array([p["duration_s"] for p in per_example]), diff, [0, 2, 4, 8, 30],
                                      "duration_s"),
        }
        for p, h, x, c in zip(per_example, hyps, wers, cascade):
            p.update({"asr_text": h, "asr_wer": float(x), "loss_cascade": float(c)})
    report["reply_loss"] = loss
    report["speech_vs_text_gap"] = loss["speech"] - loss["text_ground_truth"]
    if cfg.generate > 0:
        gen = []
        for e, s in list(zip(exs, samples))[: cfg.generate]:
            t1 = time.perf_counter()
            sp = model.generate(s.audio, s.context, scenario=s.scenario, max_new_tokens=cfg.max_new_tokens)
            dt = time.perf_counter() - t1
            with model.teacher_context():
                tx = model.generate(None, s.context, scenario=s.scenario, user_text=s.user_text,
                                    max_new_tokens=cfg.max_new_tokens)
            gen.append({"id": e.id, "user_text": e.user_text, "reference": e.reply, "speech_reply": sp,
                        "text_reply": tx, "speech_gen_s": round(dt, 2)})
        if cfg.similarity and gen:
            sims = _cosines([g["speech_reply"] for g in gen], [g["text_reply"] for g in gen])
            ref_sp = _cosines([g["speech_reply"] for g in gen], [g["reference"] for g in gen])
            ref_tx = _cosines([g["text_reply"] for g in gen], [g["reference"] for g in gen])
            for g, a, b, c in zip(gen, sims, ref_sp, ref_tx):
                g.update({"cos_speech_text": a, "cos_speech_reference": b, "cos_text_reference": c})
            report["similarity"] = {
                "speech_vs_text_reply": float(np.mean(sims)),
                "speech_vs_reference": float(np.mean(ref_sp)),
                "text_vs_reference": float(np.mean(ref_tx)),
                "n": len(gen),
            }
        report["generations"] = gen
    report["per_example"] = per_example
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    return report


def format_report(r: dict[str, Any]) -> str:
    lines = [f"held-out examples: {r['examples']} ({r['reply_tokens']} reply tokens), split '{r['split']}'",
             "reply loss, nats/token (lower is better):"]
    names = {
        "speech": "speech LLM (audio)",
        "speech_untrained_projector": "speech LLM, untrained projector",
        "text_ground_truth": "text model, ground-truth transcript",
        "text_asr_cascade": "text model, ASR transcript (cascade)",
        "speech_shuffled_audio": "control: another dialogue's audio",
        "speech_silence": "control: silence of the same length",
        "text_shuffled_transcript": "text model, the shuffled turn's transcript",
    }
    for k, label in names.items():
        if k in r["reply_loss"]:
            lines.append(f"  {label:40s} {r['reply_loss'][k]:.4f}")
    for name, label in (("shuffled", "shuffled audio minus true audio"), ("silence", "silence minus true audio"),
                        ("text_shuffled", "text model, shuffled minus true transcript")):
        c = r.get("controls", {}).get(name)
        if c:
            lines.append(f"{label}: {c['mean_diff']:+.3f} nats/token "
                         f"[95% CI {c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}], the true turn better on "
                         f"{c['true_better_share']:.0%} of {c['n']} turns")
    if "heard" in r:
        lines.append(f"what the CTC projector hears: WER {r['heard']['wer_corpus']:.3f} (corpus)")
    if "asr" in r:
        lines.append(f"cascade ASR ({r['asr']['model']}): WER {r['asr']['wer_corpus']:.3f} (corpus), "
                     f"{r['asr']['wer_mean']:.3f} (mean per turn)")
        sv = r["speech_vs_cascade"]
        lines.append(f"speech model beats the cascade on {sv['speech_better_share']:.0%} of turns")
        for b in sv["by_asr_wer"]:
            lines.append(f"  ASR WER {b['asr_wer']:>10s}: n={b['n']:3d}  loss diff {b['speech_minus_cascade_loss']:+.3f}"
                         f"  speech better {b['speech_better_share']:.0%}")
        for b in sv["by_duration_s"]:
            lines.append(f"  clip {b['duration_s']:>8s} s: n={b['n']:3d}  loss diff {b['speech_minus_cascade_loss']:+.3f}"
                         f"  speech better {b['speech_better_share']:.0%}")
    if "similarity" in r:
        s = r["similarity"]
        lines.append(f"generated replies (n={s['n']}): cosine speech~text {s['speech_vs_text_reply']:.3f}, "
                     f"speech~reference {s['speech_vs_reference']:.3f}, text~reference {s['text_vs_reference']:.3f}")
    return "\n".join(lines)


def write_report(r: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(r, indent=2))
