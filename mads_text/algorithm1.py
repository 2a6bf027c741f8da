"""Algorithm 1 of the MADS paper (the self-optimizing Dialog Agent), line by line.

The four stages are passed in, so this function holds only the control flow of the printed
pseudo-code; ``optimize.Optimizer`` supplies stages that persist every step and resume.
Iteration ``k`` runs prompt ``P_k`` (``P_0`` is the meta instruction). With
``score_last_prompt`` the prompt of the K-th evolution is scored too (K+1 rows, what the paper's
Table 4 compares); without it the loop is exactly as printed: K runs, each followed by an evolution.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

D = TypeVar("D")  # the dialogues of one iteration
F = TypeVar("F")  # the feedback DF handed to the evolution


@dataclass
class Iteration(Generic[D, F]):
    k: int
    prompt: str
    dialogues: D
    h: float  # H_avg of the attitude transitions
    tau: float  # acceptance rate
    feedback: F
    stop: bool  # tau >= theta and H >= H_basic


async def self_optimize(
    p0: str,
    iterations: int,
    theta: float,
    h_basic: float,
    gen_dialogue: Callable[[int, str], Awaitable[D]],
    summary: Callable[[int, D], Awaitable[float]],
    evaluate: Callable[[int, D], Awaitable[tuple[float, F]]],
    evolution: Callable[[int, str, F], Awaitable[str]],
    pick_best: Callable[[list[Iteration[D, F]]], Iteration[D, F]],
    score_last_prompt: bool = True,
) -> tuple[Iteration[D, F], list[Iteration[D, F]]]:
    """Return (D*, P*) as the chosen iteration, and every iteration run."""
    runs = iterations + 1 if score_last_prompt else max(1, iterations)
    done: list[Iteration[D, F]] = []
    p = p0  # P <- P0
    for k in range(runs):  # for k = 1 to K
        d = await gen_dialogue(k, p)  # D <- GENDIALOGUE(U, T, P)
        h = await summary(k, d)  # H <- SUMMARY(D, T)
        tau, df = await evaluate(k, d)  # tau, DF <- EVALUATE(D, T)
        done.append(Iteration(k, p, d, h, tau, df, stop=tau >= theta and h >= h_basic))
        if done[-1].stop:  # if tau >= theta and H >= H_basic
            return done[-1], done  # return D, P
        if k == iterations:  # the K-th evolved prompt has been scored; nothing is left to evolve
            break
        p = await evolution(k, p, df)  # P <- EVOLUTION(P, DF)
    return pick_best(done), done  # return D*, P*
