"""Self-play throughput and orchestration overhead on one backend.

Phase 1 runs ``mads simulate`` in-process and records every LLM request with the
dialogue it belongs to. Phase 2, in a fresh process with a fresh model, replays
exactly those requests straight to the raw backend with the same concurrency
(each worker sends one dialogue's requests in order, as self-play must). The
ratio of generated tokens/s (self-play / raw) is the share of backend speed
the orchestration keeps.

With ``--speculative NAME`` it instead runs self-play twice with the same seeds, without and
with llama.cpp's n-gram speculative decoding (embedded backend), each in a fresh process, then
replays the plain run's recorded requests raw both ways (the same prompts, so the two speeds
compare the same work), and prints generated tokens/s of each and whether the dialogues came out
the same (with sampling they need not: drafts verified in a batch change the floating-point sums
and the sampler's draws, not the distribution).

    python bench/selfplay.py --model smollm2 --personas 8 --concurrency 4
    python bench/selfplay.py --model qwen1.5b --personas 4 --max-rounds 4
    python bench/selfplay.py --model qwen1.5b --personas 4 --max-rounds 4 --speculative ngram-simple
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mads_text.llm import make_backend
from mads_text.llm.base import GenParams, LLMBackend
from mads_text.llm.wrappers import _Delegating


class Recorder(_Delegating):
    def __init__(self, inner: LLMBackend):
        super().__init__(inner)
        self.log: list[tuple[str, object, GenParams]] = []
        self.processed = 0  # prompt + generated tokens

    async def _complete(self, prompt, params):
        self.log.append((asyncio.current_task().get_name(), prompt, params))
        out = await self.inner.complete(prompt, params)
        self.processed += out.prompt_tokens + out.completion_tokens
        return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_selfplay(a) -> dict:
    from mads_text.orchestrator import SimulationConfig, simulate

    backend = Recorder(make_backend(a.backend, a.model, base_url=a.base_url, parallel=a.concurrency, retries=0))
    cfg = SimulationConfig(scenario=a.scenario, group="sign", personas=a.personas, per_persona=1,
                           max_rounds=a.max_rounds, seed=a.seed, backend=a.backend, model=a.model,
                           base_url=a.base_url, concurrency=a.concurrency)
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(backend.check())  # load the model before the clock starts
        t0 = time.perf_counter()
        res = asyncio.run(simulate(cfg, Path(d) / "run", backend=backend, progress=False))
        wall = time.perf_counter() - t0
        lines = sorted((Path(d) / "run" / "dialogues.jsonl").read_text().splitlines())
        turns = [json.dumps([json.loads(line)["id"], json.loads(line)["turns"]]) for line in lines]
        fingerprint = hashlib.sha256("\n".join(turns).encode()).hexdigest()[:16]
    by_dialogue: dict[str, list] = {}
    for name, prompt, params in backend.log:
        by_dialogue.setdefault(name, []).append((prompt, params))
    Path(a.requests).write_bytes(pickle.dumps(list(by_dialogue.values())))
    return {
        "dialogues": res.produced,
        "wall_s": wall,
        "dialogues_per_min": 60 * res.produced / wall,
        "completion_tokens": res.completion_tokens,
        "tokens_per_s": res.completion_tokens / wall,
        "llm_calls": len(backend.log),
        "processed_tokens": backend.processed,
        "processed_per_s": backend.processed / wall,
        "peak_rss_mb": peak_rss_mb(),
        "dialogues_sha": fingerprint,
        "speculative": os.environ.get("MADS_LLM_SPECULATIVE") or None,
        "load_avg": os.getloadavg()[0],
    }


def phase_raw(a) -> dict:
    dialogues = pickle.loads(Path(a.requests).read_bytes())
    backend = make_backend(a.backend, a.model, base_url=a.base_url, parallel=a.concurrency, retries=0).unwrap()

    async def main():
        await backend.check()
        queue = list(dialogues)
        tokens = processed = 0

        async def worker():
            nonlocal tokens, processed
            while queue:
                reqs = queue.pop(0)
                for prompt, params in reqs:
                    out = await backend.complete(prompt, params)
                    tokens += out.completion_tokens
                    processed += out.prompt_tokens + out.completion_tokens

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(a.concurrency)))
        return tokens, processed, time.perf_counter() - t0

    tokens, processed, wall = asyncio.run(main())
    return {"completion_tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall, "processed_tokens": processed,
            "processed_per_s": processed / wall, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="embedded", help="embedded, vllm, openai or transformers")
    ap.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (--backend openai)")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--scenario", default="insurance")
    ap.add_argument("--personas", type=int, default=8)
    ap.add_argument("--max-rounds", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--phase", choices=["all", "selfplay", "raw"], default="all")
    ap.add_argument("--requests", default=None)
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--speculative", default=None, help="compare self-play without and with this n-gram speculative "
                    "decoding type (ngram-simple, ngram-mod, ngram-map-k, ...) instead of the raw replay")
    a = ap.parse_args()
    if a.phase != "all":
        out = phase_selfplay(a) if a.phase == "selfplay" else phase_raw(a)
        print(json.dumps(out))
        return
    if a.speculative:
        compare_speculative(a)
        return
    with tempfile.TemporaryDirectory() as d:
        a.requests = str(Path(d) / "requests.pkl")
        base = [sys.executable, __file__, "--backend", a.backend, *(["--base-url", a.base_url] if a.base_url else []),
                "--model", a.model, "--scenario", a.scenario, "--personas", str(a.personas),
                "--max-rounds", str(a.max_rounds), "--concurrency", str(a.concurrency), "--seed", str(a.seed),
                "--requests", a.requests]
        # separate processes: each phase starts with a cold model and an empty prompt cache
        sp = json.loads(subprocess.run(base + ["--phase", "selfplay"], capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        raw = json.loads(subprocess.run(base + ["--phase", "raw"], capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    ratio = sp["tokens_per_s"] / raw["tokens_per_s"]
    # unseeded sampling ends replayed turns at other points, so generated-token counts differ between the
    # phases; prompt + generated tokens per second compares the work done per second on equal terms
    ratio_processed = sp["processed_per_s"] / raw["processed_per_s"]
    print(f"model {a.model}, {a.personas} dialogues x {a.max_rounds} rounds, concurrency {a.concurrency}")
    print(f"self-play : {sp['dialogues_per_min']:.2f} dialogues/min, {sp['tokens_per_s']:.1f} generated tokens/s "
          f"({sp['completion_tokens']} tokens, {sp['llm_calls']} calls, {sp['wall_s']:.1f} s), peak RSS {sp['peak_rss_mb']:.0f} MB")
    print(f"raw replay: {raw['tokens_per_s']:.1f} generated tokens/s ({raw['completion_tokens']} tokens, {raw['wall_s']:.1f} s), "
          f"peak RSS {raw['peak_rss_mb']:.0f} MB")
    print(f"processed (prompt + generated) tokens/s: self-play {sp['processed_per_s']:.1f}, raw {raw['processed_per_s']:.1f}")
    print(f"ratio self-play / raw: generated tokens/s {ratio:.3f}, processed tokens/s {ratio_processed:.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"selfplay": sp, "raw": raw, "ratio": ratio, "ratio_processed": ratio_processed,
                                            "args": vars(a)}, indent=2))


def compare_speculative(a) -> None:
    runs = {}
    with tempfile.TemporaryDirectory() as d:
        base = [sys.executable, __file__, "--backend", a.backend, "--model", a.model, "--scenario", a.scenario,
                "--personas", str(a.personas), "--max-rounds", str(a.max_rounds), "--concurrency", str(a.concurrency),
                "--seed", str(a.seed)]
        for name, spec in (("plain", None), ("speculative", a.speculative)):
            env = {k: v for k, v in os.environ.items() if k != "MADS_LLM_SPECULATIVE"}
            if spec:
                env["MADS_LLM_SPECULATIVE"] = spec
            reqs = ["--requests", str(Path(d) / f"requests-{name}.pkl")]
            out = subprocess.run(base + reqs + ["--phase", "selfplay"], capture_output=True, text=True, check=True, env=env)
            runs[name] = json.loads(out.stdout.splitlines()[-1])
            # the plain run's requests replayed raw: the same prompts and seeds with and without drafting
            reqs = ["--requests", str(Path(d) / "requests-plain.pkl")]
            out = subprocess.run(base + reqs + ["--phase", "raw"], capture_output=True, text=True, check=True, env=env)
            runs[name]["raw"] = json.loads(out.stdout.splitlines()[-1])
            runs[name]["raw"]["load_avg"] = os.getloadavg()[0]
    p, s = runs["plain"], runs["speculative"]
    print(f"model {a.model}, {a.personas} dialogues x {a.max_rounds} rounds, concurrency {a.concurrency}, seed {a.seed}")
    for name, r in runs.items():
        print(f"{name:12} self-play: {r['tokens_per_s']:.2f} generated tokens/s ({r['completion_tokens']} tokens, {r['llm_calls']} calls, "
              f"{r['wall_s']:.1f} s), {r['dialogues_per_min']:.2f} dialogues/min, load average {r['load_avg']:.1f}")
        raw = r["raw"]
        print(f"{name:12} replay of the plain run's requests: {raw['tokens_per_s']:.2f} generated tokens/s "
              f"({raw['completion_tokens']} tokens, {raw['wall_s']:.1f} s), load average {raw['load_avg']:.1f}")
    same = "the same" if p["dialogues_sha"] == s["dialogues_sha"] else "not the same (sampling draws differ once drafts are verified in batches)"
    print(f"speculative ({a.speculative}) / plain: self-play {s['tokens_per_s'] / p['tokens_per_s']:.3f} x, "
          f"replay {s['raw']['tokens_per_s'] / p['raw']['tokens_per_s']:.3f} x generated tokens/s; dialogues {same}")
    if a.json:
        Path(a.json).write_text(json.dumps({"plain": p, "speculative": s, "args": vars(a)}, indent=2))


if __name__ == "__main__":
    main()
