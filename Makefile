# The two commands: `make run` starts the scheduler, `make test` runs every test.
# Both install exactly requirements.lock into .venv on first use (and whenever the lock
# changes), so a fresh machine needs only Python 3.11+ and make. `make lock` and `make upgrade`
# change the lock; nothing else does.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# uv installs the lock. It lives in a bootstrap venv of its own, pinned, so that syncing .venv
# to the lock never removes the installer.
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
export UV_PYTHON_DOWNLOADS := never
RUNTIME_LOCK := requirements-runtime.lock
COMPILE_FLAGS := --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" --quiet
# The whole environment (runtime and dev) first; then the runtime part alone for the container
# image, held to the same pins.
define compile
	$(UV) pip compile pyproject.toml --extra dev --extra tracing $(COMPILE_FLAGS) --output-file $(LOCK) $(1)
	$(UV) pip compile pyproject.toml --extra tracing --constraint $(LOCK) $(COMPILE_FLAGS) --output-file $(RUNTIME_LOCK)
endef

.PHONY: run test lint chaos lock upgrade clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# Exactly the lock (hashes checked, anything else removed), then this project on top without
# dependencies; `pip check` fails when pyproject.toml asks for something the lock lacks.
$(STAMP): pyproject.toml $(LOCK) | $(UV)
	test -x $(BIN)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) pip sync --quiet --python $(BIN)/python --require-hashes $(LOCK)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --editable .
	$(UV) pip check --quiet --python $(BIN)/python
	touch $(STAMP)

EXAMPLES := --plugin examples.cleanup:CleanupPlugin \
	--plugin examples.hourly_sync:HourlySyncPlugin \
	--plugin examples.fact_check:FactCheckPlugin

run: $(STAMP)
	$(BIN)/dvp-scheduler up $(EXAMPLES) $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The chaos suite's long form: four minutes of faults per seed on a three-node cluster.
chaos: $(STAMP)
	DVP_CHAOS_SEEDS=1,2,3 $(BIN)/pytest tests/chaos -m chaos -p no:randomly -s $(PYTEST_ARGS)

# Re-resolve after editing pyproject.toml, keeping every pin that still fits.
lock: $(UV)
	$(call compile)

# Move pins forward: all of them (`make upgrade`) or one (`make upgrade PACKAGE=nats-py`).
upgrade: $(UV)
	$(call compile,$(if $(PACKAGE),--upgrade-package $(PACKAGE),--upgrade))

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis
