# The two commands: `make demo` (the main job) and `make test`. Both set up .venv/ first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup clean redis-server

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 first: its CPU build lies on this machine's disk (see pyproject.toml)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# NudeNet's detector graph (320n.onnx, MIT) for `build --nudenet installed`; --no-deps: its opencv
	# pre/post-processing is replaced by graph nodes (export/nudenet.py), and opencv wants numpy>=2
	$(BIN)/pip install --quiet --no-deps nudenet==3.4.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/t2iguard demo --out outputs

test: $(STAMP) redis-server
	$(BIN)/ruff check .
	@# python-backend stubs map their tensors in /dev/shm: each tiny server takes about 160 MiB
	@df -h /dev/shm | tail -1
	$(BIN)/python -m pytest -q --durations=15

# the tests start their own redis-server (the shared rate-limit store of many replicas): Debian's package
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -q && apt-get install -y -q redis-server; }

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf build outputs
