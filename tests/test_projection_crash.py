"""The projection worker (``booking project``) killed mid-stream loses nothing and applies nothing
twice: every batch is one transaction holding the projection's rows and its tracking row.

The app here runs WITHOUT its in-process worker, so the log fills up first (~1,500 events in three
tenants); then the real ``python -m booking.cli project`` runs as a subprocess, is SIGKILLed as
soon as a first batch (500 events) has committed, restarted, SIGKILLed again further on, and
finally left to finish and stopped with SIGTERM. The read models are compared, row for row, with
what the decoded event log says they must hold, at each kill point and at the end.

Then: a worker that is idle catches up on events that come with no NOTIFY at all (rows written to
the log by plain SQL, as when a NOTIFY is lost) within its poll interval, 1 s
(``projections.worker.POLL_SECONDS``), plus the time to apply them: asserted < 3 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row

from projections.appointments import BOOKED, RESCHEDULED, STATUS_EVENTS
from projections.catalog import PROJECTIONS
from projections.timeline import HOLD_ENDED, HOLD_TAKEN, PATIENT_REGISTERED
from projections.worker import BATCH, POLL_SECONDS
from tests.booking_helpers import EventLog, StoredEvent, open_slots
from tests.support.postgres import PgCluster
from tests.support.server import (
    LiveServer,
    Practice,
    Tenant,
    business_hours,
    expect,
    seed_tenant,
    setup_practice,
)

ROOT = Path(__file__).resolve().parent.parent
TENANTS = ("crash-a", "crash-b", "crash-c")
PATIENTS = tuple(f"pat-{i}" for i in range(1, 11))
BOOKINGS_PER_TENANT = 120
SLOT_DAYS = 4  # 48 fifteen-minute slots a day, 08:00-20:00
MIN_EVENTS = 3 * BATCH  # at least three batches, so a kill can land between two of them
Conn = psycopg.Connection[DictRow]
TRACKING = {p.name: p.tracking_table for p in PROJECTIONS}
CATCH_UP_SECONDS = 3.0


# -- the app without its worker, and the worker as a process ---------------------------------


# the worker runs as a process of its own here, as BOOKING_RUN_PROJECTIONS=false has it
SERVER_SETTINGS = {"run_projections": False}


@pytest.fixture(scope="module")
def server(live_server: LiveServer) -> LiveServer:
    """The real app over HTTP, with no projection worker in it (see SERVER_SETTINGS)."""
    assert live_server.app.state.worker is None
    return live_server


@pytest.fixture(scope="module")
def superuser(pg_cluster: PgCluster, server: LiveServer) -> Iterator[Conn]:
    """Reads every row of every tenant (a superuser is not bound by row-level security), so a row
    filed under a wrong tenant would show up too."""
    assert server.settings.admin_database_url is not None
    dbname = str(conninfo_to_dict(server.settings.admin_database_url)["dbname"])
    with psycopg.connect(
        pg_cluster.superuser_url(dbname), autocommit=True, row_factory=dict_row
    ) as conn:
        yield conn


@pytest.fixture(scope="module")
def log(server: LiveServer) -> Iterator[EventLog]:
    store = EventLog(server)
    try:
        yield store
    finally:
        store.close()


class Worker:
    """``python -m booking.cli project`` against the test database, as production runs it."""

    def __init__(self, server: LiveServer, output: Path) -> None:
        settings = server.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKING_")}
        env.update(
            BOOKING_DATABASE_URL=str(settings.database_url),
            BOOKING_ADMIN_DATABASE_URL=str(settings.admin_database_url),
            BOOKING_CIPHER_KEY=str(settings.cipher_key),
            BOOKING_HOME=str(settings.home),
            PYTHONUNBUFFERED="1",
        )
        self.output = output
        self._out = output.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "booking.cli", "project"],
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._out.close()

    def terminate(self, timeout: float = 15) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._out.close()

    def log_text(self) -> str:
        return self.output.read_text(errors="replace")[-4000:]


@pytest.fixture
def workers(server: LiveServer, tmp_path: Path) -> Iterator[list[Worker]]:
    """Start workers with ``workers.append(Worker(...))``; any left running are killed after."""
    started: list[Worker] = []
    try:
        yield started
    finally:
        for worker in started:
            if worker.alive():
                worker.kill()


def positions(superuser: Conn) -> dict[str, int]:
    found = {}
    for name, table in TRACKING.items():
        row = superuser.execute(f"SELECT max(notification_id) AS n FROM {table}").fetchone()
        found[name] = int(row["n"] or 0) if row else 0
    return found


def max_position(superuser: Conn) -> int:
    row = superuser.execute("SELECT max(notification_id) AS n FROM scheduling_events").fetchone()
    return int(row["n"] or 0) if row else 0


def wait_for(
    superuser: Conn,
    worker: Worker,
    done: Any,
    timeout: float,
    what: str,
    interval: float = 0.002,
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        now = positions(superuser)
        if done(now):
            return now
        if not worker.alive():
            raise AssertionError(
                f"the worker exited ({worker.process.returncode}) before {what}:"
                f"\n{worker.log_text()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s (at {now}):\n{worker.log_text()}")
        time.sleep(interval)


# -- the log: three busy clinics --------------------------------------------------------------


def fill_tenant(server: LiveServer, tenant_id: str) -> None:
    tenant = seed_tenant(server, tenant_id)
    practice = setup_practice(
        server,
        tenant,
        duration=15,
        hours=business_hours("08:00", "20:00"),
        patients=PATIENTS,
    )
    with server.client() as client:
        found: dict[str, dict[str, Any]] = {}  # windows share their edges: dedupe
        for day in range(1, SLOT_DAYS + 1):
            for slot in open_slots(client, tenant, practice, days_from=day, days=1, limit=50):
                found.setdefault(slot["slot_id"], slot)
        slots = sorted(found.values(), key=lambda s: s["start"])
        assert len(slots) >= BOOKINGS_PER_TENANT + BOOKINGS_PER_TENANT // 5, len(slots)
        spare = iter(slots[BOOKINGS_PER_TENANT:])
        for i, slot in enumerate(slots[:BOOKINGS_PER_TENANT]):
            booked = book(client, tenant, PATIENTS[i % len(PATIENTS)], slot)
            appointment = f"/v1/agent/appointments/{booked['appointment_id']}"
            if i % 5 == 1:
                expect(
                    client.post(f"{appointment}/cancel", json={}, headers=tenant.agent_headers), 200
                )
            elif i % 5 == 3:
                expect(
                    client.post(
                        f"{appointment}/reschedule",
                        json={"slot_id": next(spare)["slot_id"]},
                        headers=tenant.agent_headers,
                    ),
                    200,
                )
            elif i % 10 == 4:  # moved, then cancelled after all
                expect(
                    client.post(
                        f"{appointment}/reschedule",
                        json={"slot_id": next(spare)["slot_id"]},
                        headers=tenant.agent_headers,
                    ),
                    200,
                )
                expect(
                    client.post(f"{appointment}/cancel", json={}, headers=tenant.agent_headers), 200
                )


def book(client: httpx.Client, tenant: Tenant, patient_ref: str, slot: dict[str, Any]) -> Any:
    return expect(
        client.post(
            "/v1/agent/bookings",
            json={"patient_ref": patient_ref, "slot_id": slot["slot_id"]},
            headers=tenant.agent_headers,
        ),
        201,
    )


@pytest.fixture(scope="module")
def filled(server: LiveServer, superuser: Conn) -> int:
    """The log, written over HTTP while no worker runs; its last position."""
    with ThreadPoolExecutor(len(TENANTS)) as pool:
        for future in [pool.submit(fill_tenant, server, t) for t in TENANTS]:
            future.result()
    last = max_position(superuser)
    assert last >= MIN_EVENTS, f"only {last} events: too few for a kill between batches"
    assert positions(superuser) == dict.fromkeys(TRACKING, 0), "a worker ran while filling"
    return last


# -- what the read models must hold, from the decoded log -------------------------------------

TIMELINE_KINDS = {
    PATIENT_REGISTERED: "registered",
    HOLD_TAKEN: "hold",
    BOOKED: "booked",
    RESCHEDULED: "rescheduled",
    **STATUS_EVENTS,
}


@dataclass(frozen=True)
class Expected:
    timeline: dict[tuple[str, int], tuple[str, str, Any]]  # (tenant, position) -> kind, ref, appt
    appointments: dict[tuple[str, Any], dict[str, Any]]  # (tenant, id) -> row


def expected_at(events: list[StoredEvent], upto: int) -> Expected:
    timeline: dict[tuple[str, int], tuple[str, str, Any]] = {}
    appointments: dict[tuple[str, Any], dict[str, Any]] = {}
    patients: dict[Any, str] = {}
    owner_of: dict[Any, str] = {}
    for stored in events:
        if stored.position > upto:
            break
        e, topic = stored.event, stored.topic
        key: tuple[str, Any] = (getattr(e, "tenant_id", ""), stored.stream_id)
        if topic == PATIENT_REGISTERED:
            patients[stored.stream_id] = e.patient_ref
            ref: str | None = e.patient_ref
            appointment_id = None
        elif topic in (HOLD_TAKEN, HOLD_ENDED):
            ref, appointment_id = patients.get(stored.stream_id), None
        elif topic == BOOKED:
            owner_of[stored.stream_id] = e.patient_ref
            ref, appointment_id = e.patient_ref, stored.stream_id
            appointments[key] = {
                "patient_ref": e.patient_ref,
                "provider_id": e.provider_id,
                "type_id": e.type_id,
                "start_at": e.start,
                "end_at": e.end,
                "timezone": e.timezone,
                "status": "booked",
                "confirmation_code": e.confirmation_code,
                "version": stored.version,
                "position": stored.position,
            }
        elif topic == RESCHEDULED:
            ref, appointment_id = owner_of.get(stored.stream_id), stored.stream_id
            appointments[key].update(
                provider_id=e.provider_id,
                start_at=e.start,
                end_at=e.end,
                timezone=e.timezone,
                version=stored.version,
                position=stored.position,
            )
        elif topic in STATUS_EVENTS:
            ref, appointment_id = owner_of.get(stored.stream_id), stored.stream_id
            appointments[key].update(
                status=STATUS_EVENTS[topic], version=stored.version, position=stored.position
            )
        else:
            continue
        if ref is not None:
            kind = f"hold-{e.outcome}" if topic == HOLD_ENDED else TIMELINE_KINDS[topic]
            timeline[(e.tenant_id, stored.position)] = (kind, ref, appointment_id)
    return Expected(timeline, appointments)


def timeline_rows(superuser: Conn) -> list[dict[str, Any]]:
    return list(
        superuser.execute(
            "SELECT tenant_id, position, kind, patient_ref, appointment_id FROM patient_timeline"
            " ORDER BY tenant_id, position"
        ).fetchall()
    )


def appointment_rows(superuser: Conn, table: str) -> dict[tuple[str, Any], dict[str, Any]]:
    rows = superuser.execute(
        f"SELECT tenant_id, appointment_id, patient_ref, provider_id, type_id, start_at, end_at,"
        f" timezone, status, confirmation_code, version, position FROM {table}"
    ).fetchall()
    found: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in rows:
        key = (row.pop("tenant_id"), row.pop("appointment_id"))
        assert key not in found, f"{table}: two rows for {key}"
        found[key] = row
    return found


def assert_read_models_match(
    superuser: Conn, events: list[StoredEvent], applied: dict[str, int]
) -> None:
    """Each read model holds exactly the effect of the log up to its tracking position."""
    want = expected_at(events, applied["timeline"])
    rows = timeline_rows(superuser)
    keys = [(r["tenant_id"], r["position"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate timeline rows"
    got = {
        (r["tenant_id"], r["position"]): (r["kind"], r["patient_ref"], r["appointment_id"])
        for r in rows
    }
    missing = sorted(set(want.timeline) - set(got))
    extra = sorted(set(got) - set(want.timeline))
    assert not missing, f"timeline lacks {len(missing)} events, first {missing[:5]} (at {applied})"
    assert not extra, f"timeline has {len(extra)} rows past its position or unknown: {extra[:5]}"
    wrong = [(k, got[k], want.timeline[k]) for k in want.timeline if got[k] != want.timeline[k]]
    assert not wrong, f"timeline rows differ from the log: {wrong[:5]}"

    for name, table in (("portal", "portal_appointments"), ("board", "board_appointments")):
        want = expected_at(events, applied[name])
        got_rows = appointment_rows(superuser, table)
        assert set(got_rows) == set(want.appointments), (
            f"{table}: {len(set(want.appointments) - set(got_rows))} appointments missing, "
            f"{len(set(got_rows) - set(want.appointments))} unexpected (at {applied})"
        )
        differ = [
            (key, got_rows[key], row)
            for key, row in want.appointments.items()
            if got_rows[key] != row
        ]
        assert not differ, f"{table}: {len(differ)} rows differ from the log, e.g. {differ[:2]}"


# -- the tests --------------------------------------------------------------------------------


def test_worker_killed_mid_stream_applies_every_event_exactly_once(
    server: LiveServer,
    superuser: Conn,
    log: EventLog,
    filled: int,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    events = log.events()
    assert events and events[-1].position == filled
    output = tmp_path / "worker.log"
    reached = 0
    for kill in (1, 2):
        worker = Worker(server, output)
        workers.append(worker)
        # as soon as one more batch has committed (a projection moved past where it was), kill
        wait_for(
            superuser,
            worker,
            lambda now, reached=reached: max(now.values()) > reached,
            timeout=30,
            what=f"progress before kill {kill}",
        )
        worker.kill()
        at_kill = positions(superuser)
        assert min(at_kill.values()) < filled, (
            f"kill {kill} came too late, everything was applied already: {at_kill}"
        )
        assert set(at_kill.values()) <= {0, filled} | {e.position for e in events}, at_kill
        # nothing half-applied: every read model is exactly its tracking position's state
        assert_read_models_match(superuser, events, at_kill)
        reached = max(at_kill.values())

    worker = Worker(server, output)
    workers.append(worker)
    final = wait_for(
        superuser,
        worker,
        lambda now: all(p == filled for p in now.values()),
        timeout=40,
        what="full catch-up after the kills",
        interval=0.05,
    )
    code = worker.terminate()
    assert code == 0, f"SIGTERM: exit {code}\n{worker.log_text()}"
    assert final == dict.fromkeys(TRACKING, filled)
    assert positions(superuser) == final, "the tracking moved after the worker stopped"

    assert_read_models_match(superuser, events, final)
    # and the screens agree with the log: appointments per status, as the event store says
    want = expected_at(events, filled)
    statuses = {row["status"] for row in want.appointments.values()}
    assert statuses == {"booked", "cancelled"}, statuses
    assert len(want.appointments) == len(TENANTS) * BOOKINGS_PER_TENANT
    assert {kind for kind, _, _ in want.timeline.values()} >= {
        "registered",
        "booked",
        "rescheduled",
        "cancelled",
    }


def lost_notify_copies(superuser: Conn, how_many: int) -> list[Any]:
    """Write ``how_many`` new bookings into the log with plain SQL: no NOTIFY goes out.

    Each is a copy of a stored Appointment.Booked event under a new aggregate id (an event's
    stored state carries neither its aggregate id nor its version, so the copy decodes as a
    booking of its own)."""
    rows = superuser.execute(
        "INSERT INTO scheduling_events (originator_id, originator_version, topic, state)"
        " SELECT gen_random_uuid(), 1, topic, state FROM scheduling_events"
        " WHERE topic = %s ORDER BY notification_id LIMIT %s"
        " RETURNING originator_id, notification_id",
        (BOOKED, how_many),
    ).fetchall()
    assert len(rows) == how_many
    return [r["originator_id"] for r in rows]


def test_an_idle_worker_catches_up_without_notify(
    server: LiveServer,
    superuser: Conn,
    log: EventLog,
    filled: int,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    assert POLL_SECONDS <= 1.0, "the worker polls at least once a second"
    worker = Worker(server, tmp_path / "worker.log")
    workers.append(worker)
    wait_for(
        superuser,
        worker,
        lambda now: all(p == max_position(superuser) for p in now.values()),
        timeout=40,
        what="catch-up on start",
        interval=0.05,
    )
    time.sleep(POLL_SECONDS * 0.5)  # idle: waiting on LISTEN/poll

    # 1. events written with no NOTIFY at all: found by the poll
    for _ in range(2):
        copies = lost_notify_copies(superuser, 5)
        target = max_position(superuser)
        began = time.monotonic()
        wait_for(
            superuser,
            worker,
            lambda now, target=target: all(p >= target for p in now.values()),
            timeout=CATCH_UP_SECONDS + 2,
            what="catch-up on events without NOTIFY",
            interval=0.01,
        )
        took = time.monotonic() - began
        assert took < CATCH_UP_SECONDS, f"caught up on un-notified events only after {took:.2f} s"
        board = {
            r["appointment_id"]
            for r in superuser.execute(
                "SELECT appointment_id FROM board_appointments WHERE appointment_id = ANY(%s)",
                (copies,),
            ).fetchall()
        }
        assert board == set(copies)
        time.sleep(0.3 + POLL_SECONDS * 0.3)  # land in a different part of the poll interval

    # 2. events written over HTTP (NOTIFY sent): applied just as fast, or faster
    tenant = Tenant(server, TENANTS[0], {}, {})
    tenant.staff_headers = tenant.token("staff")
    tenant.agent_headers = tenant.token("agent")
    with server.client() as client:
        slot = open_slots(
            client,
            tenant,
            Practice("dr-a", "checkup", 15, PATIENTS),
            days_from=SLOT_DAYS + 1,
            days=1,
            limit=1,
        )[0]
        booked = book(client, tenant, PATIENTS[0], slot)
    target = booked["evidence"]["position"]
    began = time.monotonic()
    wait_for(
        superuser,
        worker,
        lambda now: all(p >= target for p in now.values()),
        timeout=CATCH_UP_SECONDS + 2,
        what="catch-up on a notified booking",
        interval=0.01,
    )
    took = time.monotonic() - began
    assert took < CATCH_UP_SECONDS, f"caught up on a notified booking only after {took:.2f} s"

    code = worker.terminate()
    assert code == 0, f"SIGTERM: exit {code}\n{worker.log_text()}"
    events = log.events()
    assert_read_models_match(superuser, events, dict.fromkeys(TRACKING, events[-1].position))
