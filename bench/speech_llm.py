"""Speech LLM speed: time to first token and tokens/s for audio-in replies, and training steps/s.

    python bench/speech_llm.py                                   # fresh model, flite clips
    python bench/speech_llm.py --ckpt SCKPT --data AUD --runs 5  # a trained checkpoint on real data
    python bench/speech_llm.py --device cuda                     # where a GPU is present

Time to first token covers the whole prompt pass: log-mel + Whisper encoder +
projector + the LLM over system prompt, context and audio tokens. Decode speed
is measured over the tokens after the first. The same LLM reading the
transcript instead of the audio is timed beside it. Training steps/s is stage 1
(projector only, encoder and LLM frozen) at the given batch size, with
``--lora`` stage 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SENTENCES = [
    ("Sure, what is this about?", "It is about our critical illness plan."),
    ("How much does it cost each month?", "It costs two hundred eighty eight per month."),
    ("Does the policy cover cancer, and is there a waiting period?", "Yes, and the waiting period is ninety days."),
    ("I already have insurance from my employer, so I am not sure I need more.",
     "Our plan pays cash on top of your employer cover."),
]


def flite_samples():
    import soundfile as sf

    from mads_audio.model import Sample
    from mads_text.common.records import Turn

    if shutil.which("flite") is None:
        sys.exit("flite is not installed; pass --data AUD")
    out = []
    with tempfile.TemporaryDirectory() as d:
        for i, (user, reply) in enumerate(SENTENCES):
            p = Path(d) / f"{i}.wav"
            subprocess.run(["flite", "-voice", "rms", "-t", user, "-o", str(p)], check=True)
            a, _ = sf.read(str(p), dtype="float32")
            ctx = [Turn(role="agent", text="Hello, this is Li Wei from Anxin Insurance. Do you have a minute?")]
            out.append(Sample(audio=a, context=ctx, user_text=user, reply=reply, scenario="insurance"))
    return out


def data_samples(aud: str, n: int):
    from mads_audio.data import load_examples, read_audio
    from mads_audio.model import Sample

    exs = load_examples(aud)[:n]
    return [Sample(audio=read_audio(e.user_audio), context=e.context, user_text=e.user_text, reply=e.reply,
                   scenario=e.scenario) for e in exs]


def bench_inference(model, samples, runs: int, max_tokens: int) -> dict:
    rows = {"audio": [], "text": []}
    model.generate(samples[0].audio, samples[0].context, scenario=samples[0].scenario, max_new_tokens=2)  # warm-up
    for i in range(runs):
        s = samples[i % len(samples)]
        for mode in ("audio", "text"):
            kw = {"user_text": s.user_text} if mode == "text" else {}
            first = last = None
            n = 0
            for ev in model.stream(None if mode == "text" else s.audio, s.context, scenario=s.scenario,
                                   max_new_tokens=max_tokens, **kw):
                if not ev.done:
                    n += 1
                    first = ev.elapsed_s if first is None else first
                last = ev
            gen = last.elapsed_s - (first or 0)
            rows[mode].append({"ttft": first or last.elapsed_s, "tok_s": (n - 1) / gen if n > 1 and gen > 0 else 0.0,
                               "tokens": n, "prompt": last.prompt_tokens, "audio_s": len(s.audio) / 16000})
    return rows


def bench_encoder(model, samples, runs: int) -> float:
    t = []
    for i in range(runs):
        a = samples[i % len(samples)].audio
        t0 = time.perf_counter()
        model.audio_embeds([a])
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


def bench_training(model, samples, steps: int, batch: int) -> dict:
    import torch

    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    times = []
    for k in range(steps + 1):
        b = [samples[(k * batch + j) % len(samples)] for j in range(batch)]
        t0 = time.perf_counter()
        out = model.reply_loss(b)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k:  # the first step pays one-off allocations
            times.append(time.perf_counter() - t0)
    model.eval()
    med = statistics.median(times)
    return {"steps_per_s": 1 / med, "samples_per_s": batch / med, "step_s": med}


def main() -> None:
    ap = argparse.ArgumentParser(description="speech LLM latency and training throughput")
    ap.add_argument("--ckpt", help="trained checkpoint (default: a fresh model, same cost)")
    ap.add_argument("--data", help="AUD folder of `mads synth` (default: flite clips)")
    ap.add_argument("--llm", default="smollm2")
    ap.add_argument("--whisper", default="base")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lora", action="store_true", help="time stage 2 (projector + LoRA)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    import torch

    from mads_audio.config import LoraSpec, SpeechLLMConfig
    from mads_audio.model import SpeechLLM

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.ckpt:
        model = SpeechLLM.load(args.ckpt, device=args.device)
    else:
        cfg = SpeechLLMConfig(llm=args.llm, whisper=args.whisper, lora=LoraSpec() if args.lora else None)
        model = SpeechLLM(cfg, device=args.device)
    load_s = time.perf_counter() - t0
    samples = data_samples(args.data, max(args.runs, args.batch_size)) if args.data else flite_samples()
    device = model.device_name
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU, {args.threads} threads"
    print(f"device: {name}; LLM {model.config.llm}, Whisper {model.config.whisper}, stack {model.config.stack}; "
          f"load {load_s:.1f} s")
    enc = bench_encoder(model, samples, args.runs)
    rows = bench_inference(model, samples, args.runs, args.max_tokens)
    for mode, label in (("audio", "audio in (speech LLM)"), ("text", "transcript in (same LLM)")):
        r = rows[mode]
        print(f"{label:26s} time to first token {statistics.median(x['ttft'] for x in r):.3f} s (median), "
              f"{statistics.median(x['tok_s'] for x in r):.1f} tokens/s, prompt {statistics.median(x['prompt'] for x in r):.0f} "
              f"positions, clips {statistics.median(x['audio_s'] for x in r):.1f} s")
    print(f"encoder + projector per clip: {enc:.3f} s (median)")
    if args.train_steps > 0:
        tr = bench_training(model, samples, args.train_steps, args.batch_size)
        stage = "stage 2 (projector + LoRA)" if model.config.lora else "stage 1 (projector only)"
        print(f"training {stage}, batch {args.batch_size}: {tr['steps_per_s']:.3f} steps/s, "
              f"{tr['samples_per_s']:.2f} samples/s ({tr['step_s']:.2f} s/step, median of {args.train_steps})")


if __name__ == "__main__":
    main()
