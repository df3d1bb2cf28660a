#!/usr/bin/env bash
# The README's first command: set up .venv on first use (pinned by constraints.txt),
# then start the local stack.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f .venv/.installed ]; then
  echo "setting up .venv (first run only)..."
fi
bash scripts/install.sh
exec .venv/bin/python scripts/stack.py "$@"
