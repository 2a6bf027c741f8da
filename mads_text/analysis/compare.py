"""Several analysed runs side by side: ``compare.json``, ``compare.md`` and figures, with the JS divergence of
each run's attitude transitions against a baseline run (Table 1 and 2 of the paper)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics as M
from ..attitude import STATES
from ..common import runstore
from ..labelers.base import DialogueLabels
from .layout import ANALYSIS_DIR, LABELS, METRICS, AnalysisError
from .report import fmt, fmt_ci, plot_strategy_bars, plot_transition_heatmap, pyplot
from .summary import ci95, nan_to_none


def load_analysis(run_dir: str | Path) -> tuple[dict[str, Any], list[DialogueLabels]]:
    a = Path(run_dir) / ANALYSIS_DIR
    if not (a / METRICS).exists() or not (a / LABELS).exists():
        raise AnalysisError(f"{run_dir}: no analysis yet (run `mads analyze {run_dir}` first, or pass --analyze)")
    m = json.loads((a / METRICS).read_text())
    labels = list(runstore.iter_jsonl(a / LABELS, DialogueLabels))
    return m, labels


def compare_runs(
    runs: Sequence[str | Path],
    out_dir: str | Path,
    baseline: str | Path | None = None,
    names: Sequence[str] | None = None,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Side-by-side metrics of analysed runs, JS divergence of each against ``baseline`` (default the first)."""
    if not runs:
        raise AnalysisError("no runs to compare")
    runs = [Path(r) for r in runs]
    base = Path(baseline) if baseline else runs[0]
    if base.resolve() not in [r.resolve() for r in runs]:
        runs = [base, *runs]
    if names and len(names) != len(runs):
        raise AnalysisError(f"--names gives {len(names)} names for {len(runs)} runs")
    loaded = [load_analysis(r) for r in runs]
    labels_of = {r.resolve(): lab for r, (_, lab) in zip(runs, loaded)}
    base_chains = [d.chain() for d in labels_of[base.resolve()] if d.attitude_ok]

    def js_joint(a, b):
        return M.js_transitions(M.transition_counts(a), M.transition_counts(b))

    rows = []
    for i, (r, (m, lab)) in enumerate(zip(runs, loaded)):
        chains = [d.chain() for d in lab if d.attitude_ok]
        name = names[i] if names else (m.get("run", {}).get("group") or r.name)
        if any(x["name"] == name for x in rows):
            name = f"{name} ({r.name})"
        is_base = r.resolve() == base.resolve()
        row = {
            "name": name, "run": str(r), "is_baseline": is_base,
            "n_dialogues": m["n_dialogues"], "n_labelled": m["n_labelled"],
            "h_avg": m["h_avg"], "h_avg_ci95": m["h_avg_ci95"], "h_norm": m["h_norm"], "h_norm_paper": m["h_norm_paper"],
            "c_str": m["strategies_per_dialogue"]["mean"], "c_str_sd": m["strategies_per_dialogue"]["sd"],
            "strategy_cv": m["strategy_cv"], "acceptance_rate": m["acceptance_rate"],
            "acceptance_rate_ci95": m["acceptance_rate_ci95"], "labelers": m.get("labelers", {}),
            "strategy_dialogue_counts": m["strategy_dialogue_counts"],
            "transition_matrix": m["transition_matrix"],
        }
        if not is_base and chains and base_chains:
            ca, cb = M.transition_counts(chains), M.transition_counts(base_chains)
            try:
                row["js"] = round(M.js_transitions(ca, cb), 6)
                row["js_ci95"] = ci95(M.bootstrap_ci_two(chains, base_chains, js_joint, n_boot=n_boot, seed=seed, method="centered"))
            except ValueError:
                row["js"], row["js_ci95"] = None, [None, None]
            jr = M.js_rows(ca, cb)
            row["js_rows"] = None if math.isnan(jr) else round(jr, 6)
        rows.append(row)
    base_name = next(x["name"] for x in rows if x["is_baseline"])
    if base_name:
        b = next(x for x in rows if x["is_baseline"])
        for x in rows:
            if b["h_norm"]:
                x["h_norm_change_vs_baseline"] = round((x["h_norm"] - b["h_norm"]) / b["h_norm"], 6)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"baseline": base_name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "js_definition": "JS (natural log, max ln 2) between the joint transition distributions N_ij / sum N; "
                               "js_rows: mean over states visited in both runs of JS between their rows of T",
              "bootstrap": {"n_boot": n_boot, "seed": seed, "unit": "dialogue"}, "runs": rows}
    runstore.write_json_atomic(out / "compare.json", nan_to_none(result))
    _compare_figures(rows, out)
    _compare_report(result, out)
    return result


def _compare_figures(rows: list[dict[str, Any]], out: Path) -> None:
    plt = pyplot()
    n = len(rows)
    cols = min(n, 3)
    nr = math.ceil(n / cols)
    fig, axes = plt.subplots(nr, cols, figsize=(6.2 * cols, 5.8 * nr), squeeze=False)
    for ax, row in zip(axes.ravel(), rows):
        plot_transition_heatmap(np.array(row["transition_matrix"]), STATES, out / "unused.png",
                                f"{row['name']} (H_avg={row['h_avg']:.3f})", ax=ax)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "compare_heatmaps.png", dpi=110)
    plt.close(fig)
    plot_strategy_bars({r["name"]: r["strategy_dialogue_counts"] for r in rows}, out / "compare_strategies.png",
                       "Strategy types per group")


def _compare_report(result: dict[str, Any], out: Path) -> None:
    lines = [
        "# Run comparison", "",
        f"Baseline: **{result['baseline']}**. {result['js_definition']}. CIs: bootstrap over dialogues (percentile; for H_avg and JS re-centred on the estimate, since resampling biases plug-in entropies) "
        f"({result['bootstrap']['n_boot']} resamples).", "",
        "| group | dialogues | H_avg [95% CI] | H_norm (ln16) | H_norm (2.77) | ΔH_norm vs base | JS [95% CI] | JS rows | "
        "C_str (sd) | CV | acceptance [95% CI] | labelers (attitude / strategy) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["runs"]:
        js = "-" if r["is_baseline"] else f"{fmt(r.get('js'))}{fmt_ci(r.get('js_ci95'))}"
        jsr = "-" if r["is_baseline"] else fmt(r.get("js_rows"))
        ch = r.get("h_norm_change_vs_baseline")
        chs = "-" if r["is_baseline"] or ch is None else f"{100 * ch:+.1f}%"
        lab = r.get("labelers") or {}
        lines.append(
            f"| {r['name']} | {r['n_labelled']}/{r['n_dialogues']} | {fmt(r['h_avg'])}{fmt_ci(r['h_avg_ci95'])} | "
            f"{fmt(r['h_norm'])} | {fmt(r['h_norm_paper'])} | {chs} | {js} | {jsr} | {fmt(r['c_str'], 2)} "
            f"({fmt(r['c_str_sd'], 2)}) | {fmt(r['strategy_cv'], 3)} | {fmt(r['acceptance_rate'], 3)}"
            f"{fmt_ci(r['acceptance_rate_ci95'], 3)} | {lab.get('attitude', '')} / {lab.get('strategy', '')} |")
    lines += ["", "![transition matrices](compare_heatmaps.png)", "", "![strategy types](compare_strategies.png)", ""]
    (out / "compare.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "unused.png").unlink(missing_ok=True)
