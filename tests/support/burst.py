"""Many bookings, fast: clinics open round the clock, slot ids computed rather than searched, and
each thread working on its own provider days and patients so that concurrent requests do not
collide on one aggregate. Through the real HTTP API, or the app's own service in-process."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from booking.access import Scope
from booking.calendar import Slot
from booking.commands import Decision
from tests.support.server import (
    LiveServer,
    Tenant,
    business_hours,
    expect,
    seed_tenant,
    setup_practice,
)

TYPE_ID = "visit"
MINUTES = 30
HOURS = business_hours("00:00", "23:30")  # 47 half-hour slots a day, every day
SLOTS_PER_DAY = 47


@dataclass(frozen=True)
class Clinic:
    tenant: Tenant
    providers: tuple[str, ...]
    patients: tuple[str, ...]


def open_clinic(
    server: LiveServer, tenant_id: str, providers: int = 2, patients: int = 8
) -> Clinic:
    tenant = seed_tenant(server, tenant_id, timezone="UTC")
    ids = tuple(f"dr-{n}" for n in range(providers))
    refs = tuple(f"pat-{n}" for n in range(patients))
    setup_practice(server, tenant, ids[0], TYPE_ID, MINUTES, hours=HOURS, patients=refs)
    with server.client() as client:
        for provider_id in ids[1:]:
            expect(
                client.post(
                    "/v1/staff/providers",
                    json={"provider_id": provider_id, "name": f"Dr {provider_id}"},
                    headers=tenant.staff_headers,
                ),
                201,
            )
            expect(
                client.put(
                    f"/v1/staff/providers/{provider_id}/weekly-hours",
                    json={"hours": HOURS},
                    headers=tenant.staff_headers,
                ),
                200,
            )
    return Clinic(tenant, ids, refs)


@dataclass(frozen=True)
class Job:
    """Bookings on one provider day, made one after the other, all for one patient."""

    tenant: Tenant
    patient_ref: str
    slot_ids: tuple[str, ...]


def jobs(clinic: Clinic, bookings: int, first_day: int = 2) -> list[Job]:
    """``bookings`` bookings spread over provider days, a patient of their own for each day."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    made: list[Job] = []
    left, day, patients = bookings, first_day, iter(clinic.patients)
    while left > 0:
        for provider_id in clinic.providers:
            take = min(left, SLOTS_PER_DAY)
            if take <= 0:
                break
            starts = [midnight + timedelta(days=day, minutes=MINUTES * i) for i in range(take)]
            slots = tuple(
                Slot(provider_id, TYPE_ID, s, s + timedelta(minutes=MINUTES)).slot_id
                for s in starts
            )
            made.append(Job(clinic.tenant, next(patients), slots))
            left -= take
        day += 1
    return made


def book(
    server: LiveServer,
    work: list[Job],
    threads: int = 8,
    done: Callable[[httpx.Response], None] | None = None,
) -> list[httpx.Response]:
    """Run every job; each thread takes whole jobs. Returns every response."""
    todo: queue.Queue[Job] = queue.Queue()
    for job in work:
        todo.put(job)
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        with server.client(timeout=60) as client:
            while True:
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                for slot_id in job.slot_ids:
                    try:
                        response = client.post(
                            "/v1/agent/bookings",
                            json={"patient_ref": job.patient_ref, "slot_id": slot_id},
                            headers=job.tenant.agent_headers,
                        )
                    except BaseException as exc:  # reported below, not lost in a thread
                        errors.append(exc)
                        return
                    with lock:
                        answers.append(response)
                    if done is not None:
                        done(response)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(300)
    assert not errors, errors
    return answers


def book_in_process(server: LiveServer, work: list[Job], threads: int = 4) -> list[Decision]:
    """The same bookings through the app's own scheduling service, without HTTP: the event log
    gets exactly what an agent's requests would write, in about half the time."""
    scheduling = server.app.state.services.scheduling

    def run(job: Job) -> list[Decision]:
        scope = Scope(job.tenant.tenant_id, "agent", "burst")
        return [scheduling.book(scope, job.patient_ref, None, s, None) for s in job.slot_ids]

    with ThreadPoolExecutor(threads) as pool:
        return [decision for decisions in pool.map(run, work) for decision in decisions]
