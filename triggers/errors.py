"""The exception tree of the bundle, and the exit code each error ends a script with.

One root, ``JanitorError``, so a caller can catch everything the bundle raises
on purpose, and one branch per phase: problems found in the YAML before
anything is sent (``SpecError``) and problems met while talking to the server
(``SyncError``) live here; the cleanup's, the probe's, the Slack app's and the
local stack's branches live in ``flows.errors``. Every error carries the exit
code a script ends with, so the scripts map errors to codes in one way.
Setup problems are never retried; they carry the fix in their message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import ClassVar

PathKey = tuple[str | int, ...]
"""A place inside a YAML document, as the keys and indexes that lead to it."""


class ExitCode(IntEnum):
    """How the scripts end; the README lists these per script."""

    OK = 0
    INVALID = 1
    """Bad input (declarations, an answer that cannot be given); nothing was written."""
    DRIFT = 2
    """``sync.py --check`` found the server different from the declarations."""
    CONFLICT = 3
    """A declared name belongs to something sync does not own; nothing was written."""
    SERVER = 4
    """The Prefect server (or a process the bundle started) failed or could not be reached."""
    SETUP = 5
    """The program cannot start here: a setting is missing, a port or folder is taken."""


@dataclass(frozen=True, order=True)
class Location:
    """A place in a spec file, as `file:line` for people and editors."""

    file: Path
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)


def shown_path(file: Path, display_root: Path | None) -> Path:
    """``file`` as a person should read it in a ``Location``: relative to ``display_root``
    (the working directory by default) when it lies below it."""
    base = display_root or Path.cwd()
    try:
        return file.resolve().relative_to(base.resolve())
    except ValueError:
        return file


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the declared automations, and what to do about it."""

    location: Location
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class JanitorError(Exception):
    """Root of every error the bundle raises deliberately."""

    exit_code: ClassVar[ExitCode] = ExitCode.SERVER


class FixableError(JanitorError):
    """An error that says what went wrong (``cause``) and what to change (``fix``)."""

    def __init__(self, cause: str, fix: str = "") -> None:
        self.cause = cause
        self.fix = fix
        super().__init__(f"{cause}. {fix}" if fix else cause)


class SpecError(JanitorError):
    """The declared automations are invalid; nothing was written.

    Holds every problem found, not just the first, so one run shows the whole
    list of fixes.
    """

    exit_code = ExitCode.INVALID

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        count = len(self.problems)
        lines = "\n".join(str(problem) for problem in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} found:\n{lines}")


class SyncError(FixableError):
    """Talking to the Prefect server failed."""

    exit_code = ExitCode.SERVER


class ServerUnreachable(SyncError):
    """No Prefect API answered at the configured URL."""


class ServerAuthError(SyncError):
    """The server refused the credentials (401/403)."""


class ServerRejected(SyncError):
    """The server refused a request as invalid (4xx other than auth)."""


class ServerFailed(SyncError):
    """The server answered with an error that retrying did not cure (5xx)."""
