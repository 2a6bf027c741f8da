"""SFT: label masking, then export -> train -> resume -> reload -> self-play with the fine-tuned checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mads_text"))
from test_export import rec, varied, write_run

from mads_text.export import ExportConfig, export


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from mads_text.common import assets

    g = assets.smollm2_gguf()
    return AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name, local_files_only=True)


MSGS = [
    {"role": "system", "content": "You sell insurance."},
    {"role": "user", "content": "(call connected)"},
    {"role": "assistant", "content": "Hello, this is Li Wei."},
    {"role": "user", "content": "Who?"},
    {"role": "assistant", "content": "Li Wei from Anxin Insurance."},
]


def test_only_assistant_replies_are_targets(tok):
    from train.sft import encode

    e = encode(MSGS, tok, 4096)
    assert len(e["input_ids"]) == len(e["labels"])
    targets = [i for i, y in zip(e["input_ids"], e["labels"]) if y != -100]
    text = tok.decode(targets)
    assert text == "Hello, this is Li Wei.<|im_end|>\nLi Wei from Anxin Insurance.<|im_end|>\n"
    # the whole sequence is the template's own rendering
    assert tok.decode(e["input_ids"]) == tok.apply_chat_template(MSGS, tokenize=False)
    # cut inside the first reply: only what fits is a target; cut before it: no example
    n_ctx = e["labels"].index(next(y for y in e["labels"] if y != -100))
    short = encode(MSGS, tok, n_ctx + 2)
    assert sum(y != -100 for y in short["labels"]) == 2
    assert encode(MSGS, tok, n_ctx) is None


@pytest.mark.slow
@pytest.mark.timeout(2400)  # four model loads and three optimizer steps: minutes on a busy 2-core machine
def test_train_resume_reload_and_simulate(tmp_path):
    from typer.testing import CliRunner

    from train.sft import SFTConfig, train
    from train.sft_cli import register_sft

    run = write_run(tmp_path / "run", [rec(i, varied(i)) for i in range(8)])
    export([run], tmp_path / "ds", ExportConfig(test_fraction=0.25, seed=1))
    ckpt = tmp_path / "ckpt"
    cfg = SFTConfig(data=str(tmp_path / "ds"), out=str(ckpt), max_steps=2, grad_accum=1, max_len=380, lr=1e-3,
                    eval_every=0, save_every=1, check_generation=False)
    rep = train(cfg, progress=False)
    assert rep["steps"] == 2 and rep["final_eval_loss"] < rep["base_eval_loss"]
    assert (ckpt / "checkpoints" / "step-000002" / "trainable.pt").exists()
    assert (ckpt / "config.json").exists() and (ckpt / "adapter" / "adapter_config.json").exists()

    # rerunning with more steps resumes from the last checkpoint (through the CLI)
    import typer

    app = typer.Typer()
    register_sft(app)
    app.command("noop")(lambda: None)  # a second command keeps "sft" as a subcommand name
    res = CliRunner().invoke(app, ["sft", "--data", str(tmp_path / "ds"), "--out", str(ckpt), "--max-steps", "3",
                                   "--grad-accum", "1", "--max-len", "380", "--lr", "1e-3", "--eval-every", "0",
                                   "--save-every", "1"])
    assert res.exit_code == 0, res.output
    rep2 = json.loads((ckpt / "sft_report.json").read_text())
    assert rep2["steps"] == 3 and rep2["steps_this_run"] == 1 and rep2["base_eval_loss"] == rep["base_eval_loss"]
    assert "held-out loss base" in res.output and "generation check:" in res.output
    assert rep2["generation_check"]["reply"].strip()
    log = [json.loads(x) for x in (ckpt / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3] and (ckpt / "loss.png").stat().st_size > 1000
    assert [p.name for p in sorted((ckpt / "checkpoints").iterdir())] == ["step-000002", "step-000003"]

    # another method in the same folder is refused
    with pytest.raises(Exception, match="other settings"):
        train(cfg.model_copy(update={"method": "full", "max_steps": 4}), progress=False)

    # the saved folder is a plain transformers checkpoint that self-play runs on
    out = tmp_path / "sim"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "mads_text.cli", "simulate", "--backend", "transformers", "--model",
                          str(ckpt), "--prompt-mode", "chat", "--personas", "1", "--per-persona", "1", "--max-rounds",
                          "1", "--out", str(out)], capture_output=True, text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    d = json.loads((out / "dialogues.jsonl").read_text().splitlines()[0])
    assert d["turns"][0]["role"] == "agent" and d["turns"][0]["text"]
    assert json.loads((out / "manifest.json").read_text())["model"] == str(ckpt)
