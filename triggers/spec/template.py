"""Jinja text in the spec: inline strings, mapping payloads and template files.

Where a Jinja string goes (a call-webhook payload, a notification's subject or
body) the YAML may hold the text, a mapping sent as JSON, or
``{template: templates/NAME.j2}``. This module reads and inlines template files;
``triggers.render`` renders them as the server will.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Discriminator, Field, PrivateAttr, Tag, WithJsonSchema

from triggers.specmodel import SpecModel

_IMPORT = re.compile(r"""\{%-?\s*from\s+(["'])(?P<name>[^"']+)\1\s+import\s[^%]*?-?%\}""")


class TemplateRef(SpecModel):
    """A Jinja template kept in its own file, relative to the automations folder.

    ``{% from "_slack.j2" import esc %}`` brings in a file of shared macros: the
    server renders each template alone, with no loader, so sync inlines the
    file in place of the statement (which means the same thing to Jinja).
    """

    template: str = Field(
        description="Path of the template relative to the automations folder, "
        "e.g. templates/approval-requested.json.j2",
        pattern=r"^[^/].*$",
    )
    _source: str | None = PrivateAttr(default=None)
    _origins: list[tuple[str, int]] = PrivateAttr(default_factory=list)

    @property
    def loaded(self) -> bool:
        return self._source is not None

    @property
    def source(self) -> str:
        if self._source is None:
            raise RuntimeError(f"template {self.template} was not loaded")
        return self._source

    def load(self, root: Path) -> None:
        """Read the file and inline its macro imports; raises OSError or ValueError."""
        self._source, self._origins = inline(self.template, root)

    def origin(self, line: int) -> tuple[str, int]:
        """The file (relative to the automations folder) and line a source line came from."""
        if 1 <= line <= len(self._origins):
            return self._origins[line - 1]
        return self.template, line


def _inside(root: Path, name: str) -> Path:
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"template {name} is outside {root}")
    return path


def inline(name: str, root: Path) -> tuple[str, list[tuple[str, int]]]:
    """A template's text with each ``{% from "FILE" import ... %}`` replaced by FILE.

    Also returns where each line of the result came from, so an error in the
    inlined text still names the file and line a person should open.
    """
    path = _inside(root, name)
    source = path.read_text(encoding="utf-8")
    pieces: list[tuple[str, str, int]] = []
    position = 0
    for match in _IMPORT.finditer(source):
        pieces.append((source[position : match.start()], name, source.count("\n", 0, position) + 1))
        library = str(Path(name).parent / match["name"])
        try:
            text = _inside(root, library).read_text(encoding="utf-8")
        except OSError as exc:
            line = source.count("\n", 0, match.start()) + 1
            raise ValueError(f"line {line} imports {library}: {exc.strerror or exc}") from exc
        pieces.append((text, library, 1))
        position = match.end()
    pieces.append((source[position:], name, source.count("\n", 0, position) + 1))
    origins: list[tuple[str, int]] = [(name, 1)]
    for text, origin, first in pieces:
        origins += [(origin, first + offset) for offset in range(1, text.count("\n") + 1)]
    return "".join(text for text, _, _ in pieces), origins


def _text_kind(value: Any) -> str:
    # A mapping with a `template` key is always a reference, so a typo in it is
    # an error rather than a literal JSON body.
    if isinstance(value, TemplateRef) or (isinstance(value, dict) and "template" in value):
        return "template"
    return "json" if isinstance(value, dict) else "text"


TemplateText = Annotated[
    Annotated[str, Tag("text")] | Annotated[TemplateRef, Tag("template")],
    Discriminator(
        _text_kind,
        custom_error_type="template_text",
        custom_error_message="expected a Jinja string or {template: templates/NAME.j2}",
    ),
]
"""Where a Jinja string goes, either inline or ``{template: templates/NAME.j2}``."""

Payload = Annotated[
    Annotated[str, Tag("text")]
    | Annotated[TemplateRef, Tag("template")]
    | Annotated[dict[str, Any], Tag("json")],
    Discriminator(
        _text_kind,
        custom_error_type="payload",
        custom_error_message="expected a Jinja string, a mapping, or {template: templates/NAME.j2}",
    ),
    # A {template: ...} mapping is also an object, so the editor schema says anyOf.
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {"template": {"type": "string"}},
                    "required": ["template"],
                    "additionalProperties": False,
                },
                {"type": "object", "not": {"required": ["template"]}},
            ],
            "description": "A Jinja string, a mapping sent as JSON (Jinja allowed in its "
            "strings), or {template: templates/NAME.json.j2}.",
        }
    ),
]
"""A webhook body: text, a mapping sent as JSON, or a template file."""


def text_of(value: TemplateText) -> str:
    return value.source if isinstance(value, TemplateRef) else value


def looks_like_json(source: str, name: str = "") -> bool:
    """Whether a payload is meant as JSON: a ``.json.j2`` file or text starting with { or [."""
    if name.endswith((".json.j2", ".json")):
        return True
    stripped = source.lstrip()
    while stripped.startswith("{#"):
        end = stripped.find("#}")
        stripped = stripped[end + 2 :].lstrip() if end >= 0 else ""
    return stripped.startswith("[") or (stripped.startswith("{") and not stripped.startswith("{%"))


def json_payload_template(mapping: dict[str, Any]) -> str:
    """A mapping payload as a template whose Jinja leaves are JSON-escaped.

    ``{text: "Run {{ name }}"}`` becomes a ``{% set %}`` per templated leaf and
    ``{{ _janitor_0 | tojson }}`` in its place, so a name with a quote still
    renders valid JSON. Mappings without Jinja stay plain JSON.
    """
    leaves: list[str] = []

    def walk(value: Any) -> Any:
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            leaves.append(value)
            return f"__janitor_leaf_{len(leaves) - 1}__"
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    skeleton = json.dumps(walk(mapping), indent=2, ensure_ascii=False)
    if not leaves:
        return skeleton
    prelude = "".join(
        f"{{% set _janitor_{index} %}}{leaf}{{% endset %}}" for index, leaf in enumerate(leaves)
    )
    for index in range(len(leaves)):
        skeleton = skeleton.replace(
            f'"__janitor_leaf_{index}__"', f"{{{{ _janitor_{index} | tojson }}}}"
        )
    return prelude + skeleton
