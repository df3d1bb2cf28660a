"""Refresh constraints.txt: the newest releases within pyproject.toml's ranges, pinned.

    python3 scripts/lock.py          then: bash scripts/test.sh, and commit both if it passes

Resolves in a fresh virtual environment (never the project's .venv), with the
test tools, so the pins cover everything either README command installs. The
file records exact versions only; it is a pip constraints file, used by
scripts/install.sh for both README commands and CI.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = """\
# The exact versions prefect-janitor's test suite passed with (a pip constraints file).
# Both README commands and CI install with it (scripts/install.sh).
# Refresh: python3 scripts/lock.py, then bash scripts/test.sh; commit both when it passes.
"""


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="janitor-lock-") as folder:
        venv = Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip", "setuptools"], check=True)
        subprocess.run([*pip, "install", "--quiet", f"{ROOT}[dev]"], check=True)
        frozen = subprocess.run(
            [*pip, "freeze", "--all", "--exclude", "prefect-janitor"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    pins = sorted(
        (line for line in frozen.splitlines() if "==" in line), key=lambda line: line.lower()
    )
    (ROOT / "constraints.txt").write_text(HEADER + "\n".join(pins) + "\n")
    print(f"constraints.txt: {len(pins)} pins; now run bash scripts/test.sh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
