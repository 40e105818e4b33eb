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

.PHONY: setup demo test lint clean-venv

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

lint: setup
	$(BIN)/ruff check sb3_latent tests benchmarks
	$(BIN)/mypy

clean-venv:
	rm -rf $(VENV)
