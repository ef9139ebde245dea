"""The read-model screens over HTTP: the patient portal, the staff board, the patient timeline, and
the staff marks (arrived, no-show, completed) whose results those screens then show.

A write answers with ``evidence.position``; a reader that passes it as ``min_position`` sees its
own write (read-your-writes) or, if the view cannot catch up within ~2 s, gets a 503 with
Retry-After. Every screen shows the caller's tenant only, the portal the bound patient only.

The story runs in file order on one live server: the ManualClock moves forward only in the last
steps (staff marks), once every other booking is made."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.booking_helpers import assert_problem, error_fields, open_slots, utc
from tests.support.server import (
    LiveServer,
    Practice,
    Tenant,
    business_hours,
    expect,
    seed_tenant,
    setup_practice,
)

TZ = "America/New_York"
NY = ZoneInfo(TZ)
LONG_TTL = 30 * 86400  # agent and patient tokens outlive the clock moves of the marks steps
LATE = "dr-late"  # evening hours: 20:00 local is already the next day in UTC
PATIENT_DATA = ("Patient pat-3", "+15550100003", "1980-01-01")  # what setup_practice stored


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as c:
        yield c


@pytest.fixture(scope="module")
def tenant_a(live_server: LiveServer) -> Tenant:
    tenant = seed_tenant(live_server, "views-a", TZ)
    tenant.agent_headers = tenant.token("agent", ttl_seconds=LONG_TTL)
    return tenant


@pytest.fixture(scope="module")
def tenant_b(live_server: LiveServer) -> Tenant:
    tenant = seed_tenant(live_server, "views-b", TZ)
    tenant.agent_headers = tenant.token("agent", ttl_seconds=LONG_TTL)
    return tenant


@pytest.fixture(scope="module")
def practice_a(live_server: LiveServer, tenant_a: Tenant, client: httpx.Client) -> Practice:
    practice = setup_practice(live_server, tenant_a, patients=("pat-1", "pat-2", "pat-3", "pat-4"))
    expect(
        client.post(
            "/v1/staff/providers",
            json={"provider_id": LATE, "name": "Dr Late"},
            headers=tenant_a.staff_headers,
        ),
        201,
    )
    expect(
        client.put(
            f"/v1/staff/providers/{LATE}/weekly-hours",
            json={"hours": business_hours("20:00", "23:30")},
            headers=tenant_a.staff_headers,
        ),
        200,
    )
    return practice


@pytest.fixture(scope="module")
def practice_b(live_server: LiveServer, tenant_b: Tenant) -> Practice:
    # the same patient_ref as in tenant A: a tenant A token must still never see these
    return setup_practice(live_server, tenant_b, patients=("pat-1", "b-only"))


@pytest.fixture(scope="module")
def days_a(
    client: httpx.Client, tenant_a: Tenant, practice_a: Practice
) -> list[list[dict[str, Any]]]:
    """dr-a's open slots, grouped by local date, earliest day first (index 0 = tomorrow)."""
    slots = open_slots(client, tenant_a, practice_a, days_from=1, days=9, limit=50)
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for slot in slots:
        by_day[local_date(slot["start"])].append(slot)
    days = [by_day[d] for d in sorted(by_day)]
    assert len(days) >= 7 and all(len(d) >= 4 for d in days[:7]), days
    return days


@pytest.fixture(scope="module")
def late_slots(
    client: httpx.Client, tenant_a: Tenant, practice_a: Practice
) -> list[dict[str, Any]]:
    late = Practice(LATE, practice_a.type_id, practice_a.duration, practice_a.patients)
    return open_slots(client, tenant_a, late, days_from=1, days=9, limit=50)


@pytest.fixture(scope="module")
def slots_b(client: httpx.Client, tenant_b: Tenant, practice_b: Practice) -> list[dict[str, Any]]:
    return open_slots(client, tenant_b, practice_b, days_from=1, days=5, limit=20)


