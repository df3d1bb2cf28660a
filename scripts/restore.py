"""Put the rows a cleanup archived back into the Prefect server's database.

    python scripts/restore.py --list                        the archives in the default folder
    python scripts/restore.py ARCHIVE --dry-run             what a restore would put back
    python scripts/restore.py ARCHIVE                       put everything back
    python scripts/restore.py ARCHIVE --target flow_runs --run RUN_ID

ARCHIVE is an archive's folder (``.../janitor/archive/20261205T013000Z-1a2b3c4d``),
or its name with --folder or --block (``remote-file-system/cleanup-archive``).
Rows go back through Prefect's own tables, as they were, every column; a row
that exists is never overwritten, so running it twice restores nothing twice.
It writes the server's database directly: PREFECT_SERVER_DATABASE_CONNECTION_URL
(or --database-url) must name it. A restore is announced as the event
janitor.archive.restored (Slack, through the notify-restored automation).
Exit codes: 0 restored (or listed), 1 refused (schema, unknown archive or target),
4 the database or server failed, 5 not set up (no database URL, no block).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from uuid import UUID

from rich.console import Console

from flows.archive import Folder, Store, open_store
from flows.archive.prune import indexes
from flows.archive.restore import TARGETS, RestoreReport, restore
from flows.cleanup.archiving import default_folder
from flows.database import Database
from flows.errors import RestoreRefused
from flows.events import ArchiveStep, announce
from triggers.errors import ExitCode, JanitorError
from triggers.sync.report import print_error

PROGRESS_SECONDS = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="restore.py",
        description="Restore rows a database cleanup archived.",
        epilog="exit codes: 0 restored or listed, 1 refused, 4 database error, 5 not set up",
    )
    parser.add_argument("archive", nargs="?", help="the archive's folder, or its name")
    parser.add_argument("--list", action="store_true", help="list the archives and exit")
    parser.add_argument("--folder", help="the folder holding archives (default: PREFECT_HOME's)")
    parser.add_argument("--block", help="a filesystem block holding archives, block-type/name")
    parser.add_argument(
        "--target", action="append", choices=TARGETS, help="restore only this target (repeat)"
    )
    parser.add_argument(
        "--run", action="append", type=UUID, help="restore only this flow run (repeat)"
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be restored")
    parser.add_argument("--database-url", help="override PREFECT_SERVER_DATABASE_CONNECTION_URL")
    return parser.parse_args(argv)


async def _where(args: argparse.Namespace) -> tuple[Store, str]:
    """The store and the archive's name in it."""
    if args.block or args.folder:
        return await open_store(args.folder, args.block), (args.archive or "")
    if args.archive and (os.sep in args.archive or Path(args.archive).is_dir()):
        path = Path(args.archive).expanduser().resolve()
        return Folder(path.parent), path.name
    return Folder(default_folder()), (args.archive or "")


def _table(console: Console, report: RestoreReport) -> None:
    verb = "would restore" if report.dry_run else "restored"
    tables = sorted({*report.restored, *report.present, *report.skipped, *report.cleared})
    console.print(f"{'table':<22}{verb:>16}{'already there':>16}{'skipped':>10}{'cleared':>10}")
    for table in tables:
        console.print(
            f"{table:<22}{report.restored.get(table, 0):>16,}{report.present.get(table, 0):>16,}"
            f"{report.skipped.get(table, 0):>10,}{report.cleared.get(table, 0):>10,}"
        )
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    console.print(
        f"{verb} {report.total:,} rows from {report.archive} in {report.duration_seconds:.1f} s",
        markup=False,
    )


async def run(args: argparse.Namespace, console: Console) -> int:
    store, name = await _where(args)
    if args.list or not name:
        found = await indexes(store)
        if not found:
            console.print(f"no archives in {store.where}", markup=False)
        for index in found:
            state = "" if index.complete else "  (stopped part-way)"
            console.print(
                f"{index.name}  {index.made_at:%Y-%m-%d %H:%M} UTC  {index.rows:,} rows  "
                f"manifest {index.manifest_hash}  {', '.join(index.targets)}{state}",
                markup=False,
            )
        return ExitCode.OK
    database = Database.configured(args.database_url)

    last = [time.monotonic()]

    def progress(report: RestoreReport, done: int, files: int) -> None:
        if done < files and time.monotonic() - last[0] < PROGRESS_SECONDS:
            return
        last[0] = time.monotonic()
        console.print(
            f"  {done}/{files} batch files: {report.total:,} rows back, "
            f"{sum(report.present.values()):,} already there",
            markup=False,
        )

    try:
        report = await restore(
            store,
            name,
            database,
            targets=args.target,
            runs=args.run,
            dry_run=args.dry_run,
            on_progress=progress,
        )
    except RestoreRefused as refused:
        if not args.dry_run:
            await _announce(ArchiveStep.RESTORE_REFUSED, name, {"error": str(refused)}, console)
        raise
    _table(console, report)
    if not args.dry_run:
        payload = {**report.model_dump(mode="json"), "total": report.total, "where": store.where}
        await _announce(ArchiveStep.RESTORED, name, payload, console)
    return ExitCode.OK


async def _announce(step: ArchiveStep, name: str, payload: dict, console: Console) -> None:
    """The event is for Slack; the restore is done (or refused) either way."""
    try:
        await announce(step, name, payload)
    except Exception as exc:
        console.print(f"warning: the event {step.value} was not sent ({exc})", markup=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)
    try:
        return asyncio.run(run(args, console))
    except JanitorError as exc:
        print_error(Console(stderr=True, highlight=False, soft_wrap=True), exc)
        return exc.exit_code
    except (OSError, ConnectionError) as exc:
        console.print(f"error: the database failed ({type(exc).__name__}: {exc})", markup=False)
        return ExitCode.SERVER


if __name__ == "__main__":
    sys.exit(main())
