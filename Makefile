# `make test` and `make run` set up .venv on first use (torch pinned to the builds this project is tested with).
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ZHANG_STEPS   ?= 60
LARSSON_STEPS ?= 60

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

# The main job, local mode, on the embedded default (the colour photos the dependencies ship): preprocess -> prior
# -> train both papers -> evaluate -> register, into outputs/local and ./mlflow.db (docs/cluster.md). Steps sized
# for about 5 minutes on 2 cores; rerunning skips what is done.
.PHONY: run
run: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(PYTHON) workflows/pipeline.py --output outputs/local --zhang-steps $(ZHANG_STEPS) --larsson-steps $(LARSSON_STEPS)