@pytest.fixture(scope="module")
def portal_pat1(tenant_a: Tenant) -> dict[str, str]:
    return tenant_a.token("patient", patient_ref="pat-1", ttl_seconds=LONG_TTL)


@pytest.fixture(scope="module")
def portal_pat2(tenant_a: Tenant) -> dict[str, str]:
    return tenant_a.token("patient", patient_ref="pat-2", ttl_seconds=LONG_TTL)


# -- helpers -------------------------------------------------------------------------------


def local_date(start: str) -> date:
    return utc(start).astimezone(NY).date()


def book(
    client: httpx.Client, tenant: Tenant, patient_ref: str, slot: dict[str, Any]
) -> dict[str, Any]:
    answer = expect(
        client.post(
            "/v1/agent/bookings",
            json={"patient_ref": patient_ref, "slot_id": slot["slot_id"]},
            headers=tenant.agent_headers,
        ),
        201,
    )
    assert answer["status"] == "booked", answer
    assert isinstance(answer["evidence"]["position"], int), answer
    return dict(answer)


def portal(
    client: httpx.Client, headers: dict[str, str], min_position: int | None = None
) -> dict[str, Any]:
    params = {} if min_position is None else {"min_position": min_position}
    answer = expect(client.get("/v1/portal/appointments", params=params, headers=headers), 200)
    if min_position is not None:
        assert answer["position"] >= min_position, answer
    return dict(answer)


def board(
    client: httpx.Client,
    tenant: Tenant,
    date_from: date,
    date_to: date,
    min_position: int | None = None,
    **filters: str,
) -> dict[str, Any]:
    params: dict[str, Any] = {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()}
    params.update(filters)
    if min_position is not None:
        params["min_position"] = min_position
    answer = expect(
        client.get("/v1/staff/appointments", params=params, headers=tenant.staff_headers), 200
    )
    if min_position is not None:
        assert answer["position"] >= min_position, answer
    return dict(answer)


def by_id(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["appointment_id"]: a for a in answer["appointments"]}


def timeline(
    client: httpx.Client, tenant: Tenant, patient_ref: str, min_position: int | None = None
) -> httpx.Response:
    params = {} if min_position is None else {"min_position": min_position}
    return client.get(
        f"/v1/staff/patients/{patient_ref}/timeline", params=params, headers=tenant.staff_headers
    )


def mark(client: httpx.Client, tenant: Tenant, appointment_id: str, name: str) -> httpx.Response:
    return client.post(
        f"/v1/staff/appointments/{appointment_id}/{name}", headers=tenant.staff_headers
    )


def cancel_as_agent(client: httpx.Client, tenant: Tenant, appointment_id: str) -> dict[str, Any]:
    return dict(
        expect(
            client.post(
                f"/v1/agent/appointments/{appointment_id}/cancel",
                json={"reason": "test"},
                headers=tenant.agent_headers,
            ),
            200,
        )
    )


def assert_evidence(answer: dict[str, Any], appointment_id: str) -> int:
    evidence = answer["evidence"]
    assert set(evidence) >= {"event_id", "stream_id", "version", "position", "recorded_at"}, answer
    assert evidence["stream_id"] == appointment_id, answer
    assert isinstance(evidence["position"], int) and evidence["position"] > 0, answer
    return int(evidence["position"])


def advance_to(server: LiveServer, instant: datetime) -> None:
    """Move the ManualClock forward so that it reads ``instant`` (it keeps running from there)."""
    delta = (instant - server.clock.now()).total_seconds()
    assert delta > 0, f"the clock is already past {instant}"
    server.clock.advance(seconds=delta)


class Story:
    """What the steps of this module hand to each other."""

    portal_booking: dict[str, Any]
    board: dict[str, dict[str, Any]]  # name -> booking answer
    board_position: int


# -- portal --------------------------------------------------------------------------------


