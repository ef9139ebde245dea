"""The projection worker: applies new events to every read model, in log order, exactly once.

A batch of events is one transaction holding every projection's rows and tracking rows, so a
crash at any point loses nothing and applies nothing twice. Inside it, one statement takes every
projection's advisory lock and the next reads every applied position under them (a rebuild's
swap may have moved one meanwhile); the events are then written tenant by tenant, one
``set_config`` each, every projection's rows in a few multi-row statements, and one statement
moves every tracking row forward (and fails, rolling back, if one would not move forward).

The worker wakes on the event table's NOTIFY and also polls, so a lost NOTIFY only delays it by
the poll interval; a failure is logged and the loop restarts with backoff.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from eventsourcing.persistence import IntegrityError, StoredEvent
from psycopg import Cursor, sql
from psycopg.rows import tuple_row

from booking.store import APP_NAME, EVENTS_TABLE, SchedulingApp
from projections.base import Event, Projection

log = logging.getLogger(__name__)

BATCH = 500
POLL_SECONDS = 1.0
# After a short batch, let events gather before reading again (counted from the batch's start),
# in proportion to the rate they came at: at FULL_RATE events a second (~100 bookings, 5 events
# each) or more, GATHER_SECONDS. Under load a batch then holds the events of many commands, and
# its fixed cost (round trips, locks, positions, commit: most of the worker's CPU) is shared;
# at a trickle each event is applied at once (read-your-writes waits on this lag). A full batch
# (a backlog) is followed at once.
GATHER_SECONDS = 0.1
FULL_RATE = 500.0
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
        full_rate: float = FULL_RATE,
    ) -> None:
        self.store = store
        self.projections = projections
        self.listen_url = listen_url
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.gather_seconds = gather_seconds
        self.full_rate = full_rate
        self.datastore = store.recorder.datastore  # type: ignore[attr-defined]
        self.topics = frozenset().union(*(p.topics for p in projections))
        # the log after a position; the state only of events some projection reads (the
        # others are neither decoded nor sent)
        self._select = (
            sql.SQL(
                "SELECT notification_id, originator_id, originator_version, topic,"
                " CASE WHEN topic IN ({}) THEN state END FROM {}"
                " WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
            )
            .format(
                sql.SQL(", ").join(sql.Literal(t) for t in sorted(self.topics)),
                sql.Identifier(EVENTS_TABLE),
            )
            .as_string(None)
        )
        self.health = Health()
        # where each projection stands as the last batch read it under the locks: the next read
        # starts after the lowest. Only the positions read under the locks decide what is
        # applied, and they come back here, so a view moved elsewhere (a rebuild's swap, a
        # reset) is followed from the next batch on. Read afresh after an idle wake or a failure.
        self._applied: dict[str, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one step ------------------------------------------------------------------------------

    def positions(self) -> dict[str, int]:
        """Every projection's applied position, in one statement."""
        with self.datastore.transaction(commit=False) as curs:
            return read_positions(curs, self.projections)

    def run_once(self) -> int:
        """Apply the next batch of events to every projection; return how many were read."""
        with self.datastore.get_connection() as conn:
            if self._applied is None:
                with conn.transaction():
                    self._applied = read_positions(conn.cursor(), self.projections)
            start = min(self._applied.values())
            rows = (
                conn.cursor(row_factory=tuple_row)
                .execute(self._select, (start, self.batch), prepare=True)
                .fetchall()
            )
            if not rows:
                self._applied = None  # idle: read the positions afresh when events come
                return 0
            decoded = [self._decode(*row) for row in rows]
            try:
                # one transaction for every projection's rows and tracking rows, pipelined:
                # a few round trips and one commit per batch
                with conn.pipeline(), conn.transaction():
                    applied = apply_events(conn.cursor(), self.projections, decoded, start)
            except BaseException:
                self._applied = None
                raise
        self._applied = applied
        self.health.last_applied_at = time.time()
        return len(rows)

    def _decode(
        self, position: int, stream_id: Any, version: int, topic: str, state: bytes | None
    ) -> Event:
        if state is None:
            return position, topic, None
        stored = StoredEvent(
            originator_id=stream_id, originator_version=version, topic=topic, state=bytes(state)
        )
        return position, topic, self.store.mapper.to_domain_event(stored)

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
                    last = time.monotonic()
                    while not self._stop.is_set():
                        began = time.monotonic()
                        read = self.run_once()
                        if read:
                            backoff = 1.0
                            if read < self.batch:
                                wait = gather_window(
                                    read, began - last, self.gather_seconds, self.full_rate
                                )
                                self._stop.wait(wait - (time.monotonic() - began))
                            last = began
                            continue
                        last = began
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


def gather_window(
    read: int, seconds: float, window: float = GATHER_SECONDS, full_rate: float = FULL_RATE
) -> float:
    """How long to let events gather after a short batch of ``read`` events that came in
    ``seconds`` (since the previous read began): ``window`` at ``full_rate`` events a second or
    more, proportionally less below."""
    rate = read / max(seconds, 1e-3)
    return window * min(1.0, rate / full_rate)


