"""Rows as JSON lines and back: every column, in the types Prefect's models bind.

Archiving must cost a deletion little, so the database itself writes each
row as a line of JSON (``lines``: SQLite's ``json_object``, PostgreSQL's
``row_to_json``), all of a statement's rows joined into one string: no row
becomes a Python object on the way to the archive. A line is
``{"table": ..., "row": {column: value}}``; JSON columns are embedded as
JSON (PostgreSQL) or as the text SQLite stores, a string (the index names
the dialect), timestamps are the database's own text (naive UTC on SQLite, ISO 8601
with an offset on PostgreSQL), intervals the database's text (SQLite) or
seconds (PostgreSQL), UUIDs strings. Reading back (``decoders``), each
column is turned into what its type binds: an aware ``datetime``, a
``timedelta``, an enum member, a ``bool``; JSON stays plain JSON, which
Prefect's own types validate as they bind. So a restored row equals the
archived one in every column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import orjson

Decoder = Callable[[Any], Any]


def decode(line: bytes) -> tuple[str, dict[str, Any]]:
    item = orjson.loads(line)
    return item["table"], item["row"]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(value: Any) -> Any:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _interval(value: Any) -> Any:
    """Seconds (PostgreSQL), or SQLite's storage: a datetime that far past the epoch."""
    if value is None:
        return None
    if isinstance(value, str):
        return _timestamp(value) - EPOCH
    return timedelta(seconds=value)


def _bool(value: Any) -> Any:
    return None if value is None else bool(value)


def _member(enum: type[Enum]) -> Decoder:
    def decode_member(value: Any) -> Any:
        if value is None:
            return None
        return enum[value] if value in enum.__members__ else enum(value)

    return decode_member


def _json_text(value: Any) -> Any:
    return None if value is None else orjson.loads(value)


def decoders(table: Any, dialect: str) -> dict[str, Decoder]:
    """For each column of ``table`` whose archived JSON (written by ``dialect``) is not
    what it binds, how to turn it back; the other columns bind their JSON as it is."""
    import sqlalchemy as sa

    found: dict[str, Decoder] = {}
    for column in table.columns:
        if dialect == "sqlite" and _is_json(column):  # SQLite's stored text, as a string
            found[column.name] = _json_text
            continue
        kind = column.type
        if isinstance(kind, sa.Interval):  # itself a decorator over a timestamp
            found[column.name] = _interval
            continue
        if isinstance(kind, sa.types.TypeDecorator):
            kind = kind.impl if not isinstance(kind.impl, type) else kind.impl()
        if isinstance(kind, sa.Boolean):
            found[column.name] = _bool
        elif isinstance(kind, sa.Enum) and kind.enum_class is not None:
            found[column.name] = _member(kind.enum_class)
        elif isinstance(kind, (sa.DateTime, sa.TIMESTAMP)):
            found[column.name] = _timestamp
    return found


def restored(row: dict[str, Any], table_decoders: Mapping[str, Decoder]) -> dict[str, Any]:
    """The archived ``row`` in the types its table binds."""
    for name, decoder in table_decoders.items():
        if name in row:
            row[name] = decoder(row[name])
    return row


def _is_json(column: Any) -> bool:
    import sqlalchemy as sa
    from prefect.server.utilities.database import JSON, Pydantic

    return isinstance(column.type, (sa.JSON, JSON, Pydantic))


def source(table: Any, condition: Any, dialect: str, *, lock: bool) -> Any:
    """The rows ``condition`` names, as a subquery of the values their JSON holds: on
    PostgreSQL intervals as seconds (its own text for them is not ISO 8601)."""
    import sqlalchemy as sa

    if dialect == "postgresql":
        columns = [
            sa.func.extract("epoch", column).label(column.name)
            if isinstance(column.type, sa.Interval)
            else column
            for column in table.columns
        ]
    else:
        columns = list(table.columns)
    query = sa.select(*columns).where(condition)
    if dialect == "postgresql" and lock:
        query = query.with_for_update(of=table)
    return query.subquery()


def lines(table: Any, rows: Any, dialect: str) -> Any:
    """An aggregate that writes every row of ``rows`` (a ``source``) as a JSON line,
    the lines joined by newlines, in one string."""
    import sqlalchemy as sa

    prefix: Any = sa.literal_column(f"""'{{"table":"{table.name}","row":'""")
    suffix: Any = sa.literal_column("'}'")
    if dialect == "postgresql":
        # row_to_json writes the whole row in one pass (jsonb_build_object, a key at a
        # time, took several times as long); JSON columns are embedded as JSON.
        row = sa.cast(sa.func.row_to_json(rows.table_valued()), sa.Text)
        return sa.func.string_agg(
            prefix.op("||")(row).op("||")(suffix), sa.literal_column("E'\\n'")
        )
    # Names inline, as SQL text: Prefect's own identifiers.
    # JSON columns go as the text SQLite stores, a string: embedding them as JSON
    # (``json(column)``) parses and writes each one again, for nothing a restore needs.
    pairs: list[Any] = []
    for column in table.columns:
        pairs += [sa.literal_column(f"'{column.name}'"), rows.c[column.name]]
    if len(pairs) > 120:  # SQLite's default limit is 127 arguments a function
        raise ValueError(f"{table.name} has too many columns to archive in one object")
    line = prefix.op("||")(sa.func.json_object(*pairs)).op("||")(suffix)
    return sa.func.group_concat(line, sa.literal_column("char(10)"))
