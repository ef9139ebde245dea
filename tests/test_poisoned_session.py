"""The poisoned session: one request runs a broken INSERT inside its transaction while eight
clients across three clinics make 2,000 requests through a pool of two connections. Nothing
else fails; the broken request gets a 500 with an error_id, and leaves only its audit entry."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import psycopg
import pytest

from api.faults import Faults
from tests.booking_helpers import open_slots
from tests.support.server import (
    LiveServer,
    Tenant,
    seed_tenant,
    setup_practice,
)

CLIENTS, REQUESTS, POISONED = 8, 2000, 777


APP_OPTIONS = {"pool_size": 2, "faults": Faults()}


@pytest.fixture(scope="module")
def small_pool_server(live_server: LiveServer) -> LiveServer:
    """The real app with a pool of two connections and the test-only fault switch."""
    return live_server


def test_one_poisoned_request_harms_no_other(small_pool_server: LiveServer) -> None:
    server = small_pool_server
    tenants: list[tuple[Tenant, list[dict[str, Any]]]] = []
    for name in ("poison-a", "poison-b", "poison-c"):
        tenant = seed_tenant(server, name)
        practice = setup_practice(server, tenant, patients=[f"p{i}" for i in range(CLIENTS)])
        with server.client() as client:
            tenants.append((tenant, open_slots(client, tenant, practice, days_from=1, days=20)))
    with psycopg.connect(server.settings.admin_database_url) as conn:
        events_before = conn.execute("SELECT count(*) FROM scheduling_events").fetchone()[0]  # type: ignore[index]

    counter = iter(range(REQUESTS))
    lock = threading.Lock()
    results: list[tuple[int, int, str, str]] = []  # (n, status, body, request id)

    def client_loop(worker: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                tenant, slots = tenants[n % 3]
                headers = dict(tenant.agent_headers)
                if n == POISONED:
                    headers["X-Test-Fault"] = "broken-insert"
                if n % 10 == 0 and n // 30 < len(slots):  # some writes among the reads
                    answer = client.post(
                        "/v1/agent/bookings",
                        headers=headers,
                        json={"patient_ref": f"p{worker}", "slot_id": slots[n // 30]["slot_id"]},
                    )
                elif n % 2:
                    answer = client.get(
                        f"/v1/agent/patients/p{worker}/appointments", headers=headers
                    )
                else:
                    answer = client.get("/v1/agent/tools", headers=headers)
                with lock:
                    results.append(
                        (n, answer.status_code, answer.text, answer.headers.get("x-request-id", ""))
                    )

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)

    assert len(results) == REQUESTS
    poisoned = [r for r in results if r[0] == POISONED]
    others = [r for r in results if r[0] != POISONED]
    failures = [
        (n, status, body[:200])
        for n, status, body, _ in others
        if status >= 500 or status not in (200, 201, 409)
    ]
    assert not failures, failures[:10]
    ((_, status, body, request_id),) = poisoned
    assert status == 500, body
    assert "error_id" in body and "Traceback" not in body and "INSERT" not in body
    with psycopg.connect(server.settings.admin_database_url) as conn:
        events_after = conn.execute("SELECT count(*) FROM scheduling_events").fetchone()[0]  # type: ignore[index]
        booked = sum(1 for r in others if r[1] == 201)
        # each booking: appointment, code, patient, day (+ the day's opening when it is new)
        assert 4 * booked <= events_after - events_before <= 5 * booked
        poison = conn.execute("SELECT count(*) FROM scheduling_events WHERE topic = 'poison'")
        assert poison.fetchone() == (0,)
        conn.execute("SELECT set_config('app.tenant_id', 'poison-a', false)")
        entry = conn.execute(
            "SELECT status FROM audit_log WHERE request_id = %s", (request_id,)
        ).fetchone()
    assert entry == (500,)
