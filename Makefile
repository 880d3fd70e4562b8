# `make test` and `make run` set up .venv on first use (torch pinned to the builds this project is tested with).
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PYTHON) -m pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: setup test bench
setup: $(STAMP)

test: $(STAMP)
	$(PYTHON) -m pytest -q

bench: $(STAMP)
	for f in tests/benchmarks/bench_*.py; do RAY_USAGE_STATS_ENABLED=0 $(PYTHON) $$f || exit 1; done

# The main job, local mode, on the embedded default (scikit-image's colour sample photos).
.PHONY: run
run: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(PYTHON) workflows/local_pipeline.py
