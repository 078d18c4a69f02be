# `make run` and `make test` work on a fresh machine with only python3 (>= 3.11).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint bench fuzz dist clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/chekt-sandbox serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check sandbox tests bench examples
	$(BIN)/ruff format --check sandbox tests bench examples
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

fuzz: $(STAMP)
	CHEKT_SANDBOX_FUZZ_EXAMPLES=300 $(BIN)/pytest tests/test_openapi.py tests/test_stateful.py \
		-p no:cacheprovider

bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| (echo "make bench needs wrk (apt-get install wrk)"; exit 1)
	$(BIN)/python bench/report.py

# a wheel and an sdist in dist/, for `pip install dist/chekt_sandbox-*.whl` elsewhere
dist: $(STAMP)
	$(BIN)/python -m pip install --quiet build
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) .chekt-sandbox .pytest_cache .mypy_cache .ruff_cache
