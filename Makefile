# mdval: two commands do all the set-up on a fresh machine.
#   make test   create/refresh .venv, install, build the LAMMPS plugin, run the test suite
#   make demo   the same set-up, then `mdval demo`
# Both are idempotent: the venv is refreshed only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mdval-installed

.PHONY: test demo install plugin clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU torch first, from local disk; a bare `torch` would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	# editable_mode=compat puts the clone on sys.path (a .pth file). The default finder hook runs
	# after the path scan, so from the folder above a clone named mdval/ that clone would be
	# imported as an empty namespace package instead of the real one.
	$(PY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	@touch $(STAMP)

plugin: $(STAMP)
	$(PY) -m mdval lammps build

test: install plugin
	$(PY) -m pytest -q -p no:cacheprovider

demo: install plugin
	$(PY) -m mdval demo

# Rebuild the model zoo (models/cu/*.pt, model cards *.json, training logs) with `mdval train`.
.PHONY: models
models: install
	$(PY) -m mdval.train.zoo models/cu/*.toml --jobs 2

# The plugin builds into the user's cache, ~/.cache/mdval/ (README, Install), which clean leaves
# alone; mdval/deploy/build is where it was built before. build/ and *.egg-info: `pip install .`
clean:
	rm -rf $(VENV) build pair_style/build mdval/deploy/build *.egg-info

# Benchmarks (issue 9): every script in benchmarks/ in turn, each writing benchmarks/results/*.json|md
# and appending to benchmarks/RESULTS.md. Long (about an hour on 2 cores); not part of `make test`.
# DeePMD-kit (the peer) gets its own virtualenv, benchmarks/.venv-deepmd (not in git).
# `make bench BENCH_ARGS=--quick` is a smoke run of every script.
DEEPMD_VENV := benchmarks/.venv-deepmd
.PHONY: bench
bench: install plugin
	@test -x $(DEEPMD_VENV)/bin/dp || { $(PYTHON) -m venv $(DEEPMD_VENV) && \
		$(DEEPMD_VENV)/bin/pip install --quiet 'deepmd-kit[cpu,lmp]==3.2.0'; }
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)