def test_portal_reads_its_own_write_at_once(
    client: httpx.Client,
    tenant_a: Tenant,
    days_a: list[list[dict[str, Any]]],
    portal_pat1: dict[str, str],
) -> None:
    booked = book(client, tenant_a, "pat-1", days_a[2][0])
    position = booked["evidence"]["position"]

    answer = portal(client, portal_pat1, min_position=position)

    rows = by_id(answer)
    assert booked["appointment_id"] in rows, answer
    row = rows[booked["appointment_id"]]
    assert row["status"] == "booked", row
    assert row["patient_ref"] == "pat-1", row
    assert row["provider_id"] == booked["provider_id"], row
    assert row["type_id"] == booked["type_id"], row
    assert row["confirmation_code"] == booked["confirmation_code"], row
    assert utc(row["start"]) == utc(booked["start"]) and utc(row["end"]) == utc(booked["end"]), row
    # appointment times carry the provider's UTC offset
    assert row["start"].endswith(booked["start"][-6:]), (row, booked)
    Story.portal_booking = booked


def test_portal_without_min_position_answers_its_position(
    client: httpx.Client, portal_pat1: dict[str, str]
) -> None:
    answer = portal(client, portal_pat1)
    assert isinstance(answer["position"], int), answer
    assert answer["position"] >= Story.portal_booking["evidence"]["position"], answer


def test_portal_shows_only_the_bound_patients_appointments(
    client: httpx.Client,
    tenant_a: Tenant,
    tenant_b: Tenant,
    days_a: list[list[dict[str, Any]]],
    slots_b: list[dict[str, Any]],
    portal_pat1: dict[str, str],
    portal_pat2: dict[str, str],
) -> None:
    other = book(client, tenant_a, "pat-2", days_a[2][1])
    # tenant B has a patient with the same ref: its booking belongs to another clinic
    elsewhere = book(client, tenant_b, "pat-1", slots_b[0])
    position = max(other["evidence"]["position"], elsewhere["evidence"]["position"])

    mine = portal(client, portal_pat1, min_position=position)
    assert {a["patient_ref"] for a in mine["appointments"]} == {"pat-1"}, mine
    ids = set(by_id(mine))
    assert Story.portal_booking["appointment_id"] in ids, mine
    assert other["appointment_id"] not in ids, mine
    assert elsewhere["appointment_id"] not in ids, mine

    theirs = portal(client, portal_pat2, min_position=position)
    assert set(by_id(theirs)) == {other["appointment_id"]}, theirs

    b_portal = portal(client, tenant_b.token("patient", patient_ref="pat-1"), min_position=position)
    assert set(by_id(b_portal)) == {elsewhere["appointment_id"]}, b_portal


def test_portal_min_position_never_reached_is_503_with_retry_after(
    client: httpx.Client, portal_pat1: dict[str, str]
) -> None:
    began = time.monotonic()
    response = client.get(
        "/v1/portal/appointments", params={"min_position": 10**9}, headers=portal_pat1
    )
    took = time.monotonic() - began
    assert_problem(response, 503)
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, (
        response.headers
    )
    assert took < 3.5, f"the 503 took {took:.2f} s; the contract waits at most ~2 s"


def test_portal_cancels_its_own_appointment_not_anothers(
    client: httpx.Client,
    tenant_a: Tenant,
    days_a: list[list[dict[str, Any]]],
    portal_pat1: dict[str, str],
) -> None:
    mine = book(client, tenant_a, "pat-1", days_a[3][0])
    theirs = book(client, tenant_a, "pat-2", days_a[3][1])

    refused = client.post(
        f"/v1/portal/appointments/{theirs['appointment_id']}/cancel",
        json={"reason": "not mine"},
        headers=portal_pat1,
    )
    assert_problem(refused, 404)

    answer = expect(
        client.post(
            f"/v1/portal/appointments/{mine['appointment_id']}/cancel",
            json={"reason": "cannot come"},
            headers=portal_pat1,
        ),
        200,
    )
    assert answer["appointment_id"] == mine["appointment_id"], answer
    assert answer["status"] == "cancelled", answer
    position = assert_evidence(answer, mine["appointment_id"])
    assert position > mine["evidence"]["position"], answer

    rows = by_id(portal(client, portal_pat1, min_position=position))
    assert rows[mine["appointment_id"]]["status"] == "cancelled", rows
    day = local_date(mine["start"])
    on_board = by_id(board(client, tenant_a, day, day, min_position=position))
    assert on_board[mine["appointment_id"]]["status"] == "cancelled", on_board
    # the refused cancel changed nothing
    assert on_board[theirs["appointment_id"]]["status"] == "booked", on_board


