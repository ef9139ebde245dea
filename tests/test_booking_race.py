"""Many callers race for the same slot: exactly one gets it, everybody else is told so with
alternatives, and the event store holds exactly one booking. One patient racing for four holds
gets three."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.booking_helpers import (
    APPOINTMENT_BOOKED,
    EventLog,
    assert_problem,
    event_log,
    open_slots,
    utc,
)
from tests.support.server import LiveServer, Practice, Tenant, seed_tenant, setup_practice

RACERS = 20


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "race-clinic")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    patients = [f"racer-{n:02d}" for n in range(RACERS)] + ["holder"]
    return setup_practice(live_server, tenant, patients=patients)


@pytest.fixture(scope="module")
def log(live_server: LiveServer) -> Iterator[EventLog]:
    yield from event_log(live_server)


def race(
    server: LiveServer, calls: list[Callable[[httpx.Client], httpx.Response]]
) -> list[httpx.Response]:
    """Run every call on its own thread and client, all released at the same moment."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        with server.client(timeout=60) as client:
            client.get("/health")  # connect before the barrier, so the requests start together
            barrier.wait()
            try:
                results[index] = calls[index](client)
            except BaseException as exc:  # reported below, not lost in a thread
                results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    errors = [r for r in results if not isinstance(r, httpx.Response)]
    assert not errors, errors
    return results


def test_twenty_patients_racing_for_one_slot_get_exactly_one_booking(
    live_server: LiveServer, tenant: Tenant, practice: Practice, log: EventLog
) -> None:
    with live_server.client() as client:
        slots = open_slots(client, tenant, practice, days_from=2)
    contested = slots[0]
    patients = practice.patients[:RACERS]

    def book(patient_ref: str) -> Callable[[httpx.Client], httpx.Response]:
        return lambda client: client.post(
            "/v1/agent/bookings",
            json={"patient_ref": patient_ref, "slot_id": contested["slot_id"]},
            headers=tenant.agent_headers,
        )

    responses = race(live_server, [book(p) for p in patients])

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (RACERS - 1), [(r.status_code, r.text) for r in responses]

    winner = next(r for r in responses if r.status_code == 201).json()
    assert winner["status"] == "booked"
    assert utc(winner["start"]) == utc(contested["start"])

    for loser in (r for r in responses if r.status_code == 409):
        problem = assert_problem(loser, 409, "slot-unavailable")
        alternatives = problem.get("alternatives")
        assert isinstance(alternatives, list) and alternatives, problem
        for alternative in alternatives:
            assert {"slot_id", "start", "end"} <= alternative.keys(), alternative
            assert alternative["slot_id"] != contested["slot_id"], alternative
            assert utc(alternative["start"]) != utc(contested["start"]), alternative

    booked_here = [
        e
        for e in log.appointment_events(APPOINTMENT_BOOKED)
        if e.event.tenant_id == tenant.tenant_id
        and e.event.provider_id == practice.provider_id
        and e.event.start == utc(contested["start"])
    ]
    assert len(booked_here) == 1, [e.event for e in booked_here]
    assert str(booked_here[0].stream_id) == winner["appointment_id"]
    assert booked_here[0].position == winner["evidence"]["position"]


def test_only_the_winner_holds_the_slot_afterwards(
    live_server: LiveServer, tenant: Tenant, practice: Practice
) -> None:
    appointments = []
    with live_server.client() as client:
        for patient_ref in practice.patients[:RACERS]:
            answer = client.get(
                f"/v1/agent/patients/{patient_ref}/appointments", headers=tenant.agent_headers
            )
            assert answer.status_code == 200, answer.text
            appointments.extend(answer.json()["appointments"])
        slots = open_slots(client, tenant, practice, days_from=2, days=1)
    assert len(appointments) == 1, appointments
    assert appointments[0]["status"] == "booked"
    assert utc(appointments[0]["start"]) not in {utc(s["start"]) for s in slots}


def test_one_patient_racing_for_four_holds_gets_exactly_three(
    live_server: LiveServer, tenant: Tenant, practice: Practice
) -> None:
    with live_server.client() as client:
        slots = open_slots(client, tenant, practice, days_from=5, days=2)
    targets = [s["slot_id"] for s in slots[:4]]
    assert len(targets) == 4

    def hold(slot_id: str) -> Callable[[httpx.Client], httpx.Response]:
        return lambda client: client.post(
            "/v1/agent/holds",
            json={"slot_id": slot_id, "patient_ref": "holder"},
            headers=tenant.agent_headers,
        )

    responses = race(live_server, [hold(s) for s in targets])

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 201, 201, 409], [(r.status_code, r.text) for r in responses]
    assert_problem(next(r for r in responses if r.status_code == 409), 409, "too-many-holds")
    held = {r.json()["slot_id"] for r in responses if r.status_code == 201}
    assert len(held) == 3 and held <= set(targets)
