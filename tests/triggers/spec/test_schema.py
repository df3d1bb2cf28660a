"""The shipped JSON Schema is current, and the shipped YAML obeys it and loads."""

from __future__ import annotations

import json

import jsonschema
import yaml

from helpers import AUTOMATIONS
from triggers.load.bundle import load_bundle, spec_files
from triggers.spec.schema import spec_schema, spec_schema_text


def test_shipped_schema_is_current() -> None:
    assert (AUTOMATIONS / "schema.json").read_text() == spec_schema_text(), (
        "regenerate with: python scripts/sync.py --schema > automations/schema.json"
    )


def test_shipped_files_validate_against_the_schema_and_carry_the_modeline() -> None:
    validator = jsonschema.Draft202012Validator(spec_schema())
    files = spec_files(AUTOMATIONS)
    assert files
    for file in files:
        text = file.read_text()
        assert "# yaml-language-server: $schema=schema.json" in text, file
        for document in yaml.safe_load_all(text):
            errors = list(validator.iter_errors(document))
            assert not errors, f"{file}: {errors[0].message}"


def test_schema_rejects_what_the_loader_rejects() -> None:
    validator = jsonschema.Draft202012Validator(spec_schema())
    bad = {"name": "x", "trigger": {"expect": ["a"], "expct": 1}, "actions": []}
    assert list(validator.iter_errors(bad))
    assert json.dumps(spec_schema())  # serialisable


def test_shipped_automations_load() -> None:
    bundle = load_bundle(AUTOMATIONS, environ={"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/x"})
    assert {a.spec.name for a in bundle.automations} >= {"janitor-notify-crashed-runs"}
    assert {b.spec.reference for b in bundle.blocks} == {"webhook/janitor-slack"}
