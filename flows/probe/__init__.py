"""The metric probe: measure what the published rules need, decide, emit, remember.

``measures`` measures each metric of the catalog, ``evaluate`` decides
(pure), ``state`` keeps each rule's breach on the server, ``reader`` reads
the server's database; ``flow`` ties them together.
"""

from flows.probe.evaluate import Decision, RuleState, evaluate
from flows.probe.flow import Measurement, ProbeReport, metric_probe

__all__ = ["Decision", "Measurement", "ProbeReport", "RuleState", "evaluate", "metric_probe"]
