"""The metric trigger spec: units, queries, rule ids, compiling to what the OSS server takes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, cast

import pytest
from prefect.events.schemas.automations import CompoundTrigger, EventTrigger
from prefect.events.schemas.events import ResourceSpecification
from prefect.server.events.schemas.automations import AutomationCore as ServerAutomation

from helpers.servers import problems_for
from triggers.load.bundle import load_bundle
from triggers.metrics import CATALOG
from triggers.metrics.events import FIRING, RESOLVED
from triggers.metrics.rule import Rule
from triggers.units import Unit, human, parse_quantity

SIZE = """\
name: Database is large
trigger:
  type: metric
  metric: database.size_bytes
  operator: ">"
  threshold: {threshold}
  firing_for: 10m
actions: [{{type: do-nothing}}]
actions_on_resolve: [{{type: do-nothing}}]
"""

COMPOUND = """\
name: old runs pile up
trigger:
  type: compound
  require: all
  within: 1h
  triggers:
    - type: metric
      metric: flow_runs.count
      query: {states: [completed, FAILED], older_than: 30d, flows: [etl]}
      threshold: 50k
    - type: metric
      id: log-rows
      metric: database.table_rows
      query: {table: log}
      operator: ">="
      threshold: 2M
      repeat_after: 1h
    - {expect: prefect.flow-run.Failed}
