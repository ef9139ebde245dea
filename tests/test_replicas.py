"""Two API replicas on one database: a hold or booking decided on one replica's cached state
stands only if the event store still holds that state.

Replica B decides its first attempt on the versions its caches hold, without asking the store
(``Scheduling._optimistic``). Each test warms B's caches, changes the store through replica A,
then asks B: B must answer what the store says, never what its caches remembered. A spy on B's
store shows which path each decision took: ``versions`` is the query for the store's versions,
``saves`` the writes (``SchedulingApp.record``, with the error each raised, if any).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

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
    return seed_tenant(live_server, "replica-clinic")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    return setup_practice(
        live_server, tenant, patients=("pat-1", "pat-2", "pat-3", "pat-4", "pat-5", "pat-6")
    )


@dataclass
class Spy:
    """What replica B's store was asked since the last ``reset``."""

    versions: int = 0
    saves: list[str | None] = field(default_factory=list)  # None: stored; else the error's name

    def reset(self) -> None:
        self.versions, self.saves = 0, []


@dataclass
class Replica:
    client: httpx.Client
    spy: Spy


@pytest.fixture(scope="module")
def replica_b(live_server: LiveServer) -> Iterator[Replica]:
    """A second API process on the same database, with its own caches."""
    app = create_app(live_server.settings, clock=live_server.clock, run_projections=False)
    server = RunningServer(app)
    server.start()
    store, spy = app.state.services.store, Spy()
    versions, record = store.versions, store.record

    def counted_versions(*args: Any, **kwargs: Any) -> Any:
        spy.versions += 1
        return versions(*args, **kwargs)

    def recorded_save(*args: Any, **kwargs: Any) -> Any:
        try:
            result = record(*args, **kwargs)
        except Exception as exc:
            spy.saves.append(type(exc).__name__)
            raise
        spy.saves.append(None)
        return result

    store.versions, store.record = counted_versions, recorded_save
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            yield Replica(client, spy)
    finally:
        server.stop()


