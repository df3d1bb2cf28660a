#!/usr/bin/env bash
# The README's first command: set up .venv on first use, then start the local stack.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import triggers, flows, prefect" 2>/dev/null; then
  echo "setting up .venv (first run only)..."
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e .
fi
exec .venv/bin/python scripts/stack.py "$@"
