"""The exception tree of the bundle.

One root, so a caller can catch everything the bundle raises on purpose, and
one branch per phase: problems found in the YAML before anything is sent
(``SpecError``), problems met while talking to the server (``SyncError``) and
problems of a database cleanup's config (``CleanupError``).
Setup problems are never retried; they carry the fix in their message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Location:
    """A place in a spec file, as `file:line` for people and editors."""

    file: Path
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)


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


class SpecError(JanitorError):
    """The declared automations are invalid; nothing was written.

    Holds every problem found, not just the first, so one run shows the whole
    list of fixes.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        count = len(self.problems)
        lines = "\n".join(str(problem) for problem in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} found:\n{lines}")


class SyncError(JanitorError):
    """Talking to the Prefect server failed.

    ``cause`` is one line for people; ``fix`` says what to change.
    """

    def __init__(self, cause: str, fix: str = "") -> None:
        self.cause = cause
        self.fix = fix
        super().__init__(f"{cause}. {fix}" if fix else cause)


class ServerUnreachable(SyncError):
    """No Prefect API answered at the configured URL."""


class ServerAuthError(SyncError):
    """The server refused the credentials (401/403)."""


class ServerRejected(SyncError):
    """The server refused a request as invalid (4xx other than auth)."""


class ServerFailed(SyncError):
    """The server answered with an error that retrying did not cure (5xx)."""


class CleanupError(JanitorError):
    """The database cleanup could not do what it was asked; nothing unapproved was deleted.

    ``fix`` says what to change. These are setup problems and are never retried.
    """

    def __init__(self, cause: str, fix: str = "") -> None:
        self.cause = cause
        self.fix = fix
        super().__init__(f"{cause}. {fix}" if fix else cause)


class ScopeError(CleanupError):
    """A flow, deployment or work pool named in the cleanup's config does not exist."""
