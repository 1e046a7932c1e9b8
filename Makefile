# The whole set-up is `make demo` and `make test`; both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 is named in the same pip command as the project: an unpinned torch (or a range) makes
	# pip pull a multi-GB CUDA build on CPU-only machines
	$(BIN)/pip install --quiet torch==2.13.0 -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/scaling demo $(DEMO_ARGS)

# the quick suite by default (a few minutes); `make test SLOW=1` (what CI runs) adds the slow tests
TEST_MARKS := $(if $(SLOW),,-m "not slow")

test: $(STAMP)
	$(BIN)/python -m pytest -q $(TEST_MARKS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_prepare.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_fit.py

clean:
	rm -rf $(VENV) build *.egg-info
