"""The two participants of a self-play call. Each exposes one method: ``next_turn(history)``.

Two framings of the same prompts (see ``prompts.py``):
- ``chat``: the paper's system prompts as chat messages (capable backends);
- ``transcript``: a prose header plus ``Name: utterance`` lines, completed up to the
  next newline (small embedded models, which abandon their role in chat mode).

Small models slip out of role; ``replies.py`` says what a reply may keep and
why a sample must be drawn again. The agents retry such samples a bounded
number of times, a little hotter each time, and count every case. A
customer's reply that stays a bare end marker comes back with no words, and
the orchestrator ends the call on it. A customer's yes that comes before
their stance's objections are said, or whose stance puts the offer over budget with
nothing cheaper that fits, is sampled again too (``stance_retries``).

In transcript mode the customer's header carries the persona's stance
(``stance.py``), and a reminder of the next objection not yet voiced sits just
before the customer's line, in the prompt only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

from . import prompts
from .common.records import Turn
from .cues import raises_concern, read_cues
from .llm import GenParams, LLMBackend, Message
from .personas import (
    Persona,
    agent_guidance,
    agent_transcript_header,
    render_agent_prompt,
    render_user_prompt,
    user_transcript_header,
)
from .replies import (
    ASSISTANT_RX,
    CUSTOMER_RX,
    FACTS_FRAME,
    LOOPED,
    SALES_LINES,
    SALES_RX,
    Cleaned,
    clean_reply,
    drop_repeats,
    ends_sentence,
    extract_marker,
    has_words,
    norm_words,
    sentences,
    trim_to_sentence,
)
from .scenario import Scenario
from .stance import LEANING_TEXT, derive_stance, render_stance

PromptMode = Literal["chat", "transcript"]

REPEAT_DRY = 0.8
CUT_RETRY = "stopped mid-sentence"
RETRY_HEAT = 0.2  # temperature added per retry
STANCE_RETRY = "committed before raising their doubts"
BUDGET_RETRY = "committed beyond their budget"
# the reminder's frame said in the first person, quotes and brackets dropped: "I still have this doubt.", "Yes, I do
# have this doubt"
NOTE_ECHO = re.compile(r"\b(?:ha(?:ve|s)|had) this doubt\b|\b(?:'ve|ha(?:ve|s)|had) raised every doubt\b", re.IGNORECASE)
# the stance's money line read out ("I'm prepared to spend at most 305 RMB a month. The offer costs 288 RMB a month,
# which fits."): nobody on a call calls it "the offer"
MONEY_ECHO = re.compile(r"\bthe offer costs\b", re.IGNORECASE)


@dataclass
class Reply:
    text: str
    marker: Literal["accept", "withdraw"] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    slips_cleaned: int = 0
    slips_retried: int = 0
    slips_kept: int = 0  # every sample slipped (other role, a direction read out, out of stance): the first kept
    empty_retries: int = 0
    marker_only_retries: int = 0
    repeats_removed: int = 0
    repeat_retries: int = 0
    repeats_kept: int = 0
    stance_retries: int = 0
    notes: list[str] = field(default_factory=list)


def derive_seed(*parts: object) -> int:
    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def _content(text: str) -> set[str]:
    return {w for w in norm_words(text) if len(w) > 3}


def open_objections(objections: list[str], history: list[Turn]) -> list[str]:
    """The stance's objections the customer has not voiced yet (most of its content words not said so far)."""
    said = set().union(*(_content(t.text) for t in history if t.role == "user")) if history else set()
    return [o for o in objections if len(_content(o) & said) < max(1, len(_content(o)) // 2)]


def stance_note(stance, history: list[Turn], name: str) -> str:
    """A private reminder just before the customer's line, in the prompt only (never stored or spoken). Small models
    forget the header's stance after a few turns and drift into agreeing, or into endless "I understand": the next
    unvoiced objection is recalled; a customer the stance makes persuadable (open, or guarded with the price within
    budget) who has voiced every objection is reminded they may now say yes; any other customer who has stayed long
    enough is reminded of their patience."""
    rounds = sum(t.role == "user" for t in history)
    pending = open_objections(stance.objections, history)
    persuadable = stance.leaning == "open" or (stance.leaning == "guarded" and stance.budget_fits)
    notes = []
    if pending and rounds >= 1:
        notes.append(f'{name} still has this doubt: "{pending[0]}"')
    if persuadable and not pending and rounds >= 2:
        notes.append(f"{name} has raised every doubt; if the answers were fair, {name} is ready to say yes to the next step")
    elif not persuadable and rounds >= (3 if stance.busy else 5):
        notes.append(f"{name} is running out of patience")
    return f"({'; '.join(notes)}.)\n" if notes else ""


def agent_note(history: list[Turn], agent_name: str, user_name: str, step: str) -> str:
    """A private reminder just before the agent's line, in the prompt only. The 1.5B agent recites product facts
    turn after turn and rarely asks for anything, so persuadable customers run out of rounds undecided; told only to
    ask, it asks over the customer's doubts, which the customer then repeats. From the second customer round on:
    a question or doubt in the customer's last line is answered first; otherwise the agent asks for the next step."""
    if sum(t.role == "user" for t in history) < 2:
        return ""
    last = history[-1].text if history[-1].role == "user" else ""
    agent_before = next((t.text for t in reversed(history) if t.role == "agent"), "")
    if raises_concern(last, agent_before):
        return f"({agent_name} answers that with the facts above, in a sentence or two, and does not ask for anything yet.)\n"
    return f'({agent_name} asks {user_name} for the next step, in words like: "{step}")\n'


# after a sample that only said again what the agent had said (most often the step, quoted by the reminder above, word
# for word turn after turn), the reminder quotes nothing
AGAIN_NOTE = "({agent} has said that before; now {agent} answers {user}'s last words with something new, in other words.)\n"


def narration(*names: str) -> re.Pattern:
    """A speaker telling the call in the third person ("Mei says that she has decided to purchase the policy. Mei
    accepts the offer and Li Wei does not proceed."): the transcript's narrator, not anyone on the phone."""
    who = "|".join(re.escape(n) for n in names if n)
    return re.compile(rf"\b(?:{who}) (?:says|said|answers|answered|replies|replied|accepts|accepted|agrees|agreed|decides|"
                      r"decided|has decided|does not|doesn't|nods|smiles|laughs|sighs|hangs up|hung up|ends the call|ended the call|"
                      r"declines|declined)\b"
                      # "Mark ended the call with , indicating he declined ...", "This is Mark's final message"
                      rf"|, indicating (?:he|she|they|that)\b|\b(?:{who})'s (?:final |last )?(?:message|reply|line|turn|response)\b")


def transcript_lines(history: list[Turn], agent_name: str, user_name: str) -> str:
    return "".join(f"{agent_name if t.role == 'agent' else user_name}: {t.text}\n" for t in history)


class _Participant:
    role: Literal["agent", "user"]
    max_retries = 2

    def __init__(self, scenario: Scenario, backend: LLMBackend, mode: PromptMode, params: GenParams, seed: int):
        if mode == "transcript" and not backend.supports_raw:
            mode = "chat"  # chat-only APIs cannot continue a raw transcript
        self.scenario = scenario
        self.backend = backend
        self.mode = mode
        self.params = params
        self.seed = seed

    # subclasses supply the names, the prompt and the impersonation phrases
    own_name: str
    other_name: str

    def _prompt(self, history: list[Turn], again: bool = False):
        """The prompt for the next line; ``again`` after a sample that only repeated the call."""
        raise NotImplementedError

    def impersonation(self) -> list[str | re.Pattern]:
        return []

    def directions(self, history: list[Turn]) -> list[str | re.Pattern]:
        """Private notes in the prompt that must never be spoken."""
        return []

    async def next_turn(self, history: list[Turn]) -> Reply:
        prompt = self._prompt(history)
        other_last = next((t.text for t in reversed(history) if t.role != self.role), None)
        said_before = self._said_before(history)
        reply = Reply(text="")
        best: Cleaned | None = None
        best_repeats = 0
        for attempt in range(self.max_retries + 1):
            if reply.notes and reply.notes[-1] == "only repeats":
                prompt = self._prompt(history, again=True)
            stop = [f"\n{self.other_name}:", f"\n{self.own_name}:"]
            if self.mode == "transcript":
                # "Transcript:" opens the call in the header; a sample that writes it has left the call ("No. . Transcript:")
                stop = ["\n", f"{self.other_name}:", f"{self.own_name}:", "Transcript:"]  # as serve's stop_strings
            # a retry samples a little hotter: a model stuck in a loop needs more than a new seed to leave it
            params = self.params.model_copy(update={
                "seed": derive_seed(self.seed, self.role, len(history), attempt), "stop": stop,
                "temperature": self.params.temperature + RETRY_HEAT * attempt,
                # after a sample that only repeated the call, the runtime's own repetition penalty joins in
                "dry_multiplier": REPEAT_DRY if reply.repeat_retries else 0.0,
            })
            c = await self.backend.complete(prompt, params)
            reply.calls += 1
            text = c.text
            # the repetition penalty can make the end of the line likelier than the words that would repeat, so its
            # samples may stop mid-phrase ("Yes, you can still use your current"): cut back to a finished sentence
            cut_short = bool(params.dry_multiplier) and not ends_sentence(text)
            if c.finish_reason == "length" or cut_short:
                text = trim_to_sentence(text, min_chars=1 if cut_short else 20)
            reply.prompt_tokens += c.prompt_tokens
            reply.completion_tokens += c.completion_tokens
            res = clean_reply(
                text,
                own_name=self.own_name,
                other_name=self.other_name,
                other_last=other_last,
                impersonation=self.impersonation(),
                instructions=self.directions(history),
                other_said=[x for t in history if t.role != self.role for x in sentences(t.text)],
            )
            if res.retry is None and said_before is not None:
                kept, dropped = drop_repeats(res.text, said_before, [t.text for t in history if t.role == self.role])
                # what is left once the repeats are gone may be only a direction ("(Li Wei repeats the same question a
                # second time)"): no words either
                if dropped and not has_words(extract_marker(kept)[0]):
                    res = Cleaned(res.text, res.cleaned, "only repeats")
                else:
                    res, best_repeats = Cleaned(kept, res.cleaned), dropped
            if res.retry is None and cut_short and not ends_sentence(res.text):
                res = Cleaned(res.text, res.cleaned, CUT_RETRY)
            if res.retry is None and (why := self._out_of_stance(extract_marker(res.text)[0], history)):
                res = Cleaned(res.text, res.cleaned, why)
            if res.retry is None:
                best = res
                break
            reply.notes.append(res.retry)
            if res.retry in (STANCE_RETRY, BUDGET_RETRY):
                reply.stance_retries += 1
            elif res.retry == "empty":
                reply.empty_retries += 1
            elif res.retry == "marker only":
                reply.marker_only_retries += 1
            elif res.retry in ("only repeats", CUT_RETRY, LOOPED):
                reply.repeat_retries += 1
            else:
                reply.slips_retried += 1
            if best is None or (best.retry in ("empty", "marker only") and res.retry not in ("empty", "marker only")):
                best = res
        assert best is not None
        if best.cleaned:
            reply.slips_cleaned += 1
        reply.repeats_removed = best_repeats
        if best.retry in ("only repeats", LOOPED):  # every sample only repeated itself: kept as written, and counted
            reply.repeats_kept = len(sentences(best.text))
        elif best.retry not in (None, "empty", "marker only", CUT_RETRY):
            reply.slips_kept = 1
        reply.text, reply.marker = extract_marker(best.text)
        if self.role == "user" and best.retry == "empty":
            reply.text = ""  # only stage directions ("[Hui is ready to say yes.]"), never words anyone said aloud
        if self.role == "agent":
            reply.marker = None  # only the customer ends a call with a decision
        # a customer reply that stayed a bare marker keeps no words: the orchestrator ends the call on it
        return reply

    def _said_before(self, history: list[Turn]) -> list[str] | None:
        """Sentences this speaker already said, when repeats are to be removed (the agent); None otherwise."""
        return None

    def _out_of_stance(self, said: str, history: list[Turn]) -> str | None:
        """Why a reply contradicts where the speaker stands (the customer's stance), or None."""
        return None


class DialogAgent(_Participant):
    """The salesperson. ``prompt_k`` is the current instruction or evolved SOP (``{prompt_k}``)."""

    role = "agent"

    def __init__(
        self,
        scenario: Scenario,
        backend: LLMBackend,
        mode: PromptMode = "transcript",
        prompt_k: str | None = None,
        user_name: str = "Customer",
        params: GenParams | None = None,
        seed: int = 0,
        note: bool = True,
    ):
        super().__init__(scenario, backend, mode, params or GenParams(temperature=0.7, max_tokens=90), seed)
        self.note = note
        self._note_for: tuple[tuple[int, str] | None, str] = (None, "")
        self.prompt_k = prompt_k or scenario.agent.meta_instruction
        self.own_name = scenario.agent.name
        self.other_name = user_name
        self.system_prompt = render_agent_prompt(scenario, self.prompt_k)

    def _prompt(self, history: list[Turn], again: bool = False):
        if self.mode == "transcript":
            header = agent_transcript_header(self.scenario, self.other_name, self.prompt_k)
            note = self._again() if again and self.note else self._note(history)
            return header + transcript_lines(history, self.own_name, self.other_name) + note + f"{self.own_name}:"
        msgs = [Message(role="system", content=self.system_prompt), Message(role="user", content=prompts.CALL_CONNECTED)]
        for t in history:
            msgs.append(Message(role="assistant" if t.role == "agent" else "user", content=t.text))
        return msgs

    async def next_turn(self, history: list[Turn]) -> Reply:
        if not history and self.scenario.agent.opening:
            return Reply(text=self.scenario.agent.opening)
        return await super().next_turn(history)

    def _said_before(self, history: list[Turn]) -> list[str]:
        return [s for t in history if t.role == "agent" for s in sentences(t.text)]

    def impersonation(self) -> list[str | re.Pattern]:
        # "Hello Chen, I'm Anxin Insurance." names the company as the speaker (7 of 12 insurance openings of seed 3333)
        company = re.escape(self.scenario.agent.company)
        as_company = re.compile(rf"\b(?:i'?m|i am) (?:the )?{company}\b(?!'s| (?:sales|rep|agent|team|advisor|staff))", re.I)
        return [CUSTOMER_RX, ASSISTANT_RX, narration(self.own_name, self.other_name), as_company]

    def _note(self, history: list[Turn]) -> str:
        if not self.note:
            return ""
        # asked for by the prompt and again by the check of the reply: read the customer's turn once
        key = (len(history), history[-1].text if history else "")
        if self._note_for[0] != key:
            step = self.scenario.agent.next_step or self.scenario.acceptance_criteria
            self._note_for = (key, agent_note(history, self.own_name, self.other_name, step))
        return self._note_for[1]

    def _again(self) -> str:
        return AGAIN_NOTE.format(agent=self.own_name, user=self.other_name)

    def directions(self, history: list[Turn]) -> list[str | re.Pattern]:
        # how to lead the call (not the task or the facts, which are meant to be said; nor the next step, which is
        # meant to be asked for)
        frame = self._note(history).split(": ", 1)[0]  # the step's own words are meant to be said
        return [agent_guidance(self.scenario, self.other_name), FACTS_FRAME, *([frame] if frame else []),
                *([self._again()] if self.note else [])]


class UserAgent(_Participant):
    """The persona-driven customer."""

    role = "user"

    def __init__(
        self,
        persona: Persona,
        scenario: Scenario,
        backend: LLMBackend,
        mode: PromptMode = "transcript",
        params: GenParams | None = None,
        seed: int = 0,
        stance_in_chat: bool = False,
    ):
        super().__init__(scenario, backend, mode, params or GenParams(temperature=0.9, max_tokens=80), seed)
        self.persona = persona
        self.own_name = persona.name
        self.other_name = scenario.agent.name
        # the stance always frames a transcript; the chat prompt stays the paper's unless asked for
        self.stance = derive_stance(persona, scenario)
        self.stance_text = render_stance(self.stance, scenario, persona.name) if self.stance else None
        self.system_prompt = render_user_prompt(persona, scenario, self.stance_text if stance_in_chat else None)

    def impersonation(self) -> list[str | re.Pattern]:
        a = self.scenario.agent
        return [narration(self.own_name, self.other_name), f"I'm {a.name}", f"I am {a.name}", f"this is {a.name}", f"calling from {a.company}", f"here at {a.company}",
                *SALES_LINES, SALES_RX, ASSISTANT_RX,
                re.compile(rf"\b(?:this is|my name is|i'?m|i am) \w+(?: \w+)?,? (?:from|with) (?:the )?{re.escape(a.company)}", re.I)]

    def _said_before(self, history: list[Turn]) -> list[str]:
        return [s for t in history if t.role == "user" for s in sentences(t.text)]

    def _out_of_stance(self, said: str, history: list[Turn]) -> str | None:
        # small models say yes in the first rounds whatever the stance ("The starter plan is quite affordable for me.
        # I'm ready to proceed." from a customer with no budget): a customer commits only once their doubts are said
        if not self.stance:
            return None
        agent_before = next((t.text for t in reversed(history) if t.role == "agent"), "")
        cues = read_cues(said, agent_before)
        if not (cues.commit or cues.agree) or cues.blocks_accept():
            return None
        # the header says the price must fit; "I want to buy the Aurora PHEV" on 84,048 against 189,900 does not
        if self.stance.priced_out:
            return BUDGET_RETRY
        if open_objections(self.stance.objections, [*history, Turn(role="user", text=said)]):
            return STANCE_RETRY
        return None

    def directions(self, history: list[Turn]) -> list[str | re.Pattern]:
        # how the customer decides and the reminders before its line; the objections are meant to be said, so they
        # are not among them
        if not self.stance:
            return []
        note = re.sub(r'"[^"]*"', "", stance_note(self.stance, history, self.own_name))
        return [LEANING_TEXT[self.stance.leaning].format(name=self.own_name), note, NOTE_ECHO, MONEY_ECHO]

    def _prompt(self, history: list[Turn], again: bool = False):
        if self.mode == "transcript":
            header = user_transcript_header(self.persona, self.scenario, self.stance_text)
            note = stance_note(self.stance, history, self.own_name) if self.stance else ""
            return header + transcript_lines(history, self.other_name, self.own_name) + note + f"{self.own_name}:"
        msgs = [Message(role="system", content=self.system_prompt)]
        for t in history:
            msgs.append(Message(role="user" if t.role == "agent" else "assistant", content=t.text))
        return msgs
