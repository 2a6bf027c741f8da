"""``mads eval questions``: voice a scenario's product questions and score each arm's answers.

The clips are voiced once into ``OUT/audio/`` with persona voices drawn from the scenario's priors
(``synth.assign``, as ``mads synth`` assigns them); the phone variant is made from each clip at run time.
The text-reading arms are the pipeline arm's own Dialog Agent (transcript framing, the serving defaults of
temperature 0.7 and 60 tokens, seeded per question), after an opening line the same agent wrote.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from mads_text.agents import DialogAgent, derive_seed
from mads_text.common.records import Turn
from mads_text.llm import GenParams, LLMBackend, make_backend
from mads_text.personas import sample_personas
from mads_text.scenario import load_scenario

from .data import SAMPLE_RATE, read_audio, resample
from .questions import (
    Answer,
    Arm,
    Item,
    QuestionSet,
    QuestionSetError,
    Variant,
    load_questions,
    make_items,
    phone_line,
    read_answers,
    report,
    shuffled_partner,
)


class QuestionEvalConfig(BaseModel):
    scenario: str = "insurance"
    questions: str | None = Field(None, description="question-set YAML; default: the set shipped for the scenario")
    out: str
    voices: int = Field(4, ge=1, description="persona voices drawn from the scenario's priors")
    per_phrasing: int = Field(1, ge=1, description="voices per phrasing, taken in turn")
    engine: str = "kokoro"
    variants: list[Variant] = ["clean", "phone"]
    arms: list[Arm] = ["text", "cascade", "shuffled"]
    ckpt: str | None = Field(None, description="speech-LLM checkpoint for the speech arm")
    speech_path: Literal["tokens", "torch"] = Field(
        "tokens", description="tokens: a CTC checkpoint's ear hands its token ids to the text arms' Dialog Agent on "
        "the same backend (the llama.cpp path); torch: the checkpoint's own LLM in torch (about 30 s a reply on 2 cores)")
    asr: str = "base"
    backend: str = "embedded"
    model: str | None = None
    temperature: float = Field(0.7, ge=0)
    max_tokens: int = Field(60, ge=1)
    seed: int = 0
    concurrency: int = Field(4, ge=1)
    limit: int | None = Field(None, ge=1, description="at most this many items (for a quick look)")
    threads: int = 2


def voice_items(cfg: QuestionEvalConfig, qs: QuestionSet, audio_dir: Path) -> list[Item]:
    """The items, each voiced once into ``audio_dir`` (clips already there are kept)."""
    import soundfile as sf

    from synth.assign import VoiceBook, assign_personas
    from synth.engines import get_engine
    from synth.textnorm import speakable

    scenario = load_scenario(cfg.scenario)
    personas = sample_personas(scenario, "base", cfg.voices, cfg.seed)
    book = VoiceBook(engine=cfg.engine)
    assign_personas(book, [(p.id, p.fields) for p in personas])
    items = make_items(qs, [p.id for p in personas], cfg.per_phrasing)[: cfg.limit]
    audio_dir.mkdir(parents=True, exist_ok=True)
    (audio_dir / "voices.json").write_text(book.model_dump_json(indent=2) + "\n")
    engine = None
    for it in items:
        path = audio_dir / f"{it.id}.wav"
        if path.exists():
            continue
        engine = engine or get_engine(cfg.engine, threads=cfg.threads)
        pcm, sr = engine.synthesize(speakable(it.text), book.personas[it.speaker].voice)
        tmp = path.with_suffix(".tmp.wav")
        sf.write(str(tmp), resample(np.asarray(pcm, np.float32), sr, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
        tmp.replace(path)  # a clip is there whole or not at all
    return items


async def evaluate(
    cfg: QuestionEvalConfig, progress: Callable[[str], None] = lambda s: None, backend: LLMBackend | None = None
) -> dict[str, Any]:
    """Voice the items, ask every arm what is still missing, write ``report.json``; ``backend`` overrides cfg's."""
    scenario = load_scenario(cfg.scenario)
    qs = load_questions(cfg.questions or scenario.name)
    if qs.scenario != scenario.name:
        raise QuestionSetError(f"the question set is about scenario {qs.scenario!r}, not {scenario.name!r}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    items = voice_items(cfg, qs, out / "audio")
    progress(f"{len(items)} clips voiced in {out / 'audio'}")
    answers_path = out / "answers.jsonl"
    done = {a.key for a in read_answers(answers_path)}

    params = GenParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens)
    tokens = "speech" in cfg.arms and cfg.speech_path == "tokens"
    own = backend is None and (tokens or bool({"text", "cascade", "shuffled"} & set(cfg.arms)))
    if own:
        backend = make_backend(cfg.backend, cfg.model, parallel=cfg.concurrency)
        await backend.check()
    asr = speech = None
    if "cascade" in cfg.arms:
        from .asr import WhisperASR

        asr = WhisperASR.shared(cfg.asr, threads=cfg.threads)
    if "speech" in cfg.arms:
        if not cfg.ckpt:
            raise ValueError("the speech arm needs --ckpt (a checkpoint from `mads train speech`)")
        if tokens:
            from .ear import CTCEar

            speech = CTCEar(cfg.ckpt, threads=cfg.threads)
        else:
            from .infer import SpeechAgent

            speech = SpeechAgent(cfg.ckpt, scenario=scenario.name, max_new_tokens=cfg.max_tokens,
                                 temperature=cfg.temperature)

    # the call so far: the opening the pipeline arm's agent itself says (the scenario's fixed line, if any)
    opening_path = out / "opening.json"
    if opening_path.exists():
        context = [Turn.model_validate(t) for t in json.loads(opening_path.read_text())]
    else:
        line = scenario.agent.opening
        if line is None:
            if backend is None:
                raise ValueError("the scenario has no fixed opening line and no text arm is asked to write one")
            line = (await DialogAgent(scenario, backend, params=params, seed=cfg.seed).next_turn([])).text
        context = [Turn(role="agent", text=line)]
        opening_path.write_text(json.dumps([t.model_dump() for t in context]) + "\n")

    def clip(it: Item, variant: Variant) -> np.ndarray:
        a = read_audio(out / "audio" / f"{it.id}.wav")
        return phone_line(a, it.id) if variant == "phone" else a

    async def agent_reply(text: str, key: str) -> str:
        agent = DialogAgent(scenario, backend, params=params, seed=derive_seed(cfg.seed, key))
        return (await agent.next_turn([*context, Turn(role="user", text=text)])).text

    async def answer(it: Item, arm: Arm, variant: Variant) -> tuple[str, str]:
        key = f"{it.id}/{arm}/{variant}"
        if arm == "text":
            return it.text, await agent_reply(it.text, key)
        if arm == "shuffled":
            other = shuffled_partner(qs, it)
            return other, await agent_reply(other, key)
        audio = await asyncio.to_thread(clip, it, variant)
        if arm == "cascade":
            heard = (await asyncio.to_thread(asr.transcribe, audio)).text
            return heard, await agent_reply(heard, key)
        if tokens:  # what the model heard is what the agent reads
            heard = (await asyncio.to_thread(speech.hear, audio)).text
            return heard, await agent_reply(heard, key)
        r = await asyncio.to_thread(speech.reply, audio, SAMPLE_RATE, context, seed=derive_seed(cfg.seed, key))
        return "", r.text  # the model read the audio itself

    lock = asyncio.Semaphore(cfg.concurrency)
    todo = [(it, arm, v) for arm in cfg.arms for v in (["clean"] if arm in ("text", "shuffled") else cfg.variants)
            for it in items if (it.id, arm, v) not in done]  # fmt: skip
    progress(f"{len(todo)} answers to get ({len(done)} already in {answers_path})")
    with answers_path.open("a") as fh:

        async def one(it: Item, arm: Arm, variant: Variant) -> None:
            async with lock:
                asked, reply = await answer(it, arm, variant)
            a = Answer(item=it.id, qid=it.qid, arm=arm, variant=variant, asked=asked, reply=reply,
                       ok=qs.get(it.qid).stated_in(reply))  # fmt: skip
            fh.write(a.model_dump_json() + "\n")
            fh.flush()  # each answer is kept the moment it exists
            progress(f"{arm}/{variant} {it.id}: {'right' if a.ok else 'wrong'}")

        await asyncio.gather(*(one(*t) for t in todo))
    if own:
        await backend.aclose()
    rep = report(qs, read_answers(answers_path))
    rep["heard_wer"] = heard_wer(items, read_answers(answers_path), ears=("cascade", "speech") if tokens else ("cascade",))
    rep["context"] = [t.model_dump() for t in context]
    rep["settings"] = cfg.model_dump(exclude={"out"})
    (out / "report.json").write_text(json.dumps(rep, indent=2) + "\n")
    return rep


