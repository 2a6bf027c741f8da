"""The LLM P4G strategy classifier: one request per dialogue lists the strategies used, with reasons and
occurrences; it is sampled three times and a strategy is kept when at least two samples name it (pass@3,
>= 2 votes). Occurrences are matched back to sentences; single sentences (``mads label``) are voted on the
same way."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ...common.records import DialogueRecord
from ...llm import GenParams, LLMBackend
from ...strategies import NON_STRATEGY, STRATEGIES, normalize_strategy, strategy_description
from ..base import ItemLabel, LabelItem, SentenceStrategy, StrategyLabeler, StrategyResult, record_sentences
from .answers import Occurrence, P4GAnswer, _ask_json, _run, extract_json, parse_p4g
from .prompts import P4G_PROMPT, SENTENCE_STRATEGY_PROMPT, p4g_schema, render_agent_turns, sentence_strategy_schema


def _norm_text(s: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", s.lower()).split())


def attribute_occurrences(record: DialogueRecord, kept: dict[str, list[Occurrence]]) -> list[SentenceStrategy]:
    """Sentence-level labels from the occurrences of the kept strategies.

    An occurrence names an agent turn and an excerpt; it labels the sentences of that turn that
    overlap the excerpt (or, if none does, the turn's first sentence). Unlabelled sentences are
    ``non-strategy``; a sentence hit by several strategies keeps the first in table order.
    """
    turns = [t for t in record.turns if t.role == "agent"]
    labels: dict[tuple[int, int], str] = {}
    order = {s: i for i, s in enumerate(STRATEGIES)}
    for strategy in sorted(kept, key=lambda s: order[s]):
        for occ in kept[strategy]:
            try:
                k = int(str(occ.turn).strip().split()[-1]) if occ.turn is not None else None
            except ValueError:
                k = None
            cands = range(1, len(turns) + 1) if k is None or not 1 <= k <= len(turns) else [k]
            exc = _norm_text(occ.original_text)
            hit = False
            for kk in cands:
                for j, sent in enumerate(record_sentences(turns[kk - 1])):
                    ns = _norm_text(sent)
                    if exc and ns and (exc in ns or ns in exc or _overlap(exc, ns) >= 0.6):
                        labels.setdefault((kk, j), strategy)
                        hit = True
            if not hit and k is not None and 1 <= k <= len(turns):
                labels.setdefault((k, 0), strategy)
    out = []
    for kk, t in enumerate(turns, 1):
        for j, sent in enumerate(record_sentences(t)):
            out.append(SentenceStrategy(turn=kk, sentence=sent, label=labels.get((kk, j), NON_STRATEGY)))
    return out


def _overlap(a: str, b: str) -> float:
    wa, wb = set(a.split()), set(b.split())
    return len(wa & wb) / max(1, min(len(wa), len(wb)))


class LLMStrategyLabeler(StrategyLabeler):
    name = "llm"

    def __init__(
        self,
        backend: LLMBackend,
        samples: int = 3,
        min_votes: int = 2,
        temperature: float = 0.7,
        max_attempts: int = 3,
        seed: int = 7,
        concurrency: int | None = None,
    ):
        if not 1 <= min_votes <= samples:
            raise ValueError("min_votes must be between 1 and samples")
        self.backend = backend
        self.samples = samples
        self.min_votes = min_votes
        self.temperature = temperature
        self.max_attempts = max_attempts
        self.seed = seed
        self.concurrency = concurrency or max(1, getattr(backend, "concurrency", 1))

    def describe(self) -> dict[str, Any]:
        return {"labeler": "llm", "task": "strategy", "samples": self.samples, "min_votes": self.min_votes,
                "temperature": self.temperature, **self.backend.describe()}

    def prompt(self, record: DialogueRecord) -> str:
        return P4G_PROMPT.format(strategy_description=strategy_description(), dialog_history=render_agent_turns(record))

    async def alabel_dialogue(self, record: DialogueRecord, sem: asyncio.Semaphore | None = None) -> StrategyResult:
        sem = sem or asyncio.Semaphore(self.concurrency)
        prompt = self.prompt(record)
        n_agent = sum(1 for t in record.turns if t.role == "agent")

        async def sample(i: int):
            params = GenParams(temperature=self.temperature, max_tokens=220 + 60 * min(n_agent, 10),
                               seed=self.seed + 1000 * i)
            async with sem:
                try:
                    ans, _ = await _ask_json(self.backend, prompt, p4g_schema(), parse_p4g, params, self.max_attempts)
                    return ans
                except ValueError as e:
                    return e

        answers = await asyncio.gather(*(sample(i) for i in range(self.samples)))
        good = [a for a in answers if isinstance(a, P4GAnswer)]
        if len(good) < self.min_votes:
            errs = "; ".join(str(a) for a in answers if isinstance(a, Exception))
            return StrategyResult(dialogue_id=record.id, ok=False,
                                  error=f"only {len(good)} of {self.samples} samples valid: {errs}")
        votes: Counter = Counter()
        occ: dict[str, list[Occurrence]] = {}
        for a in good:
            used = set(a.total_strategies) | {d.strategy_id for d in a.strategy_details}
            votes.update(used)
            for d in a.strategy_details:
                occ.setdefault(d.strategy_id, []).extend(d.occurrences)
        kept = [s for s in STRATEGIES if votes[s] >= self.min_votes]
        sentences = attribute_occurrences(record, {s: occ.get(s, []) for s in kept})
        return StrategyResult(dialogue_id=record.id, sentences=sentences, strategy_set=kept)

    async def alabel_dialogues(self, records: Sequence[DialogueRecord]) -> list[StrategyResult]:
        sem = asyncio.Semaphore(self.concurrency)
        return list(await asyncio.gather(*(self.alabel_dialogue(r, sem) for r in records)))

    def label_dialogues(self, records: Sequence[DialogueRecord]) -> list[StrategyResult]:
        return _run(self.alabel_dialogues(records))

    async def alabel(self, items: Sequence[LabelItem]) -> list[ItemLabel]:
        """Sentence-level: ``samples`` answers per sentence; the label needs ``min_votes`` of them,
        otherwise the sentence is ``non-strategy`` (the votes are kept for inspection)."""
        sem = asyncio.Semaphore(self.concurrency)
        schema = sentence_strategy_schema()
        table = strategy_description(with_examples=True, include_non_strategy=True)

        def parse(s: str) -> str:
            obj = extract_json(s)
            if not isinstance(obj, dict) or "strategy" not in obj:
                raise ValueError("missing 'strategy'")
            return normalize_strategy(obj["strategy"])

        async def vote(prompt: str, i: int) -> str | None:
            async with sem:
                try:
                    lab, _ = await _ask_json(self.backend, prompt, schema, parse,
                                             GenParams(temperature=self.temperature, max_tokens=24,
                                                       seed=self.seed + 1000 * i), self.max_attempts)
                    return lab
                except ValueError:
                    return None

        async def one(it: LabelItem) -> ItemLabel:
            prompt = SENTENCE_STRATEGY_PROMPT.format(
                strategy_description=table, context="\n".join(it.context[-3:]) or "(start of the conversation)",
                sentence=it.text, non_strategy=NON_STRATEGY)
            votes = await asyncio.gather(*(vote(prompt, i) for i in range(self.samples)))
            valid = [v for v in votes if v is not None]
            if not valid:
                return ItemLabel(id=it.id, label="", votes=[], error="no valid answer")
            top, n = Counter(valid).most_common(1)[0]
            label = top if n >= self.min_votes else NON_STRATEGY
            return ItemLabel(id=it.id, label=label, votes=[v or "" for v in votes], confidence=n / self.samples)

        return list(await asyncio.gather(*(one(it) for it in items)))

    def label(self, items: Sequence[LabelItem]) -> list[ItemLabel]:
        return _run(self.alabel(items))