def test_portal_is_for_patient_tokens_only(
    client: httpx.Client, tenant_a: Tenant, portal_pat1: dict[str, str]
) -> None:
    assert_problem(client.get("/v1/portal/appointments", headers=tenant_a.staff_headers), 403)
    assert_problem(client.get("/v1/portal/appointments", headers=tenant_a.agent_headers), 403)
    assert_problem(client.get("/v1/portal/appointments"), 401)


# -- staff board ---------------------------------------------------------------------------


def test_board_filters_by_local_date_both_ends_included(
    client: httpx.Client,
    tenant_a: Tenant,
    days_a: list[list[dict[str, Any]]],
    late_slots: list[dict[str, Any]],
) -> None:
    d1 = local_date(days_a[4][0]["start"])
    d2 = d1 + timedelta(days=1)
    d3 = d1 + timedelta(days=2)
    # an evening slot on d1 is already d2 in UTC: the board must still file it under d1
    evening = next(
        s for s in late_slots if local_date(s["start"]) == d1 and utc(s["start"]).date() == d2
    )
    on_d2 = next(s for s in days_a[5] if local_date(s["start"]) == d2)
    on_d3 = next(s for s in days_a[6] if local_date(s["start"]) == d3)
    story = {
        "morning": book(client, tenant_a, "pat-3", days_a[4][0]),
        "evening": book(client, tenant_a, "pat-4", evening),
        "next-day": book(client, tenant_a, "pat-3", on_d2),
        "third-day": book(client, tenant_a, "pat-4", on_d3),
    }
    story["cancelled"] = book(client, tenant_a, "pat-1", days_a[4][1])
    cancelled = cancel_as_agent(client, tenant_a, story["cancelled"]["appointment_id"])
    position = cancelled["evidence"]["position"]
    Story.board, Story.board_position = story, position
    ids = {name: answer["appointment_id"] for name, answer in story.items()}

    only_d1 = board(client, tenant_a, d1, d1, min_position=position)
    assert set(by_id(only_d1)) == {ids["morning"], ids["evening"], ids["cancelled"]}, only_d1
    assert all(local_date(a["start"]) == d1 for a in only_d1["appointments"]), only_d1

    only_d2 = board(client, tenant_a, d2, d2, min_position=position)
    assert set(by_id(only_d2)) == {ids["next-day"]}, only_d2

    d1_to_d2 = board(client, tenant_a, d1, d2, min_position=position)
    assert set(by_id(d1_to_d2)) == {
        ids["morning"],
        ids["evening"],
        ids["cancelled"],
        ids["next-day"],
    }, d1_to_d2
    starts = [utc(a["start"]) for a in d1_to_d2["appointments"]]
    assert starts == sorted(starts), d1_to_d2

    d1_to_d3 = board(client, tenant_a, d1, d3, min_position=position)
    assert set(by_id(d1_to_d3)) == set(ids.values()), d1_to_d3

    row = by_id(only_d1)[ids["evening"]]
    assert row["provider_id"] == LATE and row["patient_ref"] == "pat-4", row
    assert row["confirmation_code"] == story["evening"]["confirmation_code"], row
    assert row["start"].endswith(story["evening"]["start"][-6:]), row


