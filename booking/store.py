"""The eventsourcing Application that holds every aggregate, and how it connects to PostgreSQL.

The class is deliberately not named ``Booking``: eventsourcing reads ``<APPNAME>_<KEY>`` from the
process environment before the constructor's env, so a ``Booking`` application would pick up
``BOOKING_CIPHER_KEY`` and friends by itself (and the pycryptodome cipher). Every setting is passed
explicitly instead.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from copy import deepcopy
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    Recording,
    StoredEvent,
)
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow

import booking.aggregates  # noqa: F401 - registers the stored topics before any read
from booking.audit import APPEND_CALL

APP_NAME = "Scheduling"
EVENTS_TABLE = "scheduling_events"
# where some streams stand: the latest stored version of each (a stream with no event: no row)
LATEST_VERSIONS = (
    f"SELECT originator_id, max(originator_version) AS version FROM {EVENTS_TABLE}"
    " WHERE originator_id = ANY(%s) GROUP BY originator_id"
)


# Raises (an integrity violation, as a version conflict does) when a stream moved past the version
# a decision read; created by the owner role with the schema (booking/schema.py).
UNCHANGED_FN = f"""
CREATE OR REPLACE FUNCTION public.booking_require_unchanged(ids uuid[], versions bigint[])
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE moved text;
BEGIN
    SELECT string_agg(w.id::text, ', ') INTO moved
    FROM unnest(ids, versions) AS w(id, version)
    WHERE w.version IS DISTINCT FROM (
        SELECT max(e.originator_version) FROM public.{EVENTS_TABLE} e
        WHERE e.originator_id = w.id
    );
    IF moved IS NOT NULL THEN
        RAISE EXCEPTION 'streams read by this decision moved: %', moved
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
END $$
"""
# the arrays go as text literals: psycopg's list dumpers cost more than the whole statement
REQUIRE_UNCHANGED_CALL = "public.booking_require_unchanged(%s::text::uuid[], %s::text::bigint[])"


def array_literal(values: Iterable[object]) -> str:
    """A PostgreSQL array literal of values whose text needs no quoting (uuids, integers)."""
    return "{" + ",".join(map(str, values)) + "}"


# what is stored at the positions a save wrote to: after a lost answer, whether it committed
STORED_AT = (
    f"SELECT originator_id, originator_version, state, notification_id FROM {EVENTS_TABLE}"
    " WHERE (originator_id, originator_version) IN"
    " (SELECT * FROM unnest(%s::uuid[], %s::bigint[]))"
)
# the library's retry of a save whose connection failed (its @retry on insert_events)
SAVE_ATTEMPTS, RETRY_WAIT_SECONDS = 10, 0.2


class CheckedRecorder(PostgresApplicationRecorder):
    """The library's recorder, writing a save in one round trip, plus one check:
    ``save(..., unchanged={stream_id: version})`` stores nothing when one of those streams has
    moved past the version a decision read.

    One round trip: the library sends the transaction's statements, waits for the INSERT's
    answer, then sends COMMIT; the table lock that orders every save is held across that wait,
    so every other save queues behind a client's round trip and its turn at the GIL. Here BEGIN,
    the lock, the check, NOTIFY, the INSERT and COMMIT go out together in one pipeline: the lock
    is held for the server's own work and the commit's flush, nothing else. A failing statement
    (a version conflict, a moved stream) aborts the rest, COMMIT included; nothing is stored.

    The check: decisions that read an aggregate without writing to it (the utterance gate reads
    the appointments behind a claim and writes only to the call; a booking decided on cached
    setup) would otherwise miss a concurrent change. It runs after the table lock, so no other
    save can commit in between; a moved stream raises IntegrityError, as a version conflict
    does, and the command is decided again from fresh state.

    A save whose connection fails is sent again, as the library does. If the failure came after
    the server ran the COMMIT (the answer was lost), sending it again would collide with its own
    events and report a conflict: the booking made, the caller told it was refused. So every
    retry first looks at the positions the save writes to; when the events there are this
    save's (same ciphertext: each encryption has a fresh nonce), the save is done. A retry that
    collides looks once more: the lost attempt may have been queued for the table lock when we
    first looked, and committed while the retry waited behind it.
    """

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if self.datastore.enable_db_functions:  # store_env pins it off; never lose the check
            raise ValueError("POSTGRES_ENABLE_DB_FUNCTIONS skips the table lock and the check")
        if not stored_events:
            return super().insert_events(stored_events, **kwargs)  # type: ignore[no-any-return]
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                if attempt > 1 and (ids := self._ids_if_stored(stored_events)) is not None:
                    return ids  # the failed attempt had committed
                try:
                    return self._insert_in_one_round_trip(stored_events, **kwargs)
                except IntegrityError:
                    # The failed attempt may have reached the server and still been waiting
                    # for the table lock when we looked; this attempt's LOCK waited for it
                    if attempt > 1 and (ids := self._ids_if_stored(stored_events)) is not None:
                        return ids
                    raise
            except (InterfaceError, OperationalError):  # from a look too: the next one decides
                if attempt == SAVE_ATTEMPTS:
                    raise
                time.sleep(RETRY_WAIT_SECONDS * (1 + 0.1 * (random.random() - 0.5)))
        raise AssertionError("unreachable")

    def _ids_if_stored(self, stored_events: Sequence[StoredEvent]) -> list[int] | None:
        """The notification ids of these very events if a previous attempt stored them."""
        keys = [(e.originator_id, e.originator_version) for e in stored_events]
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(STORED_AT, ([k[0] for k in keys], [k[1] for k in keys]))
            rows = {(r["originator_id"], r["originator_version"]): r for r in curs.fetchall()}
        found = [rows.get(k) for k in keys]
        if all(
            row is not None and bytes(row["state"]) == event.state
            for row, event in zip(found, stored_events, strict=True)
        ):
            return [row["notification_id"] for row in found if row is not None]
        return None  # not stored, or stored by another save: sending it again says which

    def _insert_in_one_round_trip(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        failure: Exception | None = None
        with self.datastore.get_connection() as conn:
            assert conn.autocommit  # the library's pool sets it; BEGIN below relies on it
            try:
                # the pool's connections autocommit: the transaction is spelled out (an implicit
                # one would do on PostgreSQL 18, but 15 refuses LOCK TABLE outside a block)
                with conn.pipeline() as pipeline, conn.cursor() as curs:
                    conn.execute("BEGIN")
                    self._insert_stored_events(curs, stored_events, **kwargs)
                    conn.execute("COMMIT")
                    pipeline.sync()  # the one round trip
                    ids = self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
            except Exception as exc:
                failure = exc
            if failure is not None:
                conn.rollback()  # a failed statement left its transaction open, aborted
                raise failure  # inside get_connection: psycopg errors become the library's
        return ids

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        unchanged: dict[UUID, int] | None = kwargs.get("unchanged")
        audit: tuple[Any, ...] | None = kwargs.get("audit")
        # The check, the audit entry and NOTIFY go as one statement (each statement of the
        # pipeline costs the saving thread a turn at the GIL), after the lock, before the INSERT.
        calls: list[str] = []
        params: list[Any] = []
        if unchanged:
            calls.append(REQUIRE_UNCHANGED_CALL)
            params += (array_literal(unchanged), array_literal(unchanged.values()))
        if audit is not None:
            # The request's audit entry (booking.audit.CommandEntry), under the table lock: a
            # save holding its tenant's chain always holds the table, so the audit writer
            # (chain locks only, never the table) waits at most for one save's own work, never
            # for the queue of saves; a save waits at most for one writer transaction, which
            # runs on the server without a round trip. One chain per save: no wait in a circle.
            calls.append(APPEND_CALL)
            params += audit
        if calls:  # a moved stream fails the statement and the transaction: no entry stays
            calls.append("pg_notify(%s, '')")  # what the library's NOTIFY sends
            params.append(self.channel_name)
            curs.execute("SELECT " + ", ".join(calls), params, prepare=True)
        else:
            self._notify_channel(curs)
        PostgresAggregateRecorder._insert_stored_events(self, curs, stored_events, **kwargs)


@dataclass(frozen=True)
class Versions:
    """The latest version of some streams: read from the event store in one query, or, when
    ``cached``, the versions this process's caches hold, which the store may have moved past.

    A decision on cached versions is optimistic: the streams it writes collide at save time if
    they moved, and the save must check the ones it only read (``Plan.unchanged``).
    """

    asked: frozenset[UUID]
    found: dict[UUID, int]
    cached: bool = False

    def knows(self, stream_id: UUID) -> bool:
        return stream_id in self.asked

    def of(self, stream_id: UUID) -> int | None:
        """The stream's latest version; None when it has no event (the aggregate does not exist)."""
        return self.found.get(stream_id)


