"""The flows' branch of the bundle's error tree (the root is ``triggers.errors``).

What runs on a worker (the cleanup, the probe), what answers people (the
Slack app, ``approve.py``) and the local stack raise these; each carries the
exit code a script ends with (``triggers.errors.ExitCode``).

    JanitorError
    ├── FixableError
    │   ├── CleanupError        a cleanup cannot do what it was asked; nothing unapproved went
    │   │   ├── ScopeError      the config names a flow, deployment or pool the server lacks
    │   │   └── DeletionFailed  deleting stopped part-way (``flows.cleanup.deletion``)
    │   ├── MetricUnavailable   a metric cannot be measured here; its rules wait
    │   └── ArchiveError        an archive cannot be written, read or restored
    │       └── RestoreRefused  an archive that does not fit this server; nothing restored
    ├── Busy                    another run holds the cleanup's (or the probe's) slot
    ├── AnswerRefused           an approval answer that cannot be given; nothing changed
    ├── SlackError
    │   ├── SignatureError      a request not signed by Slack, stale or replayed
    │   ├── RequestRefused      a click the Slack app will not act on, with its HTTP status
    │   └── SlackSetupError     the Slack app's settings are missing or wrong
    └── StackError              the local stack cannot start here
        ├── ServerFailedToStart the local Prefect server exited or did not answer
        └── ServeFailed         serving the deployments failed
"""

from __future__ import annotations

from triggers.errors import ExitCode, FixableError, JanitorError


class CleanupError(FixableError):
    """The database cleanup could not do what it was asked; nothing unapproved was deleted.

    These are setup problems and are never retried.
    """

    exit_code = ExitCode.INVALID


class ScopeError(CleanupError):
    """A flow, deployment or work pool named in the cleanup's config does not exist."""


class MetricUnavailable(FixableError):
    """The metric cannot be measured here; rules on it neither fire nor resolve."""

    def __str__(self) -> str:
        return f"{self.cause} ({self.fix})" if self.fix else self.cause


class ArchiveError(FixableError):
    """An archive cannot be written or read; a deletion that needed it deleted nothing
    unarchived (``flows.archive``)."""

    exit_code = ExitCode.SETUP


class RestoreRefused(ArchiveError):
    """The archive does not fit this server (schema, dialect, a broken file); nothing
    was restored."""

    exit_code = ExitCode.INVALID


class Busy(JanitorError):
    """Another run holds the slot."""


class AnswerRefused(JanitorError):
    """A decision that cannot be given: the run is unknown, not a cleanup, or not waiting.

    Nothing was changed. ``forbidden`` marks a run that is not a cleanup at all,
    which an approver has no business answering (the Slack app says 403).
    """

    exit_code = ExitCode.INVALID

    def __init__(self, reason: str, *, forbidden: bool = False) -> None:
        self.reason = reason
        self.forbidden = forbidden
        super().__init__(reason)


class SlackError(JanitorError):
    """Something the Slack app refuses or cannot do."""


class SignatureError(SlackError):
    """The request is refused; the message is a short reason safe to log and answer."""

    exit_code = ExitCode.INVALID


class RequestRefused(SlackError):
    """A click the app will not act on: an HTTP status and a short reason."""

    exit_code = ExitCode.INVALID

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")


class SlackSetupError(SlackError):
    """The app cannot start as configured; the message names the variable to fix."""

    exit_code = ExitCode.SETUP


class StackError(JanitorError):
    """The stack cannot start here; the message says what to do."""

    exit_code = ExitCode.SETUP


class ServerFailedToStart(StackError):
    """The server exited or did not answer in time; the message holds its log tail."""

    exit_code = ExitCode.SERVER


class ServeFailed(StackError):
    """The serving process exited or its deployments did not appear; holds its log tail."""

    exit_code = ExitCode.SERVER
