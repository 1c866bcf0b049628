# make demo   install everything into .venv, run the quick sweep and build its report
# make test   install everything into .venv, lint, run the fast test suite
# make setup  install only (into the project virtual environment .venv)
#
# Everything installs into a project virtual environment, so a stock distribution Python (externally managed,
# PEP 668), a pyenv or conda Python and an already activated venv all work. PYTHON picks the interpreter that
# creates .venv; inside an activated venv, `make VENV=$$VIRTUAL_ENV ...` installs there instead.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# A CPU build of torch keeps a fresh install fast; the package itself takes any torch>=2.2 (GPU users: pip install -e .[gpu]).
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test lint test-slow test-gpu benchmarks chromium

$(BIN)/python:
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "make: $(PYTHON) cannot create a virtual environment: install the venv module (Debian/Ubuntu: sudo apt-get install python3-venv)"; exit 2; }
	$(PYTHON) -m venv $(VENV)

# The stamp re-installs only when the package's requirements change.
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements-embedded.txt
	$(PIP) install --quiet $(TORCH_PIN)
	$(PIP) install --quiet -e ".[dev]"
	$(PIP) install --quiet --no-deps -r requirements-embedded.txt
	touch $@

setup: $(VENV)/.installed

# The quick sweep resumes: run `make demo` again after an interruption and only the missing trials run.
demo: setup
	$(BIN)/peft-bench sweep=quick
	$(BIN)/peft-bench-report results/quick

lint: setup
	$(BIN)/ruff check bench tests benchmarks

test: lint
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

test-gpu: setup
	$(BIN)/python -m pytest -q -m gpu

# Debian/Ubuntu: the system Chromium and its driver for the report's browser test (needs root or sudo).
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; }
