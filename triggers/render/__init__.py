"""Templates as the Prefect server and Slack will see them.

The server's own sandbox, sample events (shipped, hostile, long), Slack's
Block Kit limits and escaping, and the ``--render`` preview for people.
"""

from triggers.render.check import check_templates
from triggers.render.preview import Rendered, preview

__all__ = ["Rendered", "check_templates", "preview"]
