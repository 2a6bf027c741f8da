"""Sticky A/B assignment of calls to arms.

A caller with an id (native ``caller.id``, Twilio ``callSid`` or the ``from``
parameter) lands in the same arm every time for a given experiment name: the
bucket is a hash of experiment and id, not a random draw. Calls without an id
are bucketed by their call id (random, but recorded).
"""

from __future__ import annotations

import hashlib

from .arms import ARMS


class SplitError(ValueError):
    pass


def parse_split(spec: str | None, default_arm: str = "pipeline") -> dict[str, float]:
    """'audio=0.5' -> {'audio': 0.5, 'pipeline': 0.5}; shares not given go to the other arm."""
    if not spec:
        return {default_arm: 1.0}
    shares: dict[str, float] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise SplitError(f"--split: '{part}' is not ARM=SHARE (e.g. audio=0.5)")
        arm, _, val = part.partition("=")
        arm = arm.strip()
        if arm not in ARMS:
            raise SplitError(f"--split: unknown arm '{arm}'; arms are {', '.join(ARMS)}")
        try:
            share = float(val)
        except ValueError:
            raise SplitError(f"--split: share of '{arm}' is not a number: {val!r}") from None
        if not 0.0 <= share <= 1.0:
            raise SplitError(f"--split: share of '{arm}' must be within [0, 1], got {share}")
        shares[arm] = share
    total = sum(shares.values())
    if total > 1.0 + 1e-9:
        raise SplitError(f"--split: shares add up to {total:g}, more than 1")
    rest = [a for a in ARMS if a not in shares]
    if rest:
        for a in rest:
            shares[a] = (1.0 - total) / len(rest)
    elif abs(total - 1.0) > 1e-9:
        raise SplitError(f"--split: shares add up to {total:g}, expected 1")
    return {a: s for a, s in shares.items() if s > 0}


def bucket(experiment: str, key: str) -> float:
    h = hashlib.sha256(f"{experiment}/{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def assign(split: dict[str, float], experiment: str, key: str) -> str:
    u = bucket(experiment, key)
    acc = 0.0
    arms = [a for a in ARMS if a in split]
    for a in arms:
        acc += split[a]
        if u < acc:
            return a
    return arms[-1]
