"""The JSON Schema of a spec file, for editors (yaml-language-server) and CI."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from triggers.spec.document import DocumentSpec

SCHEMA_ID = "https://prefect-janitor.invalid/automations/schema.json"


def spec_schema() -> dict[str, Any]:
    """One document: an automation, a block, or ``{automations: [...]}``."""
    document = TypeAdapter(DocumentSpec).json_schema(ref_template="#/$defs/{model}")
    defs = document.pop("$defs", {})
    defs["Document"] = document
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "prefect-janitor automations",
        "description": "One automation (the default kind), a block (kind: block), "
        "or a list under `automations:`. Written for `python scripts/sync.py`.",
        "anyOf": [
            {"$ref": "#/$defs/Document"},
            {
                "type": "object",
                "properties": {
                    "automations": {"type": "array", "items": {"$ref": "#/$defs/Document"}}
                },
                "required": ["automations"],
                "additionalProperties": False,
            },
        ],
        "$defs": defs,
    }


def spec_schema_text() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=True) + "\n"
