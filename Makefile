# The two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned, so that pip never resolves a CUDA build here. A GPU user installs a CUDA
# build of the same version into .venv first (see README); the stamp below then keeps it.
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo_output
export MUJOCO_GL ?= egl
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test lint format check clean-venv
LINTED := sb3_latent tests benchmarks plugins

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install $(TORCH_SPEC)
	$(BIN)/pip install -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/python -m sb3_latent.demo --out $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest tests plugins/sb3-latent-curl/tests

# ruff (pycodestyle, pyflakes, isort, bugbear, pyupgrade, simplify, McCabe complexity <= 15, ruff's own rules),
# the formatting check and mypy (no untyped defs, no unused ignores, Python 3.10 semantics)
lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

# what CI runs: lint, then the whole suite
check: lint test

clean-venv:
	rm -rf $(VENV)
