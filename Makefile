# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

# librosa compiles with numba on first use (~25 s): cache it. Keep TF's start-up logs quiet.
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba
export TF_CPP_MIN_LOG_LEVEL := 2
export TF_ENABLE_ONEDNN_OPTS := 0
export ASCJAX_DATA ?= $(CURDIR)/.cache/data
# XLA's CPU buffers are large mallocs, each mmapped fresh and page-faulted 4 KB at a time: 2.4M page
# faults per Mod-8 train step. With transparent huge pages for malloc the step takes 3.7 s, not 7.7.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

.PHONY: setup demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,synthetic]'
	touch $@

setup: $(VENV)/.installed

DEMO := $(CURDIR)/.cache/demo
# Trains Mod-1 without and with ResNorm, two seeds each (a point per seed, two at a time), on the
# synthetic demo set (built on first use) with the small front end of the config's `demo` option,
# evaluates them on the test split and prints both rows' per-device tables, mean ± std over seeds.
demo: setup
	rm -rf $(DEMO)
	$(PY) -m ascjax.sweep --sweep=experiments/sweeps/demo.py --root=$(DEMO) --parallel=2

# The suite is compile-bound: two xdist workers keep both cores busy (TEST_WORKERS=0: no workers);
# modules stay whole on one worker (--dist loadscope) so module fixtures are built once.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope

test-slow: setup
	$(PY) -m pytest -q -m slow -n $(TEST_WORKERS) --dist loadscope

bench: setup
	$(PY) tools/benchmark.py --out=bench/results.json

clean:
	rm -rf .cache build *.egg-info
