# Two commands set everything up on a fresh machine with Python 3.10+:
#   make demo   creates .venv, installs the project with its data-science extra, runs the demo
#   make test   creates .venv if needed, installs the dev extra, runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_DIRS := sandbox_tool tests $(wildcard agents evals benchmarks)

.PHONY: demo test test-lowest lint check bench eval record-cassettes record-evals clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# one stamp per extra set, redone when pyproject.toml changes
$(VENV)/.installed-datascience: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[datascience]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-datascience

demo: $(VENV)/.installed-datascience
	$(BIN)/python -m sandbox_tool.demo --out demo-output

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

# The LangChain tool and loop on the lowest versions pyproject.toml allows: langchain-core
# 1.0.0 (the langchain extra) and the dev extra's langchain and langchain-openai 1.0.0, with
# langgraph 1.0.0 (later langgraph-checkpoint releases do not import with langchain-core
# 1.0.0). A venv of its own, about 20 s to build; .ci/run runs it.
LOWEST := langchain-core==1.0.0 langchain==1.0.0 langchain-openai==1.0.0 langgraph==1.0.0
LOWEST_VENV := .venv-lowest

$(LOWEST_VENV)/.installed: pyproject.toml Makefile
	rm -rf $(LOWEST_VENV)
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install --quiet -e . $(LOWEST) pytest
	touch $@

test-lowest: $(LOWEST_VENV)/.installed
	$(LOWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/tool/test_langchain_tool.py \
		tests/tool/test_langchain_prebuilt_agent.py tests/agents/test_loops_fake_models.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy

check: lint test

clean:
	rm -rf $(VENV) $(LOWEST_VENV) demo-output eval-results .pytest_cache .mypy_cache .ruff_cache *.egg-info

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/fork_cost.py
	$(BIN)/python benchmarks/plot_cost.py
	$(BIN)/python benchmarks/environments.py
	$(BIN)/python benchmarks/humaneval.py

# A developer step, never CI: builds llama-cpp-python and a small real model outside
# the repo ($(LLM_HOME)/.llm-venv, $(LLM_HOME)/.llm; LLM_HOME=/some/dir to share them
# between checkouts), serves it on 127.0.0.1 and re-records the cassettes that
# tests/agents replays.
LLM_HOME ?= ..
LLM_ARGS = --llm-venv $(LLM_HOME)/.llm-venv --model-dir $(LLM_HOME)/.llm
record-cassettes: $(VENV)/.installed-dev
	$(BIN)/python -m agents.record_cassettes $(LLM_ARGS)

# The eval harness (docs/evals.md): the snippet suite on the real engine (exits 1 on an
# outcome-class regression), then the agent tasks replayed from their cassettes (exits 1
# only when a task crashed the harness, never on a low score). Results in eval-results/.
eval: $(VENV)/.installed-dev
	$(BIN)/python -m evals snippets --out eval-results
	$(BIN)/python -m evals agent --out eval-results

# A developer step, never CI: serves the small real model as record-cassettes does and
# records every agent task's traffic into evals/cassettes/.
record-evals: $(VENV)/.installed-dev
	$(BIN)/python -m evals.record $(LLM_ARGS)