def heard_wer(items: list[Item], answers: list[Answer], ears: tuple[str, ...] = ("cascade", "speech")) -> dict[str, float]:
    """Per ear and variant, the corpus WER of what the ear passed on (Whisper's transcript, the CTC ear's tokens)
    against the question the clip holds. The torch speech arm passes on nothing readable and has no entry."""
    from .eval import corpus_wer

    text = {it.id: it.text for it in items}
    cells: dict[str, tuple[list[str], list[str]]] = {}
    for a in answers:
        if a.arm in ears and a.item in text:
            refs, hyps = cells.setdefault(f"{a.arm}/{a.variant}", ([], []))
            refs.append(text[a.item])
            hyps.append(a.asked)
    return {k: round(corpus_wer(*v), 4) for k, v in sorted(cells.items())}


def format_report(rep: dict[str, Any]) -> str:
    lines = [f"{rep['scenario']}: {rep['questions']} facts, {rep['phrasings']} phrasings",
             f"{'arm/variant':<18} {'right':>9} {'accuracy':>9}  95 % interval"]  # fmt: skip
    for name, r in rep["rows"].items():
        lo, hi = r["wilson95"] or (0, 0)
        lines.append(f"{name:<18} {r['correct']:>4}/{r['n']:<4} {r['accuracy']:>9.3f}  [{lo:.3f}, {hi:.3f}]")
    for variant, ratio in rep.get("speech_over_cascade", {}).items():
        lines.append(f"speech / cascade ({variant}): {ratio:.3f}")
    for name, w in rep.get("heard_wer", {}).items():
        lines.append(f"WER of what the ear passed on, {name}: {w:.3f}")
    return "\n".join(lines)
