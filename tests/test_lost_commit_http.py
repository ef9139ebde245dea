"""Through the API: a booking sent without an Idempotency-Key whose COMMIT answer is lost between
the database and the API. The appointment exists, so the agent must hear 201 with its code, not
409 "slot unavailable" (which it would relay to the patient while the slot is theirs).

The API's runtime connections go through a TCP proxy (tests/support/faultproxy.py) that throws
away the server's answer to the save's pipeline after the server has committed it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.booking_helpers import APPOINTMENT_BOOKED, EventLog, event_log, open_slots
from tests.support.faultproxy import FaultProxy
from tests.support.server import LiveServer, expect, seed_tenant, setup_practice

APP_OPTIONS = {"run_projections": False}  # its transactions would go through the proxy too

_proxies: list[FaultProxy] = []


@pytest.fixture(scope="module")
def database(database: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """This module's database, the API's runtime role reaching it through a FaultProxy."""
    runtime_url, admin_url = database
    proxy = FaultProxy(runtime_url)
    _proxies.append(proxy)
    yield proxy.url, admin_url
    proxy.close()


@pytest.fixture(scope="module")
def proxy(database: tuple[str, str]) -> FaultProxy:
    return _proxies[-1]


@pytest.fixture(scope="module")
def log(live_server: LiveServer) -> Iterator[EventLog]:
    yield from event_log(live_server)


def test_a_booking_whose_commit_answer_was_lost_is_201_and_stored_once(
    live_server: LiveServer, proxy: FaultProxy, log: EventLog
) -> None:
    tenant = seed_tenant(live_server, "lost-ack-clinic")
    practice = setup_practice(live_server, tenant)
    with live_server.client() as client:
        slot = open_slots(client, tenant, practice, days_from=2, days=3, limit=1)[0]
        before = log.max_position()
        proxy.cut_after_commit(b"INSERT INTO")  # the save's pipeline: the API's only insert
        answer = client.post(
            "/v1/agent/bookings",
            json={"patient_ref": "pat-1", "slot_id": slot["slot_id"]},
            headers=tenant.agent_headers,
        )
        assert proxy.fired.is_set()
        booked = expect(answer, 201)
        confirmation = expect(
            client.get(
                f"/v1/agent/confirmations/{booked['confirmation_code']}",
                headers=tenant.agent_headers,
            ),
            200,
        )
    assert confirmation["confirmed"] is True
    assert confirmation["appointment_id"] == booked["appointment_id"]
    bookings = log.events(after=before, topics=(APPOINTMENT_BOOKED,))
    assert [str(e.stream_id) for e in bookings] == [booked["appointment_id"]]
    # its audit entry was committed with it (one transaction), and only once
    entries = live_server.app.state.services.audit.entries(tenant.tenant_id, None, None, None, 100)
    mine = [e for e in entries if str(e["request_id"]) == answer.headers["x-request-id"]]
    assert [(e["action"], e["status"]) for e in mine] == [("POST /v1/agent/bookings", 201)]
