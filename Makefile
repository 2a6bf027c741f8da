VENV ?= .venv
STAMP := $(VENV)/.mads-setup-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run test bench lint

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/no-deps.txt scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh

# The main job: real persuasion dialogues on the embedded default model (Qwen2.5-Coder-1.5B, CPU).
run: setup
	$(VENV)/bin/mads simulate --scenario insurance --group sign --personas 3 --per-persona 1 \
		--max-rounds 6 --seed 7 --out runs/demo
	$(VENV)/bin/mads show runs/demo --limit 2

test: setup
	$(VENV)/bin/python -m pytest -q tests

bench: setup
	$(VENV)/bin/python bench/selfplay.py

lint: setup
	$(VENV)/bin/ruff check .
