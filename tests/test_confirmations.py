"""Confirmation codes are verified against the event stream: the answer names the stored event,
survives how a patient reads a code aloud, turns false after a cancel, and never crosses a tenant
or a patient binding."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from booking.ids import EVENT_NAMESPACE
from tests.booking_helpers import EventLog, assert_problem, event_log, open_slots, utc
from tests.support.server import LiveServer, Practice, Tenant, expect, seed_tenant, setup_practice


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "confirm-clinic")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    return setup_practice(live_server, tenant, patients=("alice", "bob"))


@pytest.fixture(scope="module")
def other_tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "confirm-other")


@pytest.fixture(scope="module")
def other_practice(live_server: LiveServer, other_tenant: Tenant) -> Practice:
    return setup_practice(live_server, other_tenant, patients=("carol",))


@pytest.fixture(scope="module")
def log(live_server: LiveServer) -> Iterator[EventLog]:
    yield from event_log(live_server)


def book(
    server: LiveServer, tenant: Tenant, practice: Practice, patient_ref: str, index: int
) -> dict[str, Any]:
    with server.client() as client:
        slot = open_slots(client, tenant, practice, days_from=1, days=3)[index]
        return expect(
            client.post(
                "/v1/agent/bookings",
                json={"patient_ref": patient_ref, "slot_id": slot["slot_id"]},
                headers=tenant.agent_headers,
            ),
            201,
        )


def confirm(server: LiveServer, headers: dict[str, str], code: str) -> Any:
    with server.client() as client:
        return client.get(f"/v1/agent/confirmations/{quote(code, safe='')}", headers=headers)


@pytest.fixture(scope="module")
def alice_booking(live_server: LiveServer, tenant: Tenant, practice: Practice) -> dict[str, Any]:
    return book(live_server, tenant, practice, "alice", 0)


def test_a_booked_code_is_confirmed_with_the_stored_event_as_evidence(
    live_server: LiveServer, tenant: Tenant, alice_booking: dict[str, Any], log: EventLog
) -> None:
    response = confirm(live_server, tenant.agent_headers, alice_booking["confirmation_code"])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["confirmed"] is True
    assert answer["status"] == "booked"
    assert answer["appointment_id"] == alice_booking["appointment_id"]
    assert utc(answer["start"]) == utc(alice_booking["start"])
    assert utc(answer["end"]) == utc(alice_booking["end"])
    assert answer["provider_id"] == alice_booking["provider_id"]

    evidence = answer["evidence"]
    assert evidence["stream_id"] == alice_booking["appointment_id"]
    stored = [e for e in log.events() if str(e.stream_id) == evidence["stream_id"]]
    latest = max(stored, key=lambda e: e.version)
    assert evidence["version"] == latest.version
    assert evidence["position"] == latest.position
    assert evidence["event_id"] == str(
        uuid.uuid5(EVENT_NAMESPACE, f"{evidence['stream_id']}:{evidence['version']}")
    )
    assert utc(evidence["recorded_at"]) == latest.event.timestamp
    # the booking's own evidence named the same event
    assert alice_booking["evidence"] == evidence


def test_a_code_read_aloud_in_lower_case_with_dashes_and_spaces_still_verifies(
    live_server: LiveServer, tenant: Tenant, alice_booking: dict[str, Any]
) -> None:
    code = alice_booking["confirmation_code"]
    for spoken in (
        code.lower(),
        "-".join(code.lower()),
        f"{code[:3]} {code[3:]}".lower(),
        f"{code[:3]}-{code[3:]}",
    ):
        response = confirm(live_server, tenant.agent_headers, spoken)
        assert response.status_code == 200, (spoken, response.text)
        assert response.json()["confirmed"] is True
        assert response.json()["appointment_id"] == alice_booking["appointment_id"]


def test_a_cancelled_appointment_is_not_confirmed(
    live_server: LiveServer, tenant: Tenant, practice: Practice
) -> None:
    booking = book(live_server, tenant, practice, "alice", 1)
    with live_server.client() as client:
        expect(
            client.post(
                f"/v1/agent/appointments/{booking['appointment_id']}/cancel",
                json={},
                headers=tenant.agent_headers,
            ),
            200,
        )
    response = confirm(live_server, tenant.agent_headers, booking["confirmation_code"])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["confirmed"] is False
    assert answer["status"] == "cancelled"
    assert answer["appointment_id"] == booking["appointment_id"]


def test_a_code_never_issued_is_not_found(
    live_server: LiveServer, tenant: Tenant, alice_booking: dict[str, Any]
) -> None:
    issued = alice_booking["confirmation_code"]
    never = "ZZZZZZZ" if issued != "ZZZZZZZ" else "YYYYYYY"
    for code in (never, "hello!!", "12", "A" * 40):
        problem = assert_problem(confirm(live_server, tenant.agent_headers, code), 404)
        assert problem.get("confirmed") is False, problem


def test_a_code_of_another_tenant_is_not_found(
    live_server: LiveServer, tenant: Tenant, other_tenant: Tenant, other_practice: Practice
) -> None:
    theirs = book(live_server, other_tenant, other_practice, "carol", 0)
    # it verifies for its own tenant …
    own = confirm(live_server, other_tenant.agent_headers, theirs["confirmation_code"])
    assert own.status_code == 200 and own.json()["confirmed"] is True, own.text
    # … and does not exist for anybody else
    problem = assert_problem(
        confirm(live_server, tenant.agent_headers, theirs["confirmation_code"]), 404
    )
    assert problem.get("confirmed") is False
    assert theirs["appointment_id"] not in problem["detail"]


def test_an_agent_bound_to_one_patient_cannot_verify_another_patients_code(
    live_server: LiveServer, tenant: Tenant, practice: Practice, alice_booking: dict[str, Any]
) -> None:
    bobs = book(live_server, tenant, practice, "bob", 2)
    for_alice = tenant.token("agent", patient_ref="alice")
    problem = assert_problem(confirm(live_server, for_alice, bobs["confirmation_code"]), 404)
    assert problem.get("confirmed") is False
    # her own code still verifies through the bound token
    mine = confirm(live_server, for_alice, alice_booking["confirmation_code"])
    assert mine.status_code == 200 and mine.json()["confirmed"] is True, mine.text
