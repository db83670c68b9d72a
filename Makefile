# Two commands: `make demo` and `make test`. Each builds its own virtualenv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/agent-runner demo

test: $(STAMP)
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check runner tests bench

bench: $(STAMP)
	$(PY) bench/throughput.py
	$(PY) bench/chaos.py
	$(PY) bench/sandbox.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
