"""Idempotency-Key: a retried booking returns the first answer byte for byte and writes nothing
new; concurrent duplicates get the same answer; a key is bound to its body and to its token; an
error answer is never stored."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.booking_helpers import (
    APPOINTMENT_BOOKED,
    EventLog,
    assert_problem,
    event_log,
    open_slots,
    utc,
)
from tests.support.server import LiveServer, Practice, Tenant, expect, seed_tenant, setup_practice

REPLAYED = "Idempotent-Replayed"


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "idem-clinic")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    return setup_practice(live_server, tenant, patients=("pat-1", "pat-2", "pat-3", "pat-4"))


@pytest.fixture(scope="module")
def log(live_server: LiveServer) -> Iterator[EventLog]:
    yield from event_log(live_server)


@pytest.fixture(scope="module")
def slots(live_server: LiveServer, tenant: Tenant, practice: Practice) -> list[dict[str, Any]]:
    with live_server.client() as client:
        found = open_slots(client, tenant, practice, days_from=1, days=5, limit=30)
    assert len(found) >= 18
    return found


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"k-{uuid.uuid4()}"}


def bookings_of(
    log: EventLog, appointment_ids: set[str] | None = None, start: Any = None
) -> list[Any]:
    events = log.appointment_events(APPOINTMENT_BOOKED)
    if start is not None:
        events = [e for e in events if e.event.start == utc(start)]
    if appointment_ids is not None:
        events = [e for e in events if str(e.stream_id) in appointment_ids]
    return events


def test_a_repeated_booking_replays_the_first_answer_and_writes_nothing(
    live_server: LiveServer, tenant: Tenant, slots: list[dict[str, Any]], log: EventLog
) -> None:
    headers = {**tenant.agent_headers, **key()}
    body = {"patient_ref": "pat-1", "slot_id": slots[0]["slot_id"]}
    with live_server.client() as client:
        first = client.post("/v1/agent/bookings", json=body, headers=headers)
        assert first.status_code == 201, first.text
        assert REPLAYED not in first.headers
        position_after_first = log.max_position()
        booked_after_first = len(log.appointment_events(APPOINTMENT_BOOKED))

        repeats = [client.post("/v1/agent/bookings", json=body, headers=headers) for _ in range(2)]

    for repeat in repeats:
        assert repeat.status_code == 201, repeat.text
        assert repeat.content == first.content
        assert repeat.headers.get(REPLAYED) == "true"
    assert log.max_position() == position_after_first
    assert len(log.appointment_events(APPOINTMENT_BOOKED)) == booked_after_first
    assert len(bookings_of(log, start=slots[0]["start"])) == 1


def test_a_reordered_body_with_equal_json_is_the_same_request(
    live_server: LiveServer, tenant: Tenant, slots: list[dict[str, Any]], log: EventLog
) -> None:
    headers = {**tenant.agent_headers, **key()}
    with live_server.client() as client:
        first = client.post(
            "/v1/agent/bookings",
            json={"patient_ref": "pat-1", "slot_id": slots[1]["slot_id"]},
            headers=headers,
        )
        assert first.status_code == 201, first.text
        before = log.max_position()
        again = client.post(
            "/v1/agent/bookings",
            content=f'{{ "slot_id": "{slots[1]["slot_id"]}",  "patient_ref": "pat-1" }}',
            headers={**headers, "Content-Type": "application/json"},
        )
    assert again.status_code == 201, again.text
    assert again.content == first.content
    assert again.headers.get(REPLAYED) == "true"
    assert log.max_position() == before


@pytest.mark.parametrize("round_", range(8))
def test_concurrent_duplicates_all_get_the_one_answer(
    live_server: LiveServer,
    tenant: Tenant,
    slots: list[dict[str, Any]],
    log: EventLog,
    round_: int,
) -> None:
    """Three copies of one request sent at once (repeated over a few rounds, as a race may hide)."""
    slot = slots[10 + round_]
    headers = {**tenant.agent_headers, **key()}
    body = {"patient_ref": "pat-2", "slot_id": slot["slot_id"]}
    barrier = threading.Barrier(3)
    results: list[Any] = [None] * 3

    def send(index: int) -> None:
        with live_server.client(timeout=60) as client:
            client.get("/health")
            barrier.wait()
            try:
                results[index] = client.post("/v1/agent/bookings", json=body, headers=headers)
            except BaseException as exc:
                results[index] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert all(isinstance(r, httpx.Response) for r in results), results
    assert [r.status_code for r in results] == [201, 201, 201], [r.text for r in results]
    assert len({r.content for r in results}) == 1, [r.text for r in results]
    assert sum(1 for r in results if r.headers.get(REPLAYED) != "true") == 1, [
        dict(r.headers) for r in results
    ]
    appointment_id = results[0].json()["appointment_id"]
    assert [str(e.stream_id) for e in bookings_of(log, start=slot["start"])] == [appointment_id]


def test_the_same_key_with_another_body_is_refused(
    live_server: LiveServer, tenant: Tenant, slots: list[dict[str, Any]], log: EventLog
) -> None:
    headers = {**tenant.agent_headers, **key()}
    with live_server.client() as client:
        expect(
            client.post(
                "/v1/agent/bookings",
                json={"patient_ref": "pat-3", "slot_id": slots[3]["slot_id"]},
                headers=headers,
            ),
            201,
        )
        before = log.max_position()
        reused = client.post(
            "/v1/agent/bookings",
            json={"patient_ref": "pat-3", "slot_id": slots[4]["slot_id"]},
            headers=headers,
        )
    assert_problem(reused, 422)
    assert reused.json()["type"] == "/problems/idempotency-key-reuse"
    assert log.max_position() == before


def test_a_key_belongs_to_the_token_that_sent_it(
    live_server: LiveServer, tenant: Tenant, slots: list[dict[str, Any]], log: EventLog
) -> None:
    shared = key()
    other_agent = tenant.token("agent")
    body = {"patient_ref": "pat-4", "slot_id": slots[5]["slot_id"]}
    with live_server.client() as client:
        first = client.post(
            "/v1/agent/bookings", json=body, headers={**tenant.agent_headers, **shared}
        )
        assert first.status_code == 201, first.text

        # the same key and body from another token is a new request: the slot is taken now
        same_body = client.post("/v1/agent/bookings", json=body, headers={**other_agent, **shared})
        assert REPLAYED not in same_body.headers
        assert_problem(same_body, 409, "slot-unavailable")

        # and the same key with another body is not a key reuse for that token
        other_body = {"patient_ref": "pat-4", "slot_id": slots[6]["slot_id"]}
        second = client.post(
            "/v1/agent/bookings", json=other_body, headers={**other_agent, **shared}
        )
    assert second.status_code == 201, second.text
    assert REPLAYED not in second.headers
    assert second.json()["appointment_id"] != first.json()["appointment_id"]
    assert utc(second.json()["start"]) == utc(slots[6]["start"])
    assert (
        len(bookings_of(log, {first.json()["appointment_id"], second.json()["appointment_id"]}))
        == 2
    )


def test_an_error_answer_is_not_stored_and_a_retry_is_decided_afresh(
    live_server: LiveServer, tenant: Tenant, slots: list[dict[str, Any]], log: EventLog
) -> None:
    contested = slots[7]
    retried_key = key()
    body = {"patient_ref": "pat-2", "slot_id": contested["slot_id"]}
    with live_server.client() as client:
        blocking = expect(
            client.post(
                "/v1/agent/bookings",
                json={"patient_ref": "pat-1", "slot_id": contested["slot_id"]},
                headers={**tenant.agent_headers, **key()},
            ),
            201,
        )

        refused = client.post(
            "/v1/agent/bookings", json=body, headers={**tenant.agent_headers, **retried_key}
        )
        assert_problem(refused, 409, "slot-unavailable")
        assert REPLAYED not in refused.headers

        expect(
            client.post(
                f"/v1/agent/appointments/{blocking['appointment_id']}/cancel",
                json={"reason": "patient called back"},
                headers={**tenant.agent_headers, **key()},
            ),
            200,
        )

        retried = client.post(
            "/v1/agent/bookings", json=body, headers={**tenant.agent_headers, **retried_key}
        )
        assert retried.status_code == 201, retried.text
        assert REPLAYED not in retried.headers

        replayed = client.post(
            "/v1/agent/bookings", json=body, headers={**tenant.agent_headers, **retried_key}
        )
    assert replayed.status_code == 201
    assert replayed.content == retried.content
    assert replayed.headers.get(REPLAYED) == "true"
    assert len(bookings_of(log, {retried.json()["appointment_id"]})) == 1
