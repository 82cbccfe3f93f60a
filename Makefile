# The two commands of the quick start are `make run` and `make test`; both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install system-packages run ui screenshots test test-fast lint bench build lock clean

$(INSTALLED): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(INSTALLED)

install: $(INSTALLED)

## system-packages: the Debian packages the test tiers need (Chromium, PostgreSQL); stops at once without root
system-packages:
	.ci/system-packages

## run: land the source files and materialize every asset for all 12 months (DATAOPS_ENV, default dev)
run: install
	$(BIN)/dataops land
	$(BIN)/dataops run

## ui: the Dagster UI on 127.0.0.1:3000 through dg dev, on the environment's own instance
ui: install
	$(BIN)/dataops ui

## screenshots: the README's UI pictures (docs/images/) over the real year in stage, landed and run first if unpublished
screenshots: install
	$(BIN)/python docs/screenshots.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: system packages, lint, types, definitions, and every test (CI runs exactly this)
# (dg warns unless the venv it runs from is the active one: VIRTUAL_ENV says it is)
test: system-packages lint
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg check defs
	$(BIN)/pytest

## test-fast: lint, types and the fast tier (not the deploy end to end, real-data, linter, browser or fault tests)
test-fast: lint
	$(BIN)/pytest -m "not e2e and not real_data and not linters and not browser and not faults"

## bench: dataops land/run in stage at 1x and 10x, beside plain pandas and plain SQL
## (a quick one: make bench BENCH_ARGS="--scales 1 --months 2013-01 2013-02")
bench: install
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

## build: wheel + sdist + manifest.json in dist/ (the artifact CD deploys)
build: install
	$(BIN)/dataops build --out dist

## lock: refresh requirements.lock from requirements.in
lock: install
	$(BIN)/uv pip compile requirements.in --generate-hashes --universal --python-version 3.11 \
		--no-strip-extras --quiet -o requirements.lock

clean:
	rm -rf $(VENV) var
