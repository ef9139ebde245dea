"""The scenario script's own promises, where a wrong one would make a story test the wrong thing."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from booking.clock import ManualClock
from tests.scenarios.script import Clinic


def test_a_story_s_days_stay_put_when_the_clinic_s_clock_passes_midnight() -> None:
    """A story that waits six minutes from 23:57 in New York still asks for the same "in three
    days" afterwards (the clock passed midnight between two availability checks of one call, and
    the second looked a day later: a 10:00 that was free was reported missing)."""
    clock = ManualClock()
    tz = ZoneInfo("America/New_York")
    now = clock.now().astimezone(tz)
    late = datetime.combine(now.date(), time(23, 57), tz)
    if late <= now:
        late += timedelta(days=1)
    clock.advance(seconds=late.timestamp() - clock.now().timestamp())  # across DST too
    server: Any = SimpleNamespace(clock=clock)  # Clinic.day reads the server's clock only
    clinic = Clinic(server, None, "dr-lopez", "checkup", "America/New_York", ())  # type: ignore[arg-type]
    before = clinic.day(3)
    clock.advance(minutes=6)
    assert clock.now().astimezone(tz).date() != late.date()  # the clinic's date has moved on
    assert clinic.day(3) == before
    assert before["start_from"] == (
        datetime.combine(late.date() + timedelta(days=3), time(0, 0), tz).isoformat()
    )
