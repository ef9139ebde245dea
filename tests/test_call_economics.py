"""Call economics: what the clinic's voice minutes cost, per call and per booking, by language and
by day. Thirty calls in English and Spanish over two days, some reporting their own cost and some
priced at the configured per-minute rate, are checked against a computation by hand."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.booking_helpers import assert_problem, open_slots
from tests.support.server import LiveServer, Practice, Tenant, expect, seed_tenant, setup_practice

RATE = Decimal("12.5")  # cents per minute for calls that report no cost
SERVER_SETTINGS = {"voice_cents_per_minute": RATE}
ZONE = ZoneInfo("America/Chicago")

# (language, duration_seconds, reported cost or None, bookings made on the call)
CALLS: list[tuple[str, int, int | None, int]] = [
    ("en" if n % 3 else "es", 45 + 37 * n, (n * 11 if n % 4 == 0 else None), int(n % 5 == 0))
    for n in range(30)
]


def half_up(value: Fraction) -> int:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return int(exact.quantize(Decimal(1), ROUND_HALF_UP))


def by_hand(calls: list[tuple[str, int, int | None, int]]) -> dict[str, Any]:
    seconds = sum(c[1] for c in calls)
    cost = sum(
        (Fraction(c[2]) if c[2] is not None else Fraction(c[1]) * Fraction(str(RATE)) / 60)
        for c in calls
    )
    bookings = sum(int(c[3]) for c in calls)
    return {
        "calls": len(calls),
        "minutes": round(seconds / 60, 2),
        "cost_cents": half_up(Fraction(cost)),
        "bookings": bookings,
        "cost_per_booking_cents": half_up(Fraction(cost) / bookings) if bookings else None,
    }


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "economics-clinic", timezone="America/Chicago")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    return setup_practice(live_server, tenant, patients=("pat-1",))


@pytest.fixture(scope="module")
def days(live_server: LiveServer, tenant: Tenant, practice: Practice) -> list[date]:
    """Seed the thirty calls: the first fifteen today, the rest a day later (the clinic's days)."""
    seen: list[date] = []
    with live_server.client() as client:
        slots = open_slots(client, tenant, practice, days_from=3, days=10)
        for n, (language, seconds, cost, booking) in enumerate(CALLS):
            if n == 15:
                live_server.clock.advance(days=1)
                tenant.agent_headers = tenant.token("agent")  # the first one expired
            seen.append(live_server.clock.now().astimezone(ZONE).date())
            call_id = f"econ-{n}"
            expect(
                client.post(
                    "/v1/agent/calls",
                    json={"call_id": call_id, "language": language, "patient_ref": "pat-1"},
                    headers=tenant.agent_headers,
                ),
                201,
            )
            if booking:
                slot = slots.pop(0)
                expect(
                    client.post(
                        "/v1/agent/bookings",
                        json={
                            "patient_ref": "pat-1",
                            "slot_id": slot["slot_id"],
                            "call_id": call_id,
                        },
                        headers=tenant.agent_headers,
                    ),
                    201,
                )
            end: dict[str, Any] = {"duration_seconds": seconds, "outcome": "completed"}
            if cost is not None:
                end["cost_cents"] = cost
            expect(
                client.post(
                    f"/v1/agent/calls/{call_id}/end", json=end, headers=tenant.agent_headers
                ),
                200,
            )
    return seen


def economics(server: LiveServer, tenant: Tenant, date_from: date, date_to: date) -> dict[str, Any]:
    with server.client() as client:
        return dict(
            expect(
                client.get(
                    "/v1/staff/call-economics",
                    params={
                        "date_from": date_from.isoformat(),
                        "date_to": date_to.isoformat(),
                        "min_position": _log_end(server),
                    },
                    headers=tenant.staff_headers,
                ),
                200,
            )
        )


def _log_end(server: LiveServer) -> int:
    services = server.app.state.services
    return int(services.store.recorder.max_notification_id() or 0)


def pick(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        k: answer[k]
        for k in ("calls", "minutes", "cost_cents", "bookings", "cost_per_booking_cents")
    }


def test_thirty_calls_in_two_languages_equal_the_hand_computation(
    live_server: LiveServer, tenant: Tenant, days: list[date]
) -> None:
    first, last = days[0], days[-1]
    assert last == first + timedelta(days=1)
    answer = economics(live_server, tenant, first, last)
    assert pick(answer) == by_hand(CALLS)
    for language in ("en", "es"):
        assert answer["by_language"][language] == by_hand([c for c in CALLS if c[0] == language])
    assert answer["by_day"] == {
        first.isoformat(): by_hand(CALLS[:15]),
        last.isoformat(): by_hand(CALLS[15:]),
    }
    assert answer["voice_cents_per_minute"] == float(RATE)
    # one day alone
    assert pick(economics(live_server, tenant, last, last)) == by_hand(CALLS[15:])


def test_no_calls_no_bookings_gives_null_cost_per_booking(
    live_server: LiveServer, tenant: Tenant, days: list[date]
) -> None:
    empty = economics(live_server, tenant, date(2020, 1, 1), date(2020, 1, 31))
    assert pick(empty) == {
        "calls": 0,
        "minutes": 0.0,
        "cost_cents": 0,
        "bookings": 0,
        "cost_per_booking_cents": None,
    }
    assert empty["by_language"] == {} and empty["by_day"] == {}


def test_bad_ranges_and_roles_are_refused(
    live_server: LiveServer, tenant: Tenant, days: list[date]
) -> None:
    with live_server.client() as client:
        url = "/v1/staff/call-economics"
        assert_problem(
            client.get(
                url,
                params={"date_from": "2027-01-02", "date_to": "2027-01-01"},
                headers=tenant.staff_headers,
            ),
            422,
        )
        assert_problem(
            client.get(url, params={"date_from": "2027-01-02"}, headers=tenant.staff_headers), 422
        )
        # at most 366 days, both ends included
        assert_problem(
            client.get(
                url,
                params={"date_from": "2027-01-01", "date_to": "2028-01-02"},
                headers=tenant.staff_headers,
            ),
            422,
        )
        expect(
            client.get(
                url,
                params={"date_from": "2027-01-01", "date_to": "2028-01-01"},
                headers=tenant.staff_headers,
            ),
            200,
        )
        assert_problem(
            client.get(
                url,
                params={"date_from": "2027-01-01", "date_to": "2027-01-01"},
                headers=tenant.agent_headers,
            ),
            403,
        )


def test_the_rate_setting_takes_decimals_and_names_itself_when_wrong() -> None:
    """The rate accepts decimals and refuses nonsense with the setting's name."""
    from booking.settings import Settings, SettingsError

    assert Settings.from_env({"BOOKING_VOICE_CENTS_PER_MINUTE": "7.25"}).voice_cents_per_minute == (
        Decimal("7.25")
    )
    for bad in ("-1", "abc", "nan", "inf"):
        with pytest.raises(SettingsError, match="BOOKING_VOICE_CENTS_PER_MINUTE"):
            Settings.from_env({"BOOKING_VOICE_CENTS_PER_MINUTE": bad})
