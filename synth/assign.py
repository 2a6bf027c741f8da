"""Persona -> voice: deterministic, gender- and age-matched, as far apart as the bank allows.

Personas are taken in the order of a hash of their id. Each takes, among the
unused bank voices of its gender, the one farthest (d-vector cosine) from every
voice already taken in this build, the agent's included; ties go to the
persona hash. Once the clearly distinct voices of a gender are used up, later
personas take the remaining, less distinct bank voices; once those are used up
too, they share a bank voice with a pitch offset (both flagged ``distinct:
false``). Age then sets speaking rate and a small pitch shift.

The result lives in ``AUD/voices.json``: a rerun keeps every stored
assignment, new personas fill in around them, and an edited entry is honoured
(its dialogues are re-made because their voice key changed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from .bank import Bank, load_bank
from .engines.flite import GENDER as FLITE_GENDER
from .engines.flite import VOICES as FLITE_VOICES
from .voice import Voice, VoiceError, stable_unit

VOICES_VERSION = 1
Gender = Literal["female", "male"]


class SpeakerVoice(BaseModel):
    speaker_id: str
    role: Literal["agent", "user"]
    gender: Gender
    age: int | None = None
    bank_id: str | None = None
    variant: int = Field(0, description="0: the bank voice itself; k > 0: k-th near neighbour sharing it")
    distinct: bool = True
    voice: Voice
    embedding: list[float] | None = Field(None, description="engine speaker vector (Kokoro: mean 256-d style)")
    note: str = ""


class VoiceBook(BaseModel):
    """``AUD/voices.json``."""

    version: int = VOICES_VERSION
    engine: str
    bank: str = ""
    embedding_kind: str = Field("", description="kokoro_style_mean or ge2e_reference_sentence")
    agents: dict[str, SpeakerVoice] = Field(default_factory=dict)
    personas: dict[str, SpeakerVoice] = Field(default_factory=dict)

    def speaker(self, key: str) -> SpeakerVoice:
        return self.agents[key] if key in self.agents else self.personas[key]


def persona_gender(persona: dict[str, Any], persona_id: str) -> Gender:
    g = str(persona.get("gender", "")).strip().lower()
    if g.startswith("f") or g in ("woman", "w"):
        return "female"
    if g.startswith("m") or g == "man":
        return "male"
    return "female" if stable_unit(persona_id, "gender") < 0.5 else "male"


def persona_age(persona: dict[str, Any]) -> int | None:
    for key in ("age", "exact_age"):
        try:
            return int(float(persona[key]))
        except (KeyError, TypeError, ValueError):
            continue
    r = str(persona.get("age_range", ""))
    nums = [int(x) for x in "".join(c if c.isdigit() else " " for c in r).split()]
    return int(sum(nums[:2]) / len(nums[:2])) if nums else None


def age_shape(age: int | None, gender: Gender) -> tuple[float, float]:
    """(speed, pitch) factors: younger speakers talk faster and a little higher, older ones slower and lower."""
    if age is None:
        return 1.0, 1.0
    if age < 30:
        return 1.05, 1.03
    if age < 45:
        return 1.0, 1.0
    if age < 60:
        return 0.96, 0.97 if gender == "female" else 0.98
    return 0.91, 0.94 if gender == "female" else 0.96


def _near_neighbour_pitch(k: int) -> float:
    # k = 1, 2, 3, ... -> +7 %, -7 %, +14 %, -14 %: audible steps that keep the voice natural
    step = math.ceil(k / 2) * 0.07
    return 1 + step if k % 2 else 1 - step


def _kokoro_pick(bank: Bank, gender: Gender, used: dict[str, int], key: str,
                 hold_out: frozenset[str] = frozenset()) -> tuple[str, int, bool]:  # fmt: skip
    voices = [v for v in bank.voices if v.id not in hold_out]
    pool = [v for v in voices if v.gender == gender] or voices
    taken = [bid for bid, n in used.items() if n > 0]
    free = [v for v in pool if used.get(v.id, 0) == 0 and v.distinct]
    if free:
        def score(v) -> tuple[float, float]:
            near = max((bank.cos(v.id, t) for t in taken), default=-1.0)
            return (round(near, 3), stable_unit(key, v.id))

        best = min(free, key=score)
        return best.id, 0, True
    # no distinct voice left: share the least used one, nearest-neighbour variants in turn
    best = min(pool, key=lambda v: (used.get(v.id, 0), not v.distinct, stable_unit(key, v.id)))
    return best.id, used.get(best.id, 0), False


def agent_speaker(scenario_name: str, spec: dict[str, Any] | None, engine: str) -> SpeakerVoice:
    """The scenario's fixed agent voice (``agent.voice`` in its YAML) on ``engine``."""
    spec = dict(spec or {})
    preset = str(spec.get("preset") or "agent_female")
    gender: Gender = "male" if "male" in preset and "female" not in preset else "female"
    if spec.get("engine", engine) != engine:
        # the scenario names another engine: keep its preset/gender on the chosen one
        spec = {"preset": preset}
    fields = {k: v for k, v in spec.items() if k in Voice.model_fields and k != "engine"}
    voice = Voice(engine=engine, **fields)
    if engine == "kokoro":
        bank = load_bank()
        bid = (bank.presets.get(preset, preset) if bank else None) if voice.preset else None
        if bank is not None and bid and any(v.id == bid for v in bank.voices):
            gender = bank.by_id(bid).gender
            return SpeakerVoice(speaker_id=f"agent:{scenario_name}", role="agent", gender=gender, bank_id=bid, voice=voice)
    if engine == "flite" and voice.name:
        gender = FLITE_GENDER.get(voice.name, gender)  # type: ignore[assignment]
    return SpeakerVoice(speaker_id=f"agent:{scenario_name}", role="agent", gender=gender, voice=voice)


