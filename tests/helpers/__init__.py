"""Helpers shared by the tests: real servers, running cleanups, Slack's side of a click."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The project folder."""
AUTOMATIONS = ROOT / "automations"
"""The shipped automations."""
FAULT_FIGURES = Path(
    os.environ.get("JANITOR_FAULT_FIGURES", ROOT / ".janitor" / "fault-figures.jsonl")
)
"""Where each fault test writes its row of figures (JSON lines)."""
