# The few commands everyone uses. `make run` and `make test` create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-all test-fast bench bench-bridge worker-venvs lint format clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,all]"
	@touch $(STAMP)

run: $(STAMP)  ## train MuZero on CartPole-v1 with the default config
	JAX_PLATFORMS=$${JAX_PLATFORMS:-cpu} $(PY) -m jaxmb train $(ARGS)

test: $(STAMP)  ## the suite CI runs, learning tests included (not the `heavy` ones)
	JAX_PLATFORMS=cpu $(PY) -m pytest -n 2 --dist worksteal -q -m "not heavy" $(ARGS)

test-all: $(STAMP)  ## everything, the `heavy` tests too
	JAX_PLATFORMS=cpu $(PY) -m pytest -n 2 --dist worksteal -q $(ARGS)

test-fast: $(STAMP)  ## everything but the slow learning tests
	JAX_PLATFORMS=cpu $(PY) -m pytest -n 2 -q -m "not slow and not heavy" $(ARGS)

bench: $(STAMP)  ## throughput benchmark; writes benchmarks/results/*.json
	$(PY) benchmarks/throughput.py $(ARGS)

bench-bridge: $(STAMP)  ## host-env bridge vs JAX env steps/s; writes benchmarks/results/bridge-*.json
	$(PY) benchmarks/bridge.py $(ARGS)

worker-venvs: $(STAMP)  ## venvs for the Procgen and Meta-World workers (~/.cache/jaxmb/venvs)
	$(PY) envs/worker_venvs.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) runs .pytest_cache
