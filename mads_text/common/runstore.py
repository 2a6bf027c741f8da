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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

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


@dataclass
class DialogueSource:
    """Dialogue records read by :func:`open_dialogues`, with what could not be read."""

    path: Path  # the JSON Lines file that was read
    folder: Path  # the folder holding it: where outputs such as analysis/ go by default
    records: list[DialogueRecord]  # every line that is a valid record, in file order
    manifest: RunManifest | None  # None when the folder has no manifest.json
    bad_lines: list[tuple[int, str]]  # (1-based line number, short reason) of lines that could not be read


def open_dialogues(path: str | Path) -> DialogueSource:
    """Dialogue records from a run folder, a folder holding only a ``dialogues.jsonl``, or any ``.jsonl`` file.

    A line that is not a valid record is reported in ``bad_lines`` and the others are still read; the file
    is only read, never repaired (cutting a torn tail is the job of the writer that resumes it)."""
    p = Path(path)
    if not p.exists():
        raise RunStoreError(f"{p} does not exist: give a run folder, a folder holding {DIALOGUES}, "
                            "or a .jsonl file of dialogue records")
    if p.is_dir():
        folder, file = p, p / DIALOGUES
        if not file.is_file():
            raise RunStoreError(f"{p} holds no {DIALOGUES}: give a run folder written by `mads simulate`, a folder "
                                f"holding {DIALOGUES}, or a .jsonl file of dialogue records")
    else:
        folder, file = p.parent, p
    records, bad = _read_records(file)
    if not records:
        why = f"line {bad[0][0]}: {bad[0][1]}" if bad else "the file is empty"
        raise RunStoreError(f"{file}: no line is a valid dialogue record ({why})")
    return DialogueSource(path=file, folder=folder, records=records, manifest=read_manifest(folder), bad_lines=bad)


def _read_records(path: Path) -> tuple[list[DialogueRecord], list[tuple[int, str]]]:
    records: list[DialogueRecord] = []
    bad: list[tuple[int, str]] = []
    # bytes, decoded line by line: one line in another encoding must not hide the rest of the file
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8-sig"))
            except UnicodeDecodeError:
                bad.append((n, "not UTF-8 text"))
                continue
            except json.JSONDecodeError as e:
                # only the last line can lack its newline; one that does not parse was cut off mid-write. A last
                # line that parses is whole: hand-written files often end without a newline.
                torn = not raw.endswith(b"\n")
                bad.append((n, "torn last line (no newline, not complete JSON)" if torn else f"not JSON: {e.msg} "
                            f"at column {e.colno}"))
                continue
            if not isinstance(obj, dict):
                bad.append((n, f"not a JSON object but {type(obj).__name__}"))
                continue
            try:
                records.append(DialogueRecord.model_validate(obj))
            except ValidationError as e:
                bad.append((n, "not a dialogue record: " + _first_problem(e)))
    return records, bad


def _first_problem(e: ValidationError) -> str:
    errs = e.errors()
    first = errs[0]
    where = ".".join(str(x) for x in first["loc"]) or "record"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{where}: {first['msg']}{more}"


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
