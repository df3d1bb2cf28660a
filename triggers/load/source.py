"""Reading spec files: YAML documents with the line of every value.

PyYAML forgets where a value came from once it is constructed, so the files
are composed into nodes and built here by hand, keeping a map from each
value's path (``("trigger", "expect", 0)``) to its line. Errors found later,
by pydantic or by the server resolver, are mapped back to a line through it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from triggers.errors import Location, PathKey, Problem, SpecError

_ENV_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_ESCAPED_DOLLAR = "$${"


@dataclass
class Document:
    """One YAML document: its data, where it came from, and a line per path."""

    data: Any
    file: Path
    lines: dict[PathKey, int] = field(default_factory=dict)
    base: PathKey = ()
    interpolated: set[PathKey] = field(default_factory=set)
    """Paths whose value came from the environment: never echoed in messages."""

    def from_environment(self, path: PathKey) -> bool:
        return (
            any(p[: len(path)] == path or path[: len(p)] == p for p in self.interpolated)
            if path
            else bool(self.interpolated)
        )

    @property
    def location(self) -> Location:
        return self.locate(())

    def locate(self, path: PathKey) -> Location:
        """The line of the deepest part of ``path`` that exists in the file."""
        full = self.base + tuple(path)
        while full and full not in self.lines:
            full = full[:-1]
        return Location(self.file, self.lines.get(full, self.lines.get((), 0)))

    def walk(self, path: PathKey) -> PathKey:
        """Keep the parts of a pydantic error location that name real data.

        Pydantic puts union tags and validator names into ``loc``; dropping the
        parts that do not index into the data gives the path a person wrote.
        """
        node = self.data
        kept: list[str | int] = []
        for index, part in enumerate(path):
            # A tag may also be a field name (the ``metric`` trigger has a
            # ``metric:`` field): a scalar in the middle of a path is a tag.
            last = index == len(path) - 1
            if _indexes(node, part) and (last or isinstance(node[part], Mapping | list)):
                node = node[part]
                kept.append(part)
        return tuple(kept)

    def child(self, key: str | int) -> Document:
        """The sub-document at ``key``, sharing this one's line map."""
        return Document(self.data[key], self.file, self.lines, (*self.base, key), self.interpolated)


def _indexes(node: Any, part: str | int) -> bool:
    if isinstance(node, Mapping):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def read_documents(file: Path, display: Path | None = None) -> Iterator[Document]:
    """Yield each document of a YAML file, raising problems with their lines.

    ``display`` is the path shown in messages (relative to where the user ran
    the command), so the `file:line` text opens in an editor.
    """
    shown = display or file
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(Location(shown), f"cannot read file: {exc}")]) from exc
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            builder = _Builder(loader, shown)
            data = builder.build(node, ())
            yield Document(data, shown, builder.lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise SpecError(
            [Problem(Location(shown, line), f"YAML syntax error: {message}", _yaml_hint(message))]
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError([Problem(Location(shown), f"YAML error: {exc}")]) from exc
    finally:
        loader.dispose()


def _yaml_hint(message: str) -> str:
    if "tab" in message:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in message:
        return "quote values that contain ': ', or fix the indentation"
    if "could not find expected ':'" in message or "expected <block end>" in message:
        return "check the indentation of this line and the one before it"
    return "fix the YAML syntax at this line"


_MAX_NODES = 100_000
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 3x faster


class _Builder:
    """Builds plain data from composed YAML nodes, noting each value's line."""

    def __init__(self, loader: Any, file: Path) -> None:
        self.loader = loader
        self.file = file
        self.lines: dict[PathKey, int] = {}
        self._active: set[int] = set()
        self._count = 0

    def _fail(self, node: yaml.Node, message: str, hint: str) -> SpecError:
        return SpecError([Problem(Location(self.file, node.start_mark.line + 1), message, hint)])

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        self._count += 1
        if id(node) in self._active:
            raise self._fail(node, "recursive YAML alias", "expand the alias by hand")
        if self._count > _MAX_NODES:
            raise self._fail(
                node, f"document larger than {_MAX_NODES} values", "split it into several files"
            )
        if isinstance(node, yaml.SequenceNode):
            return self._guarded(node, lambda: self._sequence(node, path))
        if isinstance(node, yaml.MappingNode):
            return self._guarded(node, lambda: self._mapping(node, path))
        return self.loader.construct_object(node, deep=True)

    def _guarded(self, node: yaml.Node, build: Any) -> Any:
        self._active.add(id(node))
        try:
            return build()
        finally:
            self._active.discard(id(node))

    def _sequence(self, node: yaml.SequenceNode, path: PathKey) -> list[Any]:
        return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        explicit = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
        self.loader.flatten_mapping(node)
        merged = len(node.value) - explicit  # merged pairs come first; explicit ones override
        result: dict[str, Any] = {}
        explicit_keys: set[str] = set()
        for position, (key_node, value_node) in enumerate(node.value):
            key = self.loader.construct_object(key_node, deep=True)
            if isinstance(key_node, yaml.ScalarNode) and not isinstance(key, str):
                key = key_node.value  # `on:` stays "on", not True
            if not isinstance(key, str):
                raise self._fail(key_node, f"unsupported mapping key {key!r}", "use plain strings")
            if position >= merged:
                if key in explicit_keys:
                    raise self._fail(
                        key_node,
                        f"duplicate key {key!r}",
                        "remove one of the two; YAML would silently keep the last",
                    )
                explicit_keys.add(key)
            child = (*path, key)
            result[key] = self.build(value_node, child)
            self.lines[child] = key_node.start_mark.line + 1
        return result


def interpolate(document: Document, environ: Mapping[str, str] | None = None) -> list[Problem]:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string, in place.

    A variable that is not set and has no default is a problem, never an empty
    string: an automation posting to ``""`` fails far from its cause. ``$${``
    writes a literal ``${``.
    """
    env = os.environ if environ is None else environ
    problems: list[Problem] = []

    def substitute(value: Any, path: PathKey) -> Any:
        if isinstance(value, dict):
            return {key: substitute(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [substitute(item, (*path, index)) for index, item in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            name, default = match.group("name"), match.group("default")
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(
                Problem(
                    document.locate(path),
                    f"environment variable {name} is not set",
                    f"export {name}=... or write ${{{name}:-default}}",
                )
            )
            return match.group(0)

        parts = value.split(_ESCAPED_DOLLAR)
        for part in parts:
            for opening in re.finditer(r"\$\{", part):
                if not _ENV_REFERENCE.match(part, opening.start()):
                    problems.append(
                        Problem(
                            document.locate(path),
                            f"malformed variable reference in {value!r}",
                            "write ${NAME} or ${NAME:-default} (letters, digits, _), "
                            "or $${ for a literal ${",
                        )
                    )
                    break
        if _ENV_REFERENCE.search(value):
            document.interpolated.add(path)
        return "${".join(_ENV_REFERENCE.sub(replace, part) for part in parts)

    document.data = substitute(document.data, ())
    return problems
