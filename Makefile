# The whole set-up is `make demo` and `make test`; both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test install lint bench clean

# the project alone: all `make demo` needs
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 is named in the same pip command as the project: an unpinned torch (or a range) makes
	# pip pull a multi-GB CUDA build on CPU-only machines. --no-compile: Python compiles only the modules
	# it imports, on first import, instead of all of torch's at install (37 s instead of 72 on 2 cores,
	# 12 s of it paid back on the first import)
	$(BIN)/pip install --quiet --no-compile torch==2.13.0 -e .
	touch $(STAMP)

# the project with the dev extra (test tools, the exact W&B version, transformers for the export tests,
# lm-eval for the harness tests)
$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet torch==2.13.0 -e '.[dev]'
	touch $(DEV_STAMP)

install: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/scaling demo $(DEMO_ARGS)

# the quick suite by default (a few minutes); `make test SLOW=1` (what CI runs) adds the slow tests
TEST_MARKS := $(if $(SLOW),,-m "not slow")

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q $(TEST_MARKS) $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_prepare.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_fit.py

clean:
	rm -rf $(VENV) build *.egg-info
