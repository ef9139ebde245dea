"""Tenants and patient bindings are walls: another tenant's (or another patient's) objects do not
exist for a caller (404, never 403), nothing of theirs is touched, roles are enforced (403), and
every missing, malformed, unknown or expired token is a 401. Every refusal is problem+json."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.booking_helpers import EventLog, assert_problem, event_log, open_slots
from tests.support.server import (
    LiveServer,
    Practice,
    Tenant,
    bearer,
    expect,
    seed_tenant,
    setup_practice,
)


@pytest.fixture(scope="module")
def tenant_a(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "iso-a")


@pytest.fixture(scope="module")
def tenant_b(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "iso-b")


@pytest.fixture(scope="module")
def practice_a(live_server: LiveServer, tenant_a: Tenant) -> Practice:
    return setup_practice(live_server, tenant_a, provider_id="dr-a", patients=("a-pat", "a-other"))


@pytest.fixture(scope="module")
def practice_b(live_server: LiveServer, tenant_b: Tenant) -> Practice:
    return setup_practice(live_server, tenant_b, provider_id="dr-b", patients=("b-pat",))


@pytest.fixture(scope="module")
def log(live_server: LiveServer) -> Iterator[EventLog]:
    yield from event_log(live_server)


@pytest.fixture(scope="module")
def b_world(live_server: LiveServer, tenant_b: Tenant, practice_b: Practice) -> dict[str, Any]:
    """What tenant B has: an appointment, a hold, and a free slot."""
    with live_server.client() as client:
        slots = open_slots(client, tenant_b, practice_b, days_from=1, days=3)
        appointment = expect(
            client.post(
                "/v1/agent/bookings",
                json={"patient_ref": "b-pat", "slot_id": slots[0]["slot_id"]},
                headers=tenant_b.agent_headers,
            ),
            201,
        )
        hold = expect(
            client.post(
                "/v1/agent/holds",
                json={"patient_ref": "b-pat", "slot_id": slots[1]["slot_id"]},
                headers=tenant_b.agent_headers,
            ),
            201,
        )
    return {"appointment": appointment, "hold": hold, "free_slot": slots[2]}


@pytest.fixture(scope="module")
def a_world(live_server: LiveServer, tenant_a: Tenant, practice_a: Practice) -> dict[str, Any]:
    """Tenant A: a-other has an appointment; a slot is free."""
    with live_server.client() as client:
        slots = open_slots(client, tenant_a, practice_a, days_from=1, days=3)
        appointment = expect(
            client.post(
                "/v1/agent/bookings",
                json={"patient_ref": "a-other", "slot_id": slots[0]["slot_id"]},
                headers=tenant_a.agent_headers,
            ),
            201,
        )
    return {"appointment": appointment, "slots": slots[1:]}


def test_another_tenants_ids_do_not_exist_for_a_caller(
    live_server: LiveServer,
    tenant_a: Tenant,
    tenant_b: Tenant,
    practice_a: Practice,
    b_world: dict[str, Any],
    a_world: dict[str, Any],
    log: EventLog,
) -> None:
    a = tenant_a.agent_headers
    theirs = b_world["appointment"]["appointment_id"]
    my_slot = a_world["slots"][0]["slot_id"]
    before = log.max_position()
    with live_server.client() as client:
        attempts = {
            "cancel": client.post(f"/v1/agent/appointments/{theirs}/cancel", json={}, headers=a),
            "reschedule": client.post(
                f"/v1/agent/appointments/{theirs}/reschedule", json={"slot_id": my_slot}, headers=a
            ),
            "hold for their patient": client.post(
                "/v1/agent/holds", json={"patient_ref": "b-pat", "slot_id": my_slot}, headers=a
            ),
            "book for their patient": client.post(
                "/v1/agent/bookings", json={"patient_ref": "b-pat", "slot_id": my_slot}, headers=a
            ),
            "their patient's appointments": client.get(
                "/v1/agent/patients/b-pat/appointments", headers=a
            ),
            "book with their hold": client.post(
                "/v1/agent/bookings",
                json={"patient_ref": "a-pat", "hold_id": b_world["hold"]["hold_id"]},
                headers=a,
            ),
            "their confirmation code": client.get(
                f"/v1/agent/confirmations/{b_world['appointment']['confirmation_code']}", headers=a
            ),
        }
    for what, response in attempts.items():
        problem = assert_problem(response, 404)
        assert "iso-b" not in response.text, (what, problem)  # nothing tells where it lives
    assert log.max_position() == before


def test_a_slot_of_another_tenants_provider_is_unavailable_and_nothing_is_written(
    live_server: LiveServer,
    tenant_a: Tenant,
    tenant_b: Tenant,
    practice_a: Practice,
    practice_b: Practice,
    b_world: dict[str, Any],
    log: EventLog,
) -> None:
    their_slot = b_world["free_slot"]
    before = log.max_position()
    with live_server.client() as client:
        held = client.post(
            "/v1/agent/holds",
            json={"patient_ref": "a-pat", "slot_id": their_slot["slot_id"]},
            headers=tenant_a.agent_headers,
        )
        booked = client.post(
            "/v1/agent/bookings",
            json={"patient_ref": "a-pat", "slot_id": their_slot["slot_id"]},
            headers=tenant_a.agent_headers,
        )
    for response in (held, booked):
        problem = assert_problem(response, 409, "slot-unavailable")
        for alternative in problem.get("alternatives") or []:
            assert alternative["provider_id"] == practice_a.provider_id, alternative
    assert log.max_position() == before
    with live_server.client() as client:
        still_free = {
            s["slot_id"] for s in open_slots(client, tenant_b, practice_b, days_from=1, days=3)
        }
        assert their_slot["slot_id"] in still_free
        mine = expect(
            client.get("/v1/agent/patients/b-pat/appointments", headers=tenant_b.agent_headers), 200
        )["appointments"]
    assert [(x["appointment_id"], x["status"]) for x in mine] == [
        (b_world["appointment"]["appointment_id"], "booked")
    ]


def test_an_agent_bound_to_one_patient_cannot_act_for_another(
    live_server: LiveServer, tenant_a: Tenant, a_world: dict[str, Any], log: EventLog
) -> None:
    for_a_pat = tenant_a.token("agent", patient_ref="a-pat")
    others = a_world["appointment"]["appointment_id"]
    slot = a_world["slots"][1]["slot_id"]
    before = log.max_position()
    with live_server.client() as client:
        attempts = {
            "hold": client.post(
                "/v1/agent/holds",
                json={"patient_ref": "a-other", "slot_id": slot},
                headers=for_a_pat,
            ),
            "book": client.post(
                "/v1/agent/bookings",
                json={"patient_ref": "a-other", "slot_id": slot},
                headers=for_a_pat,
            ),
            "list": client.get("/v1/agent/patients/a-other/appointments", headers=for_a_pat),
            "cancel": client.post(
                f"/v1/agent/appointments/{others}/cancel", json={}, headers=for_a_pat
            ),
            "reschedule": client.post(
                f"/v1/agent/appointments/{others}/reschedule",
                json={"slot_id": slot},
                headers=for_a_pat,
            ),
        }
        for _what, response in attempts.items():
            assert_problem(response, 404)
        assert log.max_position() == before
        # the bound token still works for its own patient
        own = client.post(
            "/v1/agent/holds", json={"patient_ref": "a-pat", "slot_id": slot}, headers=for_a_pat
        )
        assert own.status_code == 201, own.text
        listed = expect(
            client.get("/v1/agent/patients/a-other/appointments", headers=tenant_a.agent_headers),
            200,
        )["appointments"]
    assert [x["status"] for x in listed] == ["booked"]


def test_a_valid_token_of_the_wrong_role_is_forbidden(
    live_server: LiveServer, tenant_a: Tenant, practice_a: Practice
) -> None:
    patient_token = tenant_a.token("patient", patient_ref="a-pat")
    new_tenant = {"tenant_id": "iso-c", "name": "C", "timezone": "UTC"}
    with live_server.client() as client:
        refusals = [
            client.post("/v1/admin/tenants", json=new_tenant, headers=tenant_a.staff_headers),
            client.post(
                f"/v1/admin/tenants/{tenant_a.tenant_id}/tokens",
                json={"role": "staff"},
                headers=tenant_a.staff_headers,
            ),
            client.post("/v1/admin/tenants", json=new_tenant, headers=tenant_a.agent_headers),
            client.post(
                "/v1/staff/providers",
                json={"provider_id": "dr-x", "name": "X"},
                headers=tenant_a.agent_headers,
            ),
            client.post(
                "/v1/staff/patients",
                json={"patient_ref": "x", "name": "X"},
                headers=tenant_a.agent_headers,
            ),
            client.put(
                f"/v1/staff/providers/{practice_a.provider_id}/weekly-hours",
                json={"hours": []},
                headers=tenant_a.agent_headers,
            ),
            client.get("/v1/agent/tools", headers=tenant_a.staff_headers),
            client.post(
                "/v1/agent/availability",
                json={
                    "type_id": "checkup",
                    "start_from": "2027-01-04T00:00:00Z",
                    "start_to": "2027-01-05T00:00:00Z",
                },
                headers=patient_token,
            ),
            client.post(
                "/v1/staff/providers",
                json={"provider_id": "dr-x", "name": "X"},
                headers=live_server.admin_headers,
            ),
        ]
        created = client.post(
            "/v1/admin/tenants", json=new_tenant, headers=live_server.admin_headers
        )
    for response in refusals:
        assert_problem(response, 403)
    # the refused admin call wrote nothing: the tenant id is still free
    assert created.status_code == 201, created.text


def test_missing_malformed_unknown_and_expired_tokens_are_unauthorized(
    live_server: LiveServer, tenant_a: Tenant
) -> None:
    short_lived = tenant_a.token("agent", ttl_seconds=60)
    with live_server.client() as client:
        assert client.get("/v1/agent/tools", headers=short_lived).status_code == 200
        live_server.clock.advance(seconds=61)
        cases = {
            "expired": short_lived,
            "garbage": bearer("not-a-token-at-all"),
            "missing": {},
            "basic": {"Authorization": "Basic xxx"},
            "empty bearer": {"Authorization": "Bearer"},
            "bare token": {"Authorization": short_lived["Authorization"].split(" ", 1)[1]},
        }
        for what, headers in cases.items():
            for method, path, body in (
                ("GET", "/v1/agent/tools", None),
                ("POST", "/v1/agent/bookings", {"patient_ref": "a-pat", "slot_id": "sl_x"}),
                ("POST", "/v1/staff/patients", {"patient_ref": "zz", "name": "Z"}),
                (
                    "POST",
                    "/v1/admin/tenants",
                    {"tenant_id": "iso-z", "name": "Z", "timezone": "UTC"},
                ),
            ):
                response = client.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (what, method, path, response.text)
                assert_problem(response, 401)
        # a fresh token of the same tenant still works after the clock moved
        assert client.get("/v1/agent/tools", headers=tenant_a.agent_headers).status_code == 200


def test_creating_a_tenant_that_exists_is_a_conflict(
    live_server: LiveServer, tenant_a: Tenant
) -> None:
    with live_server.client() as client:
        for tenant_id in (tenant_a.tenant_id, tenant_a.tenant_id.upper()):
            again = client.post(
                "/v1/admin/tenants",
                json={"tenant_id": tenant_id, "name": "Someone else", "timezone": "Europe/Paris"},
                headers=live_server.admin_headers,
            )
            assert_problem(again, 409)
