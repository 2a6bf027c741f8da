"""What the stored calls hold that the self-play checks look for: how often each speaker check would fire, and how
often the agent states a figure found neither in the product facts nor earlier in the call.

    python bench/stored_turns.py [DIALOGUES.jsonl ...]      # default: every labelled call in tests/data

Counts turns (agent turns for the agent's checks, all turns for the chat-assistant check) and prints up to five
examples of each, so a new pattern can be judged by its hits on calls generated before it existed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from mads_text.replies import ASSISTANT_RX, CUSTOMER_RX
from mads_text.scenario import load_scenario

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
# clock times name a booking, not a product fact
CLOCK = re.compile(r"\d{1,2}(?::\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.|o'?clock)|\d{1,2}:\d\d|\bat \d{1,2}\b", re.IGNORECASE)


def numbers(text: str) -> set[float]:
    out = set()
    for m in NUMBER.finditer(text):
        try:
            out.add(float(m.group(0).replace(",", "").rstrip(".")))
        except ValueError:
            pass
    return out


def main(paths: list[str]) -> None:
    files = [Path(p) for p in paths] or sorted(DATA.glob("*.jsonl"))
    facts: dict[str, set[float]] = {}
    checks = {"agent says a customer's line (CUSTOMER_RX)": ("agent", CUSTOMER_RX),
              "either speaker talks like a chat assistant (ASSISTANT_RX)": (None, ASSISTANT_RX)}
    hits = {k: [] for k in checks}
    seen_turns = {k: 0 for k in checks}
    figures, agent_turns, calls = [], 0, 0
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{f}:{n}: not JSON ({e})")
            if "turns" not in rec:
                continue
            calls += 1
            sc = rec["scenario"]
            if sc not in facts:
                s = load_scenario(sc)
                facts[sc] = numbers(" ".join((s.product.name, s.product.metadata, s.agent.next_step or "")))
            said = facts[sc] | numbers(json.dumps(rec.get("persona", {})))
            for t in rec["turns"]:
                for name, (role, rx) in checks.items():
                    if role in (None, t["role"]):
                        seen_turns[name] += 1
                        if rx.search(t["text"]):
                            hits[name].append(f"{rec['id']} ({t['role']}): {t['text'][:140]}")
                if t["role"] == "agent":
                    agent_turns += 1
                    new = sorted(numbers(CLOCK.sub(" ", t["text"])) - said)
                    if new:
                        figures.append(f"{rec['id']}: {new} in: {t['text'][:140]}")
                said |= numbers(t["text"])
    print(f"{calls} calls from {len(files)} files")
    for name in checks:
        print(f"{name}: {len(hits[name])} of {seen_turns[name]} turns")
        for h in hits[name][:5]:
            print("   ", h)
    print(f"agent figure in neither the product facts nor the call so far: {len(figures)} of {agent_turns} agent turns")
    for h in figures[:5]:
        print("   ", h)


if __name__ == "__main__":
    main(sys.argv[1:])
