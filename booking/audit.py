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
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict, Unpack
from uuid import UUID

if TYPE_CHECKING:
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


@dataclass(eq=False, slots=True)
class CommandEntry:
    """A request's audit entry, for the command it runs to store with its events.

    The API sets one (``COMMAND_ENTRY``) once it knows the caller; the executor
    (booking.commands) appends it in the transaction of the command's save, with the status the
    command answers, and sets ``written``. A change and the record of who made it are then
    committed together or not at all, and the request costs no separate audit transaction.
    Anything else (a refusal, a replay, a read, an error) is appended after the answer is known.
    """

    request_id: UUID
    # the entry for an answer with that status, about that patient (the command's subject's)
    fields: Callable[[int, str | None], EntryFields]
    written: int | None = None  # the status of the entry a command's save stored


COMMAND_ENTRY: ContextVar[CommandEntry | None] = ContextVar("booking_command_entry", default=None)


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


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value) if isinstance(value, UUID) else value


def canonical_parts(entry: dict[str, Any]) -> tuple[str, str]:
    """What an entry's hash covers, around its seq: the canonical JSON of its fields is
    ``head + str(seq) + tail``. The seq is known only under the chain's lock, in the database
    (APPEND_FN); the hash is sha256(previous hash + that JSON), here and there alike."""
    values = [_canonical(entry[f]) for f in FIELDS if f != "seq"]  # seq is FIELDS[1]
    head = "[" + json.dumps(values[0]) + ","
    tail = "," + json.dumps(values[1:], separators=(",", ":"))[1:]
    return head, tail


def entry_hash(prev_hash: bytes, entry: dict[str, Any]) -> bytes:
    head, tail = canonical_parts(entry)
    return hashlib.sha256(prev_hash + (head + str(entry["seq"]) + tail).encode()).digest()


# Appends one entry to its tenant's chain: sets the tenant for row-level security, waits for
# the chain's lock (other transactions and processes append to it), reads its head in a
# statement of its own (a fresh snapshot: under READ COMMITTED it sees the previous holder's
# rows) and inserts the entry with its seq and hash. Created by the owner with the schema.
APPEND_FN = r"""
CREATE OR REPLACE FUNCTION public.booking_audit_append(
    p_tenant text, p_at timestamptz, p_principal text, p_role text, p_action text,
    p_patient_ref text, p_outcome text, p_status integer, p_request_id uuid,
    p_head text, p_tail text)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    last_seq bigint;
    prev bytea;
BEGIN
    -- the head read below must see the previous holder's rows: a statement's own snapshot
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'audit entries are appended under READ COMMITTED, not %',
            current_setting('transaction_isolation');
    END IF;
    -- for row-level security; it stays set for the rest of the transaction
    PERFORM set_config('app.tenant_id', p_tenant, true);
    PERFORM pg_advisory_xact_lock(hashtext('audit:' || p_tenant));
    SELECT seq, hash INTO last_seq, prev FROM public.audit_log
        WHERE tenant_id = p_tenant ORDER BY seq DESC LIMIT 1;
    last_seq := coalesce(last_seq, 0) + 1;
    prev := coalesce(prev, decode(repeat('00', 32), 'hex'));
    INSERT INTO public.audit_log (tenant_id, seq, at, principal, role, action, patient_ref,
        outcome, status, request_id, prev_hash, hash)
    VALUES (p_tenant, last_seq, p_at, p_principal, p_role, p_action, p_patient_ref, p_outcome,
        p_status, p_request_id, prev,
        sha256(prev || convert_to(p_head || last_seq::text || p_tail, 'UTF8')));
    RETURN last_seq;
END $$
"""
APPEND_CALL = "public.booking_audit_append(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
APPEND = "SELECT " + APPEND_CALL


def append_params(entry: dict[str, Any]) -> tuple[Any, ...]:
    """APPEND's parameters for one entry (a dict of FIELDS but seq)."""
    head, tail = canonical_parts(entry)
    return (
        entry["tenant_id"],
        entry["at"],
        entry["principal"],
        entry["role"],
        entry["action"],
        entry["patient_ref"],
        entry["outcome"],
        entry["status"],
        entry["request_id"],
        head,
        tail,
    )


def entry_params(fields: EntryFields) -> tuple[Any, ...]:
    """APPEND's parameters for what a caller says of one request."""
    return append_params(_entry(fields))


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
        """Write the batch in one transaction and one round trip.

        The connection is in pipeline mode and the statements run in its implicit transaction,
        which PostgreSQL commits at the Sync that leaving the pipeline sends (and rolls back
        there if any statement failed). Each entry is one APPEND, which takes its tenant's
        chain lock until the commit; tenants go in sorted order, so no two writers (or
        commands, see booking.commands) wait for each other's chains in a circle. Nothing in
        between may send a Sync (``executemany``, ``conn.transaction()``, a nested
        ``pipeline()`` do): it would commit early and let go of the locks;
        tests/test_audit_race.py breaks if it happens.
        """
        entries = sorted((item.entry for item in batch), key=lambda e: str(e["tenant_id"]))
        try:
            with self.datastore.get_connection() as conn, self._dropped_on_failure(conn):
                writes = conn.cursor()
                for entry in entries:
                    writes.execute(APPEND, append_params(entry), prepare=True)
            # leaving the pipeline sent the Sync, and got every result back
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
