"""What a reader looks at: the transition heatmaps, the strategy bars and ``report.md`` of one analysed run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..attitude import STATE_GROUP
from ..strategies import NON_STRATEGY, STRATEGIES

# --- figures -----------------------------------------------------------------------------------


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # figures only go to files; no display is needed (or present on servers)
    import matplotlib.pyplot as plt

    return plt


def plot_transition_heatmap(t: np.ndarray, labels: Sequence[str], path: Path, title: str, ax=None,
                            group_size: int | None = 4) -> None:
    """Heatmap of a row-stochastic matrix; lines separate the coarse groups."""
    plt = pyplot()
    own = ax is None
    if own:
        size = 7.5 if len(labels) > 4 else 4.2
        fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(np.asarray(t), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(labels)))
    ax.set_yticks(range(len(labels)))
    fs = 7 if len(labels) > 4 else 9
    ax.set_xticklabels(labels, rotation=90, fontsize=fs)
    ax.set_yticklabels(labels, fontsize=fs)
    ax.set_xlabel("to (round t)")
    ax.set_ylabel("from (round t-1)")
    ax.set_title(title, fontsize=10)
    if group_size and len(labels) > group_size:
        for k in range(group_size, len(labels), group_size):
            ax.axhline(k - 0.5, color="white", lw=0.8)
            ax.axvline(k - 0.5, color="white", lw=0.8)
    if len(labels) <= 4:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{t[i][j]:.2f}", ha="center", va="center", color="w" if t[i][j] < 0.6 else "k", fontsize=8)
    if own:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="P(to | from)")
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)


def plot_strategy_bars(groups: dict[str, dict[str, int]], path: Path, title: str = "Strategy types per group") -> None:
    """Stacked bars (as the paper's Fig. 3): per group, the share of each strategy among dialogue-level uses."""
    plt = pyplot()
    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(names) + 3.5), 4.8))
    cmap = plt.get_cmap("tab10")
    bottoms = np.zeros(len(names))
    for k, s in enumerate(STRATEGIES):
        vals = []
        for g in names:
            tot = sum(groups[g].get(x, 0) for x in STRATEGIES)
            vals.append(groups[g].get(s, 0) / tot if tot else 0.0)
        ax.bar(names, vals, bottom=bottoms, color=cmap(k % 10), label=s, width=0.6)
        bottoms += np.array(vals)
    ax.set_ylabel("share of dialogue-level strategy uses")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


# --- report ------------------------------------------------------------------------------------


def fmt(x: Any, nd: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def fmt_ci(ci: Sequence[float | None] | None, nd: int = 4) -> str:
    if not ci or ci[0] is None:
        return ""
    return f" [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


def write_report(out_dir: Path, m: dict[str, Any], title: str) -> Path:
    sp = m["strategies_per_dialogue"]
    lines = [
        f"# {title}",
        "",
        f"Analysed {m['created']} with labelers: attitude `{m['labelers']['attitude']}`, strategy "
        f"`{m['labelers']['strategy']}`. Code revision `{m.get('code_revision')}`.",
        "",
        "| metric | value | 95% CI (bootstrap over dialogues) |",
        "| --- | --- | --- |",
        f"| dialogues (labelled / all) | {m['n_labelled']} / {m['n_dialogues']} | |",
        f"| rounds labelled, transitions | {m['n_rounds']}, {m['n_transitions']} | |",
        f"| H_avg (nats) | {fmt(m['h_avg'])} |{fmt_ci(m['h_avg_ci95'])} |",
        f"| H_norm = H_avg / ln 16 | {fmt(m['h_norm'])} | |",
        f"| H_norm (paper) = H_avg / 2.77 | {fmt(m['h_norm_paper'])} | |",
        f"| states with outgoing transitions | {m['rows_visited']} / 16 | |",
        f"| C_str (distinct strategies per dialogue), sd | {fmt(sp['mean'], 3)}, {fmt(sp['sd'], 3)} |{fmt_ci(sp['ci95'], 3)} |",
        f"| CV of strategy-type use | {fmt(m['strategy_cv'], 3)} |{fmt_ci(m['strategy_cv_ci95'], 3)} |",
        f"| non-strategy share of agent sentences | {fmt(m['non_strategy_share'], 3)} | |",
        f"| acceptance rate | {fmt(m['acceptance_rate'], 3)} |{fmt_ci(m['acceptance_rate_ci95'], 3)} |",
        f"| coarse (4-state) H_avg | {fmt(m['coarse']['h_avg'])} | |",
        "",
        f"Outcomes: {m['outcomes']}. Round labels by source: {m['round_label_sources']}.",
        "",
        "## Attitude transitions (16 states, Appendix A.1 order)",
        "",
        "![transition heatmap](transition_heatmap.png)",
        "",
        "![coarse transitions](transition_coarse.png)",
        "",
        "| state | group | rounds | H(T_i) |",
        "| --- | --- | --- | --- |",
    ]
    for s, h in zip(m["states"], m["row_entropy"]):
        lines.append(f"| {s} | {STATE_GROUP[s]} | {m['state_frequency'][s]} | {h:.3f} |")
    lines += ["", "## Persuasion strategies", "", "![strategies](strategies.png)", "",
              "| strategy | dialogues using it | sentences |", "| --- | --- | --- |"]
    for s in STRATEGIES:
        lines.append(f"| {s} | {m['strategy_dialogue_counts'][s]} | {m['strategy_sentence_counts'][s]} |")
    lines.append(f"| {NON_STRATEGY} | | {m['strategy_sentence_counts'][NON_STRATEGY]} |")
    if m.get("judge"):
        j = m["judge"]
        lines += ["", "## Judge (Table 7)", "", "| metric | mean |", "| --- | --- |"]
        for k in ("authenticity", "relevance", "consistency", "efficiency", "human_likeness", "mean", "task_success_rate"):
            if k in j:
                lines.append(f"| {k} | {fmt(j[k], 3)} |")
        if m.get("filter"):
            lines.append("")
            lines.append(f"Filter: {m['filter']}")
    if m["n_unlabelled"]:
        lines += ["", f"## Dialogues without attitude labels ({m['n_unlabelled']})", "",
                  ", ".join(m["unlabelled_ids"][:50]) + (" ..." if m["n_unlabelled"] > 50 else "")]
    lines += ["", "## Definitions", ""] + [f"- `{k}`: {v}" for k, v in m["definitions"].items()]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
