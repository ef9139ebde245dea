"""Requests crafted to break the server get a 4xx problem, never a 500; and a setup change made
through another API replica decides the very next booking (found in review)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from api.app import create_app
from tests.booking_helpers import open_slots
from tests.support.server import (
    LiveServer,
    Practice,
    RunningServer,
    Tenant,
    expect,
    seed_tenant,
    setup_practice,
)


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "hostile-clinic")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    return setup_practice(live_server, tenant)


def forged(raw: str) -> str:
    return "sl_" + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "slot_id",
    [
        forged("dr-a/checkup/000101010000"),
        forged("dr-a/checkup/999912312330"),
        forged("nobody/checkup/000101010000"),
        forged("nobody/checkup/209901011400"),
    ],
)
@pytest.mark.parametrize("route", ["/v1/agent/holds", "/v1/agent/bookings"])
def test_forged_slot_ids_are_refused_not_crashed_on(
    live_server: LiveServer, tenant: Tenant, practice: Practice, slot_id: str, route: str
) -> None:
    with live_server.client() as client:
        answer = client.post(
            route, json={"slot_id": slot_id, "patient_ref": "pat-1"}, headers=tenant.agent_headers
        )
    assert answer.status_code in (409, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_deeply_nested_json_is_a_422(live_server: LiveServer, tenant: Tenant) -> None:
    with live_server.client() as client:
        answer = client.post(
            "/v1/agent/bookings",
            content=b"[" * 5000 + b"]" * 5000,
            headers={**tenant.agent_headers, "content-type": "application/json"},
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "body"


def test_an_empty_body_names_no_internals(live_server: LiveServer, tenant: Tenant) -> None:
    with live_server.client() as client:
        answer = client.post(
            "/v1/agent/bookings",
            content=b"",
            headers={**tenant.agent_headers, "content-type": "application/json"},
        )
    assert answer.status_code == 422, answer.text
    assert "'data'" not in answer.text


@pytest.mark.parametrize("zone_name", ["localtime", "right/America/New_York", "posix/UTC"])
def test_tzdata_files_that_are_not_zones_are_refused(
    live_server: LiveServer, zone_name: str
) -> None:
    with live_server.client() as client:
        answer = client.post(
            "/v1/admin/tenants",
            headers=live_server.admin_headers,
            json={"tenant_id": "tz-odd", "name": "x", "timezone": zone_name},
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "timezone"


def test_a_window_of_one_instant_is_allowed(
    live_server: LiveServer, tenant: Tenant, practice: Practice
) -> None:
    with live_server.client() as client:
        slot = open_slots(client, tenant, practice, days_from=3)[0]
        answer = expect(
            client.post(
                "/v1/agent/availability",
                headers=tenant.agent_headers,
                json={
                    "type_id": practice.type_id,
                    "start_from": slot["start"],
                    "start_to": slot["start"],
                },
            ),
            200,
        )
    assert [s["slot_id"] for s in answer["slots"]] == [slot["slot_id"]]


@pytest.fixture
def second_replica(live_server: LiveServer) -> Iterator[str]:
    """Another API process on the same database (no projection worker of its own)."""
    server = RunningServer(
        create_app(live_server.settings, clock=live_server.clock, run_projections=False)
    )
    server.start()
    try:
        yield server.base_url
    finally:
        server.stop()


def test_hours_changed_on_another_replica_decide_the_next_booking(
    live_server: LiveServer, tenant: Tenant, practice: Practice, second_replica: str
) -> None:
    with live_server.client() as client:
        slot = open_slots(client, tenant, practice, days_from=4)[0]  # a 09:00 slot, warms caches
        with httpx.Client(base_url=second_replica, timeout=30) as other:
            expect(
                other.put(
                    f"/v1/staff/providers/{practice.provider_id}/weekly-hours",
                    json={
                        "hours": [
                            {"weekday": d, "start": "13:00", "end": "14:00"} for d in range(7)
                        ]
                    },
                    headers=tenant.staff_headers,
                ),
                200,
            )
        answer = client.post(
            "/v1/agent/bookings",
            headers=tenant.agent_headers,
            json={"patient_ref": "pat-2", "slot_id": slot["slot_id"]},
        )
    assert answer.status_code == 409, answer.text
    assert "outside the provider's hours" in answer.json()["detail"]
