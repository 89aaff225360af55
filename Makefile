# Two commands do all the set-up on a fresh machine (Python 3.11+):
#   make demo   - the gateway on examples/demo, backed by simulated providers
#   make test   - the test suite (the same command CI runs)
# and `make lint` checks the layers (import-linter) and the code (ruff); CI runs it too.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test run lint bench crds clean

# -P: never put the current directory on sys.path while bootstrapping the venv.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -P -m venv $(VENV)
	$(BIN)/python -P -m pip install --quiet --upgrade pip
	$(BIN)/python -P -m pip install --quiet -e '.[test,lint]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/switchyard demo

# `make run FILE=examples/hosted` serves any folder of manifests.
FILE ?= examples/demo
run: $(BIN)/.installed
	$(BIN)/switchyard run -f $(FILE)

test: $(BIN)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

# The layers (what may import what: [tool.importlinter] in pyproject.toml, drawn in
# docs/architecture.md) and ruff's checks.
lint: $(BIN)/.installed
	$(BIN)/lint-imports
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
