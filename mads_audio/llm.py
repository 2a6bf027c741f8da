"""The frozen LLM of the speech model: any preset, GGUF file or local Hugging Face folder, loaded for torch.

The project ships its LLMs as GGUF files (for llama.cpp), but the speech model
needs them as torch modules. A GGUF is therefore dequantized once by
``transformers`` into a float32 Hugging Face folder in the cache; every later
run loads that folder directly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from mads_text.common import assets

from .config import SpeechModelError


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _gguf(name: str) -> tuple[Path, str]:
    """The GGUF a preset or path stands for, and its cache key (the file size tells two GGUFs with one stem apart)."""
    try:
        gguf = assets.resolve_gguf(name)
    except assets.AssetError as e:
        raise SpeechModelError(str(e)) from e
    return gguf, f"{gguf.stem}-{gguf.stat().st_size}"


def _write_once(out: Path, write) -> None:
    """Fill the cache folder ``out`` with ``write(folder)``: written to a private folder, then renamed, so a
    concurrent run never sees half of it (if another run got there first, its folder is kept)."""
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def llm_folder(name: str) -> Path:
    """A local HF folder for ``name``: as given, or a GGUF preset/file dequantized once into the cache.

    Converting SmolLM2's GGUF takes ~40 s (the tokenizer is rebuilt in Python); the
    saved fp32 folder loads in under a second, so every later run uses it.
    """
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists():
            raise SpeechModelError(f"{p}: not a Hugging Face checkpoint folder (no config.json)")
        return p
    gguf, key = _gguf(name)
    out = assets.cache_dir() / "models" / "hf" / key
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def write(folder: Path) -> None:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        lm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        # the GGUF quantizer marker blocks save_pretrained although the weights are already dequantized
        lm.hf_quantizer = None
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
        lm.save_pretrained(folder)
        tok.save_pretrained(folder)

    _write_once(out, write)
    return out


def llm_tokenizer(name: str):
    """The LLM's tokenizer alone, for what needs its ids but not its weights (the CTC ear): from the dequantized
    folder when there is one, else from the GGUF, kept in the cache (a tokenizer-only folder of a few MB)."""
    from transformers import AutoTokenizer

    if Path(name).expanduser().is_dir():
        return AutoTokenizer.from_pretrained(llm_folder(name), local_files_only=True)
    gguf, key = _gguf(name)
    full = assets.cache_dir() / "models" / "hf" / key
    out = full if (full / "tokenizer_config.json").exists() else assets.cache_dir() / "models" / "tokenizers" / key
    if not (out / "tokenizer_config.json").exists():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        _write_once(out, tok.save_pretrained)
        return tok
    return AutoTokenizer.from_pretrained(out, local_files_only=True)


def load_llm(name: str, device: str, dtype: torch.dtype):
    """(folder, tokenizer, causal LM) with every weight frozen, in eval mode on ``device``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = llm_folder(name)
    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        lm = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as e:
        raise SpeechModelError(f"cannot load LLM '{name}' from {folder}: {e}") from e
    if tok.eos_token_id is None:
        # the reply loss and generation both end on this token; without it the model could never stop
        raise SpeechModelError(f"LLM '{name}': tokenizer has no end-of-sequence token")
    lm.requires_grad_(False)
    return folder, tok, lm.to(device).eval()
