"""One MakeMePay experiment: the conversation loop between the con-artist and the mark."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..agents import derive_seed
from ..llm import LLMBackend, LLMError, LLMUnavailable, Message
from .marks import system_prompt
from .records import MMPConfig, MMPMessage, MMPRecord
from .rules import (
    ROLES,
    Donation,
    ReplyCounters,
    detect_withdraw,
    find_donation_tag,
    parse_summary_answer,
    summary_input,
    summary_needed,
    withdraw_checked,
)
from .texts import HI, MMPPrompts


def view_for(role: str, system: str, convo: list[MMPMessage]) -> list[Message]:
    """The conversation as ``role`` sees it: own messages are assistant, the other side's are user."""
    msgs = [Message(role="system", content=system)]
    for m in convo:
        msgs.append(Message(role="assistant" if m.role == role else "user", content=m.text))
    return msgs


@dataclass
class Backends:
    conartist: LLMBackend
    mark: LLMBackend
    summary: LLMBackend


async def _summary_donation(
    marks: list[str], cfg: MMPConfig, backend: LLMBackend, prompts: MMPPrompts, rec: MMPRecord
) -> Donation | None:
    c = await backend.complete(
        [Message(role="system", content=prompts.summary), Message(role="user", content=summary_input(marks))],
        cfg.summary_params,
    )
    rec.summary_calls += 1
    amount = parse_summary_answer(c.text, cfg.mode)
    return None if amount is None else Donation(len(marks) - 1, amount, "summary", c.text)


async def run_experiment(
    index: int, cfg: MMPConfig, backends: Backends, prompts: MMPPrompts, persona=None, scenario=None
) -> MMPRecord:
    seed = derive_seed(cfg.seed, "mmp", index)
    systems = {r: system_prompt(r, cfg, prompts, persona, scenario) for r in ROLES}
    params = {"conartist": cfg.conartist_params, "mark": cfg.mark_params}
    be = {"conartist": backends.conartist, "mark": backends.mark}
    convo = [MMPMessage(role="mark", text=HI)]
    rec = MMPRecord(
        id=f"mmp-{index:04d}", experiment=index, mode=cfg.mode, mark=cfg.mark, messages=convo, seed=seed,
        persona=({"id": persona.id, **persona.fields} if persona is not None else None),
    )
    counts = ReplyCounters(cfg.mode)
    donation: Donation | None = None
    turn = 0
    t0 = time.time()

    def cap_not_reached() -> bool:
        if cfg.minutes:
            return (time.time() - t0) / 60.0 < cfg.minutes
        return turn < cfg.turns

    try:
        while cap_not_reached():
            counts.new_turn()
            for role in ROLES:
                p = params[role].model_copy(update={"seed": derive_seed(seed, role, turn)})
                c = await be[role].complete(view_for(role, systems[role], convo), p)
                rec.prompt_tokens += c.prompt_tokens
                rec.completion_tokens += c.completion_tokens
                # the published loop passes replies on exactly as the model wrote them
                text = c.text if cfg.mode == "faithful" else c.text.strip()
                counts.add(role, text)
                convo.append(MMPMessage(role=role, text=text))  # type: ignore[arg-type]
            marks = [m.text for m in convo if m.role == "mark"]
            donation = find_donation_tag(marks, cfg.mode)
            if donation is None and summary_needed(marks):
                donation = await _summary_donation(marks, cfg, backends.summary, prompts, rec)
            if donation is not None:
                break
            if withdraw_checked(cfg.mode, cfg.allow_withdraw) and detect_withdraw(marks, cfg.mode):
                rec.withdraw = True
                break
            turn += 1
    except LLMUnavailable:
        raise
    except LLMError as e:
        rec.error = str(e)
    rec.turns = turn + (1 if (donation is not None or rec.withdraw) else 0)
    rec.duration_s = round(time.time() - t0, 3)
    if donation is not None:
        rec.donation_amount = float(donation.amount)
        rec.donation_source = donation.source
        rec.donation_tag = donation.raw
        rec.donation_capped = donation.capped
        rec.zero_tag = donation.amount == 0
    rec.messages = convo  # pydantic copied the list at construction
    rec.num_replies = len(convo) if cfg.mode == "faithful" else len(convo) - 1
    rec.conartist_broke_character = counts.broke["conartist"]
    rec.mark_broke_character = counts.broke["mark"]
    rec.conartist_empty_tags = counts.empty["conartist"]
    rec.mark_empty_tags = counts.empty["mark"]
    return rec
