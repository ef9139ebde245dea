"""Slots follow the provider's wall clock across daylight-saving changes: 09:00 local stays 09:00
local whether New York is on EST or EDT, answers carry the provider's offset of that day, and the
offset a client writes its instants in does not change which slots it gets.

Today is late November 2026, so the next US changes are used: spring forward on Sunday 2027-03-14
and fall back on Sunday 2027-11-07 (both within the two-year horizon)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.booking_helpers import assert_problem, error_fields
from tests.support.server import LiveServer, Practice, Tenant, expect, seed_tenant, setup_practice

NEW_YORK = ZoneInfo("America/New_York")
LOCAL_STARTS = ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "tz-clinic", timezone="America/New_York")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    # every day 09:00-12:00, a 30-minute type
    return setup_practice(live_server, tenant, patients=("pat-1",))


def availability(
    server: LiveServer,
    tenant: Tenant,
    practice: Practice,
    start_from: str,
    start_to: str,
    limit: int = 50,
) -> Any:
    with server.client() as client:
        return client.post(
            "/v1/agent/availability",
            json={
                "type_id": practice.type_id,
                "provider_id": practice.provider_id,
                "start_from": start_from,
                "start_to": start_to,
                "limit": limit,
            },
            headers=tenant.agent_headers,
        )


def local_day(
    server: LiveServer, tenant: Tenant, practice: Practice, day: date
) -> list[dict[str, Any]]:
    start = datetime.combine(day, time(0, 0), NEW_YORK)
    end = datetime.combine(day, time(23, 59), NEW_YORK)
    return list(
        expect(availability(server, tenant, practice, start.isoformat(), end.isoformat()), 200)[
            "slots"
        ]
    )


@pytest.mark.parametrize(
    ("day", "offset", "first_utc"),
    [
        pytest.param(
            date(2027, 3, 12), "-05:00", "2027-03-12T14:00:00+00:00", id="fri-before-spring-forward"
        ),
        pytest.param(
            date(2027, 3, 14), "-04:00", "2027-03-14T13:00:00+00:00", id="sun-of-spring-forward"
        ),
        pytest.param(
            date(2027, 3, 15), "-04:00", "2027-03-15T13:00:00+00:00", id="mon-after-spring-forward"
        ),
        pytest.param(
            date(2027, 11, 5), "-04:00", "2027-11-05T13:00:00+00:00", id="fri-before-fall-back"
        ),
        pytest.param(
            date(2027, 11, 7), "-05:00", "2027-11-07T14:00:00+00:00", id="sun-of-fall-back"
        ),
        pytest.param(
            date(2027, 11, 8), "-05:00", "2027-11-08T14:00:00+00:00", id="mon-after-fall-back"
        ),
    ],
)
def test_slots_start_at_nine_local_on_both_sides_of_a_dst_change(
    live_server: LiveServer,
    tenant: Tenant,
    practice: Practice,
    day: date,
    offset: str,
    first_utc: str,
) -> None:
    slots = local_day(live_server, tenant, practice, day)

    assert [s["start"] for s in slots] == [
        f"{day.isoformat()}T{hhmm}:00{offset}" for hhmm in LOCAL_STARTS
    ]
    ends = ["09:30", "10:00", "10:30", "11:00", "11:30", "12:00"]
    assert [s["end"] for s in slots] == [f"{day.isoformat()}T{hhmm}:00{offset}" for hhmm in ends]
    assert datetime.fromisoformat(slots[0]["start"]) == datetime.fromisoformat(first_utc)
    assert all(
        s["provider_id"] == practice.provider_id and s["type_id"] == practice.type_id for s in slots
    )
    assert len({s["slot_id"] for s in slots}) == 6


@pytest.mark.parametrize(
    ("start_from", "start_to"),
    [
        pytest.param("2027-03-12T05:00:00Z", "2027-03-16T04:00:00Z", id="Z"),
        pytest.param("2027-03-12T14:00:00+09:00", "2027-03-16T13:00:00+09:00", id="plus-09"),
        pytest.param("2027-03-11T21:00:00-08:00", "2027-03-15T20:00:00-08:00", id="minus-08"),
        pytest.param("2027-03-12T00:00:00-05:00", "2027-03-16T00:00:00-04:00", id="new-york"),
    ],
)
def test_the_offset_a_client_writes_does_not_change_the_slots(
    live_server: LiveServer, tenant: Tenant, practice: Practice, start_from: str, start_to: str
) -> None:
    reference = expect(
        availability(live_server, tenant, practice, "2027-03-12T05:00:00Z", "2027-03-16T04:00:00Z"),
        200,
    )["slots"]
    answer = expect(availability(live_server, tenant, practice, start_from, start_to), 200)["slots"]

    assert answer == reference
    assert len(reference) == 24  # Fri, Sat, Sun (the change), Mon: six each
    starts = [datetime.fromisoformat(s["start"]) for s in reference]
    assert starts == sorted(starts)
    by_day: dict[str, list[str]] = {}
    for s in reference:
        by_day.setdefault(s["start"][:10], []).append(s["start"][11:16])
    days = ("2027-03-12", "2027-03-13", "2027-03-14", "2027-03-15")
    assert by_day == {d: LOCAL_STARTS for d in days}


def test_window_edges_are_instants_whatever_their_offset(
    live_server: LiveServer, tenant: Tenant, practice: Practice
) -> None:
    # 09:00 EDT on Monday 2027-03-15 is 13:00Z and 09:30 EDT is 13:30Z. Both ends are included:
    # [22:00+09:00, 05:29-08:00] is [13:00Z, 13:29Z] and holds the 09:00 slot only;
    # [22:01+09:00, 13:29Z] holds none.
    included = expect(
        availability(
            live_server, tenant, practice, "2027-03-15T22:00:00+09:00", "2027-03-15T05:29:00-08:00"
        ),
        200,
    )["slots"]
    assert [s["start"] for s in included] == ["2027-03-15T09:00:00-04:00"]
    up_to_the_second = expect(
        availability(
            live_server, tenant, practice, "2027-03-15T12:00:00Z", "2027-03-15T09:30:00-04:00"
        ),
        200,
    )["slots"]
    assert [s["start"] for s in up_to_the_second] == [
        "2027-03-15T09:00:00-04:00",
        "2027-03-15T09:30:00-04:00",
    ]
    excluded = expect(
        availability(
            live_server, tenant, practice, "2027-03-15T22:01:00+09:00", "2027-03-15T13:29:00Z"
        ),
        200,
    )["slots"]
    assert excluded == []


@pytest.mark.parametrize("field", ["start_from", "start_to"])
def test_a_naive_time_is_refused_naming_the_field(
    live_server: LiveServer, tenant: Tenant, practice: Practice, field: str
) -> None:
    body = {"start_from": "2027-03-12T00:00:00-05:00", "start_to": "2027-03-13T00:00:00-05:00"}
    body[field] = body[field][:-6]  # drop the offset
    problem = assert_problem(
        availability(live_server, tenant, practice, body["start_from"], body["start_to"]), 422
    )
    assert field in error_fields(problem), problem


def test_a_booking_across_the_change_answers_with_that_days_offset(
    live_server: LiveServer, tenant: Tenant, practice: Practice
) -> None:
    friday = local_day(live_server, tenant, practice, date(2027, 3, 12))[0]
    monday = local_day(live_server, tenant, practice, date(2027, 3, 15))[0]
    with live_server.client() as client:
        booked = expect(
            client.post(
                "/v1/agent/bookings",
                json={"patient_ref": "pat-1", "slot_id": friday["slot_id"]},
                headers=tenant.agent_headers,
            ),
            201,
        )
        assert booked["start"] == "2027-03-12T09:00:00-05:00"
        moved = expect(
            client.post(
                f"/v1/agent/appointments/{booked['appointment_id']}/reschedule",
                json={"slot_id": monday["slot_id"]},
                headers=tenant.agent_headers,
            ),
            200,
        )
        assert moved["start"] == "2027-03-15T09:00:00-04:00"
        assert moved["end"] == "2027-03-15T09:30:00-04:00"
        listed = expect(
            client.get("/v1/agent/patients/pat-1/appointments", headers=tenant.agent_headers), 200
        )["appointments"]
    assert [a["start"] for a in listed] == ["2027-03-15T09:00:00-04:00"]
    remaining = local_day(live_server, tenant, practice, date(2027, 3, 12))
    assert remaining[0]["start"] == "2027-03-12T09:00:00-05:00"  # freed again


def test_past_dates_are_never_offered(
    live_server: LiveServer, tenant: Tenant, practice: Practice
) -> None:
    # the 2026 fall-back (Sunday 2026-11-01) is behind us: its Friday and Monday are over
    response = availability(
        live_server, tenant, practice, "2026-10-30T00:00:00-04:00", "2026-11-03T00:00:00-05:00"
    )
    if response.status_code == 200:
        assert response.json()["slots"] == []
    else:
        assert_problem(response, 422)
    now = live_server.clock.now()
    recent = expect(
        availability(
            live_server,
            tenant,
            practice,
            (now - timedelta(days=3)).isoformat(),
            (now + timedelta(days=3)).isoformat(),
        ),
        200,
    )["slots"]
    assert recent and all(datetime.fromisoformat(s["start"]) > now for s in recent)


def test_a_window_beyond_two_years_is_refused(
    live_server: LiveServer, tenant: Tenant, practice: Practice
) -> None:
    problem = assert_problem(
        availability(live_server, tenant, practice, "2029-01-01T00:00:00Z", "2029-01-05T00:00:00Z"),
        422,
    )
    assert "start_to" in error_fields(problem), problem