def test_board_filters_by_provider_and_status(client: httpx.Client, tenant_a: Tenant) -> None:
    story, position = Story.board, Story.board_position
    ids = {name: answer["appointment_id"] for name, answer in story.items()}
    d1 = local_date(story["morning"]["start"])
    d3 = d1 + timedelta(days=2)

    late = board(client, tenant_a, d1, d3, min_position=position, provider_id=LATE)
    assert set(by_id(late)) == {ids["evening"]}, late
    dr_a = board(client, tenant_a, d1, d3, min_position=position, provider_id="dr-a")
    assert set(by_id(dr_a)) == set(ids.values()) - {ids["evening"]}, dr_a
    nobody = board(client, tenant_a, d1, d3, min_position=position, provider_id="dr-nobody")
    assert nobody["appointments"] == [], nobody

    cancelled = board(client, tenant_a, d1, d3, min_position=position, status="cancelled")
    assert set(by_id(cancelled)) == {ids["cancelled"]}, cancelled
    assert all(a["status"] == "cancelled" for a in cancelled["appointments"]), cancelled
    booked = board(client, tenant_a, d1, d3, min_position=position, status="booked")
    assert set(by_id(booked)) == set(ids.values()) - {ids["cancelled"]}, booked
    both = board(
        client, tenant_a, d1, d3, min_position=position, status="booked", provider_id="dr-a"
    )
    assert set(by_id(both)) == set(ids.values()) - {ids["cancelled"], ids["evening"]}, both
    none_arrived = board(client, tenant_a, d1, d3, min_position=position, status="arrived")
    assert none_arrived["appointments"] == [], none_arrived


def test_board_min_position_never_reached_is_503_with_retry_after(
    client: httpx.Client, tenant_a: Tenant
) -> None:
    today = datetime.now(NY).date()
    began = time.monotonic()
    response = client.get(
        "/v1/staff/appointments",
        params={
            "date_from": today.isoformat(),
            "date_to": (today + timedelta(days=7)).isoformat(),
            "min_position": 10**9,
        },
        headers=tenant_a.staff_headers,
    )
    took = time.monotonic() - began
    assert_problem(response, 503)
    assert (response.headers.get("retry-after") or "").isdigit(), response.headers
    assert took < 3.5, f"the 503 took {took:.2f} s"


# -- staff timeline ------------------------------------------------------------------------


def test_timeline_lists_a_patients_story_in_log_order(
    client: httpx.Client, tenant_a: Tenant, days_a: list[list[dict[str, Any]]]
) -> None:
    slot, later = days_a[5][2], days_a[5][3]
    hold = expect(
        client.post(
            "/v1/agent/holds",
            json={"slot_id": slot["slot_id"], "patient_ref": "pat-3"},
            headers=tenant_a.agent_headers,
        ),
        201,
    )
    booked = expect(
        client.post(
            "/v1/agent/bookings",
            json={"patient_ref": "pat-3", "hold_id": hold["hold_id"]},
            headers=tenant_a.agent_headers,
        ),
        201,
    )
    appointment_id = booked["appointment_id"]
    moved = expect(
        client.post(
            f"/v1/agent/appointments/{appointment_id}/reschedule",
            json={"slot_id": later["slot_id"]},
            headers=tenant_a.agent_headers,
        ),
        200,
    )
    cancelled = cancel_as_agent(client, tenant_a, appointment_id)
    position = cancelled["evidence"]["position"]

    response = timeline(client, tenant_a, "pat-3", min_position=position)
    answer = expect(response, 200)
    assert answer["position"] >= position, answer
    entries = answer["entries"]
    positions = [e["position"] for e in entries]
    assert positions == sorted(set(positions)), f"positions not strictly increasing: {positions}"
    assert all(p <= answer["position"] for p in positions), answer
    kinds = [e["kind"] for e in entries]
    assert kinds[0] == "registered", kinds

    story = [e for e in entries if e["appointment_id"] == appointment_id]
    assert [e["kind"] for e in story] == ["booked", "rescheduled", "cancelled"], story
    assert story[0]["position"] == booked["evidence"]["position"], story
    assert story[1]["position"] == moved["evidence"]["position"], story
    assert story[2]["position"] == position, story
    assert story[0]["details"]["confirmation_code"] == booked["confirmation_code"], story
    assert utc(story[1]["details"]["start"]) == utc(later["start"]), story
    assert utc(story[1]["details"]["previous_start"]) == utc(slot["start"]), story
    for entry in entries:
        assert utc(entry["at"]).tzinfo is not None, entry

    # the hold came first, then the booking that converted it
    hold_entries = [e for e in entries if e["details"].get("hold_id") == hold["hold_id"]]
    assert [e["kind"] for e in hold_entries][:1] == ["hold"], hold_entries
    assert hold_entries[0]["position"] < story[0]["position"], entries
    assert "hold-converted" in [e["kind"] for e in hold_entries], hold_entries

    # the order of the whole story: registered < hold < booked < rescheduled < cancelled
    wanted = ["registered", "hold", "booked", "rescheduled", "cancelled"]
    found = iter(kinds)
    assert all(kind in found for kind in wanted), kinds

    # minimum necessary: no patient data in the timeline
    for secret in PATIENT_DATA:
        assert secret not in response.text, f"the timeline shows {secret!r}: {response.text}"


