# Every target bootstraps .venv itself, so a fresh clone needs only Python 3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint bench nixl clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(STAMP)

# The main job on the packaged registry, offline: list, match, configure, plan, sweep.
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/modelreg models
	HF_HUB_OFFLINE=1 $(BIN)/modelreg match meta-llama/Llama-3.1-8B-Instruct
	HF_HUB_OFFLINE=1 $(BIN)/modelreg configure ibm-granite/granite-3.3-8b-instruct --tp 4 --backend vllm \
		--max_model_len 32768 --max_num_seqs 32
	HF_HUB_OFFLINE=1 $(BIN)/modelreg plan --model deepseek-ai/DeepSeek-R1 --model_config examples/block-tp1-pp16.yaml \
		--backend GDS --source gpu
	HF_HUB_OFFLINE=1 $(BIN)/modelreg sweep examples/experiments/llama70b_dense.yaml --top 3

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The optional NIXL extra: torch first (its CPU build is local), then nixl.
nixl: $(STAMP)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[nixl]'

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
