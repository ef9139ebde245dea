"""Reading the read models: always inside a transaction that sets the caller's tenant (row-level
security shows nothing else) and holds the projection's advisory lock in shared mode. Worker
batches and a rebuild's swap take that lock exclusively, so a read sees neither a batch half
applied nor a table swapped under it, and a reply's ``position`` matches the rows it shows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from psycopg import Cursor, sql

from booking.errors import ReadModelBehind
from booking.store import APP_NAME, EVENTS_TABLE, SchedulingApp
from projections.base import Projection
from projections.worker import lock_key

WAIT_SECONDS = 2.0


@contextmanager
def tenant_snapshot(
    store: SchedulingApp, tenant_id: str, projection: Projection
) -> Iterator[Cursor[Any]]:
    datastore = store.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as curs:
        # READ COMMITTED on purpose: a snapshot taken before a swap commits would read the
        # swapped-in table as of before its last rows; the lock makes each statement consistent
        curs.execute("SET TRANSACTION READ ONLY")
        curs.execute("SELECT pg_advisory_xact_lock_shared(%s)", (lock_key(projection),))
        curs.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))
        yield curs


def position_in(curs: Cursor[Any], projection: Projection) -> int:
    curs.execute(
        sql.SQL("SELECT notification_id FROM {} WHERE application_name = %s").format(
            sql.Identifier(projection.tracking_table)
        ),
        (APP_NAME,),
    )
    row = curs.fetchone()
    return int(row["notification_id"]) if row else 0


def position(store: SchedulingApp, projection: Projection) -> int:
    datastore = store.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as curs:
        return position_in(curs, projection)


def await_position(
    store: SchedulingApp,
    projection: Projection,
    min_position: int | None,
    timeout: float = WAIT_SECONDS,
) -> None:
    """Return once ``projection`` has applied ``min_position``; else ReadModelBehind (503)."""
    if not min_position:
        return
    deadline = time.monotonic() + timeout
    delay = 0.01
    while position(store, projection) < min_position:
        if time.monotonic() >= deadline:
            raise ReadModelBehind(
                f"the {projection.name} view has not yet applied position {min_position}; "
                "retry shortly"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def lag(
    store: SchedulingApp, projection: Projection, now: datetime | None = None
) -> dict[str, Any]:
    """How far ``projection`` is behind the log: events not yet applied and the age of the oldest."""
    return lag_after(store, position(store, projection), now)


def lag_after(store: SchedulingApp, applied: int, now: datetime | None = None) -> dict[str, Any]:
    """How far a reader that has handled the log up to ``applied`` is behind it."""
    datastore = store.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as curs:
        curs.execute(
            f"SELECT count(*) AS behind, min(notification_id) AS next FROM {EVENTS_TABLE}"
            " WHERE notification_id > %s",
            (applied,),
        )
        row = curs.fetchone()
    behind, seconds = int(row["behind"]), 0.0
    if behind:
        (first,) = store.recorder.select_notifications(start=row["next"], limit=1)
        recorded = store.mapper.to_domain_event(first).timestamp  # type: ignore[attr-defined]
        seconds = max(0.0, ((now or datetime.now(UTC)) - recorded).total_seconds())
    return {"position": applied, "lag_events": behind, "lag_seconds": round(seconds, 3)}
