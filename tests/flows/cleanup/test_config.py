"""The cleanup's parameter form: safe by construction, clear when wrong, good in the UI."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prefect.utilities.callables import parameter_schema
from pydantic import ValidationError

from flows.cleanup.config import RetentionConfig
from flows.cleanup.flow import database_cleanup
from flows.cleanup.selection import Selection


@pytest.mark.parametrize(
    "state", ["RUNNING", "Scheduled", "pending", "PAUSED", "Late", "CANCELLING"]
)
def test_a_state_that_may_still_change_is_refused_with_the_choices(state: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RetentionConfig(states=["COMPLETED", state])
    message = str(caught.value)
    assert "is not a terminal state" in message
    assert "COMPLETED, FAILED, CANCELLED, CRASHED" in message


def test_states_are_case_insensitive_and_deduplicated() -> None:
    config = RetentionConfig(states=["completed", "Failed", "COMPLETED"])
    assert [state.value for state in config.states] == ["COMPLETED", "FAILED"]


def test_unknown_state_and_bad_names_say_what_to_write() -> None:
    with pytest.raises(ValidationError, match="'DONE' is not a Prefect state type"):
        RetentionConfig(states=["DONE"])
    with pytest.raises(ValidationError, match="must be written 'flow-name/deployment-name'"):
        RetentionConfig(deployments=["nightly"])
    with pytest.raises(ValidationError, match="empty names are not allowed"):
        RetentionConfig(protected_tags=["keep", " "])
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        RetentionConfig(retention_days=-1)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RetentionConfig.model_validate({"retention": 3})


def test_the_selection_refuses_non_terminal_states_whatever_builds_it() -> None:
    with pytest.raises(ValueError, match="only select terminal states"):
        Selection(cutoff=datetime.now(UTC), states=("COMPLETED", "RUNNING"))


def test_the_deployment_form_is_ordered_titled_and_bounded() -> None:
    schema = parameter_schema(database_cleanup).model_dump()
    config = schema["definitions"]["RetentionConfig"]
    fields = list(config["properties"])
    assert fields[:4] == ["retention_days", "states", "flows", "deployments"]
    assert fields.index("approval") < fields.index("approval_timeout_seconds") < fields.index("ai")
    for name, field in config["properties"].items():
        assert field.get("title"), name
        assert field.get("description"), name
    assert config["properties"]["retention_days"]["minimum"] == 0
    assert config["properties"]["approval"]["enum"] == ["human", "ai", "none"]
    assert schema["definitions"]["TerminalState"]["enum"] == [
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "CRASHED",
    ]
