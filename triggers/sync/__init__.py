"""The server side of sync: names to ids, comparison, the plan, applying it, the report.

``sync_automations`` loads a folder, plans against the server (touching only
what carries the ownership tag), and applies, publishing metric rules for the
probe on the way.
"""

from triggers.sync.engine import Mode, Say, SyncOutcome, sync_automations
from triggers.sync.plan import Plan, Step, Verb
from triggers.sync.planner import make_plan

__all__ = ["Mode", "Plan", "Say", "Step", "SyncOutcome", "Verb", "make_plan", "sync_automations"]
