"""A command's audit entry is stored in the transaction of the command's own save
(booking.audit.CommandEntry): a change and the record of who made it commit together or not at
all, and the request costs no audit transaction of its own. Saves that collide roll their
entries back with their events; each request's one entry says what it finally answered, and
the chains stay whole while commands and the audit writer append to them side by side."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.booking_helpers import open_slots
from tests.support.server import LiveServer, Practice, Tenant, seed_tenant, setup_practice
from tests.test_booking_race import race

RACERS = 12


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "audit-cmd")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    return setup_practice(live_server, tenant, patients=[f"p-{n:02d}" for n in range(RACERS)])


def entries(server: LiveServer, tenant_id: str) -> list[dict[str, Any]]:
    return server.app.state.services.audit.entries(tenant_id, None, None, None, 10_000)


def by_request(server: LiveServer, tenant_id: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in entries(server, tenant_id):
        found.setdefault(str(entry["request_id"]), []).append(entry)
    return found


def assert_chains_whole(server: LiveServer, *tenant_ids: str) -> None:
    checked, problems = server.app.state.services.audit.verify(tenant_ids)
    assert checked > 0 and problems == [], problems


def test_racing_bookings_leave_one_entry_each_and_one_201(
    live_server: LiveServer, tenant: Tenant, practice: Practice
) -> None:
    """Most racers decide on the slot being free and collide at save time, after their entry's
    APPEND ran in that transaction: a stored one would be a second entry saying 201."""
    with live_server.client() as client:
        contested = open_slots(client, tenant, practice, days_from=2)[0]

    def book(patient_ref: str) -> Callable[[httpx.Client], httpx.Response]:
        return lambda client: client.post(
            "/v1/agent/bookings",
            json={"patient_ref": patient_ref, "slot_id": contested["slot_id"]},
            headers=tenant.agent_headers,
        )

    responses = race(live_server, [book(p) for p in practice.patients])
    assert sorted(r.status_code for r in responses) == [201] + [409] * (RACERS - 1)
    logged = by_request(live_server, tenant.tenant_id)
    for response, patient_ref in zip(responses, practice.patients, strict=True):
        mine = logged.get(response.headers["x-request-id"], [])
        assert [(e["action"], e["status"], e["patient_ref"]) for e in mine] == [
            ("POST /v1/agent/bookings", response.status_code, patient_ref)
        ], response.text
    statuses = Counter(
        e["status"]
        for e in entries(live_server, tenant.tenant_id)
        if e["action"] == "POST /v1/agent/bookings"
    )
    assert statuses == {201: 1, 409: RACERS - 1}
    assert_chains_whole(live_server, tenant.tenant_id)


def test_commands_and_reads_of_two_tenants_append_side_by_side(
    live_server: LiveServer, tenant: Tenant, practice: Practice
) -> None:
    """Bookings append in their saves (the chain's lock, then the event table's); reads through
    the audit writer (chain locks only, tenants in order). Both at once, on two tenants: every
    request answered, one entry each, no chain broken, nothing waiting on anything in a circle."""
    other = seed_tenant(live_server, "audit-cmd-2")
    other_practice = setup_practice(
        live_server, other, patients=[f"q-{n:02d}" for n in range(RACERS)]
    )
    with live_server.client() as client:
        free = open_slots(client, tenant, practice, days_from=4, days=3)
        other_free = open_slots(client, other, other_practice, days_from=4, days=3)

    def book(who: Tenant, patient_ref: str, slot: dict[str, Any]) -> Any:
        return lambda client: client.post(
            "/v1/agent/bookings",
            json={"patient_ref": patient_ref, "slot_id": slot["slot_id"]},
            headers=who.agent_headers,
        )

    def read(who: Tenant, patient_ref: str) -> Any:
        return lambda client: client.get(
            f"/v1/agent/patients/{patient_ref}/appointments", headers=who.agent_headers
        )

    calls, owners = [], []
    for n in range(RACERS // 2):
        for who, where, slots in ((tenant, practice, free), (other, other_practice, other_free)):
            calls += [book(who, where.patients[n], slots[n]), read(who, where.patients[n])]
            owners += [who.tenant_id, who.tenant_id]
    responses = race(live_server, calls)
    assert sorted({r.status_code for r in responses}) == [200, 201], [r.text for r in responses]
    for who in (tenant.tenant_id, other.tenant_id):
        logged = by_request(live_server, who)
        for response in (r for r, owner in zip(responses, owners, strict=True) if owner == who):
            mine = logged.get(response.headers["x-request-id"], [])
            assert [e["status"] for e in mine] == [response.status_code]
    assert_chains_whole(live_server, tenant.tenant_id, other.tenant_id)