actions: [{type: do-nothing}]
"""


def load(folder: Path, text: str) -> list[Rule]:
    (folder / "a.yaml").write_text(textwrap.dedent(text))
    bundle = load_bundle(folder, environ={})
    return [rule for rule, _ in bundle.rules()]


@pytest.mark.parametrize(
    ("text", "unit", "value"),
    [
        ("2 GiB", Unit.BYTES, 2 * 1024**3),
        ("500MB", Unit.BYTES, 500e6),
        ("50k", Unit.COUNT, 50_000),
        ("2M", Unit.COUNT, 2_000_000),
        ("30d", Unit.SECONDS, 30 * 86400),
        ("1h30m", Unit.SECONDS, 5400),
        ("95%", Unit.PERCENT, 95),
        ("1e3", Unit.COUNT, 1000),
        (12, Unit.BYTES, 12),
    ],
)
def test_thresholds_in_human_units(text: str | int, unit: Unit, value: float) -> None:
    assert parse_quantity(text, unit) == value


@pytest.mark.parametrize(
    ("text", "unit"),
    [("30d", Unit.BYTES), ("2 GiB", Unit.COUNT), ("5%", Unit.SECONDS), ("lots", Unit.COUNT)],
)
def test_a_threshold_in_another_kind_of_unit_is_refused(text: str, unit: Unit) -> None:
    with pytest.raises(ValueError, match="write"):
        parse_quantity(text, unit)


def test_values_read_as_people_write_them() -> None:
    assert human(1.5 * 1024**3, Unit.BYTES) == "1.5 GiB"
    assert human(52000, Unit.COUNT) == "52,000"
    assert human(7500, Unit.SECONDS) == "2h 5m"
    assert human(97.5, Unit.PERCENT) == "97.5%"
    assert human(None, Unit.COUNT) == "no data"


def test_a_metric_trigger_compiles_to_an_event_trigger_the_server_accepts(
    automations_dir: Path,
) -> None:
    (automations_dir / "a.yaml").write_text(SIZE.format(threshold="2 GiB"))
    bundle = load_bundle(automations_dir, environ={})
    main, companion = (d.spec for d in bundle.automations)
    (rule,) = [rule for rule, _ in bundle.rules()]
    assert rule.id == "database-is-large"
    assert rule.threshold == 2 * 1024**3
    assert rule.unit == Unit.BYTES
    assert rule.firing_for_seconds == 600

    trigger = main.trigger.compile()
    assert isinstance(trigger, EventTrigger)
    assert trigger.expect == {FIRING}
    assert isinstance(trigger.match, ResourceSpecification)
    assert trigger.match.model_dump() == {"prefect.resource.id": "janitor.metric.database-is-large"}
    # The OSS server never resolves an event trigger: the resolve actions move
    # to a companion automation on the probe's resolved event.
    assert companion.name == "Database is large (resolved)"
    resolved = companion.trigger.compile()
    assert isinstance(resolved, EventTrigger)
    assert resolved.expect == {RESOLVED}
    no_references = cast(Any, _Ids())
    for spec in (main, companion):
        ServerAutomation.model_validate(spec.compile(no_references).model_dump(mode="json"))
    assert main.compile(no_references).actions_on_resolve == []


def test_metric_triggers_nest_in_compound_triggers(automations_dir: Path) -> None:
    rules = load(automations_dir, COMPOUND)
    assert [r.id for r in rules] == ["old-runs-pile-up--0", "log-rows"]
    count, rows = rules
    assert count.query == {
        "flows": ["etl"],
        "states": ["COMPLETED", "FAILED"],
        "older_than": 2592000.0,
    }
    assert count.operator == ">"
    assert count.threshold == 50_000
    assert rows.threshold == 2_000_000
    assert rows.repeat_after_seconds == 3600
    bundle = load_bundle(automations_dir, environ={})
    compiled = bundle.automations[0].spec.trigger.compile()
    assert isinstance(compiled, CompoundTrigger)
    assert [t.match.model_dump() for t in compiled.triggers[:2]] == [  # type: ignore[union-attr]
        {"prefect.resource.id": "janitor.metric.old-runs-pile-up--0"},
        {"prefect.resource.id": "janitor.metric.log-rows"},
    ]


def test_rule_ids_survive_threshold_edits(automations_dir: Path) -> None:
    before = load(automations_dir, SIZE.format(threshold="1 GiB"))[0]
    after = load(automations_dir, SIZE.format(threshold="3 GiB"))[0]
    assert before.id == after.id
    assert before.fingerprint == after.fingerprint, "a threshold edit keeps the breach state"
    assert before.threshold != after.threshold


def test_windowed_metrics_default_to_one_hour(automations_dir: Path) -> None:
    (rule,) = load(
        automations_dir,
        """\
        name: late
        trigger: {type: metric, metric: flow_runs.lateness, threshold: 5m}
        actions: [{type: do-nothing}]
        """,
    )
    assert rule.range_seconds == 3600
    assert rule.threshold == 300


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (
            "{type: metric, metric: database.size, threshold: 1}",
            "did you mean 'database.size_bytes'",
        ),
        ("{type: metric, metric: database.size_bytes, threshold: 30d}", "is not a bytes quantity"),
        (
            "{type: metric, metric: database.table_rows, threshold: 5}",
            "query.table: Field required",
        ),
        (
            "{type: metric, metric: database.table_rows, query: {table: logs}, threshold: 5}",
            "did you mean 'log'",
        ),
        (
            "{type: metric, metric: flow_runs.count, query: {state: [COMPLETED]}, threshold: 5}",
            "query fields of flow_runs.count",
        ),
        (
            "{type: metric, metric: flow_runs.count, query: {states: [DONE]}, threshold: 5}",
            "query.states.0",
        ),
        (
            "{type: metric, metric: flow_runs.count, range: 1h, threshold: 5}",
            "use query.older_than",
        ),
        ("{type: metric, metric: flow_runs.success_rate, threshold: 120}", "between 0 and 100"),
        ("{type: metric, metric: flow_runs.count, operator: '=', threshold: 5}", "operator"),
        ("{type: metric, metric: flow_runs.count, threshold: 5, repeat_after: 0}", "repeat_after"),
        ("{type: metric, metric: flow_runs.count, threshold: 5, id: Bad_Id}", "id"),
    ],
)
def test_bad_metric_triggers_name_the_file_line_and_fix(
    automations_dir: Path, trigger: str, expected: str
) -> None:
    text = f"name: x\ntrigger: {trigger}\nactions: [{{type: do-nothing}}]\n"
    problems = problems_for(automations_dir, {"bad.yaml": text})
    assert any(p.startswith("bad.yaml:2") and expected in p for p in problems), problems


def test_two_rules_with_one_id_are_refused(automations_dir: Path) -> None:
    rule = "trigger: {type: metric, id: same, metric: flow_runs.count, threshold: 5}\n"
    problems = problems_for(
        automations_dir,
        {
            "a.yaml": f"name: a\n{rule}actions: [{{type: do-nothing}}]\n",
            "b.yaml": f"name: b\n{rule}actions: [{{type: do-nothing}}]\n",
        },
    )
    assert any("metric rule id 'same' is used twice" in p and "b.yaml:2" in p for p in problems)


def test_the_catalog_documents_every_metric() -> None:
    assert set(CATALOG) == {
        "database.size_bytes",
        "database.table_rows",
        "database.table_bytes",
        "database.oldest_row_age",
        "database.rows_older_than",
        "flow_runs.count",
        "task_runs.count",
        "flow_runs.lateness",
        "flow_runs.duration",
        "flow_runs.success_rate",
    }
    for metric in CATALOG.values():
        assert metric.description
        assert metric.unit in Unit


class _Ids:
    """Stand-in ids: these automations name no deployments, blocks or automations."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"unexpected reference to a {name}")
