"""The relay's place in the event log, kept in PostgreSQL like a projection's tracking row.

The row moves forward only, and only to a position whose message JetStream has stored. The table
has no tenant column (one row per relay, no patient data) and is exempt from row-level security,
like the projections' tracking tables.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from booking.store import APP_NAME, SchedulingApp
from projections.reads import lag_after

TRACKING_TABLE = "nats_relay_tracking"


def create_table(conn: psycopg.Connection[Any], runtime_role: str) -> None:
    """Owner role, at start: the table and the runtime role's grants (idempotent)."""
    table = sql.Identifier(TRACKING_TABLE)
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (application_name text PRIMARY KEY,"
            " notification_id bigint NOT NULL)"
        ).format(table)
    )
    conn.execute(
        sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(
            table, sql.Identifier(runtime_role)
        )
    )


def position(store: SchedulingApp) -> int:
    """The last log position whose message JetStream acknowledged (0 before the first)."""
    with store.recorder.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        curs.execute(
            sql.SQL("SELECT notification_id FROM {} WHERE application_name = %s").format(
                sql.Identifier(TRACKING_TABLE)
            ),
            (APP_NAME,),
        )
        row = curs.fetchone()
    return int(row["notification_id"]) if row else 0


def advance(store: SchedulingApp, to: int) -> None:
    """Move the position forward to ``to``; a lower ``to`` changes nothing."""
    with store.recorder.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
        curs.execute(
            sql.SQL(
                "INSERT INTO {t} AS t (application_name, notification_id) VALUES (%s, %s)"
                " ON CONFLICT (application_name) DO UPDATE"
                " SET notification_id = excluded.notification_id"
                " WHERE t.notification_id < excluded.notification_id"
            ).format(t=sql.Identifier(TRACKING_TABLE)),
            (APP_NAME, to),
        )


def lag(store: SchedulingApp, now: datetime | None = None) -> dict[str, Any]:
    """Events not yet published and the age of the oldest of them (``/ready``)."""
    return lag_after(store, position(store), now)


def lock_key(name: str = "nats") -> int:
    """The session advisory lock the active relay holds: a second relay waits as a standby."""
    digest = hashlib.sha256(f"relay:{name}".encode()).digest()
    return int.from_bytes(digest[:7], "big")
