"""Rebuild a read model from the event log into fresh tables, then swap them in.

Readers keep the live tables until the swap, which happens in one transaction: under the
projection's advisory lock (live batches wait) the fresh tables catch up to the end of the log,
the live tables are dropped and the fresh ones renamed in their place, tracking row included. A
reader sees the old view or the new one, never an empty or half-built one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import psycopg
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from psycopg import sql
from psycopg.rows import dict_row

from booking.store import APP_NAME, EVENTS_TABLE, SchedulingApp
from projections.base import Projection
from projections.schema import create_tables, index_name
from projections.worker import apply_events, lock

Progress = Callable[[int, int, float], None]
# larger than the live worker's batches: a rebuild has the whole log to go through
BATCH = 5000


@dataclass
class RebuildResult:
    name: str
    events: int
    seconds: float
    position: int


def _drop(conn: psycopg.Connection[Any], projection: Projection) -> None:
    for table in projection.tables:
        conn.execute(
            sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.Identifier(projection.physical(table.name))
            )
        )
    conn.execute(
        sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(projection.tracking_table))
    )


def _rename(conn: psycopg.Connection[Any], old: str, new: str, kind: str = "TABLE") -> None:
    conn.execute(
        sql.SQL("ALTER " + kind + " {} RENAME TO {}").format(
            sql.Identifier(old), sql.Identifier(new)
        )
    )


def progress_bar(name: str, out: TextIO | None = None) -> Progress:
    """A one-line bar on ``out`` (standard error as it is when the bar draws)."""
    last = [0.0]
    finished = [False]

    def show(done: int, total: int, elapsed: float) -> None:
        now = time.monotonic()
        if finished[0] or (now - last[0] < 0.2 and done < total):
            return
        last[0] = now
        finished[0] = done >= total
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        width = 30
        filled = int(width * done / total) if total else width
        stream = out or sys.stderr
        stream.write(
            f"\r{name:>9} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} events"
            f"  {rate:,.0f} ev/s  {left:,.0f} s left "
        )
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show


class Rebuilder:
    def __init__(self, store: SchedulingApp, admin_url: str, runtime_role: str) -> None:
        self.store = store
        self.admin_url = admin_url
        self.runtime_role = runtime_role

    def _decode(self, notifications: Any) -> list[tuple[int, str, Any]]:
        mapper = self.store.mapper
        return [(n.id, n.topic, mapper.to_domain_event(n)) for n in notifications]

    def rebuild(self, live: Projection, progress: Progress | None = None) -> RebuildResult:
        fresh = live.for_rebuild()
        topics = list(fresh.topics)
        recorder = self.store.recorder
        with psycopg.connect(self.admin_url, autocommit=True, row_factory=dict_row) as conn:
            _drop(conn, fresh)  # leftovers of an interrupted rebuild
            create_tables(conn, fresh, self.runtime_role)
            tracker = PostgresTrackingRecorder(
                self.store.recorder.datastore,  # type: ignore[attr-defined]
                tracking_table_name=fresh.tracking_table,
            )
            total = int(
                conn.execute(
                    f"SELECT count(*) AS n FROM {EVENTS_TABLE} WHERE topic = ANY(%s)", (topics,)
                ).fetchone()["n"]  # type: ignore[index]
            )
            started = time.monotonic()
            done = position = 0
            # 1. replay the log into the fresh tables; the live view keeps serving meanwhile.
            # With a bulk fold, rows are computed in memory and written in bulk; the tracking
            # row is written with the last of them. Otherwise events apply one by one.
            bulk = fresh.bulk()
            while True:
                batch = recorder.select_notifications(
                    start=position, limit=BATCH, topics=topics, inclusive_of_start=False
                )
                if not batch:
                    break
                decoded = self._decode(batch)
                with conn.transaction(), conn.pipeline():
                    if bulk is None:
                        apply_events(conn.cursor(), (fresh,), decoded, position)
                    else:
                        bulk.feed(decoded)
                        bulk.flush(conn.cursor())
                position = batch[-1].id
                done += len(batch)
                if progress:
                    progress(done, max(total, done), time.monotonic() - started)
            if bulk is not None:
                with conn.transaction(), conn.pipeline():
                    curs = conn.cursor()
                    bulk.finish(curs)
                    if position:
                        tracker._insert_tracking(curs, Tracking(APP_NAME, position))
            # 2. swap, under the live view's lock, after the last events
            with conn.transaction():
                curs = conn.cursor()
                lock(curs, live)  # live batches and readers wait from here until the swap commits
                # the end of the log, read first: the table lock of every save makes ids commit
                # in order, so every event up to here is visible and none can appear below it
                end = int(recorder.max_notification_id() or 0)
                while position < end:
                    batch = recorder.select_notifications(
                        start=position,
                        limit=BATCH,
                        stop=end,
                        topics=topics,
                        inclusive_of_start=False,
                    )
                    if not batch:
                        break
                    with conn.pipeline():
                        apply_events(curs, (fresh,), self._decode(batch), position)
                    position = batch[-1].id
                    done += len(batch)
                if end > position:  # events of other topics move the view's position too
                    tracker._insert_tracking(curs, Tracking(APP_NAME, end))
                    position = end
                _drop(conn, live)
                for table in live.tables:
                    new, old = fresh.physical(table.name), live.physical(table.name)
                    _rename(conn, new, old)
                    _rename(conn, f"{new}_pkey", f"{old}_pkey", "INDEX")
                    for i in range(len(table.indexes)):
                        _rename(conn, index_name(new, i), index_name(old, i), "INDEX")
                _rename(conn, fresh.tracking_table, live.tracking_table)
                _rename(
                    conn, f"{fresh.tracking_table}_pkey", f"{live.tracking_table}_pkey", "INDEX"
                )
        if progress:
            progress(done, max(total, done), time.monotonic() - started)
        return RebuildResult(live.name, done, time.monotonic() - started, position)
