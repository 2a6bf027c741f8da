"""Which labelled calls a change to the decision cues decides differently: the rules of a git revision against this
checkout (working tree included), call by call, over every labelled call in tests/data.

    python bench/decision_diff.py REV        # e.g. HEAD~1; needs the git history (a clone, not an archive)

Prints each call whose first decisive round (outcome and round) changed, beside the reader's, and how many calls
agree with the reader before and after. A new cue written from a fresh batch's misses should change no earlier
call's outcome for the worse.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from decision_learned import DUMP, ROOT, labelled_files, old_rules


def first(verdicts: list[str]) -> tuple[str, int | None]:
    return next(((v, k) for k, v in enumerate(verdicts, 1) if v != "continue"), ("undecided", None))


def reader(path: Path) -> dict[str, tuple[str, int | None]]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        labs = [lab for lab in r.get("labels", []) if lab.get("decision") in ("accept", "withdraw")]
        out[r["id"]] = (labs[0]["decision"], labs[0]["round"]) if labs else ("undecided", None)
    return out


def main(rev: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        before = old_rules(rev, Path(tmp))
        now_file = Path(tmp) / "now.json"
        subprocess.run([sys.executable, "-c", DUMP, str(now_file), *map(str, labelled_files())], check=True, cwd=ROOT,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        now = json.loads(now_file.read_text())
    gold = {k: v for p in labelled_files() for k, v in reader(p).items()}
    changed = [k for k in now if first(now[k]) != first(before.get(k, []))]
    for k in changed:
        print(f"{k}: reader {gold[k]}, {rev} {first(before.get(k, []))}, now {first(now[k])}")
    agree = lambda d: sum(first(d.get(k, []))[0] == gold[k][0] for k in gold)  # noqa: E731
    print(f"{len(gold)} calls; outcome agrees with the reader: {rev} {agree(before)}, now {agree(now)}; "
          f"{len(changed)} calls decided differently (outcome or round)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
