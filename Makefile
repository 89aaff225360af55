# Two commands do all the set-up on a fresh machine (Python 3.11+):
#   make demo   - the gateway on examples/demo, backed by simulated providers
#   make test   - the test suite (the same command CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test run lint bench crds clean

# -P: never put the current directory on sys.path. The repository root holds the folder
# `operator/`, which would otherwise shadow the standard library's `operator` module for
# `python -m ...` run from here (a fresh venv imports it late, during runpy's start-up).
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -P -m venv $(VENV)
	$(BIN)/python -P -m pip install --quiet --upgrade pip
	$(BIN)/python -P -m pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/switchyard demo

# `make run FILE=examples/hosted` serves any folder of manifests.
FILE ?= examples/demo
run: $(BIN)/.installed
	$(BIN)/switchyard run -f $(FILE)

test: $(BIN)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
