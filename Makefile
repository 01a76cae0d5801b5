# Overlord task runner: `make run` (the main job) and `make test` (the whole suite).
# Both create .venv and install the project on first use, so each is one command on a
# fresh machine. CI runs `make test` through .ci/run.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
USERS ?= 1000
STEPS ?= 40
RUN_ARGS ?=
ONLY ?=
FAULTS_ARGS ?=

.PHONY: run test lint typecheck unit bench faults clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Overlord needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# The local chain's npm packages (anvil, Aave v3.0.2 artifacts, Aave v3.6.0 sources, solc).
$(NPM_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the local chain (Node.js >= 18)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $(NPM_STAMP)

## run: the engine; with no RPC URL configured, against the embedded local chain and a scenario
run: $(STAMP) $(NPM_STAMP)
	$(BIN)/overlord run --users $(USERS) --steps $(STEPS) $(RUN_ARGS)

## test: lint, type-check, run every test with coverage (100 % required for overlord.aave)
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(NPM_STAMP)
	$(BIN)/python -m pytest --cov=overlord --cov-report= -q
	$(BIN)/python -m coverage report
	@echo "coverage of the math package (overlord.aave), 100 % required:"
	$(BIN)/python -m coverage report --include='*/overlord/aave/*' --fail-under=100

## bench: run every benchmark under bench/ (ONLY=word runs those whose file name contains it)
bench: $(STAMP)
	$(BIN)/python bench/run.py $(ONLY)

## faults: the fault-injection suite on the devnet (a table, then one JSON line; exit 1 on loss)
faults: $(STAMP) $(NPM_STAMP)
	$(BIN)/python -m overlord.devnet.faults $(FAULTS_ARGS)

clean:
	rm -rf $(VENV) node_modules .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
