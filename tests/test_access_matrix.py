"""Object-level access, route by route: every route that takes an id, against the same patient,
another patient and another clinic, for each kind of caller. Only the allowed cells reach the
object; the rest are 404 (hidden) or 403 (wrong role). The whole matrix prints on failure."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.booking_helpers import open_slots
from tests.support.server import LiveServer, expect, seed_tenant, setup_practice

CALLERS = ("agent-bound", "agent", "patient", "staff", "auditor")
TARGETS = ("same", "other-patient", "other-tenant")


def unavailable_slot(provider: str = "dr-a") -> str:
    # well formed, but in the past: reaching it means a 409, never a 404
    raw = f"{provider}/checkup/202001061400".encode()
    return "sl_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> dict[str, Any]:
    a, c = seed_tenant(live_server, "matrix-a"), seed_tenant(live_server, "matrix-c")
    objects: dict[str, dict[str, Any]] = {}
    for tenant, patients in ((a, ("pa", "pb")), (c, ("pc",))):
        practice = setup_practice(live_server, tenant, patients=patients)
        with live_server.client() as client:
            slots = open_slots(client, tenant, practice, days_from=3)
            for i, patient in enumerate(patients):
                booked = expect(
                    client.post(
                        "/v1/agent/bookings",
                        headers=tenant.agent_headers,
                        json={"patient_ref": patient, "slot_id": slots[i]["slot_id"]},
                    ),
                    201,
                )
                objects[patient] = booked
    callers = {
        "agent-bound": a.token("agent", patient_ref="pa"),
        "agent": a.agent_headers,
        "patient": a.token("patient", patient_ref="pa"),
        "staff": a.staff_headers,
        "auditor": a.token("auditor"),
    }
    return {"objects": objects, "callers": callers, "a": a, "c": c}


def target_patient(target: str) -> str:
    return {"same": "pa", "other-patient": "pb", "other-tenant": "pc"}[target]


Route = Callable[[httpx.Client, dict[str, str], dict[str, Any], str], httpx.Response]

ROUTES: dict[str, tuple[Route, set[str]]] = {
    # name: (request, callers allowed; "agent-bound" and "patient" only for the same patient)
    "POST /v1/agent/holds": (
        lambda c, h, o, p: c.post(
            "/v1/agent/holds", headers=h, json={"patient_ref": p, "slot_id": unavailable_slot()}
        ),
        {"agent-bound", "agent"},
    ),
    "POST /v1/agent/bookings": (
        lambda c, h, o, p: c.post(
            "/v1/agent/bookings", headers=h, json={"patient_ref": p, "slot_id": unavailable_slot()}
        ),
        {"agent-bound", "agent"},
    ),
    "GET /v1/agent/confirmations/{code}": (
        lambda c, h, o, p: c.get(f"/v1/agent/confirmations/{o['confirmation_code']}", headers=h),
        {"agent-bound", "agent"},
    ),
    "POST /v1/agent/appointments/{id}/reschedule": (
        lambda c, h, o, p: c.post(
            f"/v1/agent/appointments/{o['appointment_id']}/reschedule",
            headers=h,
            json={"slot_id": unavailable_slot()},
        ),
        {"agent-bound", "agent"},
    ),
    "GET /v1/agent/patients/{ref}/appointments": (
        lambda c, h, o, p: c.get(f"/v1/agent/patients/{p}/appointments", headers=h),
        {"agent-bound", "agent"},
    ),
    "GET /v1/staff/patients/{ref}/timeline": (
        lambda c, h, o, p: c.get(f"/v1/staff/patients/{p}/timeline", headers=h),
        {"staff"},
    ),
    "POST /v1/staff/appointments/{id}/arrived": (
        lambda c, h, o, p: c.post(
            f"/v1/staff/appointments/{o['appointment_id']}/arrived", headers=h
        ),
        {"staff"},
    ),
    "POST /v1/portal/appointments/{id}/cancel": (
        lambda c, h, o, p: c.post(
            f"/v1/portal/appointments/{o['appointment_id']}/cancel", headers=h
        ),
        {"patient"},
    ),
    "POST /v1/agent/appointments/{id}/cancel": (
        lambda c, h, o, p: c.post(
            f"/v1/agent/appointments/{o['appointment_id']}/cancel", headers=h
        ),
        {"agent-bound", "agent"},
    ),
}

ROLE_OF = {
    "agent-bound": "agent",
    "agent": "agent",
    "patient": "patient",
    "staff": "staff",
    "auditor": "auditor",
}
AREA = {"agent": "agent", "staff": "staff", "portal": "patient"}


def expected(route: str, allowed: set[str], caller: str, target: str) -> str:
    area = route.split("/")[2]
    if ROLE_OF[caller] != AREA[area]:
        return "403"
    if caller not in allowed or target == "other-tenant":
        return "404"
    if caller in ("agent-bound", "patient") and target != "same":
        return "404"
    return "reach"


def test_only_allowed_cells_reach_the_object(
    live_server: LiveServer, world: dict[str, Any]
) -> None:
    rows, wrong = [], []
    with live_server.client() as client:
        for route, (call, allowed) in ROUTES.items():
            for caller in CALLERS:
                cells = []
                for target in TARGETS:
                    patient = target_patient(target)
                    answer = call(
                        client, world["callers"][caller], world["objects"][patient], patient
                    )
                    got = (
                        str(answer.status_code)
                        if answer.status_code in (403, 404)
                        else ("reach" if answer.status_code < 500 else str(answer.status_code))
                    )
                    want = expected(route, allowed, caller, target)
                    cells.append(f"{got:>5}" + ("" if got == want else f"!{want}"))
                    if got != want:
                        wrong.append((route, caller, target, answer.status_code, answer.text[:120]))
                rows.append(f"{route:<46} {caller:<12} " + " ".join(cells))
    matrix = "\n".join([f"{'route':<46} {'caller':<12} " + " ".join(TARGETS), *rows])
    assert not wrong, f"\n{matrix}\n{wrong}"
