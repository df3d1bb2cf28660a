"""One error tree: every error the bundle raises on purpose is a ``JanitorError`` with an
exit code, and the scripts take codes from the errors, never from numbers of their own."""

from __future__ import annotations

import ast
import inspect
import re

import flows
import triggers
from helpers import ROOT
from triggers.errors import ExitCode, JanitorError


def _exception_classes() -> list[tuple[str, int]]:
    """Error classes by name; a private one (``_BatchFailed``) is a signal inside its
    module that never reaches a caller, so it is not part of the tree."""
    found = []
    for package in ("triggers", "flows"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.ClassDef)
                    and not node.name.startswith("_")
                    and re.search(r"(Error|Exception|Failed|Refused|Unavailable|Busy)$", node.name)
                ):
                    found.append((node.name, node.lineno))
    return found


def test_every_error_class_is_in_the_tree_and_exported() -> None:
    public = {name: getattr(triggers, name) for name in triggers.__all__}
    public |= {name: getattr(flows, name) for name in flows.__all__}
    names = [name for name, _ in _exception_classes()]
    assert "JanitorError" in names
    for name in names:
        assert name in public, f"{name} is not exported by triggers or flows"
        error = public[name]
        assert inspect.isclass(error), name
        assert issubclass(error, JanitorError), name
        assert isinstance(error.exit_code, ExitCode), name


def test_scripts_take_exit_codes_from_the_errors() -> None:
    for path in sorted((ROOT / "scripts").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^EXIT_\w+\s*[,=]", text, re.M), f"{path.name} numbers exit codes"


def test_exit_codes_are_the_documented_ones() -> None:
    assert {code.name: code.value for code in ExitCode} == {
        "OK": 0,
        "INVALID": 1,
        "DRIFT": 2,
        "CONFLICT": 3,
        "SERVER": 4,
        "SETUP": 5,
    }
    assert triggers.SpecError.exit_code == ExitCode.INVALID
    assert triggers.ServerUnreachable.exit_code == ExitCode.SERVER
    assert flows.StackError.exit_code == ExitCode.SETUP
    assert flows.SlackSetupError.exit_code == ExitCode.SETUP
    assert flows.AnswerRefused.exit_code == ExitCode.INVALID
