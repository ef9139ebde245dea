"""Audit chains under concurrency, against the real PostgreSQL: two AuditLog instances with pools
of their own (two API processes) append to the same tenants' chains at once, from many threads
and from coroutines; every chain still verifies, its seqs run 1..N without a gap, every entry is
there exactly once, and one caller's entries keep their order. A batch that fails fails its
callers and the next batch is written."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from booking.audit import AuditLog
from booking.schema import prepare_database
from booking.store import SchedulingApp, open_store

THREADS = 8  # per AuditLog
COROUTINES = 8  # per AuditLog, on one event loop
EACH = 15  # entries per caller
TENANTS = ("race-a", "race-b")


@pytest.fixture(scope="module")
def stores(database: tuple[str, str]) -> Iterator[tuple[SchedulingApp, SchedulingApp]]:
    runtime_url, admin_url = database
    key = base64.b64encode(os.urandom(32)).decode()
    prepare_database(admin_url, runtime_url, key)
    one, two = open_store(runtime_url, key), open_store(runtime_url, key)
    try:
        yield one, two
    finally:
        one.close()
        two.close()


def fields(tenant_id: str, principal: str, request_id: UUID) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "at": datetime.now(UTC),
        "principal": principal,
        "role": "agent",
        "action": "POST /v1/agent/bookings",
        "patient_ref": "pat-1",
        "status": 201,
        "request_id": request_id,
    }


def chain(admin_url: str, tenant_id: str) -> list[tuple[int, str, UUID]]:
    with psycopg.connect(admin_url) as conn:  # a transaction: row-level security binds the owner
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))
        rows = conn.execute(
            "SELECT seq, principal, request_id FROM audit_log WHERE tenant_id = %s ORDER BY seq",
            (tenant_id,),
        ).fetchall()
    return [(int(seq), str(principal), request_id) for seq, principal, request_id in rows]


def test_two_processes_appending_to_one_chain_keep_it_whole(
    stores: tuple[SchedulingApp, SchedulingApp], database: tuple[str, str]
) -> None:
    logs = [AuditLog(store) for store in stores]
    sent: dict[str, list[UUID]] = {}  # caller -> its request ids, in the order it appended
    failures: list[BaseException] = []
    start = threading.Barrier(len(logs) * (THREADS + 1))

    def thread_caller(log: AuditLog, name: str, tenant_id: str) -> None:
        start.wait()
        for _ in range(EACH):
            request_id = uuid4()
            log.append(**fields(tenant_id, name, request_id))
            sent[name].append(request_id)

    def loop_callers(log: AuditLog, names: list[str]) -> None:
        async def caller(name: str, tenant_id: str) -> None:
            for _ in range(EACH):
                request_id = uuid4()
                await log.append_async(**fields(tenant_id, name, request_id))
                sent[name].append(request_id)

        async def everyone() -> None:
            await asyncio.gather(*(caller(n, TENANTS[i % 2]) for i, n in enumerate(names)))

        start.wait()
        asyncio.run(everyone())

    def guarded(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:
            failures.append(exc)

    threads = []
    for index, log in enumerate(logs):
        names = [f"loop-{index}-{i}" for i in range(COROUTINES)]
        sent.update({n: [] for n in names})
        threads.append(threading.Thread(target=guarded, args=(loop_callers, log, names)))
        for i in range(THREADS):
            name = f"thread-{index}-{i}"
            sent[name] = []
            tenant_id = TENANTS[i % 2]
            threads.append(
                threading.Thread(target=guarded, args=(thread_caller, log, name, tenant_id))
            )
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    assert not any(t.is_alive() for t in threads), "a caller never got its entry committed"

    checked, problems = logs[0].verify(TENANTS)
    assert problems == []
    assert checked == len(sent) * EACH

    seen: dict[str, list[UUID]] = {name: [] for name in sent}
    for tenant_id in TENANTS:
        rows = chain(database[1], tenant_id)
        assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1)), tenant_id
        for _, principal, request_id in rows:
            seen[principal].append(request_id)
    # every entry exactly once, and each caller's in the order it appended them
    assert seen == sent


def test_a_failed_batch_fails_its_callers_and_the_next_one_is_written(
    stores: tuple[SchedulingApp, SchedulingApp],
) -> None:
    log = AuditLog(stores[0])
    with pytest.raises(Exception, match="NUL"):
        log.append(**fields("race-c", "bad\x00principal", uuid4()))  # text cannot hold NUL
    with pytest.raises(Exception, match="NUL"):
        asyncio.run(log.append_async(**fields("race-c", "bad\x00principal", uuid4())))
    log.append(**fields("race-c", "good", uuid4()))
    asyncio.run(log.append_async(**fields("race-c", "good", uuid4())))
    checked, problems = log.verify(["race-c"])
    assert (checked, problems) == (2, [])


def test_a_batch_failing_on_our_side_stores_no_entry_of_any_tenant(
    stores: tuple[SchedulingApp, SchedulingApp],
    database: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two tenants in one batch; preparing the second tenant's entry fails after the first
    tenant's APPEND is queued. Every caller hears of the failure, so neither entry may stand
    (found in review: leaving the pipeline sent the Sync that committed the queued one)."""
    import booking.audit as audit

    log, (first, second) = AuditLog(stores[1]), ("race-d", "race-e")
    real = audit.canonical_parts

    def failing(entry: dict[str, Any]) -> tuple[str, str]:
        if entry["tenant_id"] == second:  # tenants are written in sorted order
            raise RuntimeError("canonical form failed")
        return real(entry)

    monkeypatch.setattr(audit, "canonical_parts", failing)
    batch = [audit._Pending(audit._entry(fields(t, "p", uuid4()))) for t in (first, second)]
    assert isinstance(log._write(batch), RuntimeError)
    monkeypatch.setattr(audit, "canonical_parts", real)
    admin_url = database[1]
    assert chain(admin_url, first) == [] and chain(admin_url, second) == []
    log.append(**fields(second, "next", uuid4()))  # the pool still serves the log
    assert [principal for _, principal, _ in chain(admin_url, second)] == ["next"]


