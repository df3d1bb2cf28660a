"""The architecture holds: one concept per folder, data flowing one way, no circles.

Every import of ``triggers`` and ``flows`` is read from the source (those inside
functions and under ``TYPE_CHECKING`` too: a lazy import is still a dependency),
and checked against the layers below, lowest first. A module may import its own
folder and anything in a lower layer, never a higher one or a neighbour in its
own layer. The deployed flows never reach the local stack or the history
seeding, whatever the path. Raw HTTP to the Prefect API lives in one module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from helpers import ROOT

LAYERS: list[list[str]] = [
    ["triggers.errors"],
    ["triggers.units", "triggers.hints", "triggers.specmodel", "triggers.api"],
    ["triggers.metrics"],
    ["triggers.spec"],
    ["triggers.render"],
    ["triggers.load"],
    ["triggers.sync"],
    ["triggers"],
    ["flows.errors"],
    ["flows.database", "flows.lock", "flows.events"],
    ["flows.archive"],
    ["flows.cleanup", "flows.probe"],
    ["flows.slack"],
    ["flows.serve"],
    ["flows.devstack"],
    ["flows"],
]
"""Lowest first. A unit is a folder (its modules and its ``__init__``) or a module."""

LEAVES = {"flows.history"}
"""Units that import nothing of the bundle but themselves."""

DEPLOYED = ["flows.cleanup.flow", "flows.probe.flow", "flows.serve"]
"""What a worker imports: the deployments' entrypoints and the serving process."""
NEVER_DEPLOYED = ("flows.devstack", "flows.history")

RAW_HTTP = "triggers.api"
"""The one module that builds Prefect API requests by path."""
API_PATH_PREFIXES = (
    "/automations",
    "/block",
    "/deployments",
    "/events",
    "/flow_runs",
    "/flows",
    "/logs",
    "/task_runs",
    "/variables",
    "/work_pools",
    "/work_queues",
)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in ("triggers", "flows"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


@cache
def _tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(encoding="utf-8"))


def _imports(module: str) -> set[str]:
    """The bundle's modules ``module`` imports, anywhere in its body."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            # ``from triggers import api`` imports the module triggers.api.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in ("triggers", "flows")}
    return {name for name in found if name != module}


def _unit(module: str) -> str:
    """The folder (or top-level module) a module belongs to: the longest that matches."""
    units = sorted([*LEAVES, *(u for layer in LAYERS for u in layer)], key=len, reverse=True)
    for unit in units:
        if module == unit or module.startswith(unit + "."):
            return unit
    raise AssertionError(f"{module} is in no layer: add its folder to LAYERS in {__file__}")


def _layer(unit: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if unit in layer)


def test_every_module_belongs_to_a_layer() -> None:
    for module in MODULES:
        _unit(module)


def test_no_module_imports_a_higher_layer_or_a_neighbour() -> None:
    wrong = []
    for module in MODULES:
        unit = _unit(module)
        for target in _imports(module):
            other = _unit(target)
            if other == unit:
                continue
            if unit in LEAVES:
                wrong.append(f"{module} -> {target}: {unit} is a leaf")
            elif other in LEAVES:
                if not unit.startswith("flows.devstack"):
                    wrong.append(f"{module} -> {target}: only the local stack seeds history")
            elif _layer(other) >= _layer(unit):
                wrong.append(f"{module} (layer {_layer(unit)}) -> {target} ({_layer(other)})")
    assert wrong == [], "\n".join(wrong)


def _cycle() -> list[str] | None:
    graph = {module: _imports(module) for module in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_module_imports_in_a_circle() -> None:
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle or [])


def _closure(start: str) -> Iterator[tuple[str, list[str]]]:
    seen = {start}
    todo = [(start, [start])]
    while todo:
        module, path = todo.pop()
        yield module, path
        for target in sorted(_imports(module)):
            if target not in seen:
                seen.add(target)
                todo.append((target, [*path, target]))


@pytest.mark.parametrize("entrypoint", DEPLOYED)
def test_deployed_flows_never_import_the_local_stack_or_the_seeding(entrypoint: str) -> None:
    reached = [
        " -> ".join(path)
        for module, path in _closure(entrypoint)
        if module.startswith(NEVER_DEPLOYED)
    ]
    assert reached == [], "\n".join(reached)


def test_nothing_reaches_into_the_prefect_clients_private_transport() -> None:
    """``PrefectClient._client`` is private; ``triggers.api`` goes through ``request``."""
    found = [
        f"{MODULES[module].relative_to(ROOT)}:{node.lineno}"
        for module in MODULES
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.Attribute)
        and node.attr == "_client"
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]
    assert found == []


def test_prefect_api_paths_are_written_in_one_module() -> None:
    found = []
    for module in MODULES:
        if module == RAW_HTTP:
            continue
        for node in ast.walk(_tree(module)):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if node.value.startswith(API_PATH_PREFIXES):
                found.append(f"{MODULES[module].relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert found == [], "\n".join(found)


def test_the_layer_checks_see_lazy_imports() -> None:
    """A guard for the guard: imports inside functions count (the cleanup loads its
    AI reviewer only when asked, and the rule must still hold for it)."""
    assert "flows.cleanup.reviewer" in _imports("flows.cleanup.flow")
