"""The human rows: Persuasion for Good dialogues written as run folders, analysed three ways and compared."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common import runstore
from ..common.records import DialogueRecord
from .compare import compare_runs
from .labelling import LabelingConfig
from .layout import ANALYSIS_DIR
from .pipeline import analyze_records


def write_run(records: Sequence[DialogueRecord], run_dir: Path, info: dict[str, Any]) -> None:
    """Write records as a run folder (dialogues.jsonl + source.json) so `mads analyze` can read them."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (runstore.DIALOGUES + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(r.model_dump_json() + "\n")
    tmp.replace(run_dir / runstore.DIALOGUES)
    runstore.write_json_atomic(run_dir / "source.json", info)


def analyze_p4g(data: str | Path, out_dir: str | Path, heads: str | None = None, n_boot: int = 1000, seed: int = 0,
                progress: bool = True, full: bool = True) -> dict[str, Any]:
    """The human rows: P4G dialogues as runs, analysed three ways, and compared.

    * ``human``: the 240 annotated dialogues; round groups from the persuadees' human act labels,
      fine states by the embedded similarity method, strategies from the human labels;
    * ``human-embedded``: the same 240 labelled entirely by the embedded labelers (a check of the labeler);
    * ``human-full``: all 1,017 dialogues labelled by the embedded labelers.
    """
    from ..p4g import load_p4g

    out = Path(out_dir)
    src = {"source": "PersuasionForGood", "data": str(Path(data).resolve())}
    ann = load_p4g(data, "annotated")
    results: dict[str, Any] = {}
    write_run(ann, out / "human", {**src, "subset": "annotated", "labels": "human coarse + embedded fine state"})
    results["human"] = analyze_records(ann, out / "human" / ANALYSIS_DIR, LabelingConfig(labeler="human", heads=heads),
                                       "P4G human (annotated 240, human labels)", n_boot=n_boot, seed=seed,
                                       progress=progress, extra={"run": {"group": "human", **src}})
    emb = [r.model_copy(update={"group": "human-embedded"}) for r in ann]
    write_run(emb, out / "human-embedded", {**src, "subset": "annotated", "labels": "embedded"})
    results["human-embedded"] = analyze_records(
        emb, out / "human-embedded" / ANALYSIS_DIR, LabelingConfig(labeler="embedded", heads=heads),
        "P4G annotated 240, embedded labels", n_boot=n_boot, seed=seed, progress=progress,
        extra={"run": {"group": "human-embedded", **src}})
    runs = [out / "human", out / "human-embedded"]
    if full:
        allr = load_p4g(data, "full")
        write_run(allr, out / "human-full", {**src, "subset": "full", "labels": "embedded"})
        results["human-full"] = analyze_records(
            allr, out / "human-full" / ANALYSIS_DIR, LabelingConfig(labeler="embedded", heads=heads),
            "P4G full 1,017, embedded labels", n_boot=n_boot, seed=seed, progress=progress,
            extra={"run": {"group": "human-full", **src}})
        runs.append(out / "human-full")
    compare_runs(runs, out / "compare", baseline=out / "human", n_boot=min(n_boot, 500), seed=seed)
    summary = {k: {"n_dialogues": v["n_dialogues"], "h_avg": v["h_avg"], "h_avg_ci95": v["h_avg_ci95"],
                   "h_norm": v["h_norm"], "h_norm_paper": v["h_norm_paper"],
                   "c_str": v["strategies_per_dialogue"]["mean"], "strategy_cv": v["strategy_cv"],
                   "acceptance_rate": v["acceptance_rate"]} for k, v in results.items()}
    runstore.write_json_atomic(out / "summary.json", summary)
    return summary
