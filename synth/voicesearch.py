"""Measure Kokoro blends and build the voice bank (``mads voices search``).

1. Probe: every (timbre, prosody) blend speaks one sentence at pitch 1; its
   median F0 is measured (the pitch input scales F0 linearly, so the factor for
   any target F0 follows).
2. Candidates: each blend at one or two target F0s speaks the test sentences;
   Whisper gives the round-trip WER, resemblyzer the d-vector (mean over
   sentences), pYIN the median F0.
3. Selection, per gender: candidates under the WER gate are ordered by
   farthest-point selection on d-vector cosine; a voice is ``distinct`` while its
   highest cosine to the voices before it stays under the threshold.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .bank import Bank, BankVoice
from .engines.kokoro import BASE_STYLES
from .quality import QAConfig, QualityModels, wer
from .voice import Voice

FEMALE = [s for s in BASE_STYLES if s.startswith("jf_")]
MALE = "jm_kumo"
SENTENCES = [
    "Well, I already have a policy through my employer, so I am not sure I need another one.",
    "How much would that cost me every month, and what does it actually cover?",
]
PROBE = "Thanks for calling, I have a few minutes right now."
FEMALE_F0 = (190.0, 235.0)
MALE_F0 = (100.0, 125.0)


def median_f0(pcm: np.ndarray, sr: int) -> float:
    import librosa

    f, _, _ = librosa.pyin(pcm, fmin=60, fmax=420, sr=sr, frame_length=1024)
    return float(np.nanmedian(f)) if np.any(np.isfinite(f)) else float("nan")


def wide_blends() -> list[tuple[str, Voice, tuple[float, ...]]]:
    """A second round aimed at the sparse corners: more female timbre in male voices, female
    intonation at male pitch, and deeper female voices with some male timbre."""
    out: list[tuple[str, Voice, tuple[float, ...]]] = []
    for f in FEMALE:
        out.append(("male", Voice(timbre={MALE: 0.6, f: 0.4}, prosody={MALE: 1}), (105.0,)))
        out.append(("male", Voice(timbre={MALE: 1}, prosody={f: 1}), (110.0,)))
        out.append(("female", Voice(timbre={f: 0.75, MALE: 0.25}, prosody={MALE: 1}), (178.0,)))
    return out


def blends(quick: bool = False) -> list[tuple[str, Voice, tuple[float, ...]]]:
    """(gender, voice at pitch 1, target F0s) for every blend tried."""
    out: list[tuple[str, Voice, tuple[float, ...]]] = []
    for f in FEMALE:
        out.append(("female", Voice(timbre={f: 1}, prosody={f: 0.5, MALE: 0.5}), FEMALE_F0))
        if not quick:
            out.append(("female", Voice(timbre={f: 1}, prosody={MALE: 1}), FEMALE_F0))
    for a, b in itertools.combinations(FEMALE, 2) if not quick else []:
        out.append(("female", Voice(timbre={a: 0.5, b: 0.5}, prosody={a: 0.25, b: 0.25, MALE: 0.5}), (212.0,)))
    out.append(("male", Voice(timbre={MALE: 1}, prosody={MALE: 1}), MALE_F0))
    for f in FEMALE if not quick else FEMALE[:2]:
        out.append(("male", Voice(timbre={MALE: 0.75, f: 0.25}, prosody={MALE: 1}), MALE_F0))
    return out


def farthest_point(ids: list[str], vecs: np.ndarray, wers: list[float]) -> list[tuple[str, float | None]]:
    """Greedy max-min ordering; starts from the most intelligible voice, returns (id, max cos to earlier)."""
    if not ids:
        return []
    v = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    sim = v @ v.T
    first = int(np.argmin(wers))
    order, maxcos = [first], [None]
    rest = set(range(len(ids))) - {first}
    while rest:
        best = min(rest, key=lambda j: (max(sim[j, i] for i in order), ids[j]))
        maxcos.append(float(max(sim[best, i] for i in order)))
        order.append(best)
        rest.discard(best)
    return [(ids[i], None if c is None else round(c, 4)) for i, c in zip(order, maxcos)]


def _count_below(curve: list[float], t: float) -> int:
    """Voices in the farthest-point order before the first one at cosine >= t (the first voice counts)."""
    n = 1
    for c in curve:
        if c >= t:
            break
        n += 1
    return n


def search(
    out: Path,
    threshold: float = 0.8,
    max_wer: float = 0.1,
    asr: str = "base",
    threads: int | None = None,
    quick: bool = False,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
    grid: str = "base",
    merge: Path | None = None,
) -> Bank:
    """Measure a grid (``base``, or ``wide`` for the second round) and select; ``merge`` adds a bank's measurements."""
    from .engines.kokoro import KokoroEngine

    eng = KokoroEngine(threads=threads)
    qa = QualityModels(QAConfig(asr=asr, beam_size=1), threads=threads)
    t0 = time.perf_counter()
    measured: list[dict] = []
    prior = _measurements(Bank.model_validate_json(merge.read_text(encoding="utf-8"))) if merge else []
    taken = [m["id"] for m in prior] + ([r["id"] for r in Bank.model_validate_json(merge.read_text()).rejected] if merge else [])
    counter = {g: max((int(i[1:]) for i in taken if i[0] == g[0]), default=0) for g in ("female", "male")}
    for gender, base, targets in wide_blends() if grid == "wide" else blends(quick):
        pcm, sr = eng.synthesize(PROBE, base)
        f0_1 = median_f0(pcm, sr)
        log(f"probe {gender} timbre={base.timbre} prosody={base.prosody}: F0 {f0_1:.0f} Hz at pitch 1")
        for target in targets:
            pitch = round(float(np.clip(target / f0_1, 0.5, 3.0)), 3)
            voice = base.model_copy(update={"pitch": pitch})
            vecs, errs, f0s = [], [], []
            for s in SENTENCES:
                pcm, sr = eng.synthesize(s, voice)
                hyp, _ = qa.transcribe(pcm, sr)
                errs.append(wer(s, hyp))
                vecs.append(qa.dvector(pcm, sr))
                f0s.append(median_f0(pcm, sr))
            counter[gender] += 1
            cid = f"{gender[0]}{counter[gender]:02d}"
            d = np.mean([v / np.linalg.norm(v) for v in vecs], axis=0)
            rec = {"id": cid, "gender": gender, "voice": voice, "wer": round(float(np.mean(errs)), 4),
                   "f0_hz": round(float(np.nanmedian(f0s)), 1), "dvector": d}  # fmt: skip
            measured.append(rec)
            log(f"  {cid} pitch {pitch}: F0 {rec['f0_hz']} Hz, WER {rec['wer']:.3f} ({time.perf_counter() - t0:.0f} s)")

    bank = select(prior + measured, threshold, max_wer)
    wall = time.perf_counter() - t0
    if merge:
        old = Bank.model_validate_json(merge.read_text(encoding="utf-8"))
        wall += old.summary.get("wall_s") or 0.0
        bank.rejected += [r for r in old.rejected if not r.get("dvector")]
    bank.summary["wall_s"] = round(wall, 1)
    write_bank(bank, out)
    return bank


