# The two commands the README opens with: `make render` and `make test-all`.
# Both create .venv and install this project into it on first use. `test` also needs promtool,
# nats-server and Node.js/npm: scripts/install-*.sh installs them with apt-get when run as root.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  ?= dev

.PHONY: render test test-all test-slow lint typecheck unit tools bench bench-instructions bench-migration clean

# pip prints what it collects and installs: a first install takes a few minutes, and silence that
# long reads as a hang.
$(BIN)/vinylhound: pyproject.toml
	@echo "make: creating $(VENV) and installing this project with its test tools (first run: a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar off -e '.[test]'
	touch $@

## render: the main job on its embedded default: render a stack offline (no cluster, no account).
render: $(BIN)/vinylhound
	@echo "make: rendering stack $(STACK) offline into build/$(STACK)"
	$(BIN)/vinylhound render $(STACK)

## test: lint, type-check, then the fast lane of the test suite (everything not marked slow).
test: lint typecheck unit

## test-all: every test, as CI runs it (.ci/run): the fast lane, then the slow lane.
test-all: test test-slow

## test-slow: the end-to-end lane (tests marked slow); .ci/run runs it after `make test`.
test-slow: $(BIN)/vinylhound tools
	$(BIN)/pytest -n 2 -m slow

lint: $(BIN)/vinylhound
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/vinylhound
	$(BIN)/mypy

unit: $(BIN)/vinylhound tools
	$(BIN)/pytest -n 2 -m "not slow"

## tools: system binaries the tests run for real (promtool, nats-server); installed when root.
tools:
	@bash scripts/install-tools.sh
	@bash scripts/install-actionlint.sh
	@bash scripts/install-checkov.sh

## bench: render, check and diff 0-500 synthetic services; rewrites the tables in docs/benchmarks.md.
bench: $(BIN)/vinylhound
	$(BIN)/python benchmarks/render_bench.py --write

## bench-instructions: render / floor in instructions (valgrind); rewrites its table in docs/benchmarks.md.
bench-instructions: $(BIN)/vinylhound
	$(BIN)/python benchmarks/instructions.py --write

bench-migration: $(BIN)/vinylhound
	$(BIN)/python benchmarks/migration_bench.py

clean:
	rm -rf build $(VENV) .mypy_cache .ruff_cache
