from pathlib import Path

import pytest

from triggers.errors import SpecError
from triggers.load.source import interpolate, read_documents


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "a.yaml"
    path.write_text(text)
    return path


def test_every_value_knows_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntrigger:\n  expect:\n    - a.b\n    - c.d\n---\nname: y\n")
    first, second = list(read_documents(path))
    assert first.locate(("trigger", "expect", 1)).line == 5
    assert first.locate(("trigger", "missing", "deeper")).line == 2
    assert second.locate(("name",)).line == 7


def test_duplicate_keys_are_errors_not_silently_overwritten(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nenabled: true\nname: y\n")
    with pytest.raises(SpecError) as caught:
        list(read_documents(path))
    (problem,) = caught.value.problems
    assert problem.location.line == 3
    assert "duplicate key 'name'" in problem.message


def test_syntax_errors_carry_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntrigger:\n  expect: [a\n  b: c\n")
    with pytest.raises(SpecError) as caught:
        list(read_documents(path))
    assert caught.value.problems[0].location.line in (3, 4)
    assert "YAML syntax error" in caught.value.problems[0].message


def test_interpolation_defaults_escapes_and_missing(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a: ${HOST}:${PORT:-4200}\nb: $${NOT_A_VAR}\nc:\n  - ${MISSING_ONE}\n",
    )
    (document,) = list(read_documents(path))
    problems = interpolate(document, {"HOST": "h"})
    assert document.data["a"] == "h:4200"
    assert document.data["b"] == "${NOT_A_VAR}"
    (problem,) = problems
    assert problem.location.line == 4
    assert "MISSING_ONE is not set" in problem.message
    assert document.data["c"] == ["${MISSING_ONE}"], "never an empty string"
