"""Slots: generated from weekly hours in the provider's time zone, named by opaque, decodable ids."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from booking.ids import is_client_id

SLOT_PREFIX = "sl_"


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


def decode_slot_id(slot_id: str) -> SlotRef:
    if not slot_id.startswith(SLOT_PREFIX) or len(slot_id) > 200:
        raise BadSlotId("not a slot id issued by this service")
    body = slot_id[len(SLOT_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        provider_id, type_id, stamp = raw.split("/")
        start = datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=UTC)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadSlotId("not a slot id issued by this service") from None
    if not (is_client_id(provider_id) and is_client_id(type_id)):
        raise BadSlotId("not a slot id issued by this service")
    return SlotRef(provider_id, type_id, start)


def zone(name: str) -> ZoneInfo:
    """An IANA zone; raises ValueError for anything else."""
    if not name or name.startswith("/") or ".." in name:
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}") from None


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def _exists(local: datetime, tz: ZoneInfo) -> bool:
    """False for wall-clock times skipped by a daylight-saving jump."""
    round_trip = local.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
    return round_trip.replace(tzinfo=None) == local


def day_slots(
    day: date,
    tz: ZoneInfo,
    hours: Iterable[Interval],
    duration: timedelta,
    provider_id: str,
    type_id: str,
) -> Iterator[Slot]:
    """Back-to-back slots of ``duration`` inside each interval for ``day``'s weekday, in local time."""
    for interval in sorted(hours, key=lambda i: i.start):
        if interval.weekday != day.weekday():
            continue
        cursor = datetime.combine(day, interval.start)
        limit = datetime.combine(day, interval.end)
        while cursor + duration <= limit:
            if _exists(cursor, tz):
                start = cursor.replace(tzinfo=tz).astimezone(UTC)
                end = (cursor + duration).replace(tzinfo=tz).astimezone(UTC)
                yield Slot(provider_id, type_id, start, end)
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
    local = start.astimezone(tz)
    day, wall = local.date(), local.replace(tzinfo=None, fold=0)
    for interval in hours:
        if interval.weekday != day.weekday():
            continue
        first = datetime.combine(day, interval.start)
        offset = wall - first
        if (
            offset < timedelta(0)
            or offset % duration
            or wall + duration > datetime.combine(day, interval.end)
        ):
            continue
        # generated slots use the first occurrence of a wall time (fold=0) and skip gaps
        if wall.replace(tzinfo=tz).astimezone(UTC) != start.astimezone(UTC):
            continue
        end = (wall + duration).replace(tzinfo=tz).astimezone(UTC)
        return Slot(provider_id, type_id, start.astimezone(UTC), end)
    return None


def dates_between(first: date, last: date) -> Iterator[date]:
    current = first
    while current <= last:
        yield current
        current += timedelta(days=1)
