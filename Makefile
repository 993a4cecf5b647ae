# Developer commands. `make run` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
JS     := tests/e2e/js

.PHONY: run test check fmt asyncapi bench bench-queries bench-contacts install lock clean

# Every dependency comes from the lock file, at the exact version and hash it names; pip shows
# what it fetches, so a first run says what it is doing.
$(BIN)/marketplace-chat: pyproject.toml requirements-dev.txt
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing the locked dependencies (requirements-dev.txt) into $(VENV); the first time takes about a minute"
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar on --require-hashes --no-deps -r requirements-dev.txt
	$(BIN)/python -m pip install --disable-pip-version-check --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(BIN)/marketplace-chat

$(JS)/node_modules/.package-lock.json: $(JS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd $(JS) && npm ci --silent --no-audit --no-fund; \
	else echo "npm not found: the end-to-end tests will be skipped (CI=true makes them fail)"; fi

## run: the service on port 3001 in development mode, on embedded PostgreSQL and Redis
run: install
	$(BIN)/marketplace-chat serve --dev

## test: unit, integration and end-to-end tests
test: install $(JS)/node_modules/.package-lock.json
	$(BIN)/pytest

## check: formatting, lint and types
check: install
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	@$(BIN)/marketplace-chat asyncapi | diff -u docs/asyncapi.yaml - \
		|| { echo "docs/asyncapi.yaml is out of date: run \`make asyncapi\`"; exit 1; }

fmt: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

## asyncapi: regenerate docs/asyncapi.yaml from the wire models (a unit test fails when it is stale)
asyncapi: install
	$(BIN)/marketplace-chat asyncapi --output docs/asyncapi.yaml

BENCH_JS := benchmarks/js

$(BENCH_JS)/node_modules/.package-lock.json: $(BENCH_JS)/package-lock.json
	cd $(BENCH_JS) && npm ci --silent --no-audit --no-fund

## bench: the load benchmark (service pinned to one core, the JS load generator on the other);
## it prints a table, writes benchmarks/results/load.json and fails when a target is missed;
## BENCH_ARGS="--scenario closed,open" picks scenarios
bench: install $(BENCH_JS)/node_modules/.package-lock.json
	$(BIN)/python benchmarks/load.py $(BENCH_ARGS)

## bench-queries: the query-cost benchmark on 100,000 chats and 2,000,000 messages
bench-queries: install
	$(BIN)/python benchmarks/queries.py

## bench-contacts: contact-detail detection quality (recall and false positives per category) on
## benchmarks/contacts_corpus.jsonl and, separately, the hold-out corpora benchmarks/contacts_holdout.jsonl
## and benchmarks/contacts_holdout2.jsonl, and its throughput on one core; fails when a target is missed
## on any of them
bench-contacts: install
	$(BIN)/python benchmarks/contacts.py

## lock: re-resolve requirements.txt (production) and requirements-dev.txt from pyproject.toml
lock: install
	$(BIN)/uv pip compile pyproject.toml --no-config --generate-hashes --universal --python-version 3.11 --custom-compile-command "make lock" -q -o requirements.txt
	$(BIN)/uv pip compile pyproject.toml --no-config --extra dev --generate-hashes --universal --python-version 3.11 --custom-compile-command "make lock" -q -o requirements-dev.txt

clean:
	rm -rf $(VENV) $(JS)/node_modules $(BENCH_JS)/node_modules .mypy_cache .ruff_cache .pytest_cache
