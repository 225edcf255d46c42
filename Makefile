# Hongliu — `make run` starts the demo, `make test` runs every test. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CATALOGS := shared/web idp hall
PO_FILES := $(wildcard $(addsuffix /translations/*/LC_MESSAGES/messages.po,$(CATALOGS)))
# What lint checks: when none of it changed since the last clean run, lint has nothing to do.
LINTED := pyproject.toml $(shell find shared idp hall tests benchmarks deploy \
  -name node_modules -prune -o -name '*.py' -print 2>/dev/null)
LINT_STAMP := $(VENV)/.lint-stamp

.PHONY: run test lint format bench translations messages system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Compile the message catalogues (.po → .mo) that changed; the .mo files are build output,
## not committed. Nothing is rewritten when they are up to date, so runs can share them.
translations: $(PO_FILES:.po=.mo)

%.mo: %.po $(STAMP)
	$(BIN)/pybabel -q compile -i $< -o $@

## Re-extract messages into each catalogue after changing user-facing text.
messages: $(STAMP)
	for d in $(CATALOGS); do \
	  $(BIN)/pybabel -q extract --no-location --omit-header -F babel.cfg -k _l -o $$d/translations/messages.pot $$d && \
	  $(BIN)/pybabel -q update -i $$d/translations/messages.pot -d $$d/translations || exit 1; \
	done

## The demo: both apps on SQLite with demo data, URLs and demo accounts printed. Ctrl-C stops.
run: $(STAMP) translations
	$(BIN)/python deploy/run_dev.py

## Debian packages the tests need (Chromium and a CJK font for the browser tests; Apache httpd
## with mod_auth_cas and mod_auth_openidc, PHP with phpCAS for the interop tests), installed when
## missing.
system-deps:
	sh deploy/system-deps.sh

## Every test. Uses TEST_DATABASE_URL / TEST_REDIS_URL when set (PostgreSQL + Redis).
# The openid-client interop test's Node packages: `npm ci` only when node_modules is missing or
# older than package-lock.json; without npm the test skips (and fails under CI).
test: $(STAMP) translations system-deps lint
	@d=tests/interop/node; if command -v npm >/dev/null && [ ! $$d/node_modules/.package-lock.json -nt $$d/package-lock.json ]; then npm ci --prefix $$d --no-audit --no-fund; fi
	$(BIN)/python -m pytest

## ruff and mypy; skipped when no Python file (or pyproject.toml) changed since they last passed.
lint: $(LINT_STAMP)

$(LINT_STAMP): $(STAMP) $(LINTED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	touch $@

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Measurements (not tests): each benchmark prints its figures and ratios.
bench: $(STAMP) translations
	@status=0; for f in benchmarks/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f || status=1; done; exit $$status

clean:
	rm -rf $(VENV) instance test-artifacts .pytest_cache .mypy_cache .ruff_cache
