#!/usr/bin/env bash
# The README's test command: install into .venv (pinned by constraints.txt), lint,
# type-check, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Two workers: most tests wait on Prefect servers and their subprocesses, so two
# of them share two cores well. Each worker starts its own servers.
.venv/bin/python -m pytest -n "${JANITOR_TEST_WORKERS:-2}" "$@"