class SchedulingApp(Application):  # type: ignore[type-arg]
    name = APP_NAME

    def record(self, aggregates: Iterable[Any], **kwargs: Any) -> list[Recording]:  # type: ignore[type-arg]
        """Store the new events of these aggregates in one transaction, as ``save`` does here.

        ``save`` first sorts what it is given into aggregates and events with a runtime
        ``typing.Protocol`` check per object (about 3% of a booking's CPU), then calls hooks
        that do nothing in this application: snapshotting is off and the cache fast-forwards
        (``open_store`` checks both; saved aggregates are put by ``remember``), ``_notify`` and
        ``notify`` are the library's no-ops. The events, the mapper and the recorder are the same.
        """
        events = [event for aggregate in aggregates for event in aggregate.collect_events()]
        return self.events.put(events, **kwargs)

    def versions(self, stream_ids: Iterable[UUID]) -> Versions:
        """Where each stream stands in the event store now: one statement, one round trip."""
        asked = frozenset(stream_ids)
        with self.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                LATEST_VERSIONS,
                (list(asked),),
                prepare=True,
            ).fetchall()
        return Versions(asked, {row["originator_id"]: row["version"] for row in rows})

    def cached_version(self, stream_id: UUID) -> int | None:
        """The version of the aggregate this process's cache holds; None when it holds none."""
        cache = self.repository.cache
        if cache is None:
            return None
        try:
            aggregate = cache.get(stream_id)
        except KeyError:
            return None
        return None if aggregate is None else int(aggregate.version)

    def get_at(self, stream_id: UUID, version: int) -> Any:
        """The aggregate for a command, known to stand at ``version`` in the event store.

        A copy of the cached aggregate when the cache holds exactly that version (no read needed:
        it is what the store holds); otherwise the repository reads it, fast-forwarding the cache.
        The copy is taken under the repository's fast-forward lock for that id, so no other
        thread is applying events to the cached object meanwhile.
        """
        repository = self.repository
        if repository.cache is not None:
            lock = repository._use_fastforward_lock(stream_id)
            try:
                with lock:
                    try:
                        cached = repository.cache.get(stream_id)
                    except KeyError:
                        cached = None
                    if cached is not None and cached.version == version:
                        return deepcopy(cached)
            finally:
                repository._disuse_fastforward_lock(stream_id)
        return repository.get(stream_id)

    def remember(self, saved: Iterable[Any]) -> None:
        """Put aggregates just saved into the cache, unless it holds a newer version already.

        With fast-forward on, the library leaves the cache at the version it last read, so the
        next command on a day or a patient would read back the event it had just written. The
        caller hands the aggregates over: nothing may touch them after this.
        """
        repository = self.repository
        if repository.cache is None:
            return
        for aggregate in saved:
            lock = repository._use_fastforward_lock(aggregate.id)
            try:
                with lock:
                    try:
                        cached = repository.cache.get(aggregate.id)
                    except KeyError:
                        cached = None
                    if cached is None or cached.version < aggregate.version:
                        repository.cache.put(aggregate.id, aggregate)
            finally:
                repository._disuse_fastforward_lock(aggregate.id)

    def position_of(self, stream_id: UUID, version: int) -> int:
        """The global log position (notification id) of one stored event."""
        with self.recorder.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(
                f"SELECT notification_id FROM {EVENTS_TABLE} "
                "WHERE originator_id = %s AND originator_version = %s",
                (stream_id, version),
            )
            row = curs.fetchone()
        if row is None:
            raise LookupError(f"no stored event {stream_id}:{version}")
        return int(row["notification_id"])


