"""What a read model is: tables it owns (with tenant_id and row-level security), the event topics it
reads, and how one event changes its rows. The worker applies events in log order, each batch in
one transaction together with the projection's tracking row, so every event is applied once.

Handlers are built for a set of physical table names, so a rebuild can fill fresh tables
(``<table>__next``) with the same code while the live ones keep serving."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from psycopg import Cursor

Apply = Callable[[Cursor[Any], Any, int], None]
Names = Callable[[str], str]
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


@dataclass(frozen=True)
class Projection:
    name: str
    tables: tuple[Table, ...]
    make_handlers: Callable[[Names], dict[str, Apply]]
    make_bulk: Callable[[Names], Bulk] | None = None
    suffix: str = ""

    def physical(self, table: str) -> str:
        return table + self.suffix

    @cached_property
    def handlers(self) -> dict[str, Apply]:
        return self.make_handlers(self.physical)

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self.handlers)

    @property
    def tracking_table(self) -> str:
        return f"{self.name}_tracking{self.suffix}"

    def for_rebuild(self) -> Projection:
        return Projection(
            self.name, self.tables, self.make_handlers, self.make_bulk, REBUILD_SUFFIX
        )

    def bulk(self) -> Bulk | None:
        return self.make_bulk(self.physical) if self.make_bulk else None

    def apply(self, curs: Cursor[Any], topic: str, event: Any, position: int) -> None:
        handler = self.handlers.get(topic)
        if handler is not None:
            handler(curs, event, position)
