"""Holds keep a slot for one patient for five minutes, expire by the clock alone (no job runs),
turn into bookings, and one patient holds at most three at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.booking_helpers import EventLog, assert_problem, event_log, open_slots, utc
from tests.support.server import LiveServer, Practice, Tenant, expect, seed_tenant, setup_practice

TTL = timedelta(seconds=300)


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "hold-clinic")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    return setup_practice(
        live_server, tenant, patients=("pat-a", "pat-b", "pat-c", "pat-d", "pat-e")
    )


@pytest.fixture(scope="module")
def log(live_server: LiveServer) -> Iterator[EventLog]:
    yield from event_log(live_server)


@pytest.fixture(scope="module")
def slots(live_server: LiveServer, tenant: Tenant, practice: Practice) -> list[dict[str, Any]]:
    with live_server.client() as client:
        found = open_slots(client, tenant, practice, days_from=2, days=3, limit=20)
    assert len(found) >= 10
    return found


class Story:
    first_hold: dict[str, Any]


def hold(server: LiveServer, tenant: Tenant, patient_ref: str, slot: dict[str, Any]) -> Any:
    with server.client() as client:
        return client.post(
            "/v1/agent/holds",
            json={"slot_id": slot["slot_id"], "patient_ref": patient_ref},
            headers=tenant.agent_headers,
        )


def book(server: LiveServer, tenant: Tenant, patient_ref: str, **target: str) -> Any:
    with server.client() as client:
        return client.post(
            "/v1/agent/bookings",
            json={"patient_ref": patient_ref, **target},
            headers=tenant.agent_headers,
        )


def offered(server: LiveServer, tenant: Tenant, practice: Practice) -> set[str]:
    with server.client() as client:
        return {s["slot_id"] for s in open_slots(client, tenant, practice, days_from=2, days=3)}


def test_a_hold_keeps_the_slot_for_five_minutes(
    live_server: LiveServer, tenant: Tenant, practice: Practice, slots: list[dict[str, Any]]
) -> None:
    slot = slots[0]
    before = live_server.clock.now()
    response = hold(live_server, tenant, "pat-a", slot)
    after = live_server.clock.now()

    assert response.status_code == 201, response.text
    answer = response.json()
    Story.first_hold = answer
    assert answer["slot_id"] == slot["slot_id"]
    assert answer["hold_id"]
    expires_at = utc(answer["expires_at"])
    assert before + TTL - timedelta(seconds=2) <= expires_at <= after + TTL + timedelta(seconds=2)
    assert slot["slot_id"] not in offered(live_server, tenant, practice)


def test_nobody_else_can_hold_or_book_a_held_slot(
    live_server: LiveServer, tenant: Tenant, slots: list[dict[str, Any]], log: EventLog
) -> None:
    before = log.max_position()
    assert_problem(hold(live_server, tenant, "pat-b", slots[0]), 409, "slot-unavailable")
    assert_problem(
        book(live_server, tenant, "pat-b", slot_id=slots[0]["slot_id"]), 409, "slot-unavailable"
    )
    assert log.max_position() == before


def test_an_expired_hold_frees_the_slot_without_any_job(
    live_server: LiveServer, tenant: Tenant, practice: Practice, slots: list[dict[str, Any]]
) -> None:
    live_server.clock.advance(seconds=301)
    assert slots[0]["slot_id"] in offered(live_server, tenant, practice)
    taken = book(live_server, tenant, "pat-b", slot_id=slots[0]["slot_id"])
    assert taken.status_code == 201, taken.text
    assert utc(taken.json()["start"]) == utc(slots[0]["start"])


def test_booking_with_an_expired_hold_is_refused(
    live_server: LiveServer,
    tenant: Tenant,
    practice: Practice,
    slots: list[dict[str, Any]],
    log: EventLog,
) -> None:
    slot = slots[1]
    mine = expect(hold(live_server, tenant, "pat-a", slot), 201)
    live_server.clock.advance(seconds=301)
    before = log.max_position()

    for hold_id in (mine["hold_id"], Story.first_hold["hold_id"]):
        assert_problem(book(live_server, tenant, "pat-a", hold_id=hold_id), 409)

    assert log.max_position() == before
    assert slot["slot_id"] in offered(live_server, tenant, practice)


def test_booking_from_a_hold_converts_it(
    live_server: LiveServer,
    tenant: Tenant,
    practice: Practice,
    slots: list[dict[str, Any]],
    log: EventLog,
) -> None:
    slot = slots[2]
    held = expect(hold(live_server, tenant, "pat-c", slot), 201)
    since = log.max_position()

    booked = book(live_server, tenant, "pat-c", hold_id=held["hold_id"])

    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    assert appointment["status"] == "booked"
    assert utc(appointment["start"]) == utc(slot["start"])
    events = log.events(after=since)
    by_topic = {e.topic: e.event for e in events}
    assert by_topic["booking:Appointment.Booked"].hold_id == held["hold_id"]
    assert by_topic["booking:ProviderDay.Booked"].hold_id == held["hold_id"]
    assert by_topic["booking:Patient.HoldEnded"].hold_id == held["hold_id"]
    assert by_topic["booking:Patient.HoldEnded"].outcome == "converted"

    # a converted hold is used up, and the slot stays booked after the hold would have expired
    again = book(live_server, tenant, "pat-c", hold_id=held["hold_id"])
    assert_problem(again, 409)
    live_server.clock.advance(seconds=301)
    assert slot["slot_id"] not in offered(live_server, tenant, practice)
    assert_problem(hold(live_server, tenant, "pat-b", slot), 409, "slot-unavailable")


def test_a_used_hold_stays_not_active_after_the_patient_holds_again(
    live_server: LiveServer, tenant: Tenant, slots: list[dict[str, Any]]
) -> None:
    """Found by the stateful test: once the patient took another hold, booking from a converted
    hold answered 404 instead of 409, because taking a hold forgot the ended ones."""
    first = expect(hold(live_server, tenant, "pat-e", slots[15]), 201)
    expect(book(live_server, tenant, "pat-e", hold_id=first["hold_id"]), 201)
    expect(hold(live_server, tenant, "pat-e", slots[16]), 201)
    assert_problem(
        book(live_server, tenant, "pat-e", hold_id=first["hold_id"]), 409, "hold-not-active"
    )


def test_one_patient_holds_at_most_three_slots_until_one_expires(
    live_server: LiveServer, tenant: Tenant, slots: list[dict[str, Any]], log: EventLog
) -> None:
    expect(hold(live_server, tenant, "pat-d", slots[3]), 201)
    live_server.clock.advance(seconds=100)
    expect(hold(live_server, tenant, "pat-d", slots[4]), 201)
    expect(hold(live_server, tenant, "pat-d", slots[5]), 201)
    before = log.max_position()

    assert_problem(hold(live_server, tenant, "pat-d", slots[6]), 409, "too-many-holds")
    assert log.max_position() == before
    # another patient is not limited by pat-d's holds
    expect(hold(live_server, tenant, "pat-b", slots[7]), 201)

    live_server.clock.advance(seconds=201)  # the first hold is 301 s old, the others 201 s
    fourth = hold(live_server, tenant, "pat-d", slots[6])
    assert fourth.status_code == 201, fourth.text
    assert_problem(hold(live_server, tenant, "pat-d", slots[8]), 409, "too-many-holds")
