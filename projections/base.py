"""What a read model is: tables it owns (with tenant_id and row-level security), the event topics it
reads, and how one event changes its rows. The worker applies events in log order, each batch in
one transaction together with the projection's tracking row, so every event is applied once.

Handlers are built for a set of physical table names, so a rebuild can fill fresh tables
(``<table>__next``) with the same code while the live ones keep serving."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

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


@dataclass(frozen=True)
class Projection:
    name: str
    tables: tuple[Table, ...]
    make_handlers: Callable[[Names], dict[str, Apply]]
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
        return Projection(self.name, self.tables, self.make_handlers, REBUILD_SUFFIX)

    def apply(self, curs: Cursor[Any], topic: str, event: Any, position: int) -> None:
        handler = self.handlers.get(topic)
        if handler is not None:
            handler(curs, event, position)