def test_entries_hashed_in_the_database_verify_like_the_python_hash(
    stores: tuple[SchedulingApp, SchedulingApp],
) -> None:
    """The chain's hash is computed by booking_audit_append over what canonical_parts sends, and
    recomputed by verify from the stored columns: awkward values (no patient, non-ASCII and
    line separators, a time with no microseconds in another offset, one with them) through the
    writer and through a command's save alike must verify."""
    from datetime import timedelta, timezone

    from booking.audit import entry_params
    from booking.days import ProviderDay

    store, tenant = stores[0], "race-canon"
    log = AuditLog(store)
    odd_times = [
        datetime(2031, 3, 30, 1, 59, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2031, 3, 30, 1, 59, 0, 123456, tzinfo=UTC),
    ]
    awkward = [
        {**fields(tenant, "tok-ü", uuid4()), "patient_ref": None, "at": odd_times[0]},
        {**fields(tenant, "tok\u2028x", uuid4()), "action": "GET /v1/ménage", "at": odd_times[1]},
    ]
    for entry in awkward:
        log.append(**entry)
    day = ProviderDay(tenant_id=tenant, provider_id="dr-c", date="2031-03-30", timezone="UTC")
    store.record([day], audit=entry_params({**awkward[1], "request_id": uuid4()}))  # type: ignore[typeddict-item]
    checked, problems = log.verify([tenant])
    assert (checked, problems) == (3, [])
    stored = log.entries(tenant, None, None, None, 10)
    assert [e["principal"] for e in stored] == ["tok-ü", "tok\u2028x", "tok\u2028x"]
    assert stored[0]["at"] == odd_times[0] and stored[1]["at"] == odd_times[1]