def lock_key(projection: Projection) -> int:
    """The advisory lock every batch of ``projection`` takes; a rebuild's swap takes it too."""
    digest = hashlib.sha256(f"projection:{projection.name}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


def lock(curs: Any, projection: Projection) -> None:
    curs.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(projection),))


@lru_cache(maxsize=64)
def _lock_all(projections: tuple[Projection, ...]) -> str:
    """One statement taking every projection's lock, always in the same (key) order."""
    keys = sorted({lock_key(p) for p in projections})
    return "SELECT " + ", ".join(f"pg_advisory_xact_lock({key})" for key in keys)


@lru_cache(maxsize=64)
def _positions_query(projections: tuple[Projection, ...]) -> str:
    return (
        sql.SQL("SELECT {}")
        .format(
            sql.SQL(", ").join(
                sql.SQL(
                    "(SELECT notification_id FROM {} WHERE application_name = %s) AS {}"
                ).format(sql.Identifier(p.tracking_table), sql.Identifier(p.name))
                for p in projections
            )
        )
        .as_string(None)
    )


def read_positions(curs: Cursor[Any], projections: Sequence[Projection]) -> dict[str, int]:
    """Every projection's applied position, in one statement."""
    curs.execute(_positions_query(tuple(projections)), [APP_NAME] * len(projections))
    row = curs.fetchone()
    assert row is not None  # a SELECT without FROM returns one row
    return {p.name: int(row[p.name] or 0) for p in projections}


@lru_cache(maxsize=64)
def _track_statement(projections: tuple[Projection, ...]) -> str:
    ctes, selects = [], []
    for i, projection in enumerate(projections):
        table, step = sql.Identifier(projection.tracking_table), sql.Identifier(f"t{i}")
        ctes.append(
            sql.SQL(
                "{} AS (INSERT INTO {} (application_name, notification_id) VALUES (%s, %s)"
                " ON CONFLICT (application_name) DO UPDATE"
                " SET notification_id = EXCLUDED.notification_id"
                " WHERE {}.notification_id < EXCLUDED.notification_id RETURNING 1)"
            ).format(step, table, table)
        )
        selects.append(
            sql.SQL("(SELECT count(*) FROM {}) AS {}").format(step, sql.Identifier(projection.name))
        )

    return (
        sql.SQL("WITH {} SELECT {}")
        .format(sql.SQL(", ").join(ctes), sql.SQL(", ").join(selects))
        .as_string(None)
    )


def track(curs: Cursor[Any], projections: tuple[Projection, ...], position: int) -> None:
    """Move every projection's tracking row forward to ``position``, in one statement.

    Each row moves as eventsourcing's single-row tracking upsert moves it: only forward. A row
    that would not move raises IntegrityError, and the transaction (rows included) rolls back.
    """
    curs.execute(_track_statement(projections), [APP_NAME, position] * len(projections))
    row = curs.fetchone()
    assert row is not None
    stuck = [p.name for p in projections if row[p.name] != 1]
    if stuck:
        raise IntegrityError(
            f"Failed to record tracking for {APP_NAME} {position}: {', '.join(stuck)}"
        )


def apply_events(
    curs: Cursor[Any], projections: Sequence[Projection], decoded: list[Event], start: int
) -> dict[str, int]:
    """Apply decoded events (the log after ``start``, in order) to ``projections`` in the cursor's
    transaction, with their tracking rows; return each projection's applied position.

    Under the projections' advisory locks the applied positions are read again, so events
    another writer (a rebuild's swap, another worker) applied meanwhile are skipped rather than
    applied twice; a projection found behind ``start`` is left alone (its events between were
    not read) and its next batch starts where it stands.

    Events are written tenant by tenant (row-level security: each tenant's statements run under
    its own ``app.tenant_id``), each tenant's in log order. Tenants' rows are disjoint, so the
    order between tenants changes nothing. Run it in a pipeline (``conn.pipeline()``) to send
    the statements without waiting for each reply.
    """
    # the read runs once the locks are held, with a snapshot of its own (READ COMMITTED), so it
    # sees a swap that committed meanwhile; in a pipeline both go out in one round trip
    curs.execute(_lock_all(tuple(projections)))
    applied = read_positions(curs, projections)
    last = decoded[-1][0]
    behind = tuple(p for p in projections if start <= applied[p.name] < last)
    if not behind:
        return applied
    wanted = [(i, p.topics, applied[p.name]) for i, p in enumerate(behind)]
    by_tenant: dict[str, dict[int, list[Event]]] = {}
    for item in decoded:
        position, topic, event = item
        if event is None:
            continue
        for i, topics, after in wanted:
            if topic in topics and position > after:
                by_tenant.setdefault(event.tenant_id, {}).setdefault(i, []).append(item)
    for tenant, work in by_tenant.items():
        curs.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant,))
        for i, events in work.items():
            behind[i].writer(curs, tenant, events)
    track(curs, behind, last)
    return {**applied, **dict.fromkeys((p.name for p in behind), last)}
