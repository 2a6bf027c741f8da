VENV ?= .venv
STAMP := $(VENV)/.mads-setup-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run test bench lint ear

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

# The ear shipped for the default LLM (docs/speech.md, "The ear on the embedded runtime"): every line of the calls in
# tests/data voiced by flite; 1,200 single sentences of those calls (every question, a third of the customer's other
# sentences) by Kokoro, on voices the spoken-question evaluation does not use; the alignment stage; a float16 copy in
# the package. About 90 minutes on the 2 cores as measured stage by stage (docs/speech.md), Kokoro the longest.
EAR ?= build/ear
ear: setup
	$(VENV)/bin/python train/ear_runs.py --out $(EAR)
	$(VENV)/bin/mads synth $(EAR)/all --out $(EAR)/flite --engine flite --asr none --no-speaker-check --no-hf --workers 2
	$(VENV)/bin/mads synth $(EAR)/sentences --out $(EAR)/voices --roles user --asr none --no-speaker-check --no-hf \
		--hold-out-voices f03,f08,f16,m01
	$(VENV)/bin/mads train speech --stage 0 --data $(EAR)/flite,$(EAR)/voices --align-roles all --out $(EAR)/align \
		--llm qwen1.5b --whisper base --stack 4 --steps 1500 --batch-size 16 --lr 2e-3 --warmup 40 --telephony-p 0.5 \
		--max-context-turns 1 --eval-every 250 --eval-examples 64
	$(VENV)/bin/mads speech export --ckpt $(EAR)/align --out mads_audio/checkpoints/qwen1.5b-ctc
