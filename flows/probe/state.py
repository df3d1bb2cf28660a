"""Rule states kept on the server, in one Prefect Variable per rule.

On the server, not in the probe's process: a restarted or re-deployed probe,
or a second probe run, sees the same breach history. Written only when it
changes (a breach starts, fires, repeats or ends), so a quiet probe run
writes nothing.
"""

from __future__ import annotations

from contextlib import suppress

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import VariableCreate, VariableUpdate
from prefect.exceptions import ObjectNotFound
from pydantic import ValidationError

from flows.probe.evaluate import RuleState
from triggers import api
from triggers.metrics.rule import RULE_VARIABLE_PREFIX, STATE_VARIABLE_PREFIX, Rule
from triggers.spec.automation import OWNER_TAG

STATE_TAG = "janitor:metric-state"


async def read_rules(client: PrefectClient) -> tuple[list[Rule], list[str]]:
    """The published rules, and one line for each variable that is not a valid rule."""
    rules: list[Rule] = []
    problems: list[str] = []
    for raw in await api.filter_variables(client, RULE_VARIABLE_PREFIX, [OWNER_TAG]):
        try:
            rules.append(Rule.model_validate(raw["value"]))
        except ValidationError as exc:
            problems.append(
                f"variable {raw['name']!r} is not a valid rule ({exc.error_count()} errors); "
                "re-run python scripts/sync.py to publish it again"
            )
    return rules, problems


class StateStore:
    """Every rule's state, read once per probe run, written back only when changed."""

    def __init__(self, client: PrefectClient, states: dict[str, RuleState]) -> None:
        self._client = client
        self._states = states
        self.writes = 0

    @classmethod
    async def load(cls, client: PrefectClient) -> StateStore:
        states: dict[str, RuleState] = {}
        for raw in await api.filter_variables(client, STATE_VARIABLE_PREFIX, [OWNER_TAG]):
            try:
                states[raw["name"]] = RuleState.model_validate(raw["value"])
            except ValidationError:
                continue  # unreadable: the rule starts a fresh episode, as after an edit
        return cls(client, states)

    def get(self, rule: Rule) -> RuleState | None:
        return self._states.get(rule.state_variable)

    async def put(self, rule: Rule, state: RuleState) -> None:
        name = rule.state_variable
        if self._states.get(name) == state:
            return
        if name not in self._states and state == RuleState(fingerprint=state.fingerprint):
            return  # nothing to remember yet: no breach has begun
        value = state.model_dump(mode="json")
        if name in self._states:
            await self._client.update_variable(VariableUpdate(name=name, value=value))
        else:
            await self._client.create_variable(
                VariableCreate(name=name, value=value, tags=[OWNER_TAG, STATE_TAG])
            )
        self._states[name] = state
        self.writes += 1

    async def forget_others(self, rules: list[Rule]) -> list[str]:
        """Delete the states of rules no longer published; their names."""
        keep = {rule.state_variable for rule in rules}
        gone = [name for name in self._states if name not in keep]
        for name in gone:
            with suppress(ObjectNotFound):  # gone already is as good
                await self._client.delete_variable_by_name(name)
            del self._states[name]
            self.writes += 1
        return gone