# F0 a voice must have to be offered for its gender (pYIN median over the test sentences)
F0_GATE = {"female": (160.0, 330.0), "male": (70.0, 150.0)}


def select(measured: list[dict], threshold: float, max_wer: float, f0_gate: dict | None = None) -> Bank:
    """Gate candidates on WER and on F0 for their gender, then order each gender by farthest-point selection."""
    f0_gate = F0_GATE if f0_gate is None else f0_gate
    bank = Bank(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        command="mads voices search " + " ".join(sys.argv[3:]) if len(sys.argv) > 3 else "mads voices search",
        threshold=threshold,
        max_wer=max_wer,
        sentences=SENTENCES,
    )
    summary: dict = {"candidates": len(measured), "threshold": threshold, "max_wer": max_wer, "f0_gate": f0_gate}

    def passes(m: dict) -> str | None:
        lo, hi = f0_gate[m["gender"]]
        if m["wer"] > max_wer:
            return f"WER {m['wer']} > {max_wer}"
        if not lo <= m["f0_hz"] <= hi:
            return f"F0 {m['f0_hz']} Hz outside {lo:g}-{hi:g} for {m['gender']}"
        return None

    for gender in ("female", "male"):
        ok = [m for m in measured if m["gender"] == gender and passes(m) is None]
        for m in measured:
            if m["gender"] == gender and passes(m) is not None:
                bank.rejected.append({"id": m["id"], "gender": gender, "voice": Voice.model_validate(m["voice"]).model_dump(),
                                      "wer": m["wer"], "f0_hz": m["f0_hz"], "reason": passes(m),
                                      "dvector": [round(float(x), 4) for x in m["dvector"]]})  # fmt: skip
        order = farthest_point([m["id"] for m in ok], np.stack([m["dvector"] for m in ok]) if ok else np.zeros((0, 256)),
                               [m["wer"] for m in ok])  # fmt: skip
        by_id = {m["id"]: m for m in ok}
        n_distinct = 0
        still = True
        for rank, (cid, mc) in enumerate(order):
            still = still and (mc is None or mc < threshold)
            n_distinct += still
            m = by_id[cid]
            bank.voices.append(BankVoice(
                id=cid, gender=gender, voice=m["voice"], f0_hz=m["f0_hz"], wer=m["wer"], rank=rank, distinct=still,
                max_cos=mc, dvector=[round(float(x), 4) for x in m["dvector"]],
            ))  # fmt: skip
        curve = [mc for _, mc in order[1:]]
        summary[gender] = {
            "measured": sum(1 for m in measured if m["gender"] == gender),
            "passed_gates": len(ok),
            "distinct": n_distinct,
            "distinct_at": {str(t): _count_below(curve, t) if ok else 0 for t in (0.75, 0.8, 0.85, 0.9)},
            "max_cos_curve": curve,
        }
    fem = [v for v in bank.voices if v.gender == "female"]
    mal = [v for v in bank.voices if v.gender == "male"]
    if fem and mal:
        a = np.array([v.dvector for v in fem])
        b = np.array([v.dvector for v in mal])
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        summary["cross_gender_max_cos"] = round(float((a @ b.T).max()), 4)
    # the agents take the clearest voice of each gender; personas avoid them while others are free
    for gender, preset in (("female", "agent_female"), ("male", "agent_male")):
        pool = [v for v in bank.voices if v.gender == gender and v.distinct] or [v for v in bank.voices if v.gender == gender]
        if pool:
            bank.presets[preset] = min(pool, key=lambda v: (v.wer, v.rank)).id
    bank.summary = summary
    return bank


