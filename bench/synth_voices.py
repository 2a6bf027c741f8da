"""How distinct the persona voices are as the number of personas grows past the bank's distinct voices.

    python bench/synth_voices.py [--personas 16] [--asr base]

Assigns voices to N personas (alternating female/male, ages 22-70) exactly as
``mads synth`` does, has each speak two sentences, and prints for every
persona its bank voice, whether it is a distinct one or a near neighbour, its
WER, and its highest d-vector cosine to any other persona. Then the mean
cosine over pairs of distinct voices, over pairs sharing a bank voice, and over
same-voice different-sentence pairs (the consistency reference).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SENTENCES = [
    "I already pay for a plan through my company, so why would I need a second one?",
    "Send me the details by message and I will read them tonight after dinner.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--personas", type=int, default=16)
    ap.add_argument("--asr", default="base")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()

    from synth.assign import VoiceBook, agent_speaker, assign_personas
    from synth.engines import get_engine
    from synth.quality import QAConfig, QualityModels, wer

    book = VoiceBook(engine="kokoro")
    book.agents["insurance"] = agent_speaker("insurance", {"engine": "kokoro", "preset": "agent_female"}, "kokoro")
    personas = [(f"p{i:02d}", {"gender": "Female" if i % 2 == 0 else "Male", "age": 22 + (i * 7) % 49})
                for i in range(a.personas)]  # fmt: skip
    assign_personas(book, personas)
    eng = get_engine("kokoro", threads=a.threads)
    qa = QualityModels(QAConfig(asr=a.asr), threads=a.threads)
    t0 = time.perf_counter()
    vec: dict[str, list[np.ndarray]] = {}
    errs: dict[str, float] = {}
    speakers = {"agent": book.agents["insurance"], **book.personas}
    for pid, s in speakers.items():
        vs, es = [], []
        for text in SENTENCES:
            pcm, sr = eng.synthesize(text, s.voice)
            hyp, _ = qa.transcribe(pcm, sr)
            es.append(wer(text, hyp))
            v = qa.dvector(pcm, sr)
            vs.append(v / np.linalg.norm(v))
        vec[pid], errs[pid] = vs, float(np.mean(es))
    mean = {k: np.mean(v, axis=0) / np.linalg.norm(np.mean(v, axis=0)) for k, v in vec.items()}
    ids = list(speakers)
    same = [float(v[0] @ v[1]) for v in vec.values()]
    distinct_pairs, shared_pairs, cross_gender = [], [], []
    for x, y in itertools.combinations(ids, 2):
        c = float(mean[x] @ mean[y])
        sx, sy = speakers[x], speakers[y]
        if sx.gender != sy.gender:
            cross_gender.append(c)
        elif sx.bank_id == sy.bank_id:
            shared_pairs.append(c)
        else:
            distinct_pairs.append(c)
    print(f"{'speaker':8s} {'gender':6s} {'age':>4s} {'bank':5s} {'kind':9s} {'pitch':>6s} {'speed':>6s} {'WER':>5s} "
          f"{'max cos to another':>19s}")  # fmt: skip
    for k in ids:
        s = speakers[k]
        near = max((float(mean[k] @ mean[o]), o) for o in ids if o != k)
        kind = "agent" if k == "agent" else ("distinct" if s.distinct else f"near #{s.variant}")
        print(f"{k:8s} {s.gender:6s} {s.age!s:>4s} {s.bank_id!s:5s} {kind:9s} {s.voice.pitch:6.3f} {s.voice.speed:6.3f} "
              f"{errs[k]:5.2f} {near[0]:8.3f} ({near[1]})")  # fmt: skip

    def stat(xs):
        return f"{np.mean(xs):.3f} (min {np.min(xs):.3f}, max {np.max(xs):.3f}, n {len(xs)})" if xs else "-"

    print(f"same voice, two sentences:              {stat(same)}")
    print(f"same gender, different bank voices:     {stat(distinct_pairs)}")
    print(f"same gender, shared bank voice (pitch): {stat(shared_pairs)}")
    print(f"different gender:                       {stat(cross_gender)}")
    print(f"WER mean {np.mean(list(errs.values())):.3f}; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
