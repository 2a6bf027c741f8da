"""Analyse a run: label it, compute the paper's metrics, draw the figures, write a report; compare runs.

``analyze_run(RUN)`` writes into ``RUN/analysis/``:

* ``labels.jsonl``: one :class:`~mads_text.labelers.base.DialogueLabels` per dialogue (appended as each
  chunk is labelled, so an interrupted LLM labelling resumes where it stopped);
* ``metrics.json``: H_avg, H_norm (both conventions), the 16x16 transition counts and matrix, strategy
  statistics, acceptance, bootstrap CIs, and where everything came from;
* ``transition_heatmap.png``, ``transition_coarse.png``, ``strategies.png`` and ``report.md``.

``compare_runs`` reads several analysed runs and writes a side-by-side table with the JS divergence of each
against a baseline run, plus figures.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from . import metrics as M
from .attitude import COARSE, STATE_GROUP, STATES, normalize_state
from .common import runstore
from .common.records import DialogueRecord
from .labelers.base import AttitudeResult, DialogueLabels, RoundLabel, SentenceStrategy, StrategyResult
from .strategies import NON_STRATEGY, STRATEGIES, normalize_strategy

if TYPE_CHECKING:
    from .distributed import RaySpec

ANALYSIS_DIR = "analysis"
LABELS = "labels.jsonl"
LABELS_META = "labels_meta.json"
METRICS = "metrics.json"
METRICS_VERSION = 1
LABELER_CHOICES = ("embedded", "llm", "human")


class AnalysisError(RuntimeError):
    pass


class LabelingConfig(BaseModel):
    labeler: str = "embedded"  # embedded | llm | human
    labels_file: str | None = None
    backend: str = "embedded"
    model: str | None = None
    base_url: str | None = None
    heads: str | None = None
    acceptance_criteria: str | None = None

    def key(self) -> dict[str, Any]:
        d = self.model_dump()
        if self.labeler != "llm":
            d.update(backend=None, model=None, base_url=None)
        return d


# --- labelling ---------------------------------------------------------------------------------


def read_round_labels(path: str | Path) -> dict[str, dict[int, str]]:
    """Per-round states from a labels file: lines ``{"dialogue_id", "round", "state"}`` (round 1-based),
    or whole-dialogue lines as written to ``labels.jsonl`` (with a ``rounds`` list). States are the 16 names."""
    p = Path(path)
    if not p.exists():
        raise AnalysisError(f"{p}: labels file not found")
    out: dict[str, dict[int, str]] = {}
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise AnalysisError(f"{p}:{n}: not JSON: {e}") from e
            did = obj.get("dialogue_id")
            if not did:
                raise AnalysisError(f"{p}:{n}: missing 'dialogue_id'")
            items = obj["rounds"] if isinstance(obj.get("rounds"), list) else [obj]
            for it in items:
                if it.get("state") is None:
                    continue
                try:
                    rnd = int(it["round"])
                    state = normalize_state(it["state"])
                except KeyError as e:
                    raise AnalysisError(f"{p}:{n}: missing field {e}") from e
                except (TypeError, ValueError) as e:
                    raise AnalysisError(f"{p}:{n}: {e}") from e
                if rnd < 1:
                    raise AnalysisError(f"{p}:{n}: round must be >= 1 (1-based user turn index), got {rnd}")
                out.setdefault(str(did), {})[rnd] = state
    return out


def read_strategy_labels(path: str | Path) -> dict[str, list[SentenceStrategy] | list[str]]:
    """Strategies carried by a whole-dialogue labels file (``strategies`` or ``strategy_set``), if any."""
    out: dict[str, Any] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("strategies"):
                out[obj["dialogue_id"]] = [SentenceStrategy.model_validate(s) for s in obj["strategies"]]
            elif obj.get("strategy_set") is not None and "rounds" in obj:
                out[obj["dialogue_id"]] = [normalize_strategy(s) for s in obj["strategy_set"]]
    return out


def _n_rounds(r: DialogueRecord) -> int:
    return sum(1 for t in r.turns if t.role == "user")


def _file_attitude(records: Sequence[DialogueRecord], given: dict[str, dict[int, str]], source: str) -> list[AttitudeResult]:
    out = []
    for r in records:
        states = given.get(r.id)
        n = _n_rounds(r)
        if states is None:
            out.append(AttitudeResult(dialogue_id=r.id, ok=False, error=f"no labels for this dialogue in {source}",
                                      rounds=[RoundLabel(round=k, source="file") for k in range(1, n + 1)]))
            continue
        rounds = [RoundLabel(round=k, state=states.get(k), coarse=STATE_GROUP.get(states.get(k) or ""), source="file")
                  for k in range(1, n + 1)]
        missing = [k for k in range(1, n + 1) if k not in states]
        out.append(AttitudeResult(dialogue_id=r.id, rounds=rounds, ok=not missing,
                                  error=f"rounds {missing} missing in {source}" if missing else None))
    return out


def _human_strategies(records: Sequence[DialogueRecord]) -> list[StrategyResult]:
    from .p4g import has_human_labels, human_strategies

    out = []
    for r in records:
        if not has_human_labels(r):
            out.append(StrategyResult(dialogue_id=r.id, ok=False, error="the record carries no human labels"))
            continue
        sents = [SentenceStrategy(turn=k, sentence=s, label=lab) for k, s, lab in human_strategies(r)]
        used = {s.label for s in sents}
        out.append(StrategyResult(dialogue_id=r.id, sentences=sents, strategy_set=[s for s in STRATEGIES if s in used]))
    return out


class RunLabeler:
    """Builds the attitude and strategy labelers a :class:`LabelingConfig` asks for."""

    def __init__(self, cfg: LabelingConfig, backend=None):
        self.cfg = cfg
        self._backend = backend
        self._att = None
        self._strat = None
        if cfg.labeler not in LABELER_CHOICES:
            raise AnalysisError(f"unknown labeler {cfg.labeler!r}; choose one of {', '.join(LABELER_CHOICES)}")

    def backend(self):
        if self._backend is None:
            from .llm import make_backend

            self._backend = make_backend(self.cfg.backend, self.cfg.model, base_url=self.cfg.base_url)
        return self._backend

    def attitude(self):
        if self._att is None:
            if self.cfg.labeler == "llm":
                from .labelers.llm import LLMAttitudeLabeler

                self._att = LLMAttitudeLabeler(self.backend(), acceptance_criteria=self.cfg.acceptance_criteria)
            else:
                from .labelers.embedded import EmbeddedAttitudeLabeler

                self._att = EmbeddedAttitudeLabeler(self.cfg.heads)
        return self._att

    def strategy(self):
        if self._strat is None:
            if self.cfg.labeler == "llm":
                from .labelers.llm import LLMStrategyLabeler

                self._strat = LLMStrategyLabeler(self.backend())
            else:
                from .labelers.embedded import EmbeddedStrategyLabeler

                self._strat = EmbeddedStrategyLabeler(self.cfg.heads)
        return self._strat

    def names(self) -> tuple[str, str]:
        if self.cfg.labels_file:
            att = f"file:{Path(self.cfg.labels_file).name}"
        elif self.cfg.labeler == "human":
            att = "human+embedded"
        else:
            att = self.cfg.labeler
        strat = "human" if self.cfg.labeler == "human" else ("llm" if self.cfg.labeler == "llm" else "embedded")
        return att, strat

    def label_chunk(self, records: Sequence[DialogueRecord]) -> list[DialogueLabels]:
        cfg = self.cfg
        att_name, strat_name = self.names()
        file_strats: dict[str, Any] = {}
        if cfg.labels_file:
            att_res = _file_attitude(records, read_round_labels(cfg.labels_file), cfg.labels_file)
            file_strats = read_strategy_labels(cfg.labels_file)
        elif cfg.labeler == "human":
            from .p4g import has_human_labels, human_round_coarse

            missing = [r.id for r in records if not has_human_labels(r)]
            if missing:
                raise AnalysisError(f"--labeler human needs records with human labels (P4G); {missing[0]} has none")
            att_res = self.attitude().label_dialogues(records, coarse_override=[human_round_coarse(r) for r in records])
        else:
            att_res = self.attitude().label_dialogues(records)
        todo = [r for r in records if r.id not in file_strats]
        if cfg.labeler == "human":
            strat_res = _human_strategies(todo)
        else:
            strat_res = self.strategy().label_dialogues(todo) if todo else []
        by_id = {s.dialogue_id: s for s in strat_res}
        for did, given in file_strats.items():
            if given and isinstance(given[0], SentenceStrategy):
                used = {s.label for s in given}
                by_id[did] = StrategyResult(dialogue_id=did, sentences=given, strategy_set=[s for s in STRATEGIES if s in used])
            else:
                by_id[did] = StrategyResult(dialogue_id=did, strategy_set=list(given))
            strat_name = f"file:{Path(cfg.labels_file).name}" if cfg.labels_file else strat_name
        out = []
        for r, a in zip(records, att_res):
            s = by_id.get(r.id) or StrategyResult(dialogue_id=r.id, ok=False, error="no strategy labels")
            errors = [e for e in (a.error, s.error) if e]
            out.append(DialogueLabels(
                dialogue_id=r.id, group=r.group, outcome=r.outcome, attitude_labeler=att_name,
                strategy_labeler=strat_name, rounds=a.rounds, strategies=s.sentences, strategy_set=s.strategy_set,
                accepted=a.accepted, accept_evidence=a.accept_evidence, attitude_ok=a.ok, strategy_ok=s.ok,
                errors=errors,
            ))
        return out


def label_run(
    records: Sequence[DialogueRecord],
    out_dir: Path,
    cfg: LabelingConfig,
    backend=None,
    chunk: int | None = None,
    progress: bool = True,
    ray: RaySpec | None = None,
) -> list[DialogueLabels]:
    """Label every record into ``out_dir/labels.jsonl``, resuming when the same labelling config wrote it.

    With ``ray`` the dialogues not yet labelled go to a pool of Ray actors in chunks sorted by dialogue id
    (each actor builds its own labeler from ``cfg``; ``backend`` is not used) and this process appends the
    labels as the chunks come back, skipping dialogues it already has."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path, meta_path = out_dir / LABELS, out_dir / LABELS_META
    done: dict[str, DialogueLabels] = {}
    if path.exists() and meta_path.exists():
        try:
            same = json.loads(meta_path.read_text()).get("config") == cfg.key()
        except json.JSONDecodeError:
            same = False
        if same:
            for obj in runstore.iter_jsonl(path, DialogueLabels):
                done[obj.dialogue_id] = obj
    if not done and path.exists():
        path.unlink()
    labeler = RunLabeler(cfg, backend)
    runstore.write_json_atomic(meta_path, {"config": cfg.key(), "labelers": labeler.names(),
                                           "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    todo = [r for r in records if r.id not in done]
    if chunk is None:
        chunk = 8 if cfg.labeler == "llm" else 256
        if ray is not None and todo:
            # enough chunks to keep every actor busy
            chunk = min(chunk, math.ceil(len(todo) / ray.workers))
    bar = _Bar(len(todo), "labelling", enabled=progress and bool(todo))
    try:
        with runstore.JsonlWriter(path) as w:

            def take(dl: DialogueLabels) -> None:
                if dl.dialogue_id in done:
                    return  # a retried chunk delivered it again
                w.append(dl)
                done[dl.dialogue_id] = dl
                bar.advance(1)

            if ray is None:
                for i in range(0, len(todo), chunk):
                    for dl in labeler.label_chunk(todo[i : i + chunk]):
                        take(dl)
            elif todo:
                from .distributed import label_ray

                # actors may run in another working directory: hand them absolute paths
                paths = {k: str(Path(v).resolve()) for k in ("labels_file", "heads") if (v := getattr(cfg, k))}
                label_ray(todo, cfg.model_copy(update=paths).model_dump_json(), ray, chunk,
                          lambda line: take(DialogueLabels.model_validate_json(line)))
    finally:
        bar.close()
    missing = [r.id for r in todo if r.id not in done]
    if missing:
        raise AnalysisError(f"{len(missing)} dialogues were not labelled (e.g. {missing[0]}); rerun to resume")
    return [done[r.id] for r in records if r.id in done]


class _Bar:
    def __init__(self, total: int, what: str, enabled: bool):
        self.enabled = enabled
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.p = Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TextColumn("dialogues"),
                              TimeElapsedColumn())
            self.p.start()
            self.t = self.p.add_task(what, total=total)

    def advance(self, n: int) -> None:
        if self.enabled:
            self.p.update(self.t, advance=n)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()


# --- metrics -----------------------------------------------------------------------------------


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


def _ci(pair: tuple[float, float]) -> list[float | None]:
    return [None if math.isnan(v) else round(v, 6) for v in pair]


def coarse_chain(chain: Sequence[str | None]) -> list[str | None]:
    return [STATE_GROUP[s] if s else None for s in chain]


def compute_metrics(
    records: Sequence[DialogueRecord],
    labels: Sequence[DialogueLabels],
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything ``metrics.json`` holds, from the records (outcomes) and their labels."""
    by_id = {d.dialogue_id: d for d in labels}
    att = [by_id[r.id] for r in records if r.id in by_id and by_id[r.id].attitude_ok]
    chains = [d.chain() for d in att]
    counts = M.transition_counts(chains)
    t = M.transition_matrix(counts)
    h = M.h_avg(t)
    h_ci = M.bootstrap_ci(chains, M.chain_entropy, n_boot=n_boot, seed=seed, method="centered") if chains else (math.nan, math.nan)
    cchains = [coarse_chain(c) for c in chains]
    ccounts = M.transition_counts(cchains, COARSE)
    ct = M.transition_matrix(ccounts)
    visits = Counter(s for c in chains for s in c if s)

    strat = [by_id[r.id] for r in records if r.id in by_id and by_id[r.id].strategy_ok]
    sets = [d.strategy_set for d in strat]
    c_str = M.distinct_strategies(sets)
    c_mean, c_sd = M.mean_sd(c_str)
    c_ci = M.bootstrap_ci(c_str, lambda v: float(np.mean(v)), n_boot=n_boot, seed=seed) if c_str else (math.nan, math.nan)
    type_counts = M.strategy_type_counts(sets, STRATEGIES)
    sent_counts = Counter(s.label for d in strat for s in d.strategies)
    n_sent = sum(sent_counts.values())
    cv = M.coefficient_of_variation(type_counts)
    cv_ci = M.bootstrap_ci(sets, lambda v: M.coefficient_of_variation(M.strategy_type_counts(v, STRATEGIES)),
                           n_boot=n_boot, seed=seed) if sets else (math.nan, math.nan)

    valid = [r for r in records if r.outcome != "error"]
    outcomes = [r.outcome for r in valid]
    acc = M.acceptance_rate(outcomes)
    acc_ci = M.bootstrap_ci(outcomes, M.acceptance_rate, n_boot=n_boot, seed=seed) if outcomes else (math.nan, math.nan)
    pred_acc = [d.accepted for d in att if d.accepted is not None]

    unl = [r.id for r in records if r.id not in by_id or not by_id[r.id].attitude_ok]
    sources = Counter(rl.source for d in att for rl in d.rounds)
    out = {
        "version": METRICS_VERSION,
        "n_dialogues": len(records),
        "n_labelled": len(att),
        "n_unlabelled": len(unl),
        "unlabelled_ids": unl[:200],
        "n_rounds": int(sum(len(c) for c in chains)),
        "n_transitions": int(counts.sum()),
        "states": list(STATES),
        "h_avg": round(h, 6),
        "h_avg_ci95": _ci(h_ci),
        "h_norm": round(M.h_norm(h), 6),
        "h_norm_paper": round(M.h_norm_paper(h), 6),
        "row_entropy": [round(x, 6) for x in M.row_entropies(t)],
        "rows_visited": int((counts.sum(axis=1) > 0).sum()),
        "transition_counts": counts.tolist(),
        "transition_matrix": [[round(x, 6) for x in row] for row in t],
        "state_frequency": {s: visits.get(s, 0) for s in STATES},
        "round_label_sources": dict(sources),
        "coarse": {
            "states": list(COARSE),
            "transition_counts": ccounts.tolist(),
            "transition_matrix": [[round(x, 6) for x in row] for row in ct],
            "h_avg": round(M.h_avg(ct), 6),
            "h_norm": round(M.h_norm(M.h_avg(ct), len(COARSE)), 6),
        },
        "strategies": list(STRATEGIES),
        "strategies_per_dialogue": {"mean": _r(c_mean), "sd": _r(c_sd), "ci95": _ci(c_ci), "n": len(c_str)},
        "strategy_dialogue_counts": {s: int(n) for s, n in zip(STRATEGIES, type_counts)},
        "strategy_sentence_counts": {s: int(sent_counts.get(s, 0)) for s in (*STRATEGIES, NON_STRATEGY)},
        "non_strategy_share": _r(sent_counts.get(NON_STRATEGY, 0) / n_sent) if n_sent else None,
        "strategy_cv": _r(cv),
        "strategy_cv_ci95": _ci(cv_ci),
        "acceptance_rate": _r(acc),
        "acceptance_rate_ci95": _ci(acc_ci),
        "outcomes": dict(Counter(r.outcome for r in records)),
        "labeler_accept_rate": _r(float(np.mean(pred_acc))) if pred_acc else None,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "unit": "dialogue",
                      "interval": "95%: percentile, re-centred on the estimate for H_avg and JS (plug-in bias)"},
        "definitions": {
            "h_avg": "mean over all 16 rows of H(T_i) = -sum_j T_ij ln T_ij (nats); unvisited rows count 0",
            "h_norm": "h_avg / ln 16",
            "h_norm_paper": "h_avg / 2.77 (the paper's rounding of ln 16)",
            "strategies_per_dialogue": "C_str: distinct strategies (non-strategy excluded) per dialogue; sd is the sample sd",
            "strategy_cv": "population sd / mean of the number of dialogues using each of the ten strategies",
            "acceptance_rate": "dialogues with outcome accept / dialogues without outcome error",
        },
    }
    return _nan_to_none(out)


def _r(x: float | None, nd: int = 6) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return round(float(x), nd)


# --- figures -----------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_transition_heatmap(t: np.ndarray, labels: Sequence[str], path: Path, title: str, ax=None,
                            group_size: int | None = 4) -> None:
    """Heatmap of a row-stochastic matrix; lines separate the coarse groups."""
    plt = _plt()
    own = ax is None
    if own:
        size = 7.5 if len(labels) > 4 else 4.2
        fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(np.asarray(t), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(labels)))
    ax.set_yticks(range(len(labels)))
    fs = 7 if len(labels) > 4 else 9
    ax.set_xticklabels(labels, rotation=90, fontsize=fs)
    ax.set_yticklabels(labels, fontsize=fs)
    ax.set_xlabel("to (round t)")
    ax.set_ylabel("from (round t-1)")
    ax.set_title(title, fontsize=10)
    if group_size and len(labels) > group_size:
        for k in range(group_size, len(labels), group_size):
            ax.axhline(k - 0.5, color="white", lw=0.8)
            ax.axvline(k - 0.5, color="white", lw=0.8)
    if len(labels) <= 4:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{t[i][j]:.2f}", ha="center", va="center", color="w" if t[i][j] < 0.6 else "k", fontsize=8)
    if own:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="P(to | from)")
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)


def plot_strategy_bars(groups: dict[str, dict[str, int]], path: Path, title: str = "Strategy types per group") -> None:
    """Stacked bars (as the paper's Fig. 3): per group, the share of each strategy among dialogue-level uses."""
    plt = _plt()
    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(names) + 3.5), 4.8))
    cmap = plt.get_cmap("tab10")
    bottoms = np.zeros(len(names))
    for k, s in enumerate(STRATEGIES):
        vals = []
        for g in names:
            tot = sum(groups[g].get(x, 0) for x in STRATEGIES)
            vals.append(groups[g].get(s, 0) / tot if tot else 0.0)
        ax.bar(names, vals, bottom=bottoms, color=cmap(k % 10), label=s, width=0.6)
        bottoms += np.array(vals)
    ax.set_ylabel("share of dialogue-level strategy uses")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


