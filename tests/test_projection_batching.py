"""The projection worker's batches leave exactly the rows the handlers leave one event at a time.

The log here is written over HTTP with no worker running: three clinics booking in turn (so
their events interleave in the log), with calls, holds converted into bookings, reschedules and
cancels, some of an appointment booked a moment before (its booking and its change then share a
batch) and some of one booked long before. Then:

- a reference copy of every read model is made by the handlers, one event at a time, in log
  order, each under its own tenant;
- the live read models are filled by the worker in small batches (several tenants in most of
  them), by a first worker and then by a second one that knows no patient yet (its timeline looks
  patients up in the rows), and another copy in batches of 500;
- every copy must equal the reference, row for row, tenant_id included.

Then the guarantees around the tracking rows: a row only moves forward; events another writer
(a rebuild's swap) applied are not applied again by a worker that read its positions before;
a projection reset to nothing is filled again by the running worker without touching the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row

from booking.store import SchedulingApp, open_store
from projections.base import Event, Projection
from projections.catalog import PROJECTIONS
from projections.schema import create_tables
from projections.worker import (
    FULL_RATE,
    GATHER_SECONDS,
    ProjectionWorker,
    apply_events,
    gather_window,
    read_positions,
    track,
)
from tests.booking_helpers import open_slots
from tests.support.postgres import PgCluster
from tests.support.server import LiveServer, Tenant, expect, seed_tenant, setup_practice

SERVER_SETTINGS = {"run_projections": False}  # the log is written first; workers run here
TENANTS = ("batch-a", "batch-b", "batch-c")
PATIENTS = ("pat-1", "pat-2", "pat-3")
ROUNDS = 8
SMALL = 7  # events per batch: a booking (5 events) and a bit of the next, often another tenant's
Conn = psycopg.Connection[DictRow]


# -- the log ---------------------------------------------------------------------------------


def _post(client: Any, path: str, body: dict[str, Any], tenant: Tenant, status: int) -> Any:
    return expect(client.post(path, json=body, headers=tenant.agent_headers), status)


def _round(
    client: Any, tenant: Tenant, n: int, slots: list[dict[str, Any]], booked: list[str]
) -> None:
    """One clinic's turn: a booking (from a call, from a hold, or plain) and changes."""
    patient = PATIENTS[n % len(PATIENTS)]
    body: dict[str, Any] = {"patient_ref": patient}
    call_id = f"call-{tenant.tenant_id}-{n}"
    if n % 3 == 0:
        _post(client, "/v1/agent/calls", {"call_id": call_id, "patient_ref": patient}, tenant, 201)
        body["call_id"] = call_id
    if n % 3 == 1:
        held = _post(
            client,
            "/v1/agent/holds",
            {"patient_ref": patient, "slot_id": slots.pop(0)["slot_id"]},
            tenant,
            201,
        )
        body["hold_id"] = held["hold_id"]
    else:
        body["slot_id"] = slots.pop(0)["slot_id"]
    appointment = _post(client, "/v1/agent/bookings", body, tenant, 201)["appointment_id"]
    booked.append(appointment)
    path = f"/v1/agent/appointments/{appointment}"
    if n % 4 == 2:  # changed right after booking: booking and change in one batch
        _post(client, f"{path}/reschedule", {"slot_id": slots.pop(0)["slot_id"]}, tenant, 200)
        _post(client, f"{path}/cancel", {}, tenant, 200)
    if n % 4 == 3 and len(booked) > 2:  # an appointment booked rounds ago
        earlier = f"/v1/agent/appointments/{booked[-3]}"
        _post(client, f"{earlier}/reschedule", {"slot_id": slots.pop(0)["slot_id"]}, tenant, 200)
    if n % 3 == 0:
        end = {"duration_seconds": 60 + n, "outcome": "completed"}
        _post(client, f"/v1/agent/calls/{call_id}/end", end, tenant, 200)


@pytest.fixture(scope="module")
def log_end(live_server: LiveServer) -> int:
    assert live_server.app.state.worker is None
    tenants = [seed_tenant(live_server, t) for t in TENANTS]
    practices = [setup_practice(live_server, t, patients=PATIENTS) for t in tenants]
    booked: dict[str, list[str]] = {t: [] for t in TENANTS}
    with live_server.client() as client:
        slots = {
            t.tenant_id: open_slots(client, t, p, days_from=1, days=8)
            for t, p in zip(tenants, practices, strict=True)
        }
        for n in range(ROUNDS):
            for tenant in tenants:
                _round(client, tenant, n, slots[tenant.tenant_id], booked[tenant.tenant_id])
    services = live_server.app.state.services
    return int(services.store.recorder.max_notification_id())


