"""Simulator fidelity: real people's profiles as User Agents, compared with what those people did.

The worked example is Persuasion For Good: each imported persuadee becomes a
persona, faces the same donation ask in the ``p4g`` scenario, and the simulated
decision (the decision module's ``accept``, recorded as the dialogue's outcome = donates) is compared with
the real one (``B6 > 0``).

All rates carry Wilson intervals; differences and correlations carry
percentile bootstrap intervals over people.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from .common.records import DialogueRecord
from .metrics import proportion

_NUM = r"(\d+(?:\.\d{1,2})?)"
_AMOUNT_PATTERNS: list[tuple[re.Pattern, Any]] = [
    (re.compile(r"\$\s?" + _NUM), lambda m: float(m.group(1))),
    (re.compile(_NUM + r"\s*(?:cents?|¢)", re.I), lambda m: float(m.group(1)) / 100),
    (re.compile(_NUM + r"\s*(?:dollars?|bucks?)", re.I), lambda m: float(m.group(1))),
    (re.compile(r"\b(?:all of it|all of my|the whole|the entire|the full|full \$?2|all \$?2|both dollars|everything)\b", re.I), lambda m: 2.0),
    (re.compile(r"\b(?:a|one) (?:dollar|buck)\b", re.I), lambda m: 1.0),
    (re.compile(r"\bhalf\b", re.I), lambda m: 1.0),
    (re.compile(r"\b(?:a|one) quarter\b", re.I), lambda m: 0.25),
    (re.compile(r"\b(?:a|one) dime\b", re.I), lambda m: 0.10),
]


def extract_amount(text: str, cap: float = 2.0) -> float | None:
    """The last donation amount stated in ``text`` (dollars), capped at the task payment."""
    best: tuple[int, float] | None = None
    for pat, conv in _AMOUNT_PATTERNS:
        for m in pat.finditer(text):
            if best is None or m.start() >= best[0]:
                best = (m.start(), conv(m))
    if best is None:
        return None
    return float(min(max(best[1], 0.0), cap))


def simulated_donation(rec: DialogueRecord) -> tuple[bool, float | None]:
    """(donated, amount): accept means donated; the amount is read from the accepting turn or the ask before it."""
    if rec.outcome != "accept":
        return False, 0.0
    turns = rec.turns
    for i in range(len(turns) - 1, -1, -1):
        if turns[i].role == "user":
            amt = extract_amount(turns[i].text)
            if amt is None and i > 0 and turns[i - 1].role == "agent":
                amt = extract_amount(turns[i - 1].text)
            return True, amt
    return True, None


# --- statistics ------------------------------------------------------------------


def bootstrap(stat, arrays: Sequence[np.ndarray], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Statistic on the data with a 95 % percentile interval, resampling rows (people) jointly."""
    value = float(stat(*arrays))
    n = len(arrays[0])
    if n < 2:
        return value, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        v = stat(*(a[idx] for a in arrays))
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return value, float("nan"), float("nan")
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return value, float(lo), float(hi)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    po = float(np.mean(a == b))
    pe = float(np.mean(a) * np.mean(b) + np.mean(~a) * np.mean(~b))
    return (po - pe) / (1 - pe) if pe < 1 else float("nan")


# --- the comparison -------------------------------------------------------------------


SEGMENTS = {
    "gender": lambda f: f.get("gender"),
    "age band": lambda f: _age_band(f.get("age")),
    "ideology": lambda f: f.get("ideology"),
    "extraversion": lambda f: f.get("extraversion"),
    "agreeableness": lambda f: f.get("agreeableness"),
    "conscientiousness": lambda f: f.get("conscientiousness"),
    "neuroticism": lambda f: f.get("neuroticism"),
    "openness": lambda f: f.get("openness"),
}


def _age_band(age: Any) -> str | None:
    if age is None:
        return None
    a = int(age)
    for lo, hi in ((18, 24), (25, 34), (35, 44), (45, 54)):
        if lo <= a <= hi:
            return f"{lo}-{hi}"
    return "55+" if a >= 55 else "<18"


