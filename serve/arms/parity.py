"""What an arm answers with, in a form two arms can be compared on, so an A/B can differ only in the ear.

Each arm's ``describe()`` carries ``backbone`` (the LLM weights it answers with), ``prompt_sha256``
(sha256 of the system/instruction text of its prompt) and ``decoding`` (its decoding settings).
``mads serve`` refuses to run both arms when these differ unless told to allow it, and the A/B report
says how the arms of the calls it counts differ (``differences``).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

PARITY_KEYS = ("backbone", "prompt_sha256", "decoding")
# not set by the request: whatever the serving backend does by default (unknown here, so never equal to "none")
BACKEND_DEFAULT = "backend default"


class ArmMismatch(ValueError):
    """Both arms would run, but they differ in backbone, prompt or decoding."""


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache  # described with every call: resolve once
def backbone(name_or_path: str) -> str:
    """The weights an LLM name stands for: the GGUF file of a preset or a path, a local folder, else the name."""
    from mads_text.common import assets

    try:
        return str(assets.resolve_gguf(name_or_path).resolve())
    except assets.AssetError:
        pass
    p = Path(name_or_path).expanduser()
    return str(p.resolve()) if p.exists() else name_or_path


@functools.cache
def llama_sampler_defaults() -> dict[str, Any]:
    """Sampler stages llama.cpp applies on top of temperature and top_p when a request does not set them."""
    try:
        import xllamacpp as xl

        s = xl.CommonParams().sampling
        return {"top_k": int(s.top_k), "min_p": round(float(s.min_p), 4)}
    except Exception:  # noqa: BLE001 - not installed: say so rather than guess
        return {"top_k": BACKEND_DEFAULT, "min_p": BACKEND_DEFAULT}


def decoding(
    *, temperature: float, top_p: float, max_tokens: int, stop: list[str], draws: int, redraw_heat: float = 0.0,
    top_k: Any = None, min_p: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Decoding settings in one comparable form. ``draws``: tries at a reply with nothing speakable before the
    fallback line, each ``redraw_heat`` hotter than the last. Under greedy decoding the sampling knobs play no
    part, nor do redraws at the same temperature (they give the same reply): those are left out, so two greedy
    arms compare equal on them."""
    d: dict[str, Any] = {"max_tokens": max_tokens, "stop": list(stop)}
    if redraw_heat or temperature > 0:
        d.update(draws=draws, redraw_heat=redraw_heat)
    if temperature <= 0:
        return {"greedy": True, **d}
    return {"greedy": False, "temperature": temperature, "top_p": top_p, "top_k": top_k, "min_p": min_p, **d}


def signature(desc: dict[str, Any] | None) -> dict[str, Any]:
    """The parts of an arm description that must match (and the framing that explains a prompt hash);
    ``None`` where a store's older rows did not record them."""
    return {k: (desc or {}).get(k) for k in (*PARITY_KEYS, "prompt_framing")}


def differences(pipeline: dict[str, Any], audio: dict[str, Any]) -> list[str]:
    """One line per difference between the two arms' descriptions in backbone, prompt hash or decoding."""
    out = []
    for k in PARITY_KEYS:
        a, b = pipeline.get(k), audio.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}.{kk}: pipeline {a.get(kk)!r}, audio {b.get(kk)!r}"
                    for kk in dict.fromkeys([*a, *b]) if a.get(kk) != b.get(kk)]  # fmt: skip
        elif a != b:
            fa, fb = pipeline.get("prompt_framing"), audio.get("prompt_framing")
            framing = f" (framing: pipeline {fa}, audio {fb})" if k == "prompt_sha256" and fa != fb else ""
            out.append(f"{k}: pipeline {a!r}, audio {b!r}{framing}")
    return out
