"""The two participants of a self-play call. Each exposes one method: ``next_turn(history)``.

Two framings of the same prompts (see ``prompts.py``):
- ``chat``: the paper's system prompts as chat messages (capable backends);
- ``transcript``: a prose header plus ``Name: utterance`` lines, completed up to the
  next newline (small embedded models, which abandon their role in chat mode).

Small models slip out of role: they echo speaker prefixes, answer as the
salesperson or repeat the last line. ``clean_reply`` repairs what can be cut
away and flags what needs a fresh sample; the agents retry such samples a
bounded number of times and count every slip.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

from . import prompts
from .common.records import Turn
from .llm import GenParams, LLMBackend, Message
from .personas import Persona, agent_transcript_header, render_agent_prompt, render_user_prompt, user_transcript_header
from .scenario import Scenario

PromptMode = Literal["chat", "transcript"]

MARKER_RE = re.compile(r"\[\s*(ACCEPT(?:ED)?|WITHDRAW(?:N|S)?)\s*\]", re.IGNORECASE)
GENERIC_PREFIXES = ("assistant", "user", "agent", "customer", "salesperson", "sales agent", "consultant", "caller", "client")


MARKER_ONLY_TEXT = {"accept": "Okay, let's do it.", "withdraw": "No, thanks. Goodbye."}


def trim_to_sentence(text: str, min_chars: int = 20) -> str:
    """Cut a reply that hit the token limit back to its last finished sentence."""
    m = list(re.finditer(r"[.!?](?=\s|$)", text))
    if m and m[-1].end() >= min_chars:
        return text[: m[-1].end()]
    return text


@dataclass
class Reply:
    text: str
    marker: Literal["accept", "withdraw"] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    slips_cleaned: int = 0
    slips_retried: int = 0
    empty_retries: int = 0
    notes: list[str] = field(default_factory=list)


def derive_seed(*parts: object) -> int:
    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def extract_marker(text: str) -> tuple[str, Literal["accept", "withdraw"] | None]:
    """Strip end markers; the last one in the text decides."""
    found = MARKER_RE.findall(text)
    marker = None
    if found:
        marker = "accept" if found[-1].upper().startswith("ACCEPT") else "withdraw"
    cleaned = MARKER_RE.sub("", text)
    return re.sub(r"\s{2,}", " ", cleaned).strip(), marker


def _norm_words(s: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", s.lower())


def _overlap(a: str, b: str) -> float:
    wa, wb = set(_norm_words(a)), set(_norm_words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


@dataclass
class Cleaned:
    text: str
    cleaned: bool = False  # something was cut away
    retry: str | None = None  # reason the sample must be redrawn


def clean_reply(
    raw: str,
    *,
    own_name: str,
    other_name: str,
    other_last: str | None,
    impersonation: list[str] | None = None,
) -> Cleaned:
    """Repair or reject one generated utterance of ``own_name``."""
    text = raw.replace("\r", "").strip()
    cleaned = False
    names = [own_name, other_name, *GENERIC_PREFIXES]
    prefix_re = re.compile(r"^\s*\**(" + "|".join(re.escape(n) for n in names) + r")\**\s*:\s*", re.IGNORECASE)
    # a leading prefix: our own name is harmless, the other speaker's means we speak for them
    m = prefix_re.match(text)
    while m:
        who = m.group(1).lower()
        if who == other_name.lower():
            return Cleaned(text[m.end():], True, "spoke as the other speaker")
        text = text[m.end():]
        cleaned = True
        m = prefix_re.match(text)
    # a speaker prefix later on starts a line of someone else: cut there
    mid = re.compile(r"(?:^|\s|\n)\**(" + "|".join(re.escape(n) for n in names) + r")\**\s*:", re.IGNORECASE)
    m = mid.search(text)
    if m and m.start() > 0:
        text = text[: m.start()]
        cleaned = True
    if "\n" in text:
        text = text.split("\n", 1)[0]
        cleaned = True
    text = text.strip().strip('"').strip()
    core, marker = extract_marker(text)
    if not core:
        return Cleaned(text, cleaned, "empty")
    if other_last and len(_norm_words(core)) >= 4 and _overlap(core, other_last) >= 0.8:
        return Cleaned(text, cleaned, "echoed the other speaker")
    for phrase in impersonation or []:
        if phrase.lower() in core.lower():
            return Cleaned(text, cleaned, f"spoke as the salesperson ('{phrase}')")
    return Cleaned(text, cleaned)


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

    def _prompt(self, history: list[Turn]):
        raise NotImplementedError

    def _impersonation(self) -> list[str]:
        return []

    async def next_turn(self, history: list[Turn]) -> Reply:
        prompt = self._prompt(history)
        other_last = next((t.text for t in reversed(history) if t.role != self.role), None)
        reply = Reply(text="")
        best: Cleaned | None = None
        for attempt in range(self.max_retries + 1):
            stop = [f"\n{self.other_name}:", f"\n{self.own_name}:"]
            if self.mode == "transcript":
                stop = ["\n", f"{self.other_name}:", f"{self.own_name}:"]
            params = self.params.model_copy(
                update={"seed": derive_seed(self.seed, self.role, len(history), attempt), "stop": stop}
            )
            c = await self.backend.complete(prompt, params)
            reply.calls += 1
            text = c.text
            if c.finish_reason == "length":
                text = trim_to_sentence(text)
            reply.prompt_tokens += c.prompt_tokens
            reply.completion_tokens += c.completion_tokens
            res = clean_reply(
                text,
                own_name=self.own_name,
                other_name=self.other_name,
                other_last=other_last,
                impersonation=self._impersonation(),
            )
            if res.retry is None:
                best = res
                break
            reply.notes.append(res.retry)
            if res.retry == "empty":
                reply.empty_retries += 1
            else:
                reply.slips_retried += 1
            if best is None or (best.retry == "empty" and res.retry != "empty"):
                best = res
        assert best is not None
        if best.cleaned:
            reply.slips_cleaned += 1
        reply.text, reply.marker = extract_marker(best.text)
        if self.role == "agent":
            reply.marker = None  # only the customer ends a call with a decision
        elif not reply.text and reply.marker:
            # small models often emit the bare marker; keep the decision, give it words
            reply.text = MARKER_ONLY_TEXT[reply.marker]
            reply.notes.append("marker only")
        return reply


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
    ):
        super().__init__(scenario, backend, mode, params or GenParams(temperature=0.7, max_tokens=90), seed)
        self.prompt_k = prompt_k or scenario.agent.meta_instruction
        self.own_name = scenario.agent.name
        self.other_name = user_name
        self.system_prompt = render_agent_prompt(scenario, self.prompt_k)

    def _prompt(self, history: list[Turn]):
        if self.mode == "transcript":
            header = agent_transcript_header(self.scenario, self.other_name, self.prompt_k)
            return header + transcript_lines(history, self.own_name, self.other_name) + f"{self.own_name}:"
        msgs = [Message(role="system", content=self.system_prompt), Message(role="user", content=prompts.CALL_CONNECTED)]
        for t in history:
            msgs.append(Message(role="assistant" if t.role == "agent" else "user", content=t.text))
        return msgs

    async def next_turn(self, history: list[Turn]) -> Reply:
        if not history and self.scenario.agent.opening:
            return Reply(text=self.scenario.agent.opening)
        return await super().next_turn(history)


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
    ):
        super().__init__(scenario, backend, mode, params or GenParams(temperature=0.9, max_tokens=80), seed)
        self.persona = persona
        self.own_name = persona.name
        self.other_name = scenario.agent.name
        self.system_prompt = render_user_prompt(persona, scenario)

    def _impersonation(self) -> list[str]:
        a = self.scenario.agent
        return [f"I'm {a.name}", f"I am {a.name}", f"this is {a.name}", f"calling from {a.company}", f"here at {a.company}"]

    def _prompt(self, history: list[Turn]):
        if self.mode == "transcript":
            header = user_transcript_header(self.persona, self.scenario)
            return header + transcript_lines(history, self.other_name, self.own_name) + f"{self.own_name}:"
        msgs = [Message(role="system", content=self.system_prompt)]
        for t in history:
            msgs.append(Message(role="user" if t.role == "agent" else "assistant", content=t.text))
        return msgs
