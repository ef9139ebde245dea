"""booking/contention.py: which streams a replica treats as written elsewhere, for how long,
and that the memory of them stays bounded."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from booking import contention
from booking.clock import ManualClock
from booking.contention import RecentlyMoved


def test_a_stream_the_cache_holds_behind_is_marked_for_the_window_only() -> None:
    clock = ManualClock()
    moved = RecentlyMoved(clock, timedelta(seconds=30))
    behind, current, uncached = uuid4(), uuid4(), uuid4()
    held = {behind: 3, current: 5}
    moved.note({behind: 4, current: 5, uncached: 9}, held.get)
    assert moved.any([behind]) and moved.any([current, behind])
    assert not moved.any([current]) and not moved.any([uncached])  # equal, or not cached
    clock.advance(seconds=29.9)
    assert moved.any([behind])
    clock.advance(seconds=0.1)
    assert not moved.any([behind])  # exactly the window: expired


def test_a_later_finding_restarts_the_window() -> None:
    clock = ManualClock()
    moved = RecentlyMoved(clock, timedelta(seconds=30))
    stream = uuid4()
    moved.note({stream: 2}, {stream: 1}.get)
    clock.advance(seconds=20)
    moved.note({stream: 3}, {stream: 2}.get)
    clock.advance(seconds=20)
    assert moved.any([stream])


def test_the_memory_stays_bounded_when_every_mark_is_fresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(contention, "MAX_TRACKED", 100)
    moved = RecentlyMoved(ManualClock())
    for _ in range(1000):
        stream = uuid4()
        moved.note({stream: 2}, {stream: 1}.get)
        assert len(moved._seen) <= 100
