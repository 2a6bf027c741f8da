"""Append-only JSON Lines with crash-safe appends, and the run folder layout.

A line is written with a single ``write`` on an ``O_APPEND`` descriptor and
fsynced, so concurrent appends never interleave. If a crash still leaves a
partial last line (power loss mid-write), opening the file cuts it off: only
whole records survive, and a resumed run redoes the unit that was cut.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from .records import DialogueRecord, RunManifest

M = TypeVar("M", bound=BaseModel)


class RunStoreError(RuntimeError):
    pass


def repair_tail(path: Path) -> int:
    """Drop an unterminated last line; returns the number of bytes removed."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        # walk back to the previous newline
        pos = size - 1
        block = 4096
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            pos = start
        else:
            cut = 0
        f.truncate(cut)
        return size - cut


class JsonlWriter:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired = repair_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, obj: BaseModel | dict) -> None:
        line = obj.model_dump_json() if isinstance(obj, BaseModel) else json.dumps(obj, ensure_ascii=False)
        data = (line + "\n").encode("utf-8")
        n = os.write(self._fd, data)
        if n != len(data):  # pragma: no cover - regular files write fully
            raise RunStoreError(f"short write to {self.path}")
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def iter_jsonl(path: str | Path, model: type[M] | None = None, strict: bool = False) -> Iterator[Any]:
    """Yield parsed lines; a malformed line raises (strict) or is skipped with its line number reported."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            if not line.endswith("\n"):
                break  # torn tail of a crashed writer
            try:
                obj = json.loads(line)
                yield model.model_validate(obj) if model else obj
            except Exception as e:  # noqa: BLE001
                if strict:
                    raise RunStoreError(f"{path}:{lineno}: not a valid record: {e}") from e


def write_json_atomic(path: str | Path, obj: BaseModel | dict | list) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    text = obj.model_dump_json(indent=2) if isinstance(obj, BaseModel) else json.dumps(obj, indent=2, ensure_ascii=False)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- run folders ----------------------------------------------------------------

DIALOGUES = "dialogues.jsonl"
MANIFEST = "manifest.json"


def read_dialogues(run_dir: str | Path, strict: bool = True) -> list[DialogueRecord]:
    path = Path(run_dir) / DIALOGUES
    if not path.exists():
        raise RunStoreError(f"{path} not found: is '{run_dir}' a run folder written by `mads simulate`?")
    return list(iter_jsonl(path, DialogueRecord, strict=strict))


def read_manifest(run_dir: str | Path) -> RunManifest | None:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        return RunManifest.model_validate_json(path.read_text())
    except Exception as e:  # noqa: BLE001
        raise RunStoreError(f"{path}: unreadable manifest: {e}") from e


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: tuple[str, ...] = ("mads", "xllamacpp", "pydantic", "numpy", "httpx", "vllm", "transformers", "torch")) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out
