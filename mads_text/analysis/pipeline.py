"""The whole analysis of one set of dialogues: label, compute the metrics, judge, draw, report.

``analyze_run(RUN)`` writes into ``RUN/analysis/``: ``labels.jsonl`` (see :mod:`.labelling`), ``metrics.json``
(see :mod:`.summary`) with where everything came from, the figures and ``report.md`` (see :mod:`.report`).
RUN may also be a folder holding only a ``dialogues.jsonl`` or any ``.jsonl`` file of dialogue records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..attitude import COARSE, STATES
from ..common import runstore
from ..common.records import DialogueRecord
from .judging import run_judge
from .labelling import LabelingConfig, RunLabeler, label_run
from .layout import ANALYSIS_DIR, METRICS, AnalysisError
from .report import plot_strategy_bars, plot_transition_heatmap, write_report
from .summary import compute_metrics

if TYPE_CHECKING:
    from ..distributed import RaySpec

# what metrics.json says about a provenance nothing recorded
UNKNOWN = "unknown"


def analyze_records(
    records: Sequence[DialogueRecord],
    out_dir: Path,
    cfg: LabelingConfig,
    title: str,
    backend=None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
    judge=None,
    judge_filter: dict[str, Any] | None = None,
    ray: RaySpec | None = None,
) -> dict[str, Any]:
    if not records:
        raise AnalysisError("no dialogues to analyse")
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = label_run(records, out_dir, cfg, backend=backend, progress=progress, ray=ray)
    m = compute_metrics(records, labels, n_boot=n_boot, seed=seed)
    names = RunLabeler(cfg).names()
    att_names = sorted({d.attitude_labeler for d in labels}) or [names[0]]
    strat_names = sorted({d.strategy_labeler for d in labels}) or [names[1]]
    m["labelers"] = {"attitude": ",".join(att_names), "strategy": ",".join(strat_names), "config": cfg.key()}
    m["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    m["code_revision"] = runstore.git_revision()
    m["packages"] = runstore.package_versions(("mads", "numpy", "transformers", "torch", "xllamacpp"))
    if judge is not None:
        m.update(run_judge(records, out_dir, judge, judge_filter or {}))
    if extra:
        m.update(extra)
    plot_transition_heatmap(np.array(m["transition_matrix"]), STATES, out_dir / "transition_heatmap.png",
                            f"{title}: attitude transitions (H_avg={m['h_avg']:.3f})")
    plot_transition_heatmap(np.array(m["coarse"]["transition_matrix"]), COARSE, out_dir / "transition_coarse.png",
                            f"{title}: coarse transitions")
    plot_strategy_bars({title: m["strategy_dialogue_counts"]}, out_dir / "strategies.png", f"{title}: strategy types")
    runstore.write_json_atomic(out_dir / METRICS, m)
    write_report(out_dir, m, title)
    return m


def analyze_run(
    run_dir: str | Path | runstore.DialogueSource,
    cfg: LabelingConfig | None = None,
    backend=None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
    judge=None,
    judge_filter: dict[str, Any] | None = None,
    ray: RaySpec | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Label the dialogues of ``run_dir`` and write ``analysis/`` beside them (or into ``out_dir``); returns the
    metrics dict.

    ``run_dir``: a run folder, a folder holding a ``dialogues.jsonl``, a ``.jsonl`` file of dialogue records, or a
    :class:`~mads_text.common.runstore.DialogueSource` already opened (the CLI opens it first to warn about lines
    it could not read). ``ray``: label on a Ray cluster (see :func:`label_run`); the metrics are those of a
    single-process run."""
    src = run_dir if isinstance(run_dir, runstore.DialogueSource) else runstore.open_dialogues(run_dir)
    extra = {"run": _provenance(src)}
    title = f"{_display_name(src)} ({extra['run']['group']})"
    out = Path(out_dir) if out_dir is not None else src.folder / ANALYSIS_DIR
    return analyze_records(src.records, out, cfg or LabelingConfig(), title, backend=backend, n_boot=n_boot,
                           seed=seed, progress=progress, extra=extra, judge=judge, judge_filter=judge_filter, ray=ray)


def _provenance(src: runstore.DialogueSource) -> dict[str, Any]:
    """The ``run`` entry of metrics.json: the manifest's word where there is one, else what the records say,
    and "unknown" (or null) for what nothing recorded, so a bare dialogue file is never mistaken for a known run."""
    recs = src.records
    run: dict[str, Any] = {"path": str(src.folder), "group": _one(r.group for r in recs),
                           "scenario": _one(r.scenario for r in recs)}
    man = src.manifest
    if man is not None:
        run.update({"model": man.model, "backend": man.backend, "seed": man.seed, "group": man.group,
                    "prompt_version": man.prompt_version, "max_rounds": man.max_rounds,
                    "manifest": str(src.folder / runstore.MANIFEST)})
    else:
        run.update({"model": UNKNOWN, "backend": UNKNOWN, "seed": None, "prompt_version": None, "max_rounds": None,
                    "manifest": None})
    run["dialogues"] = str(src.path)
    if src.bad_lines:
        run["skipped_lines"] = [{"line": n, "reason": why} for n, why in src.bad_lines]
    return run


def _one(values: Iterable[str]) -> str:
    seen = set(values)
    if not seen:
        return UNKNOWN
    return seen.pop() if len(seen) == 1 else "mixed"


def _display_name(src: runstore.DialogueSource) -> str:
    # a run is known by its folder; a loose file by its own name
    return src.folder.name if src.path.name == runstore.DIALOGUES else src.path.stem
