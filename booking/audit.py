"""The audit trail: who touched which patient's data, and what the answer was.

Append-only (the runtime role may insert and read, never change; triggers refuse UPDATE, DELETE
and TRUNCATE to everyone) and hash-chained per tenant: each entry's hash covers the previous
entry's hash and its own fields, so an edited, removed or reordered entry breaks the chain at
that point, and ``verify`` names it. Entries are under row-level security like every tenant table.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack
from uuid import UUID

from booking.store import SchedulingApp

PLATFORM = "_platform"  # admin actions that concern no tenant yet
GENESIS = bytes(32)

DDL = """
CREATE TABLE IF NOT EXISTS audit_log (
    tenant_id   text NOT NULL,
    seq         bigint NOT NULL,
    at          timestamptz NOT NULL,
    principal   text NOT NULL,
    role        text NOT NULL,
    action      text NOT NULL,
    patient_ref text,
    outcome     text NOT NULL,
    status      integer NOT NULL,
    request_id  uuid NOT NULL,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL,
    PRIMARY KEY (tenant_id, seq)
)
"""
INDEXES = (
    "CREATE INDEX IF NOT EXISTS audit_log_patient ON audit_log (tenant_id, patient_ref, seq)",
    "CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (tenant_id, at)",
)
FIELDS = (
    "tenant_id",
    "seq",
    "at",
    "principal",
    "role",
    "action",
    "patient_ref",
    "outcome",
    "status",
    "request_id",
)


class EntryFields(TypedDict):
    """What a caller says of one request; the log adds its outcome, place and hashes."""

    tenant_id: str
    at: datetime
    principal: str
    role: str
    action: str
    patient_ref: str | None
    status: int
    request_id: UUID


def _entry(fields: EntryFields) -> dict[str, Any]:
    return {**fields, "outcome": outcome_of(fields["status"])}


def _wake(items: list[_Pending]) -> None:
    """On the event loop: let every coroutine of that batch go on."""
    for item in items:
        if item.waiter is not None and not item.waiter.done():  # a cancelled caller: done
            item.waiter.set_result(None)


def _settle(batch: list[_Pending], error: BaseException | None) -> None:
    """Tell every caller of a batch how it ended."""
    woken: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
    for item in batch:
        item.error = error
        if item.done is not None:
            item.done.set()
        elif item.loop is not None:
            woken.setdefault(item.loop, []).append(item)
    for loop, items in woken.items():
        # one wake-up per loop and batch; a closed loop has nobody waiting any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_wake, items)


def outcome_of(status: int) -> str:
    if status < 400:
        return "success"
    if status in (401, 403):
        return "denied"
    if status == 404:
        return "not-found"
    return "rejected" if status < 500 else "error"


def entry_hash(prev_hash: bytes, entry: dict[str, Any]) -> bytes:
    canonical = json.dumps(
        [
            entry[f].astimezone(UTC).isoformat()
            if isinstance(entry[f], datetime)
            else str(entry[f])
            if isinstance(entry[f], UUID)
            else entry[f]
            for f in FIELDS
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(prev_hash + canonical.encode()).digest()


@dataclass(eq=False, slots=True)
class _Pending:
    """One entry waiting for its batch: a thread waits on ``done``, or a coroutine on ``loop``
    awaits ``waiter``."""

    entry: dict[str, Any]
    done: threading.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[None] | None = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Problem:
    tenant_id: str
    seq: int
    what: str

    def __str__(self) -> str:
        return f"tenant {self.tenant_id}: entry {self.seq} {self.what}"


# set the tenant for row-level security and wait for that chain: other processes append to it
LOCK_CHAIN = (
    "SELECT set_config('app.tenant_id', %(tenant)s, true),"
    " pg_advisory_xact_lock(hashtext('audit:' || %(tenant)s))"
)
# A statement of its own, after the lock: under READ COMMITTED each statement reads the data
# committed when it starts, so in the lock's statement it could miss the previous holder's rows.
CHAIN_HEAD = "SELECT seq, hash FROM audit_log WHERE tenant_id = %s ORDER BY seq DESC LIMIT 1"
SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"
INSERT_ENTRY = (
    "INSERT INTO audit_log (tenant_id, seq, at, principal, role, action, patient_ref, outcome,"
    " status, request_id, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
WRITER_IDLE_SECONDS = 5.0  # the writer thread ends after this long without work


class AuditLog:
    def __init__(self, store: SchedulingApp) -> None:
        self.datastore = store.recorder.datastore  # type: ignore[attr-defined]
        self._queue: list[_Pending] = []
        self._changed = threading.Condition()  # guards _queue and _writer
        self._writer: threading.Thread | None = None

    def append(self, **fields: Unpack[EntryFields]) -> None:
        """Add one entry, chained to its tenant's last one; returns once it is committed.

        Concurrent calls are committed together (group commit): one writer thread writes every
        entry waiting at that moment in one transaction, so a busy clinic pays one commit per
        batch instead of one per request. A failure is raised in every caller of that batch.
        """
        done = threading.Event()
        pending = _Pending(_entry(fields), done)
        self._submit(pending)
        done.wait()
        if pending.error is not None:
            raise pending.error

    async def append_async(self, **fields: Unpack[EntryFields]) -> None:
        """``append`` for a coroutine: the event loop waits without blocking and no thread waits
        for it; the writer thread wakes the loop once per batch."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        pending = _Pending(_entry(fields), loop=loop, waiter=waiter)
        self._submit(pending)
        await waiter
        if pending.error is not None:
            raise pending.error

    def _submit(self, pending: _Pending) -> None:
        with self._changed:
            self._queue.append(pending)
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._writer.start()
            else:
                self._changed.notify()

    def _run(self) -> None:
        """The writer thread: write whatever is queued, one batch at a time, until idle."""
        batch: list[_Pending] = []
        try:
            while True:
                with self._changed:
                    while not self._queue:
                        if not self._changed.wait(WRITER_IDLE_SECONDS) and not self._queue:
                            self._writer = None  # the next entry starts another writer
                            return
                    batch, self._queue = self._queue, []
                _settle(batch, self._write(batch))
                batch = []
        except BaseException as exc:
            # never reached in practice (_write returns its errors); if it is, no caller may
            # wait forever: fail this batch and what is queued, and let the next entry start
            # another writer
            with self._changed:
                batch, self._queue, self._writer = batch + self._queue, [], None
            _settle(batch, exc)
            raise

    def _write(self, batch: list[_Pending]) -> Exception | None:
        """Write the batch in one transaction and two round trips.

        The connection is in pipeline mode and the statements run in its implicit transaction,
        which PostgreSQL commits at the Sync that leaving the pipeline sends (and rolls back
        there if any statement failed): round trip one locks each tenant's chain and reads its
        head; round trip two inserts the entries and commits. Nothing in between may send a
        Sync (``executemany``, ``conn.transaction()``, a nested ``pipeline()`` do): it would
        commit early and let go of the lock. BEGIN and COMMIT statements would make that safe
        but cost two more statements per batch; tests/test_audit_race.py breaks if it happens.
        """
        chains: dict[str, list[dict[str, Any]]] = {}
        for item in batch:
            chains.setdefault(item.entry["tenant_id"], []).append(item.entry)
        tenants = sorted(chains)  # every process locks chains in the same order: no deadlock
        try:
            with self.datastore.get_connection() as conn, self._dropped_on_failure(conn):
                writes = conn.cursor()
                heads = []
                for tenant_id in tenants:
                    writes.execute(LOCK_CHAIN, {"tenant": tenant_id}, prepare=True)
                    heads.append(conn.execute(CHAIN_HEAD, (tenant_id,), prepare=True))
                # the first fetch sends them all (a flush, not a Sync) and waits for the heads
                rows = [cursor.fetchone() for cursor in heads]
                current = tenants[-1]  # the tenant set last, for row-level security
                for tenant_id, last in reversed(list(zip(tenants, rows, strict=True))):
                    if tenant_id != current:
                        writes.execute(SET_TENANT, (tenant_id,), prepare=True)
                        current = tenant_id
                    seq = last["seq"] if last else 0
                    prev = bytes(last["hash"]) if last else GENESIS
                    for entry in chains[tenant_id]:
                        seq += 1
                        entry["seq"] = seq
                        digest = entry_hash(prev, entry)
                        writes.execute(
                            INSERT_ENTRY, (*[entry[f] for f in FIELDS], prev, digest), prepare=True
                        )
                        prev = digest
            # leaving the pipeline sent the inserts and the Sync, and got every result back
        except Exception as exc:
            return exc
        return None

    @staticmethod
    @contextlib.contextmanager
    def _dropped_on_failure(conn: Any) -> Iterator[None]:
        """The pipeline of ``_write``. Should anything fail on our side while statements are
        queued (a value that cannot be sent, a bug), leaving the pipeline would send the Sync
        that commits them: the entries of tenants already written would be stored although
        every caller of the batch is told it failed. Closing the connection first drops them."""
        with conn.pipeline():
            try:
                yield
            except BaseException:
                conn.close()  # the server rolls back a transaction whose connection is gone
                raise

    def entries(
        self,
        tenant_id: str,
        patient_ref: str | None,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        after: int | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` entries, oldest first; ``after``: only those after that seq."""
        query = "SELECT * FROM audit_log WHERE tenant_id = %s"
        params: list[Any] = [tenant_id]
        if after is not None:
            query += " AND seq > %s"
            params.append(after)
        if patient_ref is not None:
            query += " AND patient_ref = %s"
            params.append(patient_ref)
        if start is not None:
            query += " AND at >= %s"
            params.append(start)
        if end is not None:
            query += " AND at <= %s"
            params.append(end)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))
            curs.execute(query + " ORDER BY seq LIMIT %s", (*params, limit))
            return list(curs.fetchall())

    def verify(self, tenant_ids: Iterable[str]) -> tuple[int, list[Problem]]:
        """Check each tenant's chain; return the entries checked and the first problem of each."""
        checked, problems = 0, []
        for tenant_id in tenant_ids:
            with self.datastore.transaction(commit=False) as curs:
                curs.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))
                curs.execute(
                    "SELECT * FROM audit_log WHERE tenant_id = %s ORDER BY seq", (tenant_id,)
                )
                rows = curs.fetchall()
            prev, expected_seq = GENESIS, 1
            for row in rows:
                checked += 1
                if row["seq"] != expected_seq:
                    problems.append(Problem(tenant_id, expected_seq, "is missing"))
                    break
                if bytes(row["prev_hash"]) != prev:
                    problems.append(Problem(tenant_id, row["seq"], "is out of order"))
                    break
                if bytes(row["hash"]) != entry_hash(prev, row):
                    problems.append(Problem(tenant_id, row["seq"], "was altered"))
                    break
                prev, expected_seq = bytes(row["hash"]), expected_seq + 1
        return checked, problems