@pytest.fixture(scope="module")
def store(live_server: LiveServer) -> Iterator[SchedulingApp]:
    app = open_store(live_server.settings.database_url, live_server.settings.cipher_key)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture(scope="module")
def superuser(pg_cluster: PgCluster, live_server: LiveServer) -> Iterator[Conn]:
    """Reads every tenant's rows (row-level security does not bind a superuser)."""
    assert live_server.settings.admin_database_url is not None
    dbname = str(conninfo_to_dict(live_server.settings.admin_database_url)["dbname"])
    with psycopg.connect(
        pg_cluster.superuser_url(dbname), autocommit=True, row_factory=dict_row
    ) as conn:
        yield conn


def decoded_log(store: SchedulingApp, after: int = 0) -> list[Event]:
    found: list[Event] = []
    while True:
        batch = store.recorder.select_notifications(after, 500, inclusive_of_start=False)
        found += [(n.id, n.topic, store.mapper.to_domain_event(n)) for n in batch]
        if len(batch) < 500:
            return found
        after = batch[-1].id


def copies(live_server: LiveServer, suffix: str) -> tuple[Projection, ...]:
    """Every projection again, on fresh tables named ``<table><suffix>``."""
    made = tuple(dataclasses.replace(p, suffix=suffix) for p in PROJECTIONS)
    role = str(conninfo_to_dict(live_server.settings.database_url)["user"])
    with psycopg.connect(str(live_server.settings.admin_database_url), autocommit=True) as conn:
        for projection in made:
            create_tables(conn, projection, role)
    return made


def rows(superuser: Conn, projection: Projection) -> dict[str, list[Any]]:
    return {
        table.name: [
            r["row"]
            for r in superuser.execute(
                f"SELECT to_jsonb(t) AS row FROM {projection.physical(table.name)} t"
                " ORDER BY to_jsonb(t)::text"
            ).fetchall()
        ]
        for table in projection.tables
    }


def assert_same_rows(superuser: Conn, got: tuple[Projection, ...], want: dict[str, Any]) -> None:
    for projection in got:
        assert rows(superuser, projection) == want[projection.name], projection.name


@pytest.fixture(scope="module")
def reference(
    live_server: LiveServer, log_end: int, store: SchedulingApp, superuser: Conn
) -> dict[str, Any]:
    """Every read model as the handlers make it, one event at a time, in log order."""
    made = copies(live_server, "__ref")
    with store.recorder.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
        for position, topic, event in decoded_log(store):
            for projection in made:
                if topic in projection.topics:
                    curs.execute("SELECT set_config('app.tenant_id', %s, true)", (event.tenant_id,))
                    projection.apply(curs, topic, event, position)
    found = {p.name: rows(superuser, p) for p in made}
    assert all(found[p.name][t.name] for p in made for t in p.tables if p.name != "economics")
    assert {r["tenant_id"] for r in found["timeline"]["patient_timeline"]} == set(TENANTS)
    assert found["economics"]["call_economics"], "no call in the log"
    return found


# -- the tests -------------------------------------------------------------------------------


def test_the_log_interleaves_tenants_within_small_batches(
    store: SchedulingApp, log_end: int
) -> None:
    """The premise of the next test: many batches of SMALL events hold several tenants' events,
    and the whole log (one batch of 500) holds appointments booked and then changed."""
    log = decoded_log(store)
    assert len(log) < 500
    chunks = [log[i : i + SMALL] for i in range(0, len(log), SMALL)]
    tenants = [{getattr(e, "tenant_id", None) for _, _, e in c} - {None} for c in chunks]
    assert sum(len(t) > 1 for t in tenants) >= 10
    booked = {e.originator_id for _, t, e in log if t == "booking:Appointment.Booked"}
    for topic in ("booking:Appointment.Rescheduled", "booking:Appointment.Cancelled"):
        assert booked & {e.originator_id for _, t, e in log if t == topic}, topic


