# Two commands a user needs: `make demo` (the main job on built-in data) and `make test`.
# Both create or reuse .venv and install what they need; re-running is quick.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dnabird-installed
PYTEST_ARGS ?=
# PyTorch's OpenMP threads spin-wait between ops by default; on a shared CPU that slowed
# the many small ops of sparse attention up to 40x (benchmarks/RESULTS.md). Passive waiting
# costs little on an idle machine.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test test-unit test-all test-gpu bench lint format docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch first: with no torch installed a plain requirement pulls a multi-GB CUDA build;
# 2.13.0 is the CPU build on this machine's disk. Users with a GPU install their CUDA
# build of torch into .venv before running make (see README).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,docs]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dnabird demo --out demo_run

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu" $(PYTEST_ARGS)

# Unit tests only (seconds to a minute); `make test` adds tests/integration (processes,
# resume, notebooks, the demo), as CI runs it.
test-unit: $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu" --ignore=tests/integration $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/attention.py

# The documentation site into site/ (tests/test_docs.py builds it too, into a temporary folder).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) demo_run site .pytest_cache .ruff_cache build *.egg-info
