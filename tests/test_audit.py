"""The audit trail: every request made with a valid token leaves exactly one entry, committed
before the response leaves, in a hash chain per tenant that the runtime role can only append to.
An auditor reads their own tenant's entries; `booking audit verify` finds any edit, removal or
reordering done behind the application's back (here: as superuser, with triggers switched off).

The story runs on two clinics, audit-a and audit-b, in one database of this module's own.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from tests.booking_helpers import open_slots
from tests.support.postgres import PgCluster
from tests.support.server import (
    LiveServer,
    Practice,
    Tenant,
    bearer,
    expect,
    seed_tenant,
    setup_practice,
)

TENANT_A = "audit-a"
TENANT_B = "audit-b"
ZERO_HASH = bytes(32)
ENTRY_FIELDS = {
    "at",
    "principal",
    "role",
    "action",
    "patient_ref",
    "outcome",
    "status",
    "request_id",
    "seq",
}
# what a statement that failed for a reason other than the audit table's protection raises
NOT_A_REFUSAL = (
    errors.UndefinedTable,
    errors.UndefinedColumn,
    errors.SyntaxError,
    errors.InvalidTextRepresentation,
)


# ---------------------------------------------------------------------------------------------
# helpers


@dataclass(frozen=True)
class Token:
    headers: dict[str, str]
    token_id: str
    request_id: str  # of the issuing request


@dataclass(frozen=True)
class Clinic:
    tenant: Tenant
    practice: Practice
    staff: Token
    agent: Token
    auditor: Token


def issue(server: LiveServer, tenant_id: str, role: str, patient_ref: str | None = None) -> Token:
    body: dict[str, Any] = {"role": role}
    if patient_ref is not None:
        body["patient_ref"] = patient_ref
    with server.client() as client:
        response = client.post(
            f"/v1/admin/tenants/{tenant_id}/tokens", json=body, headers=server.admin_headers
        )
    answer = expect(response, 201)
    assert answer.get("token_id"), f"the issuance answer carries no token_id: {answer}"
    return Token(
        headers=bearer(answer["token"]),
        token_id=str(answer["token_id"]),
        request_id=request_id_of(response),
    )


def request_id_of(response: httpx.Response) -> str:
    raw = response.headers.get("x-request-id")
    assert raw, (
        f"{response.request.method} {response.request.url.path} answered "
        f"{response.status_code} without an X-Request-Id header"
    )
    return str(uuid.UUID(raw))  # a UUID, in its canonical spelling


def su_connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def rows_of(su_url: str, tenant_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
    with su_connect(su_url) as conn:
        return conn.execute(
            "SELECT * FROM audit_log WHERE tenant_id = %s AND seq > %s ORDER BY seq",
            (tenant_id, after_seq),
        ).fetchall()


def max_seq(su_url: str, tenant_id: str) -> int:
    with su_connect(su_url) as conn:
        row = conn.execute(
            "SELECT coalesce(max(seq), 0) AS m FROM audit_log WHERE tenant_id = %s", (tenant_id,)
        ).fetchone()
    assert row is not None
    return int(row["m"])


def rows_with_request_id(su_url: str, request_id: str) -> list[dict[str, Any]]:
    with su_connect(su_url) as conn:
        return conn.execute(
            "SELECT * FROM audit_log WHERE request_id = %s", (uuid.UUID(request_id),)
        ).fetchall()


def count_all(su_url: str) -> int:
    with su_connect(su_url) as conn:
        row = conn.execute("SELECT count(*) AS n FROM audit_log").fetchone()
    assert row is not None
    return int(row["n"])


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """The fields a test compares, in a form that prints readably."""
    return {
        "tenant_id": row["tenant_id"],
        "principal": row["principal"],
        "role": row["role"],
        "action": row["action"],
        "patient_ref": row["patient_ref"],
        "outcome": row["outcome"],
        "status": row["status"],
        "request_id": str(row["request_id"]),
    }


def parse_at(text: str) -> datetime:
    instant = datetime.fromisoformat(text)
    assert instant.tzinfo is not None, f"audit `at` {text!r} carries no UTC offset"
    return instant


def audit(
    client: httpx.Client, headers: dict[str, str], **params: str
) -> tuple[list[dict[str, Any]], httpx.Response]:
    response = client.get("/v1/audit", params=params, headers=headers)
    body = expect(response, 200)
    assert isinstance(body, dict) and isinstance(body.get("entries"), list), body
    for entry in body["entries"]:
        missing = ENTRY_FIELDS - set(entry)
        assert not missing, f"audit entry lacks {sorted(missing)}: {entry}"
    return body["entries"], response


@dataclass
class Cli:
    env: dict[str, str]

    def verify(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "booking.cli", "audit", "verify", *extra],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def output_of(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"


def assert_intact(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, output_of(done)
    assert "intact" in (done.stdout + done.stderr).lower(), output_of(done)


def assert_broken_at(done: subprocess.CompletedProcess[str], tenant_id: str, seq: int) -> None:
    assert done.returncode == 1, output_of(done)
    lines = (done.stdout + done.stderr).splitlines()
    naming = [
        line for line in lines if tenant_id in line and re.search(rf"(?<![\w-]){seq}(?!\w)", line)
    ]
    assert naming, f"no line names tenant {tenant_id} and entry {seq}:\n{output_of(done)}"


# ---------------------------------------------------------------------------------------------
# fixtures: two clinics, each with a practice, tokens whose ids we know, and one appointment in B


def make_clinic(server: LiveServer, tenant_id: str) -> Clinic:
    tenant = seed_tenant(server, tenant_id)
    staff = issue(server, tenant_id, "staff")
    agent = issue(server, tenant_id, "agent")
    auditor = issue(server, tenant_id, "auditor")
    tenant.staff_headers = staff.headers
    tenant.agent_headers = agent.headers
    practice = setup_practice(server, tenant)
    return Clinic(tenant=tenant, practice=practice, staff=staff, agent=agent, auditor=auditor)


@pytest.fixture(scope="module")
def su_url(live_server: LiveServer, pg_cluster: PgCluster) -> str:
    dbname = conninfo_to_dict(str(live_server.settings.database_url))["dbname"]
    assert isinstance(dbname, str)
    return pg_cluster.superuser_url(dbname)


@pytest.fixture(scope="module")
def clinic_a(live_server: LiveServer) -> Clinic:
    return make_clinic(live_server, TENANT_A)


@dataclass(frozen=True)
class ClinicB:
    clinic: Clinic
    appointment_id: str
    booking_request_id: str


@pytest.fixture(scope="module")
def clinic_b(live_server: LiveServer) -> ClinicB:
    clinic = make_clinic(live_server, TENANT_B)
    with live_server.client() as client:
        slot = open_slots(client, clinic.tenant, clinic.practice, days_from=3)[0]
        response = client.post(
            "/v1/agent/bookings",
            json={"patient_ref": "pat-1", "slot_id": slot["slot_id"]},
            headers=clinic.agent.headers,
        )
        booked = expect(response, 201)
    return ClinicB(
        clinic=clinic,
        appointment_id=booked["appointment_id"],
        booking_request_id=request_id_of(response),
    )


@pytest.fixture(scope="module")
def cli(live_server: LiveServer) -> Cli:
    settings = live_server.settings
    return Cli(
        env={
            **os.environ,
            "BOOKING_DATABASE_URL": str(settings.database_url),
            "BOOKING_ADMIN_DATABASE_URL": str(settings.admin_database_url),
            "BOOKING_CIPHER_KEY": str(settings.cipher_key),
        }
    )


# ---------------------------------------------------------------------------------------------
# 1. one entry per request, in order, with what an investigator needs


def test_a_patient_journey_leaves_one_entry_per_request_in_order(
    live_server: LiveServer, clinic_a: Clinic, clinic_b: ClinicB, su_url: str
) -> None:
    a = clinic_a
    patient = issue(live_server, TENANT_A, "patient", patient_ref="pat-1")
    start = max_seq(su_url, TENANT_A)
    b_before = max_seq(su_url, TENANT_B)
    expected: list[dict[str, Any]] = []
    mismatches: list[str] = []

    def step(
        response: httpx.Response,
        principal: str,
        role: str,
        action: str,
        outcome: str,
        status: int,
        patient_ref: str | None,
    ) -> Any:
        assert response.status_code == status, (
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {status}: {response.text}"
        )
        request_id = request_id_of(response)
        want = {
            "tenant_id": TENANT_A,
            "principal": principal,
            "role": role,
            "action": action,
            "patient_ref": patient_ref,
            "outcome": outcome,
            "status": status,
            "request_id": request_id,
        }
        found = [summary(r) for r in rows_with_request_id(su_url, request_id)]
        if found != [want]:  # noted, so one run reports every wrong entry of the story
            wrong = [
                f"{k}: expected {want[k]!r}, got {found[0][k]!r}"
                for k in want
                if len(found) == 1 and found[0][k] != want[k]
            ]
            mismatches.append(
                f"{response.request.method} {response.request.url.path} -> {status}: "
                + ("; ".join(wrong) if wrong else f"expected one entry, found {found}")
            )
        expected.append(want)
        return response.json() if response.content else None

    with live_server.client() as client:
        registered = client.post(
            "/v1/staff/patients",
            json={"patient_ref": "pat-3", "name": "Ada Audit", "phone": "+15550109999"},
            headers=a.staff.headers,
        )
        step(
            registered,
            a.staff.token_id,
            "staff",
            "POST /v1/staff/patients",
            "success",
            201,
            "pat-3",
        )

        slots = client.post(
            "/v1/agent/availability",
            json={
                "type_id": a.practice.type_id,
                "provider_id": a.practice.provider_id,
                "start_from": (live_server.clock.now() + timedelta(days=2)).isoformat(),
                "start_to": (live_server.clock.now() + timedelta(days=9)).isoformat(),
                "limit": 5,
            },
            headers=a.agent.headers,
        )
        found_slots = step(
            slots, a.agent.token_id, "agent", "POST /v1/agent/availability", "success", 200, None
        )["slots"]
        slot_id = found_slots[0]["slot_id"]

        held = client.post(
            "/v1/agent/holds",
            json={"slot_id": slot_id, "patient_ref": "pat-3"},
            headers=a.agent.headers,
        )
        hold_id = step(
            held, a.agent.token_id, "agent", "POST /v1/agent/holds", "success", 201, "pat-3"
        )["hold_id"]

        both = client.post(  # hold_id and slot_id at once: 422
            "/v1/agent/bookings",
            json={"patient_ref": "pat-3", "hold_id": hold_id, "slot_id": slot_id},
            headers=a.agent.headers,
        )
        step(both, a.agent.token_id, "agent", "POST /v1/agent/bookings", "rejected", 422, "pat-3")

        booked = client.post(
            "/v1/agent/bookings",
            json={"patient_ref": "pat-3", "hold_id": hold_id},
            headers=a.agent.headers,
        )
        appointment = step(
            booked, a.agent.token_id, "agent", "POST /v1/agent/bookings", "success", 201, "pat-3"
        )

        taken = client.post(  # another patient wants the booked slot: 409
            "/v1/agent/holds",
            json={"slot_id": slot_id, "patient_ref": "pat-1"},
            headers=a.agent.headers,
        )
        step(taken, a.agent.token_id, "agent", "POST /v1/agent/holds", "rejected", 409, "pat-1")

        confirmed = client.get(
            f"/v1/agent/confirmations/{appointment['confirmation_code']}",
            headers=a.agent.headers,
        )
        step(
            confirmed,
            a.agent.token_id,
            "agent",
            "GET /v1/agent/confirmations/{confirmation_code}",
            "success",
            200,
            "pat-3",  # the confirmation names one appointment, hence one patient
        )

        portal = client.get("/v1/portal/appointments", headers=patient.headers)
        step(
            portal,
            patient.token_id,
            "patient",
            "GET /v1/portal/appointments",
            "success",
            200,
            "pat-1",
        )

        timeline = client.get("/v1/staff/patients/pat-3/timeline", headers=a.staff.headers)
        step(
            timeline,
            a.staff.token_id,
            "staff",
            "GET /v1/staff/patients/{patient_ref}/timeline",
            "success",
            200,
            "pat-3",
        )

        cancelled = client.post(
            f"/v1/agent/appointments/{appointment['appointment_id']}/cancel",
            json={"reason": "patient asked"},
            headers=a.agent.headers,
        )
        step(
            cancelled,
            a.agent.token_id,
            "agent",
            "POST /v1/agent/appointments/{appointment_id}/cancel",
            "success",
            200,
            "pat-3",
        )

        foreign = client.post(  # audit-b's appointment, asked for with audit-a's token: 404
            f"/v1/agent/appointments/{clinic_b.appointment_id}/cancel",
            json={"reason": "probing"},
            headers=a.agent.headers,
        )
        step(
            foreign,
            a.agent.token_id,
            "agent",
            "POST /v1/agent/appointments/{appointment_id}/cancel",
            "not-found",
            404,
            None,  # not found in audit-a: its patient (in audit-b) must not be named
        )

        total_before_401 = count_all(su_url)
        unauthenticated = client.post(
            "/v1/agent/holds",
            json={"slot_id": slot_id, "patient_ref": "pat-3"},
            headers=bearer("not-a-real-token"),
        )
        assert unauthenticated.status_code == 401, unauthenticated.text
        no_header = client.get("/v1/agent/tools")
        assert no_header.status_code == 401, no_header.text
        assert count_all(su_url) == total_before_401, "a request without a valid token was audited"

        denied = client.post(  # an agent may not register patients: 403
            "/v1/staff/patients",
            json={"patient_ref": "pat-9", "name": "Not Allowed"},
            headers=a.agent.headers,
        )
        step(
            denied,
            a.agent.token_id,
            "agent",
            "POST /v1/staff/patients",
            "denied",
            403,
            "pat-9",  # the body names the patient the attempt concerned
        )

    # committed before the response was sent: each was visible the moment its answer was in
    assert not mismatches, "wrong or missing entries:\n" + "\n".join(mismatches)
    got = [summary(r) for r in rows_of(su_url, TENANT_A, after_seq=start)]
    assert got == expected
    seqs = [r["seq"] for r in rows_of(su_url, TENANT_A, after_seq=start)]
    assert seqs == list(range(start + 1, start + 1 + len(expected))), seqs
    assert len({e["request_id"] for e in expected}) == len(expected), "request ids repeat"
    # audit-b's log did not get the probe of its appointment
    assert max_seq(su_url, TENANT_B) == b_before


def test_admin_requests_are_filed_under_the_tenant_they_concern(
    live_server: LiveServer, clinic_a: Clinic, su_url: str
) -> None:
    first = rows_of(su_url, TENANT_A)[:3]
    assert [(r["seq"], r["principal"], r["role"], r["action"], r["status"]) for r in first] == [
        (1, "admin", "admin", "POST /v1/admin/tenants", 201),
        (2, "admin", "admin", "POST /v1/admin/tenants/{tenant_id}/tokens", 201),
        (3, "admin", "admin", "POST /v1/admin/tenants/{tenant_id}/tokens", 201),
    ]
    with live_server.client() as client:
        again = client.post(
            "/v1/admin/tenants",
            json={"tenant_id": TENANT_A, "name": "Clinic again", "timezone": "America/New_York"},
            headers=live_server.admin_headers,
        )
        assert again.status_code == 409, again.text
        nameless = client.post(
            "/v1/admin/tenants", json={"name": "No id"}, headers=live_server.admin_headers
        )
        assert nameless.status_code == 422, nameless.text

    assert [summary(r) for r in rows_with_request_id(su_url, request_id_of(again))] == [
        {
            "tenant_id": TENANT_A,
            "principal": "admin",
            "role": "admin",
            "action": "POST /v1/admin/tenants",
            "patient_ref": None,
            "outcome": "rejected",
            "status": 409,
            "request_id": request_id_of(again),
        }
    ]
    assert [summary(r) for r in rows_with_request_id(su_url, request_id_of(nameless))] == [
        {
            "tenant_id": "_platform",
            "principal": "admin",
            "role": "admin",
            "action": "POST /v1/admin/tenants",
            "patient_ref": None,
            "outcome": "rejected",
            "status": 422,
            "request_id": request_id_of(nameless),
        }
    ]


def test_each_tenant_chain_starts_at_zero_and_links_without_gaps(
    clinic_a: Clinic, clinic_b: ClinicB, su_url: str
) -> None:
    for tenant_id in (TENANT_A, TENANT_B):
        rows = rows_of(su_url, tenant_id)
        assert len(rows) >= 8, f"{tenant_id}: only {len(rows)} entries"
        assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
        assert bytes(rows[0]["prev_hash"]) == ZERO_HASH
        for before, after in itertools.pairwise(rows):
            assert len(bytes(after["hash"])) == 32, after
            assert bytes(after["prev_hash"]) == bytes(before["hash"]), (
                f"{tenant_id}: entry {after['seq']}'s prev_hash is not entry {before['seq']}'s hash"
            )
        assert len({bytes(r["hash"]) for r in rows}) == len(rows)
        for row in rows:
            assert row["at"].tzinfo is not None
            assert row["outcome"] in {"success", "denied", "not-found", "rejected", "error"}, row


# ---------------------------------------------------------------------------------------------
# 2. the auditor's view


def test_an_auditor_reads_their_own_tenant_filtered_by_patient_and_time(
    live_server: LiveServer, clinic_a: Clinic, clinic_b: ClinicB, su_url: str
) -> None:
    a = clinic_a
    patient = issue(live_server, TENANT_A, "patient", patient_ref="pat-1")

    def pause() -> None:  # a clear gap both on the service clock and on the database's
        live_server.clock.advance(minutes=5)  # tokens live 1 h
        time.sleep(1.1)

    with live_server.client() as client:
        phase1 = [
            client.get("/v1/agent/patients/pat-1/appointments", headers=a.agent.headers),
            client.get("/v1/staff/patients/pat-2/timeline", headers=a.staff.headers),
        ]
        pause()
        phase2 = [
            client.get("/v1/agent/patients/pat-1/appointments", headers=a.agent.headers),
            client.get("/v1/agent/patients/pat-2/appointments", headers=a.agent.headers),
            client.get("/v1/audit", headers=a.staff.headers),
            client.get("/v1/audit", headers=a.agent.headers),
            client.get("/v1/audit", headers=patient.headers),
        ]
        pause()
        phase3 = [client.get("/v1/agent/patients/pat-1/appointments", headers=a.agent.headers)]

        for response in phase2[2:]:
            assert response.status_code == 403, (response.request.headers, response.text)

        everything, _ = audit(client, a.auditor.headers)
        by_id = {e["request_id"]: e for e in everything}
        seqs = [e["seq"] for e in everything]
        assert seqs == list(range(1, len(everything) + 1)), f"not every entry, in seq order: {seqs}"
        for response in phase1 + phase2 + phase3:
            assert request_id_of(response) in by_id, (
                f"{response.request.method} {response.request.url.path} "
                f"({request_id_of(response)}) is not in the auditor's list"
            )
        for response, role, principal in zip(
            phase2[2:],
            ("staff", "agent", "patient"),
            (a.staff.token_id, a.agent.token_id, patient.token_id),
            strict=True,
        ):
            entry = by_id[request_id_of(response)]
            assert (entry["action"], entry["role"], entry["principal"]) == (
                "GET /v1/audit",
                role,
                principal,
            ), entry
            assert (entry["outcome"], entry["status"]) == ("denied", 403), entry
        first = by_id[request_id_of(phase2[0])]
        assert (first["action"], first["patient_ref"], first["outcome"], first["status"]) == (
            "GET /v1/agent/patients/{patient_ref}/appointments",
            "pat-1",
            "success",
            200,
        ), first
        last_seq = everything[-1]["seq"]

        # by patient: exactly the entries naming pat-1 (later audit reads may follow)
        for_pat1, _ = audit(client, a.auditor.headers, patient_ref="pat-1")
        assert all(e["patient_ref"] == "pat-1" for e in for_pat1), for_pat1
        assert [e for e in for_pat1 if e["seq"] <= last_seq] == [
            e for e in everything if e["patient_ref"] == "pat-1"
        ]
        assert {request_id_of(r) for r in (phase1[0], phase2[0], phase3[0])} <= {
            e["request_id"] for e in for_pat1
        }

        # by time: a window between the pauses holds exactly phase 2
        def at(response: httpx.Response) -> datetime:
            return parse_at(by_id[request_id_of(response)]["at"])

        window_from = at(phase1[-1]) + (at(phase2[0]) - at(phase1[-1])) / 2
        window_to = at(phase2[-1]) + (at(phase3[0]) - at(phase2[-1])) / 2
        windowed, _ = audit(
            client,
            a.auditor.headers,
            **{"from": window_from.isoformat(), "to": window_to.isoformat()},
        )
        assert [e["request_id"] for e in windowed] == [request_id_of(r) for r in phase2], (
            f"window [{window_from.isoformat()}, {window_to.isoformat()}]: {windowed}"
        )

        both, _ = audit(
            client,
            a.auditor.headers,
            patient_ref="pat-1",
            **{"from": window_from.isoformat(), "to": window_to.isoformat()},
        )
        phase2_ids = {request_id_of(r) for r in phase2}
        assert [e["request_id"] for e in both] == [
            e["request_id"]
            for e in everything
            if e["patient_ref"] == "pat-1" and e["request_id"] in phase2_ids
        ], both
        assert request_id_of(phase2[0]) in [e["request_id"] for e in both], both

        # both ends are included
        exact = by_id[request_id_of(phase2[1])]["at"]
        pinned, _ = audit(client, a.auditor.headers, **{"from": exact, "to": exact})
        assert request_id_of(phase2[1]) in [e["request_id"] for e in pinned], (exact, pinned)

        for params in ({"from": "2026-01-01T00:00:00"}, {"to": "2026-01-01T00:00:00"}):
            naive = client.get("/v1/audit", params=params, headers=a.auditor.headers)
            assert naive.status_code == 422, (params, naive.status_code, naive.text)

        # the other clinic's auditor sees only the other clinic
        b = clinic_b.clinic
        theirs, _ = audit(client, b.auditor.headers)
        theirs_pat1, _ = audit(client, b.auditor.headers, patient_ref="pat-1")

    ours = {e["request_id"] for e in everything}
    assert not ours & {e["request_id"] for e in theirs}, "audit-b's auditor sees audit-a entries"
    assert not ours & {e["request_id"] for e in theirs_pat1}
    assert clinic_b.booking_request_id in {e["request_id"] for e in theirs_pat1}
    b_ids = {str(r["request_id"]) for r in rows_of(su_url, TENANT_B)}
    assert {e["request_id"] for e in theirs} <= b_ids
    a_ids = {str(r["request_id"]) for r in rows_of(su_url, TENANT_A)}
    assert ours <= a_ids


# ---------------------------------------------------------------------------------------------
# 3. append-only for the runtime role, tenant-bound by row-level security


def test_the_runtime_role_can_only_append_and_read(
    live_server: LiveServer, clinic_a: Clinic, su_url: str
) -> None:
    before = rows_of(su_url, TENANT_A)
    assert before

    with su_connect(su_url) as conn:
        flags = conn.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE oid = 'public.audit_log'::regclass"
        ).fetchone()
    assert flags == {"relrowsecurity": True, "relforcerowsecurity": True}, flags

    refusals: dict[str, str] = {}
    with psycopg.connect(str(live_server.settings.database_url)) as conn:
        for statement in (
            "UPDATE audit_log SET outcome = 'success' WHERE tenant_id = 'audit-a'",
            "UPDATE audit_log SET patient_ref = NULL WHERE tenant_id = 'audit-a' AND seq = 2",
            "DELETE FROM audit_log WHERE tenant_id = 'audit-a' AND seq = 2",
            "DELETE FROM audit_log WHERE tenant_id = 'audit-a'",
            "TRUNCATE audit_log",
        ):
            with (
                pytest.raises(psycopg.DatabaseError) as refused,
                conn.transaction(force_rollback=True),
            ):
                conn.execute("SELECT set_config('app.tenant_id', %s, true)", (TENANT_A,))
                visible = conn.execute("SELECT count(*) FROM audit_log").fetchone()
                assert visible is not None and visible[0] == len(before), visible
                conn.execute(statement)
            assert not isinstance(refused.value, NOT_A_REFUSAL), (statement, refused.value)
            refusals[statement] = type(refused.value).__name__

        # row-level security: no tenant set → nothing; another tenant → none of audit-a's rows
        with conn.transaction(force_rollback=True):
            row = conn.execute("SELECT count(*) FROM audit_log").fetchone()
            assert row == (0,), f"without app.tenant_id the runtime role sees {row} rows"
        with conn.transaction(force_rollback=True):
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (TENANT_B,))
            row = conn.execute(
                "SELECT count(*) FROM audit_log WHERE tenant_id = %s", (TENANT_A,)
            ).fetchone()
            assert row == (0,), f"with app.tenant_id=audit-b the runtime role sees {row} of audit-a"
        with (
            pytest.raises(psycopg.DatabaseError) as cross,
            conn.transaction(force_rollback=True),
        ):
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (TENANT_B,))
            conn.execute(
                "INSERT INTO audit_log (tenant_id, seq, at, principal, role, action,"
                " outcome, status, request_id, prev_hash, hash)"
                " VALUES (%s, 100000, now(), 'x', 'staff', 'GET /x', 'success', 200,"
                " gen_random_uuid(), %s, %s)",
                (TENANT_A, ZERO_HASH, ZERO_HASH),
            )
        assert not isinstance(cross.value, NOT_A_REFUSAL), cross.value

    assert rows_of(su_url, TENANT_A)[: len(before)] == before, "the attempts changed rows"


# ---------------------------------------------------------------------------------------------
# 4. `booking audit verify` catches edits, removals and reorderings


def tamper(su_url: str, statements: list[tuple[Any, tuple[Any, ...]]]) -> None:
    """Run ``statements`` as superuser with triggers switched off, in one transaction."""
    with psycopg.connect(su_url) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        for statement, params in statements:
            conn.execute(statement, params)


def test_verify_finds_edits_removals_and_reorderings(
    live_server: LiveServer, clinic_a: Clinic, clinic_b: ClinicB, su_url: str, cli: Cli
) -> None:
    assert len(rows_of(su_url, TENANT_A)) >= 8
    assert_intact(cli.verify())
    assert_intact(cli.verify("--tenant", TENANT_A))

    # an edited outcome
    original = rows_of(su_url, TENANT_A)[2]
    assert original["seq"] == 3
    forged = "denied" if original["outcome"] != "denied" else "success"
    edit = "UPDATE audit_log SET outcome = %s WHERE tenant_id = %s AND seq = 3"
    tamper(su_url, [(edit, (forged, TENANT_A))])
    try:
        assert_broken_at(cli.verify(), TENANT_A, 3)
        assert_broken_at(cli.verify("--tenant", TENANT_A), TENANT_A, 3)
        assert_intact(cli.verify("--tenant", TENANT_B))
    finally:
        tamper(su_url, [(edit, (original["outcome"], TENANT_A))])
    assert_intact(cli.verify())

    # a removed entry in the middle
    removed = rows_of(su_url, TENANT_A)[4]
    assert removed["seq"] == 5
    tamper(su_url, [("DELETE FROM audit_log WHERE tenant_id = %s AND seq = 5", (TENANT_A,))])
    try:
        assert_broken_at(cli.verify(), TENANT_A, 5)
    finally:
        columns = list(removed)
        insert = sql.SQL("INSERT INTO audit_log ({}) VALUES ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )
        tamper(su_url, [(insert, tuple(removed[c] for c in columns))])
    assert_intact(cli.verify())

    # two entries swapped
    swap = "UPDATE audit_log SET seq = %s WHERE tenant_id = %s AND seq = %s"
    swapped = [(swap, (-6, TENANT_A, 6)), (swap, (6, TENANT_A, 7)), (swap, (7, TENANT_A, -6))]
    tamper(su_url, swapped)
    try:
        assert_broken_at(cli.verify(), TENANT_A, 6)
    finally:
        tamper(su_url, swapped)  # swapping again puts them back
    assert_intact(cli.verify())