def assign_personas(book: VoiceBook, personas: list[tuple[str, dict[str, Any]]], hold_out: Sequence[str] = ()) -> list[str]:
    """Add voices for personas not yet in ``book``; returns the ids added. Deterministic in the inputs.

    ``hold_out``: Kokoro bank voices given to nobody (speakers an evaluation set keeps to itself)."""
    new = [(pid, p) for pid, p in dict(personas).items() if pid not in book.personas]
    if not new:
        return []
    new.sort(key=lambda x: (stable_unit(x[0], "order"), x[0]))
    added = []
    if book.engine == "kokoro":
        bank = load_bank()
        if bank is None:
            raise VoiceError("the Kokoro voice bank (synth/data/kokoro_bank.json) is missing; run `mads voices search`")
        book.bank = f"kokoro-bank-v{bank.version}:{bank.created}"
        for bid in hold_out:
            bank.by_id(bid)  # a name that is not in the bank is an error, not a silent no-op
        if not {v.id for v in bank.voices} - set(hold_out):
            raise VoiceError("every Kokoro bank voice is held out: no voice is left for the personas")
        used: dict[str, int] = {}
        for s in [*book.agents.values(), *book.personas.values()]:
            if s.bank_id:
                used[s.bank_id] = used.get(s.bank_id, 0) + 1
        for pid, p in new:
            gender, age = persona_gender(p, pid), persona_age(p)
            bid, variant, distinct = _kokoro_pick(bank, gender, used, pid, frozenset(hold_out))
            used[bid] = used.get(bid, 0) + 1
            speed, pitch = age_shape(age, gender)
            # a small per-persona spread so two personas on one bank voice never coincide exactly
            jitter = 1 + 0.03 * (stable_unit(pid, "rate") - 0.5)
            pitch *= _near_neighbour_pitch(variant) if variant else 1.0
            voice = Voice(engine="kokoro", preset=bid, pitch=round(pitch, 4), speed=round(speed * jitter, 4))
            book.personas[pid] = SpeakerVoice(
                speaker_id=pid, role="user", gender=gender, age=age, bank_id=bid, variant=variant,
                distinct=distinct, voice=voice,
                note="" if distinct else (
                    f"shares bank voice {bid} with {variant} other speaker(s), pitch offset; the bank is used up"
                    if variant else f"bank voice {bid} is not clearly distinct from those taken; the distinct ones are used up"),
            )  # fmt: skip
            added.append(pid)
    elif hold_out:
        raise VoiceError(f"held-out voices name Kokoro bank voices; the {book.engine} engine has none to hold out")
    elif book.engine == "flite":
        names = {"female": [n for n, g in FLITE_GENDER.items() if g == "female"],
                 "male": [n for n, g in FLITE_GENDER.items() if g == "male"]}  # fmt: skip
        used_f: dict[str, int] = {}
        for s in [*book.agents.values(), *book.personas.values()]:
            if s.voice.name:
                used_f[s.voice.name] = used_f.get(s.voice.name, 0) + 1
        for pid, p in new:
            gender, age = persona_gender(p, pid), persona_age(p)
            pool = names[gender]
            name = min(pool, key=lambda n: (used_f.get(n, 0), stable_unit(pid, n)))
            k = used_f.get(name, 0)
            used_f[name] = k + 1
            speed, pitch = age_shape(age, gender)
            pitch *= 1 + 0.25 * (stable_unit(pid, "pitch") - 0.5)
            voice = Voice(engine="flite", name=name, pitch=round(pitch, 4) if name in FLITE_VOICES else 1.0,
                          speed=round(speed, 4))  # fmt: skip
            book.personas[pid] = SpeakerVoice(speaker_id=pid, role="user", gender=gender, age=age, variant=k,
                                              distinct=k == 0, voice=voice)  # fmt: skip
            added.append(pid)
    else:
        raise VoiceError(
            f"engine '{book.engine}' has no automatic persona voices: write AUD/voices.json by hand "
            "(one entry per persona id with a coqui voice: model folder and speaker_wav or name)"
        )
    return added