def test_batches_leave_the_rows_events_leave_one_by_one(
    live_server: LiveServer,
    store: SchedulingApp,
    superuser: Conn,
    reference: dict[str, Any],
    log_end: int,
) -> None:
    url = live_server.settings.database_url
    # small batches into the live tables: a first worker half-way, then one that knows nothing
    first = ProjectionWorker(store, PROJECTIONS, url, batch=SMALL)
    read = 0
    while read < log_end // 2:
        read += first.run_once()
    fresh = tuple(dataclasses.replace(p) for p in PROJECTIONS)  # no patient known yet
    second = ProjectionWorker(store, fresh, url, batch=SMALL)
    second.catch_up()
    assert second.positions() == dict.fromkeys(reference, log_end)
    assert_same_rows(superuser, PROJECTIONS, reference)

    # the whole log in batches of 500 into another copy
    big = copies(live_server, "__big")
    ProjectionWorker(store, big, url, batch=500).catch_up()
    assert_same_rows(superuser, big, reference)


def test_a_tracking_row_only_moves_forward(
    store: SchedulingApp, reference: dict[str, Any], log_end: int
) -> None:
    worker = ProjectionWorker(store, PROJECTIONS, "unused")
    worker.catch_up()
    datastore = store.recorder.datastore  # type: ignore[attr-defined]
    for position in (log_end, log_end - 1):
        with pytest.raises(IntegrityError), datastore.transaction(commit=True) as curs:
            track(curs, PROJECTIONS, position)
    # a forward move, rolled back (the datastore's read transactions are READ ONLY)
    with datastore.get_connection() as conn, conn.transaction(force_rollback=True):
        curs = conn.cursor()
        track(curs, PROJECTIONS, log_end + 1)
        assert read_positions(curs, PROJECTIONS) == dict.fromkeys(reference, log_end + 1)
    assert worker.positions() == dict.fromkeys(reference, log_end)


def test_events_another_writer_applied_are_not_applied_again(
    live_server: LiveServer,
    store: SchedulingApp,
    superuser: Conn,
    reference: dict[str, Any],
    log_end: int,
) -> None:
    """A worker whose positions are stale (a rebuild's swap applied events to one view meanwhile)
    skips what the positions read under the locks say is applied."""
    made = copies(live_server, "__swap")
    log = decoded_log(store)
    third = len(log) // 3
    worker = ProjectionWorker(store, made, live_server.settings.database_url, batch=third)
    worker.run_once()
    assert set(worker.positions().values()) == {log[third - 1][0]}
    datastore = store.recorder.datastore  # type: ignore[attr-defined]
    portal = made[0]
    middle = third + third // 2  # inside the worker's next batch
    with datastore.transaction(commit=True) as curs:  # the "swap": portal moves on alone
        applied = apply_events(curs, (portal,), log[third:middle], log[third - 1][0])
    assert applied == {portal.name: log[middle - 1][0]}
    worker.catch_up()  # a duplicate row would fail here (primary keys)
    assert_same_rows(superuser, made, reference)

    # a projection reset to nothing (rows and tracking row gone) while the worker believes every
    # view is mid-log (as under load, between two batches): the batch it reads starts past the
    # reset view's position, so that view is left out of it; the next batches start from zero
    with psycopg.connect(str(live_server.settings.admin_database_url), autocommit=True) as conn:
        for table in portal.tables:
            conn.execute(f"TRUNCATE {portal.physical(table.name)}")
        conn.execute(f"DELETE FROM {portal.tracking_table}")
    worker._applied = dict.fromkeys(reference, log[2 * third - 1][0])
    assert worker.run_once() > 0
    assert worker._applied[portal.name] == 0
    assert not rows(superuser, portal)["portal_appointments"]
    worker.catch_up()
    assert worker.positions() == dict.fromkeys(reference, log_end)
    assert_same_rows(superuser, made, reference)


def test_the_gather_window_grows_with_the_rate() -> None:
    """A trickle is applied at once; under load a batch waits for more, at most GATHER_SECONDS,
    which keeps the lag target (p99 < 200 ms at 100 bookings a second)."""
    assert GATHER_SECONDS <= 0.1
    assert gather_window(1, 10.0) < 0.001  # one event after ten idle seconds
    assert gather_window(5, 1.0) < 0.002  # a booking a second
    half = gather_window(int(FULL_RATE / 20), 0.1)
    assert half == pytest.approx(GATHER_SECONDS / 2)
    assert gather_window(int(FULL_RATE / 10), 0.1) == pytest.approx(GATHER_SECONDS)
    assert gather_window(499, 0.05) == GATHER_SECONDS  # a backlog: never more than the window
    assert gather_window(3, 0.0) == GATHER_SECONDS  # no time measured: treated as a burst
