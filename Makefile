# playfair: `make run` to try it, `make test` to check it. Every target installs what it
# needs first, so both work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install system-packages run test lint format bench messages clean demo-royalties

NODE_STAMP := tests/node/node_modules/.installed-stamp

install: system-packages $(STAMP) $(NODE_STAMP)

system-packages:
	@bash tools/system-packages.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable '.[dev]'
	@touch $(STAMP)

# The npm Subsonic client the tests drive against a running instance
# (tests/test_subsonic_clients.py), exactly as the lock file pins it.
$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

run: install
	$(BIN)/playfair init
	$(BIN)/playfair demo --if-empty
	$(BIN)/playfair run

# Three instances on loopback (two scenes and a co-op hub) play, state and settle royalties;
# exits non-zero if any figure does not add up (issue 7).
demo-royalties: install
	$(BIN)/python tools/demo_royalties.py

# Two workers (pytest-xdist), a test file per worker at a time so a module's shared
# instance stays on one; TEST_WORKERS=0 runs in this process (for a debugger or -x).
# pytest exits 5 when it collected no tests; for this project that is a failure.
TEST_WORKERS ?= 2
test: install
	@$(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; \
	exit $$status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy federation models subsonic server
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	@bash tools/system-packages.sh wrk
	$(BIN)/python -m bench

# Text for translation: extract every _() / ngettext() from server/ and server/web/templates/ into
# messages.pot (sorted, no locations or header, so it changes only when the text does),
# then bring each catalog in step (English is made when missing; its msgstr may stay
# empty, gettext falls back to the msgid). tests/test_i18n.py checks the .pot is current.
MESSAGES := server/web/translations
messages: $(STAMP)
	$(BIN)/pybabel extract -F tools/babel.cfg -k _ -k gettext -k ngettext:1,2 \
		--no-location --sort-output --omit-header -o $(MESSAGES)/messages.pot .
	@test -f $(MESSAGES)/en/LC_MESSAGES/messages.po || \
		$(BIN)/pybabel init -i $(MESSAGES)/messages.pot -d $(MESSAGES) -l en
	$(BIN)/pybabel update -i $(MESSAGES)/messages.pot -d $(MESSAGES) \
		--no-fuzzy-matching --ignore-obsolete
	@sed -i '/^"POT-Creation-Date: /d' $(MESSAGES)/*/LC_MESSAGES/messages.po

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis tests/node/node_modules
