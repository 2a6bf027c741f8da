"""bench/serve.py reports why the server it starts did not come up."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_an_unknown_model_prints_the_reason_the_server_did_not_start():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "serve.py"), "--model", "no-such-model.gguf", "--levels", "1"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode != 0
    assert "server did not start (exit code 2)" in r.stderr
    assert "neither a preset" in r.stderr and "no-such-model.gguf" in r.stderr
