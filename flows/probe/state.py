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
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
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
    """Every rule's state, read once per probe run, written back only when changed.

    The ``janitor-metric-state-`` names are the bundle's: a variable there that is
    unreadable, or that lost its tags, is taken over (overwritten, tagged) rather
    than allowed to stop every probe run.
    """

    def __init__(
        self, client: PrefectClient, states: dict[str, RuleState], existing: dict[str, bool]
    ) -> None:
        self._client = client
        self._states = states
        self._existing = existing
        """Every state variable on the server, and whether it carries the ownership tag."""
        self.writes = 0
        self.problems: list[str] = []

    @classmethod
    async def load(cls, client: PrefectClient) -> StateStore:
        states: dict[str, RuleState] = {}
        existing: dict[str, bool] = {}
        for raw in await api.filter_variables(client, STATE_VARIABLE_PREFIX):
            existing[raw["name"]] = OWNER_TAG in (raw.get("tags") or [])
            try:
                states[raw["name"]] = RuleState.model_validate(raw["value"])
            except ValidationError:
                continue  # unreadable: the rule starts a fresh episode, as after an edit
        return cls(client, states, existing)

    def get(self, rule: Rule) -> RuleState | None:
        return self._states.get(rule.state_variable)

    async def put(self, rule: Rule, state: RuleState) -> None:
        """Save ``state``; raises when the server refuses, so nothing is announced unsaved."""
        name = rule.state_variable
        if self._states.get(name) == state and self._existing.get(name):
            return
        if name not in self._existing and state == RuleState(fingerprint=state.fingerprint):
            return  # nothing to remember yet: no breach has begun
        value = state.model_dump(mode="json")
        tags = [OWNER_TAG, STATE_TAG]
        if name in self._existing:
            await self._client.update_variable(VariableUpdate(name=name, value=value, tags=tags))
        else:
            try:
                await self._client.create_variable(
                    VariableCreate(name=name, value=value, tags=tags)
                )
            except ObjectAlreadyExists:  # another probe run wrote it first: take the latest
                await self._client.update_variable(
                    VariableUpdate(name=name, value=value, tags=tags)
                )
        self._states[name] = state
        self._existing[name] = True
        self.writes += 1

    async def forget_others(self, rules: list[Rule]) -> list[str]:
        """Delete the states of rules no longer published; their names."""
        keep = {rule.state_variable for rule in rules}
        gone = [name for name, owned in self._existing.items() if owned and name not in keep]
        for name in gone:
            with suppress(ObjectNotFound):  # gone already is as good
                await self._client.delete_variable_by_name(name)
            self._states.pop(name, None)
            del self._existing[name]
            self.writes += 1
        return gone
