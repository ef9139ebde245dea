"""Slots: generated from weekly hours in the provider's time zone, named by opaque, decodable ids."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from booking.ids import is_client_id

SLOT_PREFIX = "sl_"
MIN_YEAR, MAX_YEAR = 2000, 2200


@dataclass(frozen=True)
class Interval:
    weekday: int  # 0 = Monday
    start: time
    end: time


@dataclass(frozen=True)
class Slot:
    provider_id: str
    type_id: str
    start: datetime  # aware, UTC
    end: datetime

    @property
    def slot_id(self) -> str:
        raw = f"{self.provider_id}/{self.type_id}/{self.start.astimezone(UTC):%Y%m%d%H%M}"
        return SLOT_PREFIX + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@dataclass(frozen=True)
class SlotRef:
    """What a slot id says, before anything checks that the slot is open."""

    provider_id: str
    type_id: str
    start: datetime


class BadSlotId(ValueError):
    pass


@lru_cache(maxsize=4096)  # a command decodes its slot id more than once; a SlotRef is immutable
def decode_slot_id(slot_id: str) -> SlotRef:
    if not slot_id.startswith(SLOT_PREFIX) or len(slot_id) > 200:
        raise BadSlotId("not a slot id issued by this service")
    body = slot_id[len(SLOT_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        provider_id, type_id, stamp = raw.split("/")
        # the %Y%m%d%H%M that Slot.slot_id writes, exactly (strptime costs ten times as much)
        if len(stamp) != 12 or not stamp.isascii() or not stamp.isdigit():
            raise ValueError(stamp)
        start = datetime(
            int(stamp[:4]),
            int(stamp[4:6]),
            int(stamp[6:8]),
            int(stamp[8:10]),
            int(stamp[10:]),
            tzinfo=UTC,
        )
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadSlotId("not a slot id issued by this service") from None
    if not MIN_YEAR <= start.year <= MAX_YEAR:  # keeps date arithmetic far from its limits
        raise BadSlotId("not a slot id issued by this service")
    if not (is_client_id(provider_id) and is_client_id(type_id)):
        raise BadSlotId("not a slot id issued by this service")
    return SlotRef(provider_id, type_id, start)


@cache
def _iana_zones() -> frozenset[str]:
    # posix/, right/ (leap seconds) and "localtime" are tzdata files, not zones clients mean
    return frozenset(
        z
        for z in available_timezones()
        if not z.startswith(("posix/", "right/")) and z not in ("localtime", "Factory")
    )


def zone(name: str) -> ZoneInfo:
    """An IANA zone; raises ValueError for anything else."""
    if name not in _iana_zones():
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}") from None


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def _bounds(day: date, interval: Interval, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """An interval's opening and closing instants on ``day``. A wall time that occurs twice opens
    at its first occurrence and closes at its second; one skipped by a jump is clamped into
    the time that exists."""
    opens = datetime.combine(day, interval.start).replace(tzinfo=tz, fold=0)
    closes = datetime.combine(day, interval.end).replace(tzinfo=tz, fold=1)
    return opens.astimezone(UTC), closes.astimezone(UTC)


def day_slots(
    day: date,
    tz: ZoneInfo,
    hours: Iterable[Interval],
    duration: timedelta,
    provider_id: str,
    type_id: str,
) -> Iterator[Slot]:
    """Back-to-back slots of ``duration`` in each of ``day``'s intervals, earliest first.

    Slots follow real time from the interval's opening, so each lasts exactly ``duration``, also
    across a daylight-saving change (on other days they fall on the usual wall-clock times).
    """
    for interval in sorted(hours, key=lambda i: i.start):
        if interval.weekday != day.weekday():
            continue
        cursor, closes = _bounds(day, interval, tz)
        while cursor + duration <= closes:
            yield Slot(provider_id, type_id, cursor, cursor + duration)
            cursor += duration


def slot_at(
    start: datetime,
    tz: ZoneInfo,
    hours: Iterable[Interval],
    duration: timedelta,
    provider_id: str,
    type_id: str,
) -> Slot | None:
    """The slot ``day_slots`` would generate starting at ``start``, without generating the day."""
    start = start.astimezone(UTC)
    day = start.astimezone(tz).date()
    for interval in hours:
        if interval.weekday != day.weekday():
            continue
        opens, closes = _bounds(day, interval, tz)
        if opens <= start and start + duration <= closes and not (start - opens) % duration:
            return Slot(provider_id, type_id, start, start + duration)
    return None


def dates_between(first: date, last: date) -> Iterator[date]:
    current = first
    while current <= last:
        yield current
        current += timedelta(days=1)
