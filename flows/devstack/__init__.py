"""The local stack: a Prefect server on SQLite, the deployments served, Slack printed.

For trying the bundle (``bash scripts/up.sh``, ``--demo``) and for the tests;
never imported by what runs on a worker (a test enforces it).
"""

from flows.devstack.console import SlackConsole
from flows.devstack.served import Served, drop_missed_runs
from flows.devstack.server import LocalServer, sqlite_url
from flows.devstack.stack import Stack

__all__ = ["LocalServer", "Served", "SlackConsole", "Stack", "drop_missed_runs", "sqlite_url"]