def test_timeline_of_unknown_patient_is_404(client: httpx.Client, tenant_a: Tenant) -> None:
    assert_problem(timeline(client, tenant_a, "pat-nobody"), 404)
    assert_problem(timeline(client, tenant_a, "no.such.ref"), 404)


# -- roles and tenants ---------------------------------------------------------------------


def test_staff_views_refuse_agent_and_patient_tokens(
    client: httpx.Client, tenant_a: Tenant, portal_pat1: dict[str, str]
) -> None:
    appointment_id = Story.portal_booking["appointment_id"]
    today = datetime.now(NY).date().isoformat()
    for headers in (tenant_a.agent_headers, portal_pat1):
        assert_problem(
            client.get(
                "/v1/staff/appointments",
                params={"date_from": today, "date_to": today},
                headers=headers,
            ),
            403,
        )
        assert_problem(client.get("/v1/staff/patients/pat-1/timeline", headers=headers), 403)
        for name in ("arrived", "no-show", "completed"):
            assert_problem(
                client.post(f"/v1/staff/appointments/{appointment_id}/{name}", headers=headers),
                403,
            )


def test_staff_of_one_tenant_sees_nothing_of_another(
    client: httpx.Client,
    tenant_a: Tenant,
    tenant_b: Tenant,
    slots_b: list[dict[str, Any]],
) -> None:
    theirs = book(client, tenant_b, "b-only", slots_b[1])
    position = theirs["evidence"]["position"]
    day = local_date(theirs["start"])

    seen_by_b = board(client, tenant_b, day, day, min_position=position)
    assert theirs["appointment_id"] in by_id(seen_by_b), seen_by_b
    seen_by_a = board(client, tenant_a, day - timedelta(days=1), day + timedelta(days=1), position)
    assert theirs["appointment_id"] not in by_id(seen_by_a), seen_by_a
    assert all(a["patient_ref"] != "b-only" for a in seen_by_a["appointments"]), seen_by_a

    assert expect(timeline(client, tenant_b, "b-only", position), 200)["entries"]
    assert_problem(timeline(client, tenant_a, "b-only"), 404)
    # tenant A has its own pat-1: its timeline holds none of tenant B's pat-1 events
    a_pat1 = expect(timeline(client, tenant_a, "pat-1", position), 200)
    b_pat1 = expect(timeline(client, tenant_b, "pat-1", position), 200)
    assert not {e["position"] for e in a_pat1["entries"]} & {
        e["position"] for e in b_pat1["entries"]
    }, (a_pat1, b_pat1)

    # nor can it mark or cancel B's appointment (404, not 403)
    assert_problem(mark(client, tenant_a, theirs["appointment_id"], "arrived"), 404)
    assert_problem(
        client.post(
            f"/v1/portal/appointments/{theirs['appointment_id']}/cancel",
            json={},
            headers=tenant_a.token("patient", patient_ref="pat-1"),
        ),
        404,
    )
    still = board(client, tenant_b, day, day)
    assert by_id(still)[theirs["appointment_id"]]["status"] == "booked", still


