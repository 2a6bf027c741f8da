"""Speech checkpoints: only what training changed, plus a config that names the frozen parts.

A checkpoint folder holds ``projector.safetensors``, optionally a LoRA adapter
in ``lora/``, and ``config.json``. The LLM and Whisper are far too large to copy
into every checkpoint, so they are named and fingerprinted instead; loading
against a frozen part with another fingerprint is reported.

Every file is written beside its final name and renamed into place, so a run
killed mid-save leaves the previous checkpoint whole. Reading ``config.json``
needs neither torch nor the weights (the voice server checks a checkpoint this
way before it loads anything).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from .config import LoraSpec, SpeechLLMConfig, SpeechModelError

if TYPE_CHECKING:  # the model imports this module; only type hints point back
    from .model import SpeechLLM

CONFIG_FILE = "config.json"
PROJECTOR_FILE = "projector.safetensors"
LORA_DIR = "lora"
CHECKPOINT_VERSION = 1


class FrozenPart(BaseModel):
    name: str
    path: str
    fingerprint: str


class CheckpointInfo(BaseModel):
    """``SCKPT/config.json``."""

    model_config = ConfigDict(extra="allow")
    version: int = CHECKPOINT_VERSION
    kind: str = "mads-speech-llm"
    config: SpeechLLMConfig
    frozen: dict[str, FrozenPart] = Field(default_factory=dict)
    trained: list[str] = Field(default_factory=lambda: ["projector"])
    step: int = 0
    created: str = ""
    train: dict[str, Any] = Field(default_factory=dict)


def fingerprint(path: Path) -> str:
    """Cheap identity of a file or folder: sizes plus a hash of each file's first and last MiB.

    Hashing whole multi-GB weights on every load would cost more than the load itself.
    """
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        if f.suffix in (".json", ".safetensors", ".bin", ".gguf", ".model") or not path.is_dir():
            size = f.stat().st_size
            h.update(f"{f.name}:{size}".encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), 2)
                    h.update(fh.read())
    return h.hexdigest()[:16]


def read_checkpoint_info(ckpt: str | Path) -> CheckpointInfo:
    p = Path(ckpt) / CONFIG_FILE
    if not p.exists():
        raise SpeechModelError(f"{ckpt}: not a speech checkpoint ({CONFIG_FILE} missing)")
    try:
        return CheckpointInfo.model_validate_json(p.read_text())
    except ValueError as e:
        raise SpeechModelError(f"{p}: invalid checkpoint config: {e}") from e


def frozen_parts(model: SpeechLLM) -> dict[str, FrozenPart]:
    w = model.encoder.folder / "model.bin"
    return {
        "llm": FrozenPart(name=model.config.llm, path=str(model.llm_path), fingerprint=fingerprint(model.llm_path)),
        "whisper": FrozenPart(name=model.config.whisper, path=str(model.encoder.folder), fingerprint=fingerprint(w)),
    }


def save(model: SpeechLLM, out_dir: str | Path, step: int = 0, train_info: dict | None = None) -> Path:
    """Write only the trained parts plus config; files are replaced atomically."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    proj = model.projector
    sd = {k: v.detach().float().cpu().contiguous() for k, v in proj.state_dict().items()}
    tmp = out / (PROJECTOR_FILE + ".tmp")
    save_file(sd, str(tmp), metadata={"in_dim": str(proj.in_dim), "out_dim": str(proj.out_dim)})
    os.replace(tmp, out / PROJECTOR_FILE)
    trained = ["projector"]
    if model.config.lora is not None:
        tmp_dir = out / (LORA_DIR + ".tmp")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        model.lm.save_pretrained(str(tmp_dir))  # PEFT writes the adapter only
        shutil.rmtree(out / LORA_DIR, ignore_errors=True)
        os.replace(tmp_dir, out / LORA_DIR)
        trained.append("lora")
    info = CheckpointInfo(
        config=model.config,
        frozen=frozen_parts(model),
        trained=trained,
        step=step,
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        train=train_info or {},
    )
    tmp = out / (CONFIG_FILE + ".tmp")
    tmp.write_text(info.model_dump_json(indent=2))
    os.replace(tmp, out / CONFIG_FILE)
    return out


