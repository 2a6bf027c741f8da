"""What every part of the analysis shares: the files it writes under ``RUN/analysis/`` and its error."""

from __future__ import annotations

ANALYSIS_DIR = "analysis"
LABELS = "labels.jsonl"
LABELS_META = "labels_meta.json"
METRICS = "metrics.json"


class AnalysisError(RuntimeError):
    pass