def compare_outcomes(records: list[DialogueRecord], seed: int = 0) -> dict[str, Any]:
    """Per-person simulated donation propensity vs the person's real donation."""
    by_person: dict[str, list[DialogueRecord]] = defaultdict(list)
    for r in records:
        if r.outcome != "error" and "_real_outcome" in r.persona:
            by_person[r.persona_id].append(r)
    people = sorted(by_person)
    if not people:
        raise ValueError("no dialogues with a real outcome (_real_outcome) to compare")
    real_amt = np.array([float(by_person[p][0].persona["_real_outcome"]) for p in people])
    real = (real_amt > 0).astype(float)
    sim_rate = np.array([np.mean([simulated_donation(r)[0] for r in by_person[p]]) for p in people])
    sim_any = (sim_rate >= 0.5).astype(float)
    amounts = [simulated_donation(r)[1] for p in people for r in by_person[p] if simulated_donation(r)[0]]
    n_dlg = sum(len(v) for v in by_person.values())
    k_sim = sum(simulated_donation(r)[0] for v in by_person.values() for r in v)

    out: dict[str, Any] = {
        "n_people": len(people),
        "n_dialogues": n_dlg,
        "real_donation_rate": proportion(int(real.sum()), len(people)),
        "sim_donation_rate": proportion(int(k_sim), n_dlg),
        "gap_sim_minus_real": dict(
            zip(("value", "lo", "hi"), bootstrap(lambda s, r: float(np.mean(s) - np.mean(r)), [sim_rate, real], seed=seed))
        ),
        "corr_real_donated_vs_sim_rate": dict(zip(("r", "lo", "hi"), bootstrap(pearson, [real, sim_rate], seed=seed))),
        "corr_real_amount_vs_sim_rate": dict(zip(("r", "lo", "hi"), bootstrap(pearson, [real_amt, sim_rate], seed=seed))),
        "agreement": float(np.mean(real == sim_any)),
        "cohen_kappa": cohen_kappa(real, sim_any),
        "real_mean_amount": float(real_amt.mean()),
        "sim_amounts_stated": len([a for a in amounts if a is not None]),
        "sim_mean_amount_when_stated": float(np.mean([a for a in amounts if a is not None])) if any(a is not None for a in amounts) else None,
        "segments": {},
    }
    for seg, key in SEGMENTS.items():
        groups: dict[str, list[int]] = defaultdict(list)
        for i, p in enumerate(people):
            v = key(by_person[p][0].persona)
            if v is not None and v != "Unknown":
                groups[str(v)].append(i)
        if len(groups) < 2:
            continue
        rows = {}
        for v, idx in sorted(groups.items()):
            idx_a = np.array(idx)
            sims = [simulated_donation(r)[0] for p in np.array(people)[idx_a] for r in by_person[p]]
            rows[v] = {
                "n": len(idx),
                "real": proportion(int(real[idx_a].sum()), len(idx)),
                "sim": proportion(int(sum(sims)), len(sims)),
            }
        out["segments"][seg] = rows
    return out