# -- staff marks (the clock moves forward from here on) ------------------------------------


class Marks:
    early: dict[str, Any]  # tomorrow's first slot: arrived, then completed
    absent: dict[str, Any]  # tomorrow's second slot: no-show
    dropped: dict[str, Any]  # tomorrow's third slot, cancelled before its time
    far: dict[str, Any]  # days ahead
    position: int  # the last mark's


def test_marks_book_the_appointments_they_will_mark(
    client: httpx.Client, tenant_a: Tenant, days_a: list[list[dict[str, Any]]]
) -> None:
    first, second, third = days_a[0][0], days_a[0][1], days_a[0][2]
    assert utc(first["start"]) < utc(second["start"]) < utc(third["start"])
    Marks.early = book(client, tenant_a, "pat-1", first)
    Marks.absent = book(client, tenant_a, "pat-2", second)
    Marks.dropped = book(client, tenant_a, "pat-4", third)
    Marks.far = book(client, tenant_a, "pat-2", days_a[6][3])
    Marks.position = cancel_as_agent(client, tenant_a, Marks.dropped["appointment_id"])["evidence"][
        "position"
    ]


def test_marks_days_ahead_are_refused(client: httpx.Client, tenant_a: Tenant) -> None:
    far = Marks.far["appointment_id"]
    assert utc(Marks.far["start"]) - datetime.now(NY) > timedelta(days=2)
    assert_problem(mark(client, tenant_a, far, "arrived"), 409)
    assert_problem(mark(client, tenant_a, far, "no-show"), 409)
    assert_problem(mark(client, tenant_a, far, "completed"), 409)
    day = local_date(Marks.far["start"])
    # read-your-writes asks for the position (the cancel after the booking): without it the
    # board may not have the booking yet (failed once in CI, the worker gathering a batch)
    row = by_id(board(client, tenant_a, day, day, min_position=Marks.position))[far]
    assert row["status"] == "booked", row


def test_unknown_mark_or_appointment_is_404(client: httpx.Client, tenant_a: Tenant) -> None:
    appointment_id = Marks.early["appointment_id"]
    assert_problem(mark(client, tenant_a, appointment_id, "teleported"), 404)
    assert_problem(mark(client, tenant_a, appointment_id, "cancelled"), 404)
    assert_problem(mark(client, tenant_a, "00000000-0000-4000-8000-000000000000", "arrived"), 404)


def test_arrived_up_to_shortly_before_the_start(
    live_server: LiveServer, client: httpx.Client, tenant_a: Tenant, portal_pat1: dict[str, str]
) -> None:
    start = utc(Marks.early["start"])
    advance_to(live_server, start - timedelta(hours=1))
    appointment_id = Marks.early["appointment_id"]

    # the second appointment has not started yet: no no-show
    assert_problem(mark(client, tenant_a, Marks.absent["appointment_id"], "no-show"), 409)

    answer = expect(mark(client, tenant_a, appointment_id, "arrived"), 200)
    assert answer["appointment_id"] == appointment_id and answer["status"] == "arrived", answer
    position = assert_evidence(answer, appointment_id)
    assert position > Marks.early["evidence"]["position"], answer

    day = local_date(Marks.early["start"])
    assert by_id(board(client, tenant_a, day, day, position))[appointment_id]["status"] == (
        "arrived"
    )
    arrived = board(client, tenant_a, day, day, position, status="arrived")
    assert set(by_id(arrived)) == {appointment_id}, arrived
    assert by_id(portal(client, portal_pat1, position))[appointment_id]["status"] == "arrived"


