"""Analyse a run: label it, compute the paper's metrics, draw the figures, write a report; compare runs.

``analyze_run(RUN)`` writes into ``RUN/analysis/``:

* ``labels.jsonl``: one :class:`~mads_text.labelers.base.DialogueLabels` per dialogue (appended as each
  chunk is labelled, so an interrupted LLM labelling resumes where it stopped);
* ``metrics.json``: H_avg, H_norm (both conventions), the 16x16 transition counts and matrix, strategy
  statistics, acceptance, bootstrap CIs, and where everything came from;
* ``transition_heatmap.png``, ``transition_coarse.png``, ``strategies.png`` and ``report.md``.

``compare_runs`` reads several analysed runs and writes a side-by-side table with the JS divergence of each
against a baseline run, plus figures.

One module per concern: :mod:`.labelling` (labelers, labels files, resumable and Ray labelling),
:mod:`.summary` (metrics.json), :mod:`.report` (figures and report.md), :mod:`.judging` (the Table 7 judge),
:mod:`.pipeline` (the whole analysis of a run or a dialogues file), :mod:`.compare` (runs side by side) and
:mod:`.p4g_runs` (the human P4G rows).
"""

from .compare import compare_runs, load_analysis
from .labelling import LABELER_CHOICES, LabelingConfig, RunLabeler, label_run, read_round_labels, read_strategy_labels
from .layout import ANALYSIS_DIR, LABELS, LABELS_META, METRICS, AnalysisError
from .p4g_runs import analyze_p4g, write_run
from .pipeline import analyze_records, analyze_run
from .report import plot_strategy_bars, plot_transition_heatmap, write_report
from .summary import METRICS_VERSION, coarse_chain, compute_metrics

__all__ = [
    "ANALYSIS_DIR", "LABELS", "LABELS_META", "METRICS", "METRICS_VERSION", "LABELER_CHOICES", "AnalysisError",
    "LabelingConfig", "RunLabeler", "label_run", "compute_metrics", "analyze_records", "analyze_run",
    "load_analysis", "compare_runs", "analyze_p4g", "read_round_labels", "read_strategy_labels", "coarse_chain",
    "write_report", "write_run", "plot_transition_heatmap", "plot_strategy_bars",
]
