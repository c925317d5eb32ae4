# The map of the project: every routine task a newcomer or CI runs is here.
.PHONY: install lint format test test-unit bench soak demo up schemas clean

UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin

install:  ## the virtualenv with every package pinned in uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv sync --frozen --all-extras

lint: install  ## ruff (lint + format check) and strict mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install  ## the whole suite: unit, integration (SQLite + PostgreSQL), end to end
	$(BIN)/pytest

UNIT_TESTS := contracts/tests services/chassis/tests services/opportunity/tests/unit \
	services/projections/tests/unit services/reminders/tests/unit

# `-k "not postgres"` also drops the PostgreSQL case of a store fixture whose param has no marker.
test-unit: install  ## the unit tests only: no PostgreSQL, no broker, no subprocess; under a minute
	$(BIN)/pytest -q $(UNIT_TESTS) -m "not postgres and not slow" -k "not postgres"

bench: install  ## throughput and latency figures, written to bench/RESULTS.md
	$(BIN)/python bench/commands.py
	$(BIN)/python bench/relay.py
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/reminders_bench.py
	$(BIN)/python bench/projections_bench.py

soak: install  ## the whole system on PostgreSQL under load and faults, 10 min; SPEC §7 checked
	$(BIN)/python bench/soak.py

demo: install  ## the embedded default: broker, SQLite stores, the services, a simulated sales team
	$(BIN)/oppstream demo

up: install  ## the embedded default without the simulation
	$(BIN)/oppstream up

schemas: install  ## regenerate contracts/schemas after changing a contract
	$(BIN)/oppstream contracts export contracts/schemas

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