def load(cls: type[SpeechLLM], ckpt: str | Path, device: str | None = None, dtype=None, llm: str | None = None,
         strict_frozen: bool = False) -> SpeechLLM:
    """Rebuild a model of class ``cls`` from a checkpoint folder (``llm`` relocates the same LLM)."""
    info = read_checkpoint_info(ckpt)
    ckpt = Path(ckpt)
    # built without LoRA: the trained adapter is loaded as it is, not a fresh one initialised first
    cfg = info.config.model_copy(update={"lora": None, **({"llm": llm} if llm else {})})
    model = cls(cfg, device=device, dtype=dtype)
    model.config = model.config.model_copy(update={"lora": info.config.lora})
    mismatched = [
        k for k, part in info.frozen.items()
        if k in frozen_parts(model) and part.fingerprint != frozen_parts(model)[k].fingerprint
    ]
    if mismatched:
        msg = f"{ckpt}: frozen part(s) {mismatched} differ from the ones this checkpoint was trained with"
        if strict_frozen:
            raise SpeechModelError(msg)
        # stacklevel 3: the caller of SpeechLLM.load, not this helper
        warnings.warn(msg, stacklevel=3)
    load_trained(model, ckpt, info)
    return model.eval()


def load_trained(model: SpeechLLM, ckpt: str | Path, info: CheckpointInfo | None = None) -> None:
    """Put a checkpoint's projector (and LoRA adapter) into an already built model."""
    from safetensors.torch import load_file

    info = info or read_checkpoint_info(ckpt)
    p = Path(ckpt) / PROJECTOR_FILE
    if not p.exists():
        raise SpeechModelError(f"{p}: projector weights missing")
    sd = load_file(str(p), device=str(model.device_name))
    try:
        model.projector.load_state_dict(sd)
    except RuntimeError as e:
        raise SpeechModelError(f"{p}: projector does not fit this encoder/LLM pair: {e}") from e
    if "lora" in info.trained:
        if not (Path(ckpt) / LORA_DIR).exists():
            raise SpeechModelError(f"{ckpt}: config says LoRA was trained but {LORA_DIR}/ is missing")
        if hasattr(model.lm, "get_base_model"):  # already wrapped (resuming): load weights in place
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(model.lm, load_file(str(Path(ckpt) / LORA_DIR / "adapter_model.safetensors")))
        else:
            model.add_lora(info.config.lora or LoraSpec(), adapter_dir=Path(ckpt) / LORA_DIR)


def export_half(ckpt: str | Path, out: str | Path) -> Path:
    """A copy of a checkpoint with its projector in float16 (half the bytes, for shipping); LoRA adapters are not
    exported. Loading casts the weights back to the model's dtype."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    info = read_checkpoint_info(ckpt)
    if "lora" in info.trained:
        raise SpeechModelError(f"{ckpt}: has a LoRA adapter; only projector checkpoints are exported")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(ckpt) / PROJECTOR_FILE
    if not src.exists():
        raise SpeechModelError(f"{src}: projector weights missing")
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata() or {})
    sd = {k: v.half().contiguous() for k, v in load_file(str(src)).items()}
    tmp = out / (PROJECTOR_FILE + ".tmp")
    save_file(sd, str(tmp), metadata={**meta, "dtype": "float16"})
    os.chmod(tmp, 0o644)  # shipped in a package: readable by every user
    os.replace(tmp, out / PROJECTOR_FILE)
    # the building machine's folders mean nothing elsewhere: only their names are kept
    train = {k: v for k, v in info.train.items() if k != "argv"}
    if isinstance(train.get("config"), dict):
        c = dict(train["config"])
        for k in ("data", "out", "init_from"):
            if c.get(k):
                c[k] = ",".join(Path(x).name for x in str(c[k]).split(","))
        train["config"] = c
    frozen = {k: v.model_copy(update={"path": Path(v.path).name}) for k, v in info.frozen.items()}
    info = info.model_copy(update={"frozen": frozen, "train": {**train, "exported_from": Path(ckpt).name, "dtype": "float16"}})
    tmp = out / (CONFIG_FILE + ".tmp")
    tmp.write_text(info.model_dump_json(indent=2))
    os.replace(tmp, out / CONFIG_FILE)
    return out

