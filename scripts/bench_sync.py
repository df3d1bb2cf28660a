"""Benchmark sync against real servers: first apply, and a no-op re-sync, of N automations.

    python scripts/bench_sync.py [--count 100] [--repeat 5]

Prints a table per backend (SQLite always, PostgreSQL when reachable on
127.0.0.1:5432). Target: a no-op re-sync of 100 automations under 1.5 s with
a constant number of read requests and zero writes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from prefect.client.orchestration import PrefectClient
from rich.console import Console
from rich.table import Table

from flows.devstack.server import LocalServer, sqlite_url
from triggers.sync import sync_automations

POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def write_bundle(folder: Path, count: int) -> None:
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "msg.json.j2").write_text(
        '{"text": {{ ("event " ~ event.event) | tojson }}}'
    )
    (folder / "hook.yaml").write_text(
        "kind: block\ntype: webhook\nname: bench-hook\ndata:\n  url: http://127.0.0.1:9/hook\n"
    )
    documents = []
    for i in range(count):
        if i % 3 == 0:
            trigger = (
                "trigger:\n  type: compound\n  require: all\n  within: 1h\n  triggers:\n"
                f"    - expect: bench.{i}.a\n    - expect: [bench.{i}.b, bench.{i}.c]\n"
            )
        else:
            trigger = (
                f"trigger:\n  expect: prefect.flow-run.Failed\n  threshold: {i % 5 + 1}\n"
                "  match: {prefect.resource.id: prefect.flow-run.*}\n  within: 10m\n"
            )
        documents.append(
            f"name: bench-{i:03d}\ntags: [bench]\n{trigger}actions:\n"
            "  - type: run-deployment\n    deployment: bench-flow/bench\n"
            "    parameters: {reason: '{{ event.event }}'}\n"
            "  - type: call-webhook\n    block: webhook/bench-hook\n"
            "    payload: {template: templates/msg.json.j2}\n"
        )
    (folder / "bench.yaml").write_text("---\n".join(documents))


async def measure(server: LocalServer, count: int, repeat: int) -> dict[str, str]:
    async with PrefectClient(server.api_url) as client:
        flow_id = await client.create_flow_from_name("bench-flow")
        await client.create_deployment(flow_id=flow_id, name="bench")
    folder = Path(tempfile.mkdtemp()) / "automations"
    write_bundle(folder, count)
    first = await sync_automations(folder, api_url=server.api_url)
    assert first.error is None, first.error
    noops = [await sync_automations(folder, api_url=server.api_url) for _ in range(repeat)]
    assert all(o.plan.in_sync for o in noops)
    reads = {o.reads for o in noops}
    return {
        "first apply": f"{first.seconds:.2f} s",
        "first: reads / writes": f"{first.reads} / {first.writes}",
        "no-op re-sync (median)": f"{statistics.median(o.seconds for o in noops):.2f} s",
        "no-op re-sync (max)": f"{max(o.seconds for o in noops):.2f} s",
        "no-op: reads / writes": f"{'/'.join(map(str, sorted(reads)))} / "
        f"{max(o.writes for o in noops)}",
    }


async def postgres_database() -> str | None:
    try:
        conn = await asyncpg.connect(f"{POSTGRES}/postgres", timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    name = f"janitor_bench_{uuid.uuid4().hex[:8]}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(f"{POSTGRES}/postgres", timeout=3)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    console = Console()
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as home:
        with LocalServer(Path(home), sqlite_url(Path(home) / "bench.db")) as server:
            results["SQLite"] = asyncio.run(measure(server, args.count, args.repeat))
        database = asyncio.run(postgres_database())
        if database is None:
            console.print("PostgreSQL not reachable on 127.0.0.1:5432: skipped")
        else:
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
            try:
                with LocalServer(Path(home) / "pg", url) as server:
                    results["PostgreSQL"] = asyncio.run(measure(server, args.count, args.repeat))
            finally:
                asyncio.run(drop_database(database))
    table = Table(title=f"sync of {args.count} automations (target: no-op < 1.5 s, 0 writes)")
    table.add_column("measure")
    for backend in results:
        table.add_column(backend, justify="right")
    for row in next(iter(results.values())):
        table.add_row(row, *(results[b][row] for b in results))
    console.print(table)


if __name__ == "__main__":
    main()