def test_completed_and_no_show_once_started(
    live_server: LiveServer, client: httpx.Client, tenant_a: Tenant, portal_pat2: dict[str, str]
) -> None:
    advance_to(live_server, utc(Marks.absent["start"]) + timedelta(minutes=5))
    early, absent = Marks.early["appointment_id"], Marks.absent["appointment_id"]

    done = expect(mark(client, tenant_a, early, "completed"), 200)
    assert done["status"] == "completed", done
    missed = expect(mark(client, tenant_a, absent, "no-show"), 200)
    assert missed["appointment_id"] == absent and missed["status"] == "no-show", missed
    position = max(assert_evidence(done, early), assert_evidence(missed, absent))
    Marks.position = position

    day = local_date(Marks.early["start"])
    rows = by_id(board(client, tenant_a, day, day, position))
    assert rows[early]["status"] == "completed", rows
    assert rows[absent]["status"] == "no-show", rows
    no_shows = board(client, tenant_a, day, day, position, status="no-show")
    assert set(by_id(no_shows)) == {absent}, no_shows
    assert by_id(portal(client, portal_pat2, position))[absent]["status"] == "no-show"

    # a finished appointment takes no further marks
    assert_problem(mark(client, tenant_a, early, "arrived"), 409)
    assert_problem(mark(client, tenant_a, early, "no-show"), 409)
    assert_problem(mark(client, tenant_a, absent, "completed"), 409)


def test_no_mark_after_cancel(
    live_server: LiveServer, client: httpx.Client, tenant_a: Tenant
) -> None:
    # past its start, every mark would fit the time: only the cancel refuses them
    advance_to(live_server, utc(Marks.dropped["start"]) + timedelta(minutes=5))
    dropped = Marks.dropped["appointment_id"]
    for name in ("arrived", "no-show", "completed"):
        assert_problem(mark(client, tenant_a, dropped, name), 409)
    day = local_date(Marks.dropped["start"])
    row = by_id(board(client, tenant_a, day, day, Marks.position))[dropped]
    assert row["status"] == "cancelled", row


def test_marks_are_on_the_timeline(client: httpx.Client, tenant_a: Tenant) -> None:
    answer = expect(timeline(client, tenant_a, "pat-1", Marks.position), 200)
    early = [e for e in answer["entries"] if e["appointment_id"] == Marks.early["appointment_id"]]
    assert [e["kind"] for e in early] == ["booked", "arrived", "completed"], early


# -- bad queries (last: under -x, a failure here stops nothing else) ---------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_from": "2026-02-30", "date_to": "2026-03-01"}, "date_from"),
        ({"date_from": "2026-03-01", "date_to": "tomorrow"}, "date_to"),
        ({"date_from": "2026-03-01T00:00:00Z", "date_to": "2026-03-02"}, "date_from"),
        ({"date_from": "2026-03-02", "date_to": "2026-03-01"}, "date_to"),
        ({"date_to": "2026-03-01"}, "date_from"),
        ({"date_from": "2026-03-01"}, "date_to"),
        ({"date_from": "2026-03-01", "date_to": "2026-03-02", "status": "pending"}, "status"),
        (
            {"date_from": "2026-03-01", "date_to": "2026-03-02", "min_position": "-1"},
            "min_position",
        ),
        ({"date_from": "2026-03-01", "date_to": "2026-03-02", "min_position": "x"}, "min_position"),
    ],
    ids=[
        "impossible-date_from",
        "words-for-date_to",
        "instant-for-date_from",
        "date_to-before-date_from",
        "missing-date_from",
        "missing-date_to",
        "unknown-status",
        "negative-min_position",
        "text-min_position",
    ],
)
def test_board_refuses_bad_query_naming_the_field(
    client: httpx.Client, tenant_a: Tenant, params: dict[str, str], field: str
) -> None:
    response = client.get("/v1/staff/appointments", params=params, headers=tenant_a.staff_headers)
    problem = assert_problem(response, 422)
    assert field in error_fields(problem), problem
