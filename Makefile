# Two commands: `make demo` and `make test`. Each builds its own virtualenv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench check-real-llm clean venv config-docs

venv: $(STAMP)

# Each step says what it does; pip shows what it collects and a progress bar on a terminal.
$(STAMP): pyproject.toml emulator/pyproject.toml
	@echo "==> [1/3] creating the virtualenv $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] upgrading pip"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip uninstall --quiet --yes agent-runner 2>/dev/null || true  # this project's old distribution name
	@echo "==> [3/3] installing agent-runner and its dependencies (a minute or two the first time)"
	$(PY) -m pip install --progress-bar on --no-input -e ./emulator -e '.[dev]'
	touch $(STAMP)
	@echo "==> ready: $(VENV)"

demo: $(STAMP)
	$(VENV)/bin/agent-runner demo

test: $(STAMP)
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

config-docs: $(STAMP)  ## after changing a setting in runner/config/
	$(VENV)/bin/agent-runner config-docs

lint: $(STAMP)
	$(PY) -m ruff check runner tests bench emulator
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) bench/throughput.py
	$(PY) bench/chaos.py
	$(PY) bench/sandbox.py
	$(PY) bench/gateway.py

# A real model server (llama-cpp-python + Gemma 3 270M) end to end; not part of `make test`.
# GENERATOR=mini-swe-agent (or aider) runs that preset's real CLI through the model gateway instead of openai.
check-real-llm: $(STAMP)
	$(PY) bench/real_llm.py $(if $(GENERATOR),--generator $(GENERATOR))

clean:
	rm -rf $(VENV) .venv-real-llm .pytest_cache build *.egg-info
