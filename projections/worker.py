"""The projection worker: applies new events to every read model, in log order, exactly once.

Each projection's batch is one transaction holding its rows and its tracking row, written with
eventsourcing's forward-only tracking upsert, so a crash at any point loses nothing and applies
nothing twice. The worker wakes on the event table's NOTIFY and also polls, so a lost NOTIFY only
delays it by the poll interval; a failure is logged and the loop restarts with backoff.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from psycopg import sql

from booking.store import APP_NAME, EVENTS_TABLE, SchedulingApp
from projections.base import Projection

log = logging.getLogger(__name__)

BATCH = 500
POLL_SECONDS = 1.0
# After a short batch, wait this long (from the batch's start) before reading again: under a
# steady load a batch then holds the events of several commands instead of one, at a cost of at
# most this much lag. A full batch (a backlog) is followed at once.
GATHER_SECONDS = 0.02
MAX_BACKOFF_SECONDS = 30.0


@dataclass
class Health:
    running: bool = False
    failures: int = 0
    last_error: str | None = None
    last_applied_at: float | None = None


class ProjectionWorker:
    def __init__(
        self,
        store: SchedulingApp,
        projections: tuple[Projection, ...],
        listen_url: str,
        *,
        batch: int = BATCH,
        poll_seconds: float = POLL_SECONDS,
        gather_seconds: float = GATHER_SECONDS,
    ) -> None:
        self.store = store
        self.projections = projections
        self.listen_url = listen_url
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.gather_seconds = gather_seconds
        datastore = store.recorder.datastore  # type: ignore[attr-defined]
        self.datastore = datastore
        self.trackers = {
            p.name: PostgresTrackingRecorder(datastore, tracking_table_name=p.tracking_table)
            for p in projections
        }
        self.topics = frozenset().union(*(p.topics for p in projections))
        self.health = Health()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one step ------------------------------------------------------------------------------

    def positions(self) -> dict[str, int]:
        """Every projection's applied position, in one statement."""
        query = sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(
                sql.SQL(
                    "(SELECT notification_id FROM {} WHERE application_name = %s) AS {}"
                ).format(sql.Identifier(p.tracking_table), sql.Identifier(p.name))
                for p in self.projections
            )
        )
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, [APP_NAME] * len(self.projections))
            row = curs.fetchone()
        assert row is not None  # a SELECT without FROM returns one row
        return {p.name: int(row[p.name] or 0) for p in self.projections}

    def run_once(self) -> int:
        """Apply the next batch of events to every projection; return how many were read."""
        positions = self.positions()
        start = min(positions.values())
        notifications = self.store.recorder.select_notifications(
            start=start, limit=self.batch, inclusive_of_start=False
        )
        if not notifications:
            return 0
        mapper = self.store.mapper
        decoded: list[tuple[int, str, Any]] = [
            (n.id, n.topic, mapper.to_domain_event(n) if n.topic in self.topics else None)
            for n in notifications
        ]
        # one transaction for every projection's rows and tracking rows: one commit per batch
        with self.datastore.transaction(commit=True) as curs:
            for projection in self.projections:
                todo = [d for d in decoded if d[0] > positions[projection.name]]
                if todo:
                    apply_batch(curs, projection, self.trackers[projection.name], todo)
        self.health.last_applied_at = time.time()
        return len(notifications)

    def catch_up(self) -> None:
        while self.run_once():
            pass

    # -- the loop ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="projections", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self.health.running = True
                with psycopg.connect(self.listen_url, autocommit=True) as listener:
                    listener.execute(f"LISTEN {EVENTS_TABLE}")
                    while not self._stop.is_set():
                        began = time.monotonic()
                        read = self.run_once()
                        if read:
                            backoff = 1.0
                            if read < self.batch:
                                self._stop.wait(self.gather_seconds - (time.monotonic() - began))
                            continue
                        # caught up: sleep until a NOTIFY or the poll interval, whichever first
                        for _ in listener.notifies(timeout=self.poll_seconds, stop_after=1):
                            pass
            except Exception as exc:
                self.health.running = False
                self.health.failures += 1
                self.health.last_error = type(exc).__name__
                log.exception("projection worker failed; restarting in %.0f s", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        self.health.running = False


def lock_key(projection: Projection) -> int:
    """The advisory lock every batch of ``projection`` takes; a rebuild's swap takes it too."""
    digest = hashlib.sha256(f"projection:{projection.name}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


def lock(curs: Any, projection: Projection) -> None:
    curs.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(projection),))


def apply_batch(
    curs: Any,
    projection: Projection,
    tracker: PostgresTrackingRecorder,
    todo: list[tuple[int, str, Any]],
) -> None:
    """Apply decoded events to ``projection`` in the cursor's transaction, with its tracking row.

    Under the projection's advisory lock the applied position is read again, so events another
    writer (a rebuild's swap) applied meanwhile are skipped rather than applied twice.
    """
    lock(curs, projection)
    curs.execute(
        sql.SQL("SELECT notification_id FROM {} WHERE application_name = %s").format(
            sql.Identifier(projection.tracking_table)
        ),
        (APP_NAME,),
    )
    row = curs.fetchone()
    applied = int(row["notification_id"]) if row and row["notification_id"] else 0
    todo = [item for item in todo if item[0] > applied]
    if not todo:
        return
    tenant = None
    # pipelined: statements go out without waiting for each reply (a handler that reads syncs)
    with curs.connection.pipeline():
        for position, topic, event in todo:
            if event is None or topic not in projection.topics:
                continue
            if event.tenant_id != tenant:  # row-level security: only the event's tenant
                tenant = event.tenant_id
                curs.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant,))
            projection.apply(curs, topic, event, position)
    tracker._insert_tracking(curs, Tracking(APP_NAME, todo[-1][0]))
