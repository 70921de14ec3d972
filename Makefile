# Siyu — `make demo` runs the product, `make test` runs the tests. Everything else is set up by these.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SIYU := $(BIN)/siyu

.PHONY: demo test test-fast e2e lint fmt bench setup browser clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the browser tests (Playwright drives it; no browser download), and a CJK font so
# screenshots of the Chinese console are legible.
browser:
	@{ command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"; } || { \
	  echo "installing Debian's chromium and a CJK font for the browser tests …"; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; }

demo: $(STAMP)
	$(SIYU) demo

test: $(STAMP) browser
	$(BIN)/python -m pytest

# Everything but the browser tests.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e"

# check_translations runs makemessages on a copy of the sources: it needs GNU gettext (apt-get install gettext).
lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(SIYU) manage check --fail-level WARNING
	$(SIYU) manage makemigrations --check --dry-run
	$(BIN)/python scripts/check_translations.py

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
