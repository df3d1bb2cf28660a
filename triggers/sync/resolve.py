"""Reading what the server has, and turning declared names into its ids.

Everything sync needs is fetched up front in a constant number of filter
requests (one per kind of object referenced), whatever the number of
automations. All names of a kind are fetched only when one is missing, to
suggest the closest ones in the error.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from triggers.api import Api
from triggers.errors import PathKey, Problem
from triggers.hints import closest
from triggers.load.bundle import Bundle, Declared
from triggers.load.problems import dotted
from triggers.spec.automation import OWNER_TAG, AutomationSpec
from triggers.sync.rules import fetch_rules

PLACEHOLDER_NAMESPACE = uuid.UUID("6f1c1d3e-7a0e-4c5e-9a55-6a616e69746f")


def placeholder(kind: str, name: str) -> UUID:
    """A stable stand-in id for an object sync will create before it is used."""
    return uuid.uuid5(PLACEHOLDER_NAMESPACE, f"{kind}:{name}")


@dataclass
class ServerBlock:
    id: UUID
    data: dict[str, Any]


@dataclass
class ServerState:
    """The part of the server sync looks at."""

    automations: list[dict[str, Any]] = field(default_factory=list)
    deployments: dict[str, UUID] = field(default_factory=dict)
    parameter_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each referenced deployment's parameter schema, by flow-name/deployment-name."""
    blocks: dict[str, ServerBlock] = field(default_factory=dict)
    work_pools: dict[str, UUID] = field(default_factory=dict)
    work_queues: dict[str, UUID] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Published metric rule variables, by variable name."""
    known: dict[str, list[str]] = field(default_factory=dict)
    """Every existing name of a kind, fetched only when a reference missed."""

    def ids(self, kind: str) -> dict[str, UUID]:
        if kind == "block":
            return {name: block.id for name, block in self.blocks.items()}
        if kind == "automation":
            # With duplicate names on the server, prefer the one sync owns.
            ranked = sorted(self.automations, key=lambda a: OWNER_TAG in a.get("tags", []))
            return {a["name"]: UUID(a["id"]) for a in ranked}
        return {
            "deployment": self.deployments,
            "work_pool": self.work_pools,
            "work_queue": self.work_queues,
        }[kind]


def references(bundle: Bundle, only: set[str] | None = None) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = defaultdict(set)
    for declared in bundle.automations:
        if only and declared.spec.name not in only:
            continue
        for _, action in declared.spec.all_actions():
            for kind, name in action.references():
                wanted[kind].add(name)
    return wanted


async def fetch_state(api: Api, bundle: Bundle, only: set[str] | None = None) -> ServerState:
    """One filter request per kind of object the bundle mentions."""
    state = ServerState()
    only = bundle.with_companions(only)
    wanted = references(bundle, only)
    names = sorted({a.spec.name for a in bundle.automations} | wanted.get("automation", set()))
    state.automations = await api.filter(
        "automations",
        {
            "automations": {
                "operator": "or_",
                "name": {"any_": names},
                "tags": {"any_": [OWNER_TAG]},
            },
            "sort": "NAME_ASC",
        },
    )
    if wanted.get("deployment"):
        state.deployments, state.parameter_schemas = await _deployments(api, wanted["deployment"])
    if wanted.get("block") or bundle.blocks:
        state.blocks = await _blocks(
            api, wanted.get("block", set()) | {b.spec.reference for b in bundle.blocks}
        )
    if wanted.get("work_pool"):
        pools = await api.filter(
            "work_pools", {"work_pools": {"name": {"any_": sorted(wanted["work_pool"])}}}
        )
        state.work_pools = {p["name"]: UUID(p["id"]) for p in pools}
    if wanted.get("work_queue"):
        queue_names = sorted({ref.split("/", 1)[1] for ref in wanted["work_queue"]})
        queues = await api.filter("work_queues", {"work_queues": {"name": {"any_": queue_names}}})
        state.work_queues = {
            f"{q.get('work_pool_name')}/{q['name']}": UUID(q["id"]) for q in queues
        }
    state.rules = await fetch_rules(api)
    await _fetch_known_on_miss(api, bundle, state, wanted)
    return state


async def _deployments(
    api: Api, refs: set[str]
) -> tuple[dict[str, UUID], dict[str, dict[str, Any]]]:
    flow_names = sorted({ref.split("/", 1)[0] for ref in refs})
    deployment_names = sorted({ref.split("/", 1)[1] for ref in refs})
    deployments = await api.filter(
        "deployments",
        {
            "flows": {"name": {"any_": flow_names}},
            "deployments": {"name": {"any_": deployment_names}},
        },
    )
    if not deployments:
        return {}, {}
    flow_ids = sorted({d["flow_id"] for d in deployments})
    flows = await api.filter("flows", {"flows": {"id": {"any_": flow_ids}}})
    flow_name = {f["id"]: f["name"] for f in flows}
    named = {f"{flow_name.get(d['flow_id'], '?')}/{d['name']}": d for d in deployments}
    schemas = {
        name: d["parameter_openapi_schema"]
        for name, d in named.items()
        if isinstance(d.get("parameter_openapi_schema"), dict)
    }
    return {name: UUID(d["id"]) for name, d in named.items()}, schemas


async def _blocks(api: Api, refs: set[str]) -> dict[str, ServerBlock]:
    slugs = sorted({ref.split("/", 1)[0] for ref in refs})
    names = sorted({ref.split("/", 1)[1] for ref in refs})
    documents = await api.filter(
        "block_documents",
        {
            "block_types": {"slug": {"any_": slugs}},
            "block_documents": {"name": {"any_": names}, "is_anonymous": {"eq_": False}},
            "include_secrets": True,
        },
    )
    return {
        f"{d['block_type']['slug']}/{d['name']}": ServerBlock(UUID(d["id"]), d.get("data") or {})
        for d in documents
    }


async def _fetch_known_on_miss(
    api: Api, bundle: Bundle, state: ServerState, wanted: dict[str, set[str]]
) -> None:
    declared_blocks = {b.spec.reference for b in bundle.blocks}
    declared_automations = {a.spec.name for a in bundle.automations}
    for kind, refs in wanted.items():
        existing = set(state.ids(kind))
        if kind == "block":
            existing |= declared_blocks
        if kind == "automation":
            existing |= declared_automations
        if refs <= existing:
            continue
        if kind == "deployment":
            flows = await api.filter("flows", {})
            flow_name = {f["id"]: f["name"] for f in flows}
            deployments = await api.filter("deployments", {})
            state.known[kind] = [f"{flow_name.get(d['flow_id'])}/{d['name']}" for d in deployments]
        elif kind == "block":
            documents = await api.filter(
                "block_documents",
                {"block_documents": {"is_anonymous": {"eq_": False}}, "include_secrets": False},
            )
            state.known[kind] = [f"{d['block_type']['slug']}/{d['name']}" for d in documents]
        elif kind == "automation":
            automations = await api.filter("automations", {})
            state.known[kind] = [a["name"] for a in automations]
        elif kind == "work_pool":
            state.known[kind] = [p["name"] for p in await api.filter("work_pools", {})]
        elif kind == "work_queue":
            queues = await api.filter("work_queues", {})
            state.known[kind] = [f"{q.get('work_pool_name')}/{q['name']}" for q in queues]


_KIND_WORDS = {
    "deployment": ("deployment", "prefect deployment ls"),
    "block": ("block", "prefect block ls"),
    "automation": ("automation", "prefect automation ls"),
    "work_pool": ("work pool", "prefect work-pool ls"),
    "work_queue": ("work queue", "prefect work-queue ls"),
}


class ServerResolver:
    """Names to ids for one automation on the server (the spec's ``Resolver``), recording
    unknown names as problems."""

    def __init__(
        self,
        state: ServerState,
        declared: Declared[AutomationSpec],
        problems: list[Problem],
        pending: dict[str, dict[str, UUID]] | None = None,
    ) -> None:
        self._state = state
        self._declared = declared
        self._problems = problems
        self._pending = pending or {}

    def _lookup(self, kind: str, name: str, where: PathKey) -> UUID:
        found = self._state.ids(kind).get(name) or self._pending.get(kind, {}).get(name)
        if found is not None:
            return found
        word, command = _KIND_WORDS[kind]
        candidates = {
            *self._state.known.get(kind, []),
            *self._state.ids(kind),
            *self._pending.get(kind, {}),
        }
        near = closest(name, candidates)
        if near:
            hint = "closest existing: " + ", ".join(near)
        elif candidates:
            hint = f"no close match among {len(candidates)}; see `{command}`"
        else:
            hint = f"none exist yet; create it first (see `{command}`)"
        self._problems.append(
            Problem(
                self._declared.locate(where),
                f"{dotted(where)}: unknown {word} {name!r} on the server",
                hint,
            )
        )
        return placeholder(kind, name)

    def deployment(self, name: str, where: PathKey) -> UUID:
        return self._lookup("deployment", name, where)

    def parameters(self, deployment: str, parameters: dict[str, Any], where: PathKey) -> None:
        """Check a run-deployment action's parameters against the deployment's own schema.

        When the automation runs, the server validates them the same way and refuses
        the run: the cleanup never starts and no message says why. Templated values
        are only known then, so they are left out here.
        """
        from prefect.utilities.schema_tools.validation import validate

        schema = self._state.parameter_schemas.get(deployment)
        if not schema:
            return
        known = {key: value for key, value in parameters.items() if not _templated(value)}
        for error in validate(known, schema, ignore_required=True)[:3]:
            keys = tuple(error.absolute_path)
            field_name = ".".join(str(key) for key in ("parameters", *keys))
            self._problems.append(
                Problem(
                    self._declared.locate((*where, "parameters", *keys)),
                    f"{dotted(where)}.{field_name}: {error.message}",
                    f"deployment {deployment} refuses it, as the server would when the "
                    "automation runs; fix the value, or the ${...} variable it comes from",
                )
            )

    def block(self, name: str, where: PathKey) -> UUID:
        return self._lookup("block", name, where)

    def automation(self, name: str, where: PathKey) -> UUID:
        return self._lookup("automation", name, where)

    def work_pool(self, name: str, where: PathKey) -> UUID:
        return self._lookup("work_pool", name, where)

    def work_queue(self, name: str, where: PathKey) -> UUID:
        return self._lookup("work_queue", name, where)


def _templated(value: Any) -> bool:
    """Whether a parameter holds Jinja, which the server renders only when it runs."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_templated(item) for item in value.values())
    if isinstance(value, list):
        return any(_templated(item) for item in value)
    return False
