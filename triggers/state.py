"""Rule states kept on the server, in one Prefect Variable per rule.

On the server, not in the probe's process: a restarted or re-deployed probe,
or a second probe run, sees the same breach history. Written only when it
changes (a breach starts, fires, repeats or ends), so a quiet probe run
writes nothing.
"""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import PrefectClient
from pydantic import ValidationError

from triggers.automation import OWNER_TAG
from triggers.evaluate import RuleState
from triggers.rules import RULE_VARIABLE_PREFIX, STATE_VARIABLE_PREFIX, Rule

STATE_TAG = "janitor:metric-state"


async def _filter(client: PrefectClient, prefix: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        response = await client._client.post(
            "/variables/filter",
            json={
                "variables": {"name": {"like_": prefix}, "tags": {"all_": [OWNER_TAG]}},
                "sort": "NAME_ASC",
                "limit": 200,
                "offset": len(found),
            },
        )
        response.raise_for_status()
        page = response.json()
        found.extend(page)
        if len(page) < 200:
            return [raw for raw in found if raw["name"].startswith(prefix)]


async def read_rules(client: PrefectClient) -> tuple[list[Rule], list[str]]:
    """The published rules, and one line for each variable that is not a valid rule."""
    rules: list[Rule] = []
    problems: list[str] = []
    for raw in await _filter(client, RULE_VARIABLE_PREFIX):
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
        for raw in await _filter(client, STATE_VARIABLE_PREFIX):
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
            response = await self._client._client.patch(
                f"/variables/name/{name}", json={"value": value}
            )
        else:
            response = await self._client._client.post(
                "/variables/",
                json={"name": name, "value": value, "tags": [OWNER_TAG, STATE_TAG]},
            )
        response.raise_for_status()
        self._states[name] = state
        self.writes += 1

    async def forget_others(self, rules: list[Rule]) -> list[str]:
        """Delete the states of rules no longer published; their names."""
        keep = {rule.state_variable for rule in rules}
        gone = [name for name in self._states if name not in keep]
        for name in gone:
            response = await self._client._client.delete(f"/variables/name/{name}")
            if response.status_code != 404:
                response.raise_for_status()
            del self._states[name]
            self.writes += 1
        return gone
