#!/usr/bin/env bash
# Set up .venv with the exact versions the suite passed with (constraints.txt).
#   bash scripts/install.sh        the bundle (what the local stack needs)
#   bash scripts/install.sh dev    the bundle and the test tools
# Does nothing when .venv already matches constraints.txt and pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
target="."
[ -n "$extras" ] && target=".[${extras}]"
stamp=".venv/.installed"
hash="$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ]; then
  read -r have_hash have_target < "$stamp"
  # A dev install also serves the stack; any other difference installs again.
  if [ "$have_hash" = "$hash" ] && { [ "$have_target" = "$target" ] || [ "$target" = "." ]; }; then
    exit 0
  fi
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# The installer and the build backend are pinned too, and the project is built with the
# pinned setuptools (no build isolation), so nothing outside constraints.txt is fetched.
.venv/bin/python -m pip install --quiet --constraint constraints.txt pip setuptools
.venv/bin/python -m pip install --quiet --quiet --constraint constraints.txt --no-build-isolation -e "$target"
echo "$hash $target" > "$stamp"
