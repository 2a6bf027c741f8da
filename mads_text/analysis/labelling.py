"""Labelling a run: an attitude state per user round and a strategy per agent sentence, for every dialogue.

The labels come from the embedded labelers, from an LLM with the paper's prompts, from the human annotations
P4G records carry, or from a labels file; :func:`label_run` appends them to ``labels.jsonl`` as chunks finish
(locally or on Ray actors), so an interrupted labelling resumes where it stopped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..attitude import STATE_GROUP, normalize_state
from ..common import runstore
from ..common.records import DialogueRecord
from ..labelers.base import AttitudeResult, DialogueLabels, RoundLabel, SentenceStrategy, StrategyResult
from ..strategies import STRATEGIES, normalize_strategy
from .layout import LABELS, LABELS_META, AnalysisError

if TYPE_CHECKING:
    from ..distributed import RaySpec

LABELER_CHOICES = ("embedded", "llm", "human")


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


# --- labels from a file -------------------------------------------------------------------------


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
    from ..p4g import has_human_labels, human_strategies

    out = []
    for r in records:
        if not has_human_labels(r):
            out.append(StrategyResult(dialogue_id=r.id, ok=False, error="the record carries no human labels"))
            continue
        sents = [SentenceStrategy(turn=k, sentence=s, label=lab) for k, s, lab in human_strategies(r)]
        used = {s.label for s in sents}
        out.append(StrategyResult(dialogue_id=r.id, sentences=sents, strategy_set=[s for s in STRATEGIES if s in used]))
    return out


# --- the labelers a configuration asks for ---------------------------------------------------------


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
            from ..llm import make_backend

            self._backend = make_backend(self.cfg.backend, self.cfg.model, base_url=self.cfg.base_url)
        return self._backend

    def attitude(self):
        if self._att is None:
            if self.cfg.labeler == "llm":
                from ..labelers.llm import LLMAttitudeLabeler

                self._att = LLMAttitudeLabeler(self.backend(), acceptance_criteria=self.cfg.acceptance_criteria)
            else:
                from ..labelers.embedded import EmbeddedAttitudeLabeler

                self._att = EmbeddedAttitudeLabeler(self.cfg.heads)
        return self._att

    def strategy(self):
        if self._strat is None:
            if self.cfg.labeler == "llm":
                from ..labelers.llm import LLMStrategyLabeler

                self._strat = LLMStrategyLabeler(self.backend())
            else:
                from ..labelers.embedded import EmbeddedStrategyLabeler

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
            from ..p4g import has_human_labels, human_round_coarse

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


# --- labelling a whole run, resumably ------------------------------------------------------------


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
                from ..distributed import label_ray

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
