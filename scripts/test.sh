#!/usr/bin/env bash
# The README's test command: install into .venv, lint, type-check, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --quiet -e ".[dev]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Two workers: most tests wait on Prefect servers and their subprocesses, so two
# of them share two cores well. Each worker starts its own servers.
.venv/bin/python -m pytest -n "${JANITOR_TEST_WORKERS:-2}" "$@"