def write_bank(bank: Bank, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(bank.model_dump_json(indent=1) + "\n", encoding="utf-8")


def reselect(src: Path, out: Path, threshold: float, max_wer: float) -> Bank:
    """Redo the selection from a bank file's measurements (no synthesis): other thresholds in seconds."""
    old = Bank.model_validate_json(src.read_text(encoding="utf-8"))
    bank = select(_measurements(old), threshold, max_wer)
    bank.rejected += [r for r in old.rejected if not r.get("dvector")]  # measured before d-vectors were kept
    bank.created, bank.command = old.created, old.command + f" (reselected: threshold {threshold}, max_wer {max_wer})"
    bank.summary["wall_s"] = old.summary.get("wall_s")
    write_bank(bank, out)
    return bank


def _measurements(old: Bank) -> list[dict]:
    measured = [{"id": v.id, "gender": v.gender, "voice": v.voice, "wer": v.wer, "f0_hz": v.f0_hz,
                 "dvector": np.asarray(v.dvector)} for v in old.voices]  # fmt: skip
    measured += [{"id": r["id"], "gender": r.get("gender") or ("female" if r["id"].startswith("f") else "male"),
                  "voice": Voice.model_validate(r["voice"]), "wer": r["wer"], "f0_hz": r["f0_hz"],
                  "dvector": np.asarray(r["dvector"])} for r in old.rejected if r.get("dvector")]  # fmt: skip
    measured.sort(key=lambda m: m["id"])
    return measured