# --- report ------------------------------------------------------------------------------------


def _fmt(x: Any, nd: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _fmt_ci(ci: Sequence[float | None] | None, nd: int = 4) -> str:
    if not ci or ci[0] is None:
        return ""
    return f" [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


def write_report(out_dir: Path, m: dict[str, Any], title: str) -> Path:
    sp = m["strategies_per_dialogue"]
    lines = [
        f"# {title}",
        "",
        f"Analysed {m['created']} with labelers: attitude `{m['labelers']['attitude']}`, strategy "
        f"`{m['labelers']['strategy']}`. Code revision `{m.get('code_revision')}`.",
        "",
        "| metric | value | 95% CI (bootstrap over dialogues) |",
        "| --- | --- | --- |",
        f"| dialogues (labelled / all) | {m['n_labelled']} / {m['n_dialogues']} | |",
        f"| rounds labelled, transitions | {m['n_rounds']}, {m['n_transitions']} | |",
        f"| H_avg (nats) | {_fmt(m['h_avg'])} |{_fmt_ci(m['h_avg_ci95'])} |",
        f"| H_norm = H_avg / ln 16 | {_fmt(m['h_norm'])} | |",
        f"| H_norm (paper) = H_avg / 2.77 | {_fmt(m['h_norm_paper'])} | |",
        f"| states with outgoing transitions | {m['rows_visited']} / 16 | |",
        f"| C_str (distinct strategies per dialogue), sd | {_fmt(sp['mean'], 3)}, {_fmt(sp['sd'], 3)} |{_fmt_ci(sp['ci95'], 3)} |",
        f"| CV of strategy-type use | {_fmt(m['strategy_cv'], 3)} |{_fmt_ci(m['strategy_cv_ci95'], 3)} |",
        f"| non-strategy share of agent sentences | {_fmt(m['non_strategy_share'], 3)} | |",
        f"| acceptance rate | {_fmt(m['acceptance_rate'], 3)} |{_fmt_ci(m['acceptance_rate_ci95'], 3)} |",
        f"| coarse (4-state) H_avg | {_fmt(m['coarse']['h_avg'])} | |",
        "",
        f"Outcomes: {m['outcomes']}. Round labels by source: {m['round_label_sources']}.",
        "",
        "## Attitude transitions (16 states, Appendix A.1 order)",
        "",
        "![transition heatmap](transition_heatmap.png)",
        "",
        "![coarse transitions](transition_coarse.png)",
        "",
        "| state | group | rounds | H(T_i) |",
        "| --- | --- | --- | --- |",
    ]
    for s, h in zip(m["states"], m["row_entropy"]):
        lines.append(f"| {s} | {STATE_GROUP[s]} | {m['state_frequency'][s]} | {h:.3f} |")
    lines += ["", "## Persuasion strategies", "", "![strategies](strategies.png)", "",
              "| strategy | dialogues using it | sentences |", "| --- | --- | --- |"]
    for s in STRATEGIES:
        lines.append(f"| {s} | {m['strategy_dialogue_counts'][s]} | {m['strategy_sentence_counts'][s]} |")
    lines.append(f"| {NON_STRATEGY} | | {m['strategy_sentence_counts'][NON_STRATEGY]} |")
    if m.get("judge"):
        j = m["judge"]
        lines += ["", "## Judge (Table 7)", "", "| metric | mean |", "| --- | --- |"]
        for k in ("authenticity", "relevance", "consistency", "efficiency", "human_likeness", "mean", "task_success_rate"):
            if k in j:
                lines.append(f"| {k} | {_fmt(j[k], 3)} |")
        if m.get("filter"):
            lines.append("")
            lines.append(f"Filter: {m['filter']}")
    if m["n_unlabelled"]:
        lines += ["", f"## Dialogues without attitude labels ({m['n_unlabelled']})", "",
                  ", ".join(m["unlabelled_ids"][:50]) + (" ..." if m["n_unlabelled"] > 50 else "")]
    lines += ["", "## Definitions", ""] + [f"- `{k}`: {v}" for k, v in m["definitions"].items()]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- the whole analysis -------------------------------------------------------------------------


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
        m.update(_run_judge(records, out_dir, judge, judge_filter or {}))
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


def _run_judge(records, out_dir: Path, judge, flt: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from .judge import JudgeResult, filter_by_scores, summarize

    path = out_dir / "judge.jsonl"
    done = {j.dialogue_id: j for j in runstore.iter_jsonl(path, JudgeResult)} if path.exists() else {}
    todo = [r for r in records if r.id not in done]
    with runstore.JsonlWriter(path) as w:
        for i in range(0, len(todo), 8):
            for res in asyncio.run(judge.ajudge_all(todo[i : i + 8])):
                w.append(res)
                done[res.dialogue_id] = res
    results = [done[r.id] for r in records if r.id in done]
    kept, info = filter_by_scores(results, flt.get("min_mean"), flt.get("quantile"), flt.get("require_success", False))
    (out_dir / "kept_ids.txt").write_text("\n".join(kept) + ("\n" if kept else ""), encoding="utf-8")
    return {"judge": summarize(results), "filter": info}


def analyze_run(
    run_dir: str | Path,
    cfg: LabelingConfig | None = None,
    backend=None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
    judge=None,
    judge_filter: dict[str, Any] | None = None,
    ray: RaySpec | None = None,
) -> dict[str, Any]:
    """Label ``RUN/dialogues.jsonl`` and write ``RUN/analysis/``; returns the metrics dict.

    ``ray``: label on a Ray cluster (see :func:`label_run`); the metrics are those of a single-process run."""
    run = Path(run_dir)
    cfg = cfg or LabelingConfig()
    records = runstore.read_dialogues(run)
    man = runstore.read_manifest(run)
    extra = {"run": {"path": str(run), "group": records[0].group if records else None,
                     "scenario": records[0].scenario if records else None}}
    if man is not None:
        extra["run"].update({"model": man.model, "backend": man.backend, "seed": man.seed, "group": man.group,
                             "prompt_version": man.prompt_version, "max_rounds": man.max_rounds})
    title = f"{run.name} ({extra['run']['group']})"
    return analyze_records(records, run / ANALYSIS_DIR, cfg, title, backend=backend, n_boot=n_boot, seed=seed,
                           progress=progress, extra=extra, judge=judge, judge_filter=judge_filter, ray=ray)


# --- comparing runs -----------------------------------------------------------------------------


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
                row["js_ci95"] = _ci(M.bootstrap_ci_two(chains, base_chains, js_joint, n_boot=n_boot, seed=seed, method="centered"))
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
    runstore.write_json_atomic(out / "compare.json", _nan_to_none(result))
    _compare_figures(rows, out)
    _compare_report(result, out)
    return result


def _compare_figures(rows: list[dict[str, Any]], out: Path) -> None:
    plt = _plt()
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
        js = "-" if r["is_baseline"] else f"{_fmt(r.get('js'))}{_fmt_ci(r.get('js_ci95'))}"
        jsr = "-" if r["is_baseline"] else _fmt(r.get("js_rows"))
        ch = r.get("h_norm_change_vs_baseline")
        chs = "-" if r["is_baseline"] or ch is None else f"{100 * ch:+.1f}%"
        lab = r.get("labelers") or {}
        lines.append(
            f"| {r['name']} | {r['n_labelled']}/{r['n_dialogues']} | {_fmt(r['h_avg'])}{_fmt_ci(r['h_avg_ci95'])} | "
            f"{_fmt(r['h_norm'])} | {_fmt(r['h_norm_paper'])} | {chs} | {js} | {jsr} | {_fmt(r['c_str'], 2)} "
            f"({_fmt(r['c_str_sd'], 2)}) | {_fmt(r['strategy_cv'], 3)} | {_fmt(r['acceptance_rate'], 3)}"
            f"{_fmt_ci(r['acceptance_rate_ci95'], 3)} | {lab.get('attitude', '')} / {lab.get('strategy', '')} |")
    lines += ["", "![transition matrices](compare_heatmaps.png)", "", "![strategy types](compare_strategies.png)", ""]
    (out / "compare.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "unused.png").unlink(missing_ok=True)


# --- P4G --------------------------------------------------------------------------------------


def write_run(records: Sequence[DialogueRecord], run_dir: Path, info: dict[str, Any]) -> None:
    """Write records as a run folder (dialogues.jsonl + p4g_info.json) so `mads analyze` can read them."""
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
    from .p4g import load_p4g

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
