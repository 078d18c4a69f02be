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

.PHONY: install run test lint bench soak fuzz dist clean $(VERSIONS:%=test-%) \
	$(VERSIONS:%=slice-%) $(VERSIONS:%=alone-%)

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

# Python's default whatever the shell says: each module compiled once and kept in __pycache__
# (pytest's assertion-rewritten ones too), not compiled again in every xdist worker, every
# `serve` and every inner pytest the suite starts
unexport PYTHONDONTWRITEBYTECODE

# the suite in two phases: xdist's workers run every test that does not time itself, then the
# tests marked `latency` (wall-clock bounds) or `serial` (a port the machine shares) run
# alone. Two processes a core (at most 8): many tests wait on servers, subprocesses and
# real-time timeouts, leaving their core idle. One of them runs test_openapi.py on its own:
# collecting it builds schemathesis' hundreds of tests, seconds of work every xdist worker
# would repeat (it has no timed tests). conftest.py hands the workers whole test files, the
# long poles first
JOBS ?= $(shell $(PYTHON) -c 'import os; print(max(1, min(8, 2 * (os.cpu_count() or 1)) - 1))')
XDIST = -n $(JOBS)
OWN = tests/test_openapi.py
# schemathesis' pytest plugin serves test_openapi.py alone: elsewhere it is 0.5 s of imports
PARALLEL = -m "not latency and not serial" -p no:schemathesis
ALONE = -m "latency or serial" -p no:schemathesis
# the second phase collects only the files that spell one of its marks out (conftest.py fails
# a run where a marked test's file does not): collecting all ~1,000 tests for 20 costs seconds
TIMED_FILES = $(shell grep -rlE --include='test_*.py' 'mark\.(latency|serial)' tests examples)

# Beside xdist's workers, in processes of their own, also the untimed parts of the other
# Pythons' slices (one process each; a slice is too small to repay xdist's workers): they
# fill the cores while the long poles wait. Their reports follow the workers'. Then the
# timed tests: this Python's in one process, which keeps one core busy (about half of the
# other's too), and beside it the other Pythons' few timed tests, one after the other
test: lint
	@echo "make test: $(OWN) and the other Pythons' slices run beside the workers (reports below)"
	@$(BIN)/pytest -q $(OWN) > $(VENV)/own.log 2>&1 & own=$$!; \
	{ [ -z "$(OTHER_VERSIONS)" ] || $(MAKE) --no-print-directory -j $(words $(OTHER_VERSIONS)) \
		$(OTHER_VERSIONS:%=slice-%); } > $(VENV)/slices.log 2>&1 & slices=$$!; \
	$(BIN)/pytest $(XDIST) $(PARALLEL) --ignore $(OWN); rest=$$?; \
	wait $$own; own_status=$$?; echo "make test: $(OWN)"; cat $(VENV)/own.log; \
	wait $$slices; slices_status=$$?; cat $(VENV)/slices.log; \
	[ $$rest -eq 0 ] && [ $$own_status -eq 0 ] && [ $$slices_status -eq 0 ]
	@{ for version in $(OTHER_VERSIONS); do $(MAKE) --no-print-directory alone-$$version || exit 1; \
		done; } > $(VENV)/alone.log 2>&1 & others=$$!; \
	$(BIN)/pytest $(ALONE) $(TIMED_FILES); status=$$?; \
	wait $$others; others_status=$$?; cat $(VENV)/alone.log; \
	[ $$status -eq 0 ] && [ $$others_status -eq 0 ]

# python3.X on PATH, else one pyenv installed (its shims run only the selected versions)
find_python = { python$(1) -c '' 2>/dev/null && echo python$(1); } \
	|| ls -d "$$(pyenv root 2>/dev/null)"/versions/$(1).*/bin/python$(1) 2>/dev/null | sort -V | tail -n 1

# makes .venv-3.X (or brings it up to date) if python3.X is found; if not, ends the recipe
venv = python=$$($(call find_python,$(1))); \
	if [ -z "$$python" ]; then echo "make test: no Python $(1) on this machine, skipped" >&2; exit 0; fi; \
	if [ ! .venv-$(1)/.installed-stamp -nt pyproject.toml ]; then \
		echo "make test: creating .venv-$(1) with $$python" >&2; \
		$$python -m venv .venv-$(1) && .venv-$(1)/bin/python -m pip install --quiet --upgrade pip \
		&& .venv-$(1)/bin/python -m pip install --quiet -e '.[dev]' \
		&& touch .venv-$(1)/.installed-stamp || exit 1; \
	fi
SLICE_PYTEST = .venv-$*/bin/pytest -p no:cacheprovider -q

# a slice's untimed part, its output held until it ends (the slices run side by side)
$(VERSIONS:%=slice-%): slice-%:
	@$(call venv,$*); \
	$(SLICE_PYTEST) $(PARALLEL) $(SLICE) > .venv-$*/slice.log 2>&1; status=$$?; \
	echo "make test: the plugin and a slice of the suite under Python $*"; \
	cat .venv-$*/slice.log; exit $$status

# a slice's timed part
$(VERSIONS:%=alone-%): alone-%:
	@$(call venv,$*); \
	echo "make test: the slice's timed tests under Python $*"; \
	$(SLICE_PYTEST) $(ALONE) $(SLICE)

# one Python's slice on its own: `make test-3.12`
$(VERSIONS:%=test-%): test-%: slice-% alone-%

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