def render_report(res: dict[str, Any], settings: dict[str, Any], coa: dict[str, Any] | None = None) -> str:
    def pct(d, k="rate"):
        return f"{100 * d[k]:.1f} % [{100 * d['lo']:.1f}, {100 * d['hi']:.1f}]"

    lines = [
        "# Simulator fidelity: simulated vs real donation (Persuasion For Good)",
        "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()),
        "",
        f"People: {res['n_people']}, simulated dialogues: {res['n_dialogues']}",
        "",
        "| | donation rate (95 % CI) |",
        "| --- | --- |",
        f"| real (B6 > 0) | {pct(res['real_donation_rate'])} |",
        f"| simulated (decision: accept) | {pct(res['sim_donation_rate'])} |",
        f"| gap, simulated - real | {100 * res['gap_sim_minus_real']['value']:+.1f} pts "
        f"[{100 * res['gap_sim_minus_real']['lo']:+.1f}, {100 * res['gap_sim_minus_real']['hi']:+.1f}] |",
        "",
        f"Person-level correlation, real donated (0/1) vs simulated donation rate: r = "
        f"{res['corr_real_donated_vs_sim_rate']['r']:.3f} [{res['corr_real_donated_vs_sim_rate']['lo']:.3f}, "
        f"{res['corr_real_donated_vs_sim_rate']['hi']:.3f}]; real amount vs simulated rate: r = "
        f"{res['corr_real_amount_vs_sim_rate']['r']:.3f} [{res['corr_real_amount_vs_sim_rate']['lo']:.3f}, "
        f"{res['corr_real_amount_vs_sim_rate']['hi']:.3f}]. Agreement {100 * res['agreement']:.1f} %, Cohen's kappa "
        f"{res['cohen_kappa']:.3f}.",
        f"Real mean donation ${res['real_mean_amount']:.2f}; simulated amounts stated in {res['sim_amounts_stated']} accepting "
        f"dialogues" + (f", mean ${res['sim_mean_amount_when_stated']:.2f}." if res["sim_mean_amount_when_stated"] is not None else "."),
        "",
        "## Per segment",
    ]
    for seg, rows in res["segments"].items():
        lines += ["", f"### {seg}", "", "| value | n | real | simulated |", "| --- | --- | --- | --- |"]
        for v, r in rows.items():
            lines.append(f"| {v} | {r['n']} | {pct(r['real'])} | {pct(r['sim'])} |")
    if coa:
        lines += ["", "## Chain-of-Attitude entropy", "", "| dialogues | n | H_avg | 95% CI | H_norm (/ln 16) | labeler |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, m in coa.items():
            ci = m.get("h_avg_ci95") or [None, None]
            cis = f"{ci[0]:.3f}-{ci[1]:.3f}" if None not in ci else "n/a"
            lines.append(f"| {name} | {m.get('n', '')} | {m['h_avg']:.4f} | {cis} | {m['h_norm']:.4f} | {m.get('labeler', '')} |")
    return "\n".join(lines) + "\n"


# --- the command -------------------------------------------------------------------


def run_fidelity(
    data: str,
    out: str,
    n_personas: int = 40,
    per_person: int = 2,
    max_rounds: int = 10,
    seed: int = 7,
    backend: str = "embedded",
    model: str | None = None,
    base_url: str | None = None,
    mapping: str | None = None,
    concurrency: int | None = None,
    coa: bool = True,
) -> dict[str, Any]:
    """Import P4G persuadees, simulate them in the p4g scenario, compare with their real donations."""
    import asyncio
    import json
    from importlib import resources
    from pathlib import Path

    from .common import runstore
    from .orchestrator import SimulationConfig, simulate
    from .persona_import import import_personas, load_mapping

    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    mapping_path = mapping or str(resources.files("mads_text") / "mappings" / "p4g.yaml")
    table = Path(data) / "full_info.csv"
    people = import_personas(load_mapping(mapping_path), table, "p4g", seed=seed)
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(people), size=min(n_personas, len(people)), replace=False).tolist())
    chosen = [people[i] for i in pick]
    pfile = out_p / "personas.jsonl"
    if not pfile.exists():
        with runstore.JsonlWriter(pfile) as w:
            for p in chosen:
                w.append(p)
    cfg = SimulationConfig(
        scenario="p4g", personas_file=str(pfile), per_persona=per_person, max_rounds=max_rounds, seed=seed,
        backend=backend, model=model, base_url=base_url, concurrency=concurrency,
    )
    asyncio.run(simulate(cfg, out_p / "run"))
    recs = runstore.read_dialogues(out_p / "run")
    res = compare_outcomes(recs, seed=seed)
    settings = {"people": len(chosen), "per_person": per_person, "max_rounds": max_rounds, "seed": seed,
                "backend": backend, "model": runstore.read_manifest(out_p / "run").model}
    coa_rows = None
    if coa:
        coa_rows = _coa_compare(out_p, recs, Path(data), {p.id.split("-", 1)[1] for p in chosen})
        res["coa"] = coa_rows
    res["settings"] = settings
    runstore.write_json_atomic(out_p / "fidelity.json", json.loads(json.dumps(res, default=float)))
    (out_p / "report.md").write_text(render_report(res, settings, coa_rows))
    return res


def _coa_compare(out_p, recs, data_dir, dialogue_ids) -> dict[str, Any] | None:
    """H_avg of the simulated calls and of the same people's real P4G dialogues, one labeler for both.

    The embedded labeler (MiniLM + trained heads) labels both sides, so the gap is not a labeler artefact.
    """
    try:
        from . import analysis, p4g
    except ImportError:  # labelers need the ml extra
        return None
    cfg = analysis.LabelingConfig(labeler="embedded")
    try:
        human = [r for r in p4g.load_p4g(data_dir, subset="full") if r.id in dialogue_ids]
    except p4g.P4GError:
        return None
    rows: dict[str, Any] = {}
    for name, rs in (("simulated", recs), ("human (same people)", human)):
        if not rs:
            continue
        m = analysis.analyze_records(rs, out_p / "coa" / name.split()[0], cfg, title=f"fidelity {name}",
                                     n_boot=500, progress=False)
        rows[name] = {"n": m["n_labelled"], "h_avg": m["h_avg"], "h_avg_ci95": m["h_avg_ci95"],
                      "h_norm": m["h_norm"], "labeler": m["labelers"]["attitude"]}
    return rows
