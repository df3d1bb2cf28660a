from typing import Any

from prefect.events.schemas.automations import AutomationCore

from triggers.sync.compare import canonical, diff


def automation(parameters: dict[str, Any], tags: list[str], expect: list[str]) -> AutomationCore:
    return AutomationCore.model_validate(
        {
            "name": "x",
            "tags": tags,
            "trigger": {
                "type": "event",
                "posture": "Reactive",
                "expect": expect,
                "match": {"prefect.resource.id": ["prefect.flow-run.*"]},
            },
            "actions": [
                {
                    "type": "run-deployment",
                    "deployment_id": "5c8ff7c1-b9ef-4a4f-9c0e-3e0c5f8a1c11",
                    "parameters": parameters,
                }
            ],
        }
    )


def test_sets_and_label_forms_are_not_drift() -> None:
    a = automation({}, ["b", "a", "a"], ["y", "x"])
    b = AutomationCore.model_validate(
        {**automation({}, ["a", "b"], ["x", "y"]).model_dump(mode="json")}
        | {
            "trigger": {
                "type": "event",
                "posture": "Reactive",
                "expect": ["x", "y"],
                "match": {"prefect.resource.id": "prefect.flow-run.*"},
            }
        }
    )
    assert diff(canonical(a), canonical(b)) == []


def test_order_inside_parameters_is_a_real_change() -> None:
    a = automation({"tags": ["b", "a"], "match": {"k": ["v"]}}, [], ["x"])
    b = automation({"tags": ["a", "b"], "match": {"k": "v"}}, [], ["x"])
    paths = {change.path for change in diff(canonical(a), canonical(b))}
    assert paths == {
        "actions[0].parameters.tags[0]",
        "actions[0].parameters.tags[1]",
        "actions[0].parameters.match.k",
    }
