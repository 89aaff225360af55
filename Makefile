# Two commands do all the set-up on a fresh machine (Python 3.11+):
#   make demo   - the gateway on examples/demo, backed by simulated providers
#   make test   - the test suite (the same command CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test run lint bench crds clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
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
