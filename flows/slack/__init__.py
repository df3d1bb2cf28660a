"""Slack interactivity: the signed Approve / Reject clicks that answer a waiting cleanup.

(Slack *notifications* are automations the server runs: ``automations/notify-*.yaml``.)
"""

from flows.slack.app import SlackAppSettings, create_app

__all__ = ["SlackAppSettings", "create_app"]