class KeepPreparedDatastore(PostgresDatastore):
    """The library's datastore, its read transactions ended by COMMIT instead of ROLLBACK.

    psycopg forgets every statement a connection has prepared when it sees a ROLLBACK (one may
    have been prepared inside the rolled-back transaction), and the next uses of each statement
    are parsed and planned afresh until it is prepared again. The library's
    ``transaction(commit=False)``, which this project's reads use (views, the audit log; token
    lookups did), ends with ROLLBACK, so in a process that reads and saves on the same pooled
    connections, saves lost their prepared INSERT, lock and check several times a second, with
    the table lock held while the server planned them. A read transaction here is BEGIN READ
    ONLY … COMMIT: the same round trips, nothing it could write, and the statements stay
    prepared. A failure still rolls back. What a reader sets for its transaction
    (``set_config(..., true)``, advisory xact locks) ends at COMMIT as it did at ROLLBACK; a
    session-level ``SET`` made inside one would now outlive it (ROLLBACK undid it), and no
    reader makes one.
    """

    @contextmanager
    def transaction(self, *, commit: bool = False) -> Iterator[Cursor[DictRow]]:
        if commit:
            with super().transaction(commit=True) as curs:
                yield curs
            return
        with self.get_connection() as conn:
            conn.execute("BEGIN READ ONLY")
            try:
                yield conn.cursor()
            except BaseException:
                if not conn.broken:  # else the pool discards it; the first error is the one
                    with suppress(psycopg.Error):
                        conn.rollback()
                raise
            conn.execute("COMMIT")


class UrlFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory, its pool connecting with the whole database URL.

    The library builds its pool from host, port, user, password and dbname alone: without this,
    the URL's other parameters (``sslmode=verify-full``, ``sslrootcert``, ``options`` …) would be
    dropped silently. Its own keyword values still win; they come from the same URL. Its
    application recorder is the CheckedRecorder.
    """

    application_recorder_class = CheckedRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        assert type(self.datastore) is PostgresDatastore  # the library builds it; no hook
        self.datastore.__class__ = KeepPreparedDatastore
        # the pool is not open yet: every connection it makes gets the URL
        self.datastore.pool.conninfo = self.env.get("POSTGRES_URL") or ""


def store_env(
    database_url: str,
    cipher_key: str,
    *,
    create_tables: bool,
    pool_size: int = 10,
    max_overflow: int | None = None,
) -> dict[str, str]:
    """eventsourcing settings for one PostgreSQL URL (TCP host or Unix-socket directory)."""
    params: dict[str, Any] = conninfo_to_dict(database_url)
    missing = [k for k in ("dbname", "user") if not params.get(k)]
    if missing:
        raise ValueError(f"database URL lacks {', '.join(missing)}")
    return {
        "PERSISTENCE_MODULE": get_topic(UrlFactory),
        "POSTGRES_URL": database_url,
        "POSTGRES_DBNAME": str(params["dbname"]),
        "POSTGRES_HOST": str(params.get("host") or "localhost"),
        "POSTGRES_PORT": str(params.get("port") or "5432"),
        "POSTGRES_USER": str(params["user"]),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size if max_overflow is None else max_overflow),
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_LOCK_TIMEOUT": "10",
        # psycopg_pool drops broken connections and eventsourcing retries connection errors;
        # a ping before every checkout cost a round trip per statement.
        "POSTGRES_PRE_PING": "n",
        # pinned: eventsourcing merges os.environ into these, and the recorder relies on both
        # (db functions would skip the table lock and the unchanged check; see CheckedRecorder)
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "POSTGRES_SCHEMA": "public",
        "CREATE_TABLE": "y" if create_tables else "n",
        # AES-GCM over every stored event: patient data is never in the clear at rest.
        "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
        "CIPHER_KEY": cipher_key,
        "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
        "AGGREGATE_CACHE_MAXSIZE": "2000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
    }


def open_store(
    database_url: str,
    cipher_key: str,
    *,
    create_tables: bool = False,
    pool_size: int = 10,
    max_overflow: int | None = None,
) -> SchedulingApp:
    env = store_env(
        database_url,
        cipher_key,
        create_tables=create_tables,
        pool_size=pool_size,
        max_overflow=max_overflow,
    )
    prefix = f"{APP_NAME.upper()}_"  # eventsourcing takes these over the settings below
    overriding = sorted(k for k in os.environ if k.startswith(prefix))
    if overriding:
        raise ValueError(
            f"{', '.join(overriding)} set in the environment: the service configures its event"
            " store itself (from BOOKING_*), and these would silently override it; unset them"
        )
    app = SchedulingApp(env=env)
    # what every save relies on (CheckedRecorder), and PHI at rest, whatever the library made of
    # the settings: db functions off (the table lock and the check), AES-GCM with fresh nonces,
    # and SchedulingApp.record's premises: no snapshots, a fast-forwarding cache
    if (
        app.recorder.datastore.enable_db_functions  # type: ignore[attr-defined]
        or not isinstance(app.mapper.cipher, AESCipher)
        or app.snapshots is not None
        or not app.repository.fastforward
    ):
        app.close()
        raise ValueError(
            "the event store came up with db functions on, without AES-GCM, with snapshots or"
            " without a fast-forwarding cache"
        )
    return app