def post(client: httpx.Client, tenant: Tenant, path: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(path, json=body, headers=tenant.agent_headers)


def book(client: httpx.Client, tenant: Tenant, patient: str, slot: dict[str, Any]) -> Any:
    body = {"patient_ref": patient, "slot_id": slot["slot_id"]}
    return expect(post(client, tenant, "/v1/agent/bookings", body), 201)


def slots_of_one_day(
    live_server: LiveServer, tenant: Tenant, practice: Practice, days_from: int
) -> list[dict[str, Any]]:
    with live_server.client() as client:
        slots = open_slots(client, tenant, practice, days_from=days_from, days=1)
    assert len(slots) >= 4
    return slots


def warm(replica: Replica, tenant: Tenant, patient: str, slot: dict[str, Any]) -> Any:
    """B books ``slot`` for ``patient``: its caches then hold the patient, the day and the setup."""
    booked = book(replica.client, tenant, patient, slot)
    replica.spy.reset()
    return booked


def test_a_warm_replica_decides_on_its_caches_without_asking_for_versions(
    live_server: LiveServer, tenant: Tenant, practice: Practice, replica_b: Replica
) -> None:
    first, second = slots_of_one_day(live_server, tenant, practice, days_from=2)[:2]
    warm(replica_b, tenant, "pat-1", first)
    book(replica_b.client, tenant, "pat-1", second)
    assert replica_b.spy.versions == 0 and replica_b.spy.saves == [None]


def test_a_slot_booked_through_the_other_replica_is_not_booked_twice(
    live_server: LiveServer, tenant: Tenant, practice: Practice, replica_b: Replica
) -> None:
    first, contested = slots_of_one_day(live_server, tenant, practice, days_from=3)[:2]
    warm(replica_b, tenant, "pat-2", first)
    with live_server.client() as a:
        book(a, tenant, "pat-3", contested)  # B's cached day does not know this booking
    answer = post(
        replica_b.client,
        tenant,
        "/v1/agent/bookings",
        {"patient_ref": "pat-2", "slot_id": contested["slot_id"]},
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["type"].endswith("slot-unavailable")
    # B believed the slot free, its save collided with A's event, the retry read the store
    assert replica_b.spy.saves == ["IntegrityError"] and replica_b.spy.versions == 1


def test_a_slot_freed_through_the_other_replica_is_booked_not_refused(
    live_server: LiveServer, tenant: Tenant, practice: Practice, replica_b: Replica
) -> None:
    first, freed = slots_of_one_day(live_server, tenant, practice, days_from=4)[:2]
    warm(replica_b, tenant, "pat-4", first)
    taken = book(replica_b.client, tenant, "pat-4", freed)
    replica_b.spy.reset()
    with live_server.client() as a:
        expect(
            post(
                a,
                tenant,
                f"/v1/agent/appointments/{taken['appointment_id']}/cancel",
                {"reason": "freed on A"},
            ),
            200,
        )
    # B's cached day still shows the slot booked: a refusal from it is checked against the store
    again = book(replica_b.client, tenant, "pat-4", freed)
    assert again["appointment_id"] != taken["appointment_id"]
    assert replica_b.spy.versions == 1 and replica_b.spy.saves == [None]


def test_hours_changed_through_the_other_replica_refuse_a_cached_slot(
    live_server: LiveServer, tenant: Tenant, practice: Practice, replica_b: Replica
) -> None:
    first, later = slots_of_one_day(live_server, tenant, practice, days_from=5)[:2]
    warm(replica_b, tenant, "pat-5", first)
    hours = [{"weekday": d, "start": "13:00", "end": "14:00"} for d in range(7)]
    with live_server.client() as a:
        expect(
            a.put(
                f"/v1/staff/providers/{practice.provider_id}/weekly-hours",
                json={"hours": hours},
                headers=tenant.staff_headers,
            ),
            200,
        )
    try:
        answer = post(
            replica_b.client,
            tenant,
            "/v1/agent/bookings",
            {"patient_ref": "pat-5", "slot_id": later["slot_id"]},
        )
        assert answer.status_code == 409, answer.text
        assert "outside the provider's hours" in answer.json()["detail"]
        # the save found the hours moved past the cached version and stored nothing
        assert replica_b.spy.saves == ["IntegrityError"] and replica_b.spy.versions == 1
    finally:
        business = [{"weekday": d, "start": "09:00", "end": "12:00"} for d in range(7)]
        with live_server.client() as a:
            expect(
                a.put(
                    f"/v1/staff/providers/{practice.provider_id}/weekly-hours",
                    json={"hours": business},
                    headers=tenant.staff_headers,
                ),
                200,
            )


def test_holds_converted_through_the_other_replica_free_room_for_another(
    live_server: LiveServer, tenant: Tenant, practice: Practice, replica_b: Replica
) -> None:
    slots = slots_of_one_day(live_server, tenant, practice, days_from=6)
    holds = [
        expect(
            post(
                replica_b.client,
                tenant,
                "/v1/agent/holds",
                {"patient_ref": "pat-3", "slot_id": slot["slot_id"]},
            ),
            201,
        )
        for slot in slots[:3]
    ]
    with live_server.client() as a:  # B's cached patient still counts three active holds
        expect(
            post(
                a,
                tenant,
                "/v1/agent/bookings",
                {"patient_ref": "pat-3", "hold_id": holds[0]["hold_id"]},
            ),
            201,
        )
    replica_b.spy.reset()
    fourth = post(
        replica_b.client,
        tenant,
        "/v1/agent/holds",
        {"patient_ref": "pat-3", "slot_id": slots[3]["slot_id"]},
    )
    assert fourth.status_code == 201, fourth.text
    assert replica_b.spy.versions == 1 and replica_b.spy.saves == [None]


def test_holds_one_after_another_on_a_day_decide_on_the_cache_without_colliding(
    live_server: LiveServer, tenant: Tenant, practice: Practice, replica_b: Replica
) -> None:
    """A hold's deciding aggregate is the day: the cache must hold the day as the hold left it,
    or the next hold on that day would be decided on the old version and collide (found in
    review)."""
    slots = slots_of_one_day(live_server, tenant, practice, days_from=7)
    warm(replica_b, tenant, "pat-1", slots[0])
    for slot in slots[1:3]:
        replica_b.spy.reset()
        expect(
            post(
                replica_b.client,
                tenant,
                "/v1/agent/holds",
                {"patient_ref": "pat-1", "slot_id": slot["slot_id"]},
            ),
            201,
        )
        assert replica_b.spy.saves == [None] and replica_b.spy.versions == 0


def test_without_affinity_a_replica_asks_the_store_first_once_its_cache_was_behind(
    live_server: LiveServer, tenant: Tenant, practice: Practice, replica_b: Replica
) -> None:
    """Behind a load balancer without affinity the replicas take turns on a patient and a day:
    after one collision B reads the versions first for those streams instead of colliding at
    every turn, and trusts its cache again once it has been right for the window."""
    slots = slots_of_one_day(live_server, tenant, practice, days_from=8)
    assert len(slots) >= 6
    warm(replica_b, tenant, "pat-6", slots[0])
    with live_server.client() as a:
        book(a, tenant, "pat-6", slots[1])  # B's cached patient and day are a version behind
        book(replica_b.client, tenant, "pat-6", slots[2])
        assert replica_b.spy.saves == ["IntegrityError", None] and replica_b.spy.versions == 1
        book(a, tenant, "pat-6", slots[3])  # behind again
        replica_b.spy.reset()
        book(replica_b.client, tenant, "pat-6", slots[4])
        assert replica_b.spy.saves == [None] and replica_b.spy.versions == 1  # no collision
    live_server.clock.advance(seconds=31)  # the window passes with B's cache right
    replica_b.spy.reset()
    book(replica_b.client, tenant, "pat-6", slots[5])
    assert replica_b.spy.saves == [None] and replica_b.spy.versions == 0
