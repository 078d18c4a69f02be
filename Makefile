# `make run` and `make test` work on a fresh machine with only python3 (>= 3.11).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# every supported Python: the whole suite runs under $(PYTHON), the plugin and a fast slice
# (Partner API, webhooks, auth) under each other one found, in its own .venv-3.X; the slice
# leaves out the xdist test, which alone (a run of two workers) takes longer than the rest
VERSIONS := 3.11 3.12 3.13
OTHER_VERSIONS = $(filter-out $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'),$(VERSIONS))
SLICE := tests/test_plugin.py tests/test_imports.py tests/test_resources.py \
	tests/test_partner_api.py tests/test_webhooks.py tests/test_auth.py \
	--deselect tests/test_plugin.py::test_xdist_workers_each_get_their_own_server

.PHONY: install run test lint bench soak fuzz dist clean $(VERSIONS:%=test-%)

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

# the suite in two phases: xdist's workers run every test that does not time itself, then the
# tests marked `latency` (wall-clock bounds) or `serial` (a port the machine shares) run
# alone. Two workers a core (at most 8): many tests wait on servers, subprocesses and
# real-time timeouts, leaving their core idle
JOBS ?= $(shell $(PYTHON) -c 'import os; print(min(8, 2 * (os.cpu_count() or 1)))')
XDIST = -n $(JOBS)

test: lint
	$(BIN)/pytest $(XDIST) -m "not latency and not serial"
	$(BIN)/pytest -m "latency or serial"
	@for version in $(OTHER_VERSIONS); do $(MAKE) --no-print-directory test-$$version || exit 1; done

# python3.X on PATH, else one pyenv installed (its shims run only the selected versions)
find_python = { python$(1) -c '' 2>/dev/null && echo python$(1); } \
	|| ls -d "$$(pyenv root 2>/dev/null)"/versions/$(1).*/bin/python$(1) 2>/dev/null | sort -V | tail -n 1

$(VERSIONS:%=test-%): test-%:
	@python=$$($(call find_python,$*)); \
	if [ -z "$$python" ]; then echo "make test: no Python $* on this machine, skipped"; exit 0; fi; \
	if [ ! .venv-$*/.installed-stamp -nt pyproject.toml ]; then \
		echo "make test: creating .venv-$* with $$python"; \
		$$python -m venv .venv-$* && .venv-$*/bin/python -m pip install --quiet --upgrade pip \
		&& .venv-$*/bin/python -m pip install --quiet -e '.[dev]' \
		&& touch .venv-$*/.installed-stamp || exit 1; \
	fi; \
	echo "make test: the plugin and a slice of the suite under Python $*"; \
	.venv-$*/bin/pytest -p no:cacheprovider -q $(XDIST) -m "not latency and not serial" $(SLICE) \
		&& .venv-$*/bin/pytest -p no:cacheprovider -q -m "latency or serial" $(SLICE)

fuzz: $(STAMP)
	CHEKT_SANDBOX_FUZZ_EXAMPLES=300 $(BIN)/pytest tests/test_openapi.py tests/test_stateful.py \
		-p no:cacheprovider

bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| (echo "make bench needs wrk (apt-get install wrk)"; exit 1)
	$(BIN)/python bench/report.py

# a dev server under 30 minutes of events, a failing receiver and API load, watched for leaks
# (RSS, descriptors, lost events, 5xx); not part of `make test`. Shorter: ARGS="--minutes 3"
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(ARGS)

# a wheel and an sdist in dist/, for `pip install dist/chekt_sandbox-*.whl` elsewhere
dist: $(STAMP)
	$(BIN)/python -m pip install --quiet build
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) $(VERSIONS:%=.venv-%) .chekt-sandbox .pytest_cache .mypy_cache .ruff_cache
