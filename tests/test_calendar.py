"""Slot arithmetic: checking one slot (slot_at) agrees exactly with generating the day
(day_slots), across daylight-saving changes in several zones, and slot ids round-trip."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booking.calendar import (
    BadSlotId,
    Interval,
    Slot,
    dates_between,
    day_slots,
    decode_slot_id,
    slot_at,
    zone,
)

HOURS = (
    [Interval(d, time(0, 30), time(3, 15)) for d in range(7)]
    + [Interval(d, time(9, 0), time(12, 0)) for d in range(5)]
    + [Interval(6, time(13, 10), time(17, 0))]
)


@pytest.mark.parametrize("tz_name", ["America/New_York", "Europe/London", "Australia/Lord_Howe"])
@pytest.mark.parametrize("minutes", [15, 30, 60])
@pytest.mark.parametrize(
    "first", [date(2027, 3, 9), date(2027, 3, 25), date(2027, 10, 28), date(2027, 11, 4)]
)
def test_slot_at_finds_exactly_the_generated_slots(tz_name: str, minutes: int, first: date) -> None:
    tz, duration = zone(tz_name), timedelta(minutes=minutes)
    last = first + timedelta(days=6)
    generated = {
        s.start: s
        for d in dates_between(first, last)
        for s in day_slots(d, tz, HOURS, duration, "p", "t")
    }
    base = datetime(first.year, first.month, first.day, 12, tzinfo=UTC)
    for step in range(0, 5 * 24 * 60, 5):
        instant = base + timedelta(minutes=step)
        assert slot_at(instant, tz, HOURS, duration, "p", "t") == generated.get(instant), instant


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_is_never_mistaken_for_a_slot_id(text: str) -> None:
    try:
        ref = decode_slot_id(text)
    except BadSlotId:
        return
    assert Slot(ref.provider_id, ref.type_id, ref.start, ref.start).slot_id == text


def test_a_slot_id_round_trips() -> None:
    start = datetime(2027, 3, 12, 14, 0, tzinfo=UTC)
    ref = decode_slot_id(Slot("dr-a", "checkup", start, start + timedelta(minutes=30)).slot_id)
    assert (ref.provider_id, ref.type_id, ref.start) == ("dr-a", "checkup", start)


def test_every_slot_lasts_its_duration_across_the_fall_back_night() -> None:
    tz, duration = zone("America/New_York"), timedelta(minutes=30)
    night = [Interval(6, time(0, 0), time(4, 0))]  # Sunday 2027-11-07: 01:00-02:00 happens twice
    slots = list(day_slots(date(2027, 11, 7), tz, night, duration, "p", "t"))
    assert all(s.end - s.start == duration for s in slots)
    assert len(slots) == 10  # five real hours that night
    local = [s.start.astimezone(tz).strftime("%H:%M%z") for s in slots]
    assert local[2:6] == ["01:00-0400", "01:30-0400", "01:00-0500", "01:30-0500"]


def test_the_spring_forward_night_skips_the_missing_hour() -> None:
    tz, duration = zone("America/New_York"), timedelta(minutes=30)
    night = [Interval(6, time(0, 0), time(4, 0))]  # Sunday 2027-03-14: 02:00-03:00 never happens
    slots = list(day_slots(date(2027, 3, 14), tz, night, duration, "p", "t"))
    assert [s.start.astimezone(tz).strftime("%H:%M") for s in slots] == [
        "00:00",
        "00:30",
        "01:00",
        "01:30",
        "03:00",
        "03:30",
    ]


@pytest.mark.parametrize("stamp", ["000101010000", "999912312330", "190001010000"])
def test_slot_ids_far_outside_any_calendar_are_refused(stamp: str) -> None:
    import base64

    raw = base64.urlsafe_b64encode(f"dr-a/checkup/{stamp}".encode()).decode().rstrip("=")
    with pytest.raises(BadSlotId):
        decode_slot_id("sl_" + raw)


@pytest.mark.parametrize(
    "stamp",
    [
        "2026125120",
        "20261205120",
        "202612 51200",
        "2026+2051200",
        "\uff12\uff10\uff12\uff1612051200",  # full-width digits
        "202612051200 ",
    ],
)
def test_only_the_canonical_stamp_of_a_slot_decodes(stamp: str) -> None:
    """Slot.slot_id writes %Y%m%d%H%M, twelve ASCII digits; strptime also read shorter or padded
    aliases of the same instant (2026125120 as 2026-12-05 12:00), the decoder does not."""
    import base64

    raw = base64.urlsafe_b64encode(f"dr-a/checkup/{stamp}".encode()).decode().rstrip("=")
    with pytest.raises(BadSlotId):
        decode_slot_id("sl_" + raw)


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 12, 31, 23, 59)))
def test_every_slot_start_round_trips_through_its_id(start: datetime) -> None:
    start = start.replace(second=0, microsecond=0, tzinfo=UTC)
    ref = decode_slot_id(Slot("dr-a", "checkup", start, start + timedelta(minutes=5)).slot_id)
    assert (ref.provider_id, ref.type_id, ref.start) == ("dr-a", "checkup", start)


@pytest.mark.parametrize("name", ["localtime", "right/America/New_York", "posix/UTC", "Mars/Base"])
def test_only_iana_zones_are_zones(name: str) -> None:
    with pytest.raises(ValueError):
        zone(name)
