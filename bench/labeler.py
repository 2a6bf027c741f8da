"""How fast the embedded labelers are: label 1,000 sentences (strategy and attitude) and print the figures.

    python bench/labeler.py [--n 1000] [--p4g /work/shared/data/p4g] [--threads N]

Sentences come from the P4G full dialogues when the folder exists (persuader sentences for the
strategy head, persuadee sentences for the attitude head), otherwise from a built-in list repeated.
Each sentence is a ``mads label`` item that carries the previous turn as context, so the figures
include whatever context the heads read. The strategy head is also timed the way ``mads analyze``
calls it: ``label_dialogues`` on whole dialogue records holding at least ``--n`` persuader sentences,
with a fresh encoder memo (nothing carried over from the item run).
Model loading is timed apart from labelling; the load average is printed because other processes
on a shared machine slow every figure down.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FALLBACK = [
    ("agent", "Have you ever heard of Save the Children?"),
    ("user", "No, I haven't. What do they do?"),
    ("agent", "They help children in developing countries get food, health care and education."),
    ("user", "That sounds nice, but I'm not sure I can afford it."),
    ("agent", "Even a small amount like ten cents makes a difference."),
    ("user", "Okay, I'll donate fifty cents."),
]


# A small check set for the fine-state step, written for this bench (not from any dataset, and disjoint from
# the prototype examples in mads_text/attitude.py): three utterances per state. It measures how well the
# prototype similarity separates the states of a group on clear-cut utterances, an optimistic figure.
FINE_CHECK = {
    "Refusal": ["No. I'm not giving any money today.", "I'll have to say no to the insurance.",
                "Not interested, please take me off your list."],
    "Resistance": ["Why would I pay for something I might never use?", "Stop pushing, I said I'm fine with what I have.",
                   "I work hard for my money, I'm not handing it over that easily."],
    "Disinterest": ["Eh, doesn't really matter to me.", "Sure, whatever you say.",
                    "I'd rather talk about the weather honestly."],
    "Doubt": ["How can I be sure you're really from that company?", "I've read that a lot of these charities are scams.",
              "Sounds fishy to me, what's the catch?"],
    "Indifference": ["I'm doing alright, just got home from work.", "Yeah, I live in Ohio.", "Okay, I see."],
    "Cautious": ["Before I agree to anything I want to read the contract.", "Will you keep my personal details safe?",
                 "I need to know there are no hidden fees."],
    "Hesitant": ["I don't know, maybe some other time.", "Let me sleep on it first.", "I'm torn, I can't decide right now."],
    "Weighing Options": ["My company already gives me some health coverage, so I'm comparing.",
                         "Would it be better to give to a local food bank instead?",
                         "If I donate a dollar I keep a dollar, that seems like a fair split."],
    "Interested": ["Oh really? I'd like to know more about them.", "What kind of projects do they run?",
                   "Go on, this is interesting."],
    "Attention": ["That's heartbreaking to hear about those kids.", "Right, that's a good point.",
                  "I had no idea the numbers were that high."],
    "Consideration": ["I suppose I could spare a little from this payment.", "This could actually help if I ever got sick.",
                      "I'm starting to think it might be worth it."],
    "Seeking Value": ["What do I get if I pay annually?", "How much of each dollar actually reaches the kids?",
                      "Does the policy cover cancer treatment?"],
    "Active": ["Let's do it now, where do I sign?", "Put me down for two dollars and tell me what to do next.",
               "Can you send me the form today?"],
    "Cooperative": ["Sure, my date of birth is March 3rd.", "Alright, I'll follow your instructions.",
                    "Yes, that email address is right."],
    "Satisfied": ["I'm really glad I decided to help.", "Thanks, this was a pleasant call.",
                  "Great, that's all sorted, I'm happy."],
    "Acceptance": ["Okay, you've convinced me, I'll donate.", "Fine, I'll take the policy.",
                   "Yes, count me in for the full amount."],
}


def fine_check(att) -> None:
    from mads_text.attitude import STATE_GROUP
    from mads_text.labelers.base import LabelItem

    rows = [(state, text) for state, texts in FINE_CHECK.items() for text in texts]
    items = [LabelItem(id=str(i), text=t, context=["So, would you like to go ahead?"], turn_index=5)
             for i, (_, t) in enumerate(rows)]
    out = att.label(items)
    emb = att.encoder.encode([t for _, t in rows])
    given_group = sum(att.fine_state(STATE_GROUP[s], e)[0] == s for (s, _), e in zip(rows, emb))
    group_ok = sum(o.label == STATE_GROUP[s] for (s, _), o in zip(rows, out))
    both = sum(o.state == s for (s, _), o in zip(rows, out))
    n = len(rows)
    print(f"fine-state check set ({n} utterances, 3 per state): fine state given the true group {given_group}/{n} "
          f"({given_group / n:.0%}, chance 25%); group from the head {group_ok}/{n} ({group_ok / n:.0%}); "
          f"exact state end to end {both}/{n} ({both / n:.0%}, chance 6%)")


def sentences(p4g: Path, n: int) -> tuple[list, list, list]:
    """(agent items, user items, the dialogue records they came from; empty without the P4G folder)."""
    from mads_text.labelers.base import LabelItem

    agent, user, records = [], [], []
    if (p4g / "full_dialog.csv").exists():
        from mads_text.p4g import load_p4g, turn_sentences

        for r in load_p4g(p4g, "full"):
            if len(agent) < n:
                records.append(r)
            prev = ""
            for ti, t in enumerate(r.turns):
                for j, s in enumerate(turn_sentences(t)):
                    item = LabelItem(id=f"{r.id}-{ti}-{j}", text=s, context=[prev] if prev else [], turn_index=ti,
                                     sentence_index=j)
                    (agent if t.role == "agent" else user).append(item)
                prev = t.text
            if len(agent) >= n and len(user) >= n:
                break
    else:
        k = 0
        while len(agent) < n or len(user) < n:
            for role, s in FALLBACK:
                item = LabelItem(id=str(k), text=s, context=["Hello."], turn_index=k % 10)
                (agent if role == "agent" else user).append(item)
                k += 1
    return agent[:n], user[:n], records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--p4g", type=Path, default=Path("/work/shared/data/p4g"))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    agent, user, records = sentences(args.p4g, args.n)

    t0 = time.perf_counter()
    from mads_text.labelers import make_labeler

    strat = make_labeler("strategy", "embedded")
    att = make_labeler("attitude", "embedded")
    strat.encoder.encode(["warm up"])
    att.prototypes()
    load_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    s_out = strat.label(agent)
    s_dt = time.perf_counter() - t0
    t0 = time.perf_counter()
    a_out = att.label(user)
    a_dt = time.perf_counter() - t0
    d_n = d_dt = 0.0
    if records:
        from mads_text.labelers.embedded import EmbeddedStrategyLabeler
        from mads_text.labelers.encoder import MiniLMEncoder

        fresh = EmbeddedStrategyLabeler(encoder=MiniLMEncoder())  # the loaded model is reused, the memo is not
        t0 = time.perf_counter()
        d_out = fresh.label_dialogues(records)
        d_dt = time.perf_counter() - t0
        d_n = sum(len(d.sentences) for d in d_out)
    import torch

    print(f"load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}")
    print(f"load encoder + heads + state prototypes: {load_s:.1f} s")
    print(f"strategy: {len(s_out)} sentences in {s_dt:.2f} s = {len(s_out) / s_dt:.0f} sentences/s "
          f"(items with the previous turn as context)")
    if d_n:
        print(f"strategy, whole dialogues: {d_n:.0f} persuader sentences of {len(records)} dialogues in {d_dt:.2f} s = "
              f"{d_n / d_dt:.0f} sentences/s (label_dialogues, previous turns included)")
    print(f"attitude: {len(a_out)} sentences in {a_dt:.2f} s = {len(a_out) / a_dt:.0f} sentences/s "
          f"(context turn embedded too)")
    fine_check(att)


if __name__ == "__main__":
    main()
