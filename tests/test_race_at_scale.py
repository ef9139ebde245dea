"""A race at scale: 50 agents on 50 calls, each with its own call-bound token, race for the 20
slots of one provider's day, five rounds (five days). All 20 slots sit on one ProviderDay, so
every one of the 50 commands of a round collides on the same aggregate.

Per slot exactly one booking: one 201 per slot, the others 409 slot-unavailable; a 503 busy is
allowed (it writes nothing) and the client retries it, as its Retry-After says. The event log holds
exactly one booking per slot, made on the winner's call; the staff board agrees."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.booking_helpers import (
    APPOINTMENT_BOOKED,
    EventLog,
    assert_problem,
    event_log,
    read_model,
    utc,
)
from tests.support.server import LiveServer, Practice, Tenant, expect, seed_tenant, setup_practice

CLIENTS = 50
SLOTS = 20
ROUNDS = 5
BUSY_RETRIES = 20


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "scale-clinic")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    # 08:00-13:00 in 15-minute slots: 20 slots a day
    hours = [{"weekday": d, "start": "08:00", "end": "13:00"} for d in range(7)]
    return setup_practice(
        live_server, tenant, type_id="quick", duration=15, hours=hours, patients=()
    )


@pytest.fixture(scope="module")
def log(live_server: LiveServer) -> Iterator[EventLog]:
    yield from event_log(live_server)


class Agent:
    """One call: its own patient, its own agent token bound to the call, its own connection."""

    def __init__(self, number: int, tenant: Tenant, client: httpx.Client) -> None:
        self.patient_ref = f"caller-{number:02d}"
        self.call_id = f"call-{number:02d}"
        expect(
            client.post(
                "/v1/staff/patients",
                json={"patient_ref": self.patient_ref, "name": f"Caller {number}"},
                headers=tenant.staff_headers,
            ),
            201,
        )
        token = expect(
            client.post(
                f"/v1/admin/tenants/{tenant.tenant_id}/tokens",
                json={"role": "agent", "call_id": self.call_id},
                headers=tenant.server.admin_headers,
            ),
            201,
        )
        self.headers = {"Authorization": f"Bearer {token['token']}"}
        self.client = tenant.server.client(timeout=120)

    def book(self, slot_id: str) -> tuple[httpx.Response, int]:
        """Book, retrying a 503 busy as its Retry-After asks; the final answer and the 503 count."""
        busy = 0
        body = {"patient_ref": self.patient_ref, "slot_id": slot_id}
        while True:
            response = self.client.post("/v1/agent/bookings", json=body, headers=self.headers)
            if response.status_code != 503 or busy >= BUSY_RETRIES:
                return response, busy
            assert_problem(response, 503, "busy")
            busy += 1
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 1.0) * 0.2)


@pytest.fixture(scope="module")
def agents(tenant: Tenant, practice: Practice) -> Iterator[list[Agent]]:
    # one after another: concurrent set-up writes only queue on the event table's lock
    with tenant.server.client() as client:
        made = [Agent(n, tenant, client) for n in range(CLIENTS)]
    for agent in made:
        agent.client.get("/health")  # connected before the first round
    try:
        yield made
    finally:
        for agent in made:
            agent.client.close()


def day_slots(server: LiveServer, tenant: Tenant, practice: Practice, day: int) -> list[Any]:
    """The 20 slots of the provider's day ``day`` days ahead (all open: nobody booked there)."""
    tz = ZoneInfo("America/New_York")
    date = server.clock.now().astimezone(tz).date() + timedelta(days=day)
    start = datetime(date.year, date.month, date.day, tzinfo=tz)
    with server.client() as client:
        answer = expect(
            client.post(
                "/v1/agent/availability",
                json={
                    "type_id": practice.type_id,
                    "provider_id": practice.provider_id,
                    "start_from": start.isoformat(),
                    "start_to": (start + timedelta(hours=23)).isoformat(),
                    "limit": 50,
                },
                headers=tenant.agent_headers,
            ),
            200,
        )
    slots = answer["slots"]
    assert len(slots) == SLOTS, slots
    return list(slots)


def race_round(
    server: LiveServer, agents: list[Agent], slots: list[Any]
) -> list[tuple[Agent, Any, httpx.Response, int]]:
    """Every agent books its slot (agent i → slot i mod 20) at the same moment."""
    barrier = threading.Barrier(len(agents))
    results: list[Any] = [None] * len(agents)

    def run(index: int) -> None:
        agent, slot = agents[index], slots[index % len(slots)]
        barrier.wait()
        try:
            response, busy = agent.book(slot["slot_id"])
            results[index] = (agent, slot, response, busy)
        except BaseException as exc:  # reported below, not lost in a thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(agents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    errors = [r for r in results if not isinstance(r, tuple)]
    assert not errors, errors
    return results


def test_fifty_agents_twenty_slots_five_rounds_one_booking_per_slot(
    live_server: LiveServer,
    tenant: Tenant,
    practice: Practice,
    agents: list[Agent],
    log: EventLog,
) -> None:
    since = log.max_position()
    winners: dict[datetime, tuple[Agent, Any]] = {}
    busy_total = 0
    for day in range(1, ROUNDS + 1):
        slots = day_slots(live_server, tenant, practice, day)
        outcomes = race_round(live_server, agents, slots)
        per_slot: Counter[str] = Counter()
        for agent, slot, response, busy in outcomes:
            busy_total += busy
            assert response.status_code in (201, 409), (day, response.status_code, response.text)
            if response.status_code == 409:
                assert_problem(response, 409, "slot-unavailable")
                continue
            per_slot[slot["slot_id"]] += 1
            answer = response.json()
            assert utc(answer["start"]) == utc(slot["start"]), answer
            winners[utc(slot["start"])] = (agent, answer)
        assert sorted(per_slot.values()) == [1] * SLOTS, (day, per_slot)

    booked = [
        e
        for e in log.appointment_events(APPOINTMENT_BOOKED, after=since)
        if e.event.tenant_id == tenant.tenant_id
    ]
    per_start = Counter(e.event.start for e in booked)
    assert len(per_start) == SLOTS * ROUNDS and set(per_start.values()) == {1}, per_start
    for event in booked:
        agent, answer = winners[event.event.start]
        assert str(event.stream_id) == answer["appointment_id"]
        assert (event.event.patient_ref, event.event.call_id) == (agent.patient_ref, agent.call_id)

    with live_server.client() as client:
        board = read_model(
            client,
            "/v1/staff/appointments",
            {
                "date_from": min(winners).date().isoformat(),
                "date_to": max(winners).date().isoformat(),
            },
            tenant.staff_headers,
            log.max_position(),
        )
    shown = Counter(utc(a["start"]) for a in board["appointments"] if a["status"] == "booked")
    assert shown == Counter(list(winners)), "the staff board shows exactly the winners"
    print(f"\n{SLOTS * ROUNDS} slots, {CLIENTS * ROUNDS} bookings raced, {busy_total} busy retries")
