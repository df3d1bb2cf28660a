"""The metric probe: measure what the rules need, decide, emit, remember.

Deployed on an interval (every 60 s by default). Each run reads the rules sync
published, measures each distinct metric once, evaluates every rule against
its state on the server, and emits ``janitor.metric.firing`` /
``janitor.metric.resolved`` for ordinary event triggers to match. A metric
that cannot be measured is reported (event and log line) and its rules
neither fire nor resolve; the probe itself does not fail for it. Two probe
runs never evaluate at once: a run that finds another one busy skips.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from prefect import flow, get_client
from prefect.client.orchestration import PrefectClient
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.errors import Busy, MetricUnavailable
from flows.events import NOTIFY_GAP_SECONDS
from flows.lock import exclusive
from flows.probe.evaluate import Decision, evaluate
from flows.probe.measures import MEASURES, Source
from flows.probe.reader import server_database
from flows.probe.state import StateStore, read_rules
from triggers.metrics import CATALOG
from triggers.metrics.events import FIRING, MEASURED, RESOLVED, UNAVAILABLE
from triggers.metrics.rule import Rule
from triggers.units import Unit, human

PROBE_LIMIT = "prefect-janitor-probe"


class Measurement(BaseModel):
    """One metric, measured once in a probe run for every rule that needs it."""

    metric: str = Field(description="The catalog metric.")
    query: dict[str, Any] = Field(default_factory=dict, description="Its filters.")
    range_seconds: float = Field(0.0, description="Look-back window; 0 for snapshots.")
    unit: Unit = Field(description="The unit of value.")
    value: float | None = Field(None, description="None: no data, or unavailable.")
    status: Literal["ok", "no-data", "unavailable"] = Field(description="How it went.")
    reason: str = Field("", description="Why it is unavailable, and the fix.")
    seconds: float = Field(0.0, description="Time the measurement took.")

    @property
    def key(self) -> str:
        if not self.query and not self.range_seconds:
            return self.metric
        digest = hashlib.sha256(f"{sorted(self.query.items())}{self.range_seconds}".encode())
        return f"{self.metric}.{digest.hexdigest()[:8]}"


class ProbeReport(BaseModel):
    outcome: Literal["probed", "skipped"] = Field(description="Skipped: another probe was busy.")
    rules: int = Field(0, description="Rules evaluated.")
    measurements: list[Measurement] = Field(default_factory=list)
    fired: list[str] = Field(default_factory=list, description="Rule ids that emitted firing.")
    resolved: list[str] = Field(default_factory=list, description="Rule ids that resolved.")
    problems: list[str] = Field(default_factory=list, description="Rules that could not be read.")
    state_writes: int = Field(0, description="Variables written for rule states.")
    seconds: float = Field(0.0, description="Wall time of the evaluation.")


@flow(name="metric-probe", log_prints=False, retries=0)
async def metric_probe() -> ProbeReport:
    """Measure, evaluate every published metric rule, emit firing/resolved events."""
    logger = get_run_logger()
    context = FlowRunContext.get()
    run_id = context.flow_run.id if context and context.flow_run else None
    async with get_client() as client:
        try:
            async with exclusive(client, PROBE_LIMIT, flow_run_id=run_id):
                report = await probe(client, run_id)
        except Busy as busy:
            # Two probe runs overlapping is harmless; one that never ends is not, and
            # a slot left behind by a restart is freed by the next run (flows.lock).
            logger.warning("skipped: %s, which is still evaluating", busy)
            return ProbeReport(outcome="skipped", problems=[str(busy)])
    logger.info(
        "%d rules, %d measurements in %.2fs; fired %s, resolved %s",
        report.rules,
        len(report.measurements),
        report.seconds,
        report.fired or "none",
        report.resolved or "none",
    )
    return report


async def probe(
    client: PrefectClient, flow_run_id: UUID | None, now: datetime | None = None
) -> ProbeReport:
    """One evaluation of every published rule (the flow's body, callable from tests)."""
    logger = get_run_logger()
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    rules, problems = await read_rules(client)
    for problem in problems:
        logger.error(problem)
    store = await StateStore.load(client)
    related = _related(flow_run_id)
    source = Source(client=client, now=now)
    measured: dict[tuple[str, str, float], Measurement] = {}
    async with AsyncExitStack() as stack:
        if flow_run_id is not None and any(_reads_database(rule) for rule in rules):
            found = await stack.enter_async_context(server_database(flow_run_id))
            source.database, source.database_problem = found
        for rule in rules:
            if rule.measurement not in measured:
                measured[rule.measurement] = await _measure(source, rule)
    for measurement in measured.values():
        _announce(measurement, now, related)
    report = ProbeReport(
        outcome="probed",
        rules=len(rules),
        measurements=list(measured.values()),
        problems=problems,
    )
    for rule in rules:
        measurement = measured[rule.measurement]
        decision = evaluate(rule, measurement.value, store.get(rule), now)
        try:
            # Saved before it is announced: a state the server refused would make
            # the next run announce the same transition again.
            await store.put(rule, decision.state)
        except Exception as exc:  # one rule's trouble never stops the others
            problem = f"rule {rule.id}: its state could not be saved ({type(exc).__name__}: {exc})"
            logger.error("%s; nothing announced, the next probe run decides again", problem)
            report.problems.append(problem)
            continue
        if decision.emit is not None:
            if report.fired or report.resolved:
                # Each transition posts to Slack; keep the posts apart (see flows/events.py).
                await asyncio.sleep(NOTIFY_GAP_SECONDS)
            _emit_transition(rule, decision, measurement, now, related)
            (report.fired if decision.emit == "firing" else report.resolved).append(rule.id)
            logger.info(
                "%s %s: %s is %s (%s)",
                rule.id,
                decision.emit + (" again" if decision.repeat else ""),
                rule.metric,
                human(measurement.value, rule.unit),
                rule.describe(),
            )
    forgotten = await store.forget_others(rules)
    if forgotten:
        logger.info("forgot the state of rules no longer published: %s", ", ".join(forgotten))
    report.state_writes = store.writes
    report.seconds = time.perf_counter() - started
    return report


async def _measure(source: Source, rule: Rule) -> Measurement:
    logger = get_run_logger()
    metric = CATALOG.get(rule.metric)
    measure = MEASURES.get(rule.metric)
    started = time.perf_counter()
    base: dict[str, Any] = {
        "metric": rule.metric,
        "query": rule.query,
        "range_seconds": rule.range_seconds,
        "unit": rule.unit,
    }
    try:
        if metric is None or measure is None:
            raise MetricUnavailable(
                f"this probe has no metric {rule.metric!r}",
                "deploy the probe from the same prefect-janitor version as sync",
            )
        query = metric.query_model.model_validate(rule.query)
        value = await measure(source, query, rule.window)
    except MetricUnavailable as exc:
        reason = str(exc)
    except Exception as exc:  # a measurement never crashes the probe
        reason = f"{type(exc).__name__}: {exc}"
    else:
        status: Literal["ok", "no-data"] = "ok" if value is not None else "no-data"
        seconds = time.perf_counter() - started
        return Measurement(**base, value=value, status=status, seconds=seconds)
    logger.warning("metric %s is unavailable: %s", rule.metric, reason)
    seconds = time.perf_counter() - started
    return Measurement(**base, status="unavailable", reason=reason, seconds=seconds)


def _reads_database(rule: Rule) -> bool:
    metric = CATALOG.get(rule.metric)
    return metric is not None and metric.reads == "database"


def _related(flow_run_id: UUID | None) -> list[dict[str, str]]:
    if flow_run_id is None:
        return []
    return [
        {
            "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
            "prefect.resource.role": "flow-run",
        }
    ]


def _announce(measurement: Measurement, now: datetime, related: list[dict[str, str]]) -> None:
    unavailable = measurement.status == "unavailable"
    emit_event(
        event=UNAVAILABLE if unavailable else MEASURED,
        resource={
            "prefect.resource.id": f"janitor.measurement.{measurement.key}",
            "prefect.resource.name": measurement.metric,
            "janitor.metric": measurement.metric,
        },
        related=related,
        occurred=now,
        payload={
            "metric": measurement.metric,
            "query": measurement.query,
            "range_seconds": measurement.range_seconds,
            "value": measurement.value,
            "value_text": human(measurement.value, measurement.unit),
            "unit": measurement.unit.value,
            "status": measurement.status,
            "reason": measurement.reason,
        },
    )


def _emit_transition(
    rule: Rule,
    decision: Decision,
    measurement: Measurement,
    now: datetime,
    related: list[dict[str, str]],
) -> None:
    since = decision.since or now
    emit_event(
        event=FIRING if decision.emit == "firing" else RESOLVED,
        resource={
            "prefect.resource.id": rule.resource,
            "prefect.resource.name": rule.automation,
            "janitor.metric": rule.metric,
            "janitor.rule": rule.id,
        },
        related=related,
        occurred=now,
        payload={
            "rule": rule.id,
            "automation": rule.automation,
            "metric": rule.metric,
            "query": rule.query,
            "operator": rule.operator,
            "threshold": rule.threshold,
            "threshold_text": human(rule.threshold, rule.unit),
            "value": measurement.value,
            "value_text": human(measurement.value, rule.unit),
            "unit": rule.unit.value,
            "since": since.isoformat(),
            "breach_seconds": (now - since).total_seconds(),
            "condition": rule.describe(),
            "repeat": decision.repeat,
        },
    )
