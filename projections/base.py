"""What a read model is: tables it owns (with tenant_id and row-level security), the event topics it
reads, and how one event changes its rows. The worker applies events in log order, each batch in
one transaction together with the projection's tracking row, so every event is applied once.

A projection may also say how a batch of one tenant's events changes its rows at once (a
``Writer``: rows folded in memory, then a statement per table instead of one per event); it must
leave exactly the rows its handlers leave one event at a time (tests compare them). Without one,
the batch goes through the handlers.

Handlers are built for a set of physical table names, so a rebuild can fill fresh tables
(``<table>__next``) with the same code while the live ones keep serving."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cached_property, lru_cache
from typing import Any, Protocol
from uuid import UUID

from psycopg import Cursor

Apply = Callable[[Cursor[Any], Any, int], None]
Names = Callable[[str], str]
# a decoded event: its log position, its topic and the event (None when nobody reads its topic)
Event = tuple[int, str, Any]
# applies one tenant's events, in log order, with that tenant already set for row-level security
Writer = Callable[[Cursor[Any], str, list[Event]], None]
REBUILD_SUFFIX = "__next"


@dataclass(frozen=True)
class Table:
    name: str
    # column definitions and constraints; every table gets ``tenant_id text NOT NULL`` first
    columns: str
    indexes: tuple[str, ...] = ()


class Bulk(Protocol):
    """A rebuild's fast path: fold events in memory, write rows in bulk. It must produce exactly
    the rows the handlers make one event at a time (the rebuild test compares them)."""

    def feed(self, events: list[tuple[int, str, Any]]) -> None: ...
    def flush(self, curs: Cursor[Any]) -> None: ...
    def finish(self, curs: Cursor[Any]) -> None: ...


def insert_rows(
    curs: Cursor[Any], table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Insert rows (tenant_id first) tenant by tenant, each under its own RLS setting."""
    by_tenant: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_tenant.setdefault(row[0], []).append(row)
    marks = ", ".join(["%s"] * len(columns))
    for tenant, tenant_rows in by_tenant.items():
        curs.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant,))
        curs.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", tenant_rows
        )


Columns = tuple[tuple[str, str], ...]  # (name, SQL type) pairs


def _plain(value: Any) -> Any:
    """A value JSON cannot hold, as text PostgreSQL reads back to the same value."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"no JSON form for {type(value).__name__}")


_rows_json = json.JSONEncoder(default=_plain, ensure_ascii=False, check_circular=False).encode


def _typed(columns: Columns) -> str:
    """The columns of one row of a JSON array of arrays, each cast to its SQL type."""
    return ", ".join(f"(r->>{i})::{kind} AS {name}" for i, (name, kind) in enumerate(columns))


@lru_cache(maxsize=256)
def _insert_statement(table: str, columns: Columns) -> str:
    names = ", ".join(name for name, _ in columns)
    return (
        f"INSERT INTO {table} (tenant_id, {names})"
        f" SELECT %s, {_typed(columns)} FROM json_array_elements(%s::json) AS r"
    )


@lru_cache(maxsize=256)
def _update_statement(table: str, key: tuple[str, str], columns: Columns) -> str:
    sets = ", ".join(f"{name} = v.{name}" for name, _ in columns)
    return (
        f"UPDATE {table} AS t SET {sets}"
        f" FROM (SELECT {_typed((key, *columns))} FROM json_array_elements(%s::json) AS r) AS v"
        f" WHERE t.{key[0]} = v.{key[0]}"
    )


def insert_tenant_rows(
    curs: Cursor[Any], table: str, tenant: str, columns: Columns, rows: list[tuple[Any, ...]]
) -> None:
    """Insert one tenant's rows (without tenant_id; the tenant is set) in one statement.

    The rows go as one JSON array of arrays, cast to the columns' types in SQL: one parameter
    to adapt instead of one per value, and the same statement (and plan) for any count.
    """
    if rows:
        curs.execute(_insert_statement(table, columns), (tenant, _rows_json(rows)))


def update_tenant_rows(
    curs: Cursor[Any],
    table: str,
    key: tuple[str, str],
    columns: Columns,
    rows: list[tuple[Any, ...]],
) -> None:
    """Set ``columns`` of one tenant's rows (the tenant is set) in one statement; each row is its
    key then its values, and each key appears once."""
    if rows:
        curs.execute(_update_statement(table, key, columns), (_rows_json(rows),))


@dataclass(frozen=True)
class Projection:
    name: str
    tables: tuple[Table, ...]
    make_handlers: Callable[[Names], dict[str, Apply]]
    make_bulk: Callable[[Names], Bulk] | None = None
    suffix: str = ""
    make_writer: Callable[[Names], Writer] | None = None

    def physical(self, table: str) -> str:
        return table + self.suffix

    @cached_property
    def handlers(self) -> dict[str, Apply]:
        return self.make_handlers(self.physical)

    @cached_property
    def topics(self) -> frozenset[str]:
        return frozenset(self.handlers)

    @property
    def tracking_table(self) -> str:
        return f"{self.name}_tracking{self.suffix}"

    def for_rebuild(self) -> Projection:
        return Projection(
            self.name,
            self.tables,
            self.make_handlers,
            self.make_bulk,
            REBUILD_SUFFIX,
            self.make_writer,
        )

    def bulk(self) -> Bulk | None:
        return self.make_bulk(self.physical) if self.make_bulk else None

    def apply(self, curs: Cursor[Any], topic: str, event: Any, position: int) -> None:
        handler = self.handlers.get(topic)
        if handler is not None:
            handler(curs, event, position)

    def apply_each(self, curs: Cursor[Any], tenant: str, events: list[Event]) -> None:
        """One tenant's events through the handlers, one event at a time (the reference)."""
        for position, topic, event in events:
            self.apply(curs, topic, event, position)

    @cached_property
    def writer(self) -> Writer:
        """How a batch of one tenant's events is applied: the projection's writer, if any."""
        return self.make_writer(self.physical) if self.make_writer else self.apply_each
