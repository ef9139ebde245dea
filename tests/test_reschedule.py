"""Rescheduling moves an appointment and keeps its identity: same id, same confirmation code, the
old time freed, the new time taken. It is all-or-nothing: a refused reschedule changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.booking_helpers import (
    APPOINTMENT_RESCHEDULED,
    EventLog,
    assert_problem,
    event_log,
    open_slots,
    utc,
)
from tests.support.server import LiveServer, Practice, Tenant, expect, seed_tenant, setup_practice


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "resched-clinic")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    return setup_practice(live_server, tenant, patients=("pat-1", "pat-2", "pat-3"))


@pytest.fixture(scope="module")
def log(live_server: LiveServer) -> Iterator[EventLog]:
    yield from event_log(live_server)


@pytest.fixture(scope="module")
def slots(live_server: LiveServer, tenant: Tenant, practice: Practice) -> list[dict[str, Any]]:
    with live_server.client() as client:
        found = open_slots(client, tenant, practice, days_from=1, days=4, limit=20)
    assert len(found) >= 8
    return found


class Story:
    """What the steps of this module hand to each other."""

    appointment: dict[str, Any]
    rescheduled: dict[str, Any]


def offered_starts(server: LiveServer, tenant: Tenant, practice: Practice) -> set[Any]:
    with server.client() as client:
        return {utc(s["start"]) for s in open_slots(client, tenant, practice, days_from=1, days=4)}


def appointments_of(server: LiveServer, tenant: Tenant, patient_ref: str) -> list[dict[str, Any]]:
    with server.client() as client:
        return list(
            expect(
                client.get(
                    f"/v1/agent/patients/{patient_ref}/appointments", headers=tenant.agent_headers
                ),
                200,
            )["appointments"]
        )


def book(server: LiveServer, tenant: Tenant, patient_ref: str, slot: dict[str, Any]) -> Any:
    with server.client() as client:
        return client.post(
            "/v1/agent/bookings",
            json={"patient_ref": patient_ref, "slot_id": slot["slot_id"]},
            headers=tenant.agent_headers,
        )


def reschedule(
    server: LiveServer, tenant: Tenant, appointment_id: str, body: dict[str, Any]
) -> Any:
    with server.client() as client:
        return client.post(
            f"/v1/agent/appointments/{appointment_id}/reschedule",
            json=body,
            headers=tenant.agent_headers,
        )


def test_reschedule_keeps_the_appointment_id_and_code_and_moves_the_time(
    live_server: LiveServer, tenant: Tenant, slots: list[dict[str, Any]], log: EventLog
) -> None:
    old, new = slots[0], slots[3]
    Story.appointment = expect(book(live_server, tenant, "pat-1", old), 201)

    response = reschedule(
        live_server, tenant, Story.appointment["appointment_id"], {"slot_id": new["slot_id"]}
    )
    assert response.status_code == 200, response.text
    moved = response.json()
    Story.rescheduled = moved
    assert moved["appointment_id"] == Story.appointment["appointment_id"]
    assert moved["confirmation_code"] == Story.appointment["confirmation_code"]
    assert moved["status"] == "booked"
    assert utc(moved["start"]) == utc(new["start"])
    assert utc(moved["end"]) == utc(new["end"])
    assert moved["evidence"]["stream_id"] == moved["appointment_id"]
    assert moved["evidence"]["version"] == Story.appointment["evidence"]["version"] + 1

    stored = [
        e
        for e in log.appointment_events(APPOINTMENT_RESCHEDULED)
        if str(e.stream_id) == moved["appointment_id"]
    ]
    assert len(stored) == 1
    assert stored[0].position == moved["evidence"]["position"]
    assert stored[0].event.start == utc(new["start"])
    assert stored[0].event.previous_start == utc(old["start"])


def test_the_code_still_verifies_at_the_new_time(live_server: LiveServer, tenant: Tenant) -> None:
    with live_server.client() as client:
        answer = expect(
            client.get(
                f"/v1/agent/confirmations/{Story.appointment['confirmation_code']}",
                headers=tenant.agent_headers,
            ),
            200,
        )
    assert answer["confirmed"] is True
    assert utc(answer["start"]) == utc(Story.rescheduled["start"])
    assert answer["evidence"] == Story.rescheduled["evidence"]


def test_the_old_slot_is_open_again_and_the_new_one_is_taken(
    live_server: LiveServer, tenant: Tenant, practice: Practice, slots: list[dict[str, Any]]
) -> None:
    old, new = slots[0], slots[3]
    offered = offered_starts(live_server, tenant, practice)
    assert utc(old["start"]) in offered
    assert utc(new["start"]) not in offered

    assert_problem(book(live_server, tenant, "pat-3", new), 409, "slot-unavailable")
    taken_again = expect(book(live_server, tenant, "pat-2", old), 201)
    assert utc(taken_again["start"]) == utc(old["start"])

    listed = appointments_of(live_server, tenant, "pat-1")
    assert [(a["appointment_id"], utc(a["start"])) for a in listed] == [
        (Story.appointment["appointment_id"], utc(new["start"]))
    ]


def test_rescheduling_onto_someone_elses_booking_changes_nothing(
    live_server: LiveServer,
    tenant: Tenant,
    practice: Practice,
    slots: list[dict[str, Any]],
    log: EventLog,
) -> None:
    old, new = slots[0], slots[3]  # old now belongs to pat-2; pat-1 sits at new
    before = log.max_position()

    refused = reschedule(
        live_server, tenant, Story.appointment["appointment_id"], {"slot_id": old["slot_id"]}
    )

    assert_problem(refused, 409, "slot-unavailable")
    assert log.max_position() == before
    listed = appointments_of(live_server, tenant, "pat-1")
    assert [(a["status"], utc(a["start"])) for a in listed] == [("booked", utc(new["start"]))]
    assert [utc(a["start"]) for a in appointments_of(live_server, tenant, "pat-2")] == [
        utc(old["start"])
    ]
    offered = offered_starts(live_server, tenant, practice)
    assert utc(new["start"]) not in offered
    assert utc(old["start"]) not in offered
    assert_problem(book(live_server, tenant, "pat-3", new), 409, "slot-unavailable")
    assert log.max_position() == before


def test_reschedule_onto_a_hold_converts_it(
    live_server: LiveServer, tenant: Tenant, practice: Practice, slots: list[dict[str, Any]]
) -> None:
    target = slots[5]
    with live_server.client() as client:
        hold = expect(
            client.post(
                "/v1/agent/holds",
                json={"slot_id": target["slot_id"], "patient_ref": "pat-1"},
                headers=tenant.agent_headers,
            ),
            201,
        )
    moved = reschedule(
        live_server, tenant, Story.appointment["appointment_id"], {"hold_id": hold["hold_id"]}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["appointment_id"] == Story.appointment["appointment_id"]
    assert utc(moved.json()["start"]) == utc(target["start"])
    # the hold is used up: it cannot move the appointment a second time
    again = reschedule(
        live_server, tenant, Story.appointment["appointment_id"], {"hold_id": hold["hold_id"]}
    )
    assert again.status_code == 409, again.text
    assert utc(slots[3]["start"]) in offered_starts(live_server, tenant, practice)


def test_a_cancelled_appointment_cannot_be_rescheduled(
    live_server: LiveServer, tenant: Tenant, slots: list[dict[str, Any]], log: EventLog
) -> None:
    booking = expect(book(live_server, tenant, "pat-3", slots[6]), 201)
    with live_server.client() as client:
        expect(
            client.post(
                f"/v1/agent/appointments/{booking['appointment_id']}/cancel",
                json={"reason": "moved away"},
                headers=tenant.agent_headers,
            ),
            200,
        )
    before = log.max_position()

    refused = reschedule(
        live_server, tenant, booking["appointment_id"], {"slot_id": slots[7]["slot_id"]}
    )

    assert_problem(refused, 409)
    assert log.max_position() == before
    listed = appointments_of(live_server, tenant, "pat-3")
    assert [(a["status"], utc(a["start"])) for a in listed] == [
        ("cancelled", utc(slots[6]["start"]))
    ]
