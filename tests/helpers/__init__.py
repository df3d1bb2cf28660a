"""Helpers shared by the tests: real servers, running cleanups, Slack's side of a click."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The project folder."""
AUTOMATIONS = ROOT / "automations"
"""The shipped automations."""
