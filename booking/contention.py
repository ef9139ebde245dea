"""Streams this process lately found written by another process.

A decision rests first on the versions this process's caches hold (``Scheduling._optimistic``):
right when clients keep to one API replica, wasted when they do not. Behind a load balancer
without affinity the replicas take turns writing a patient's and a provider day's streams, so
each replica's cache is a version behind at nearly every decision, the save collides, and the
command is decided again: two saves under the table lock and the reads in between, for one
booking. Once a read of the store shows the cache behind on a stream, decisions touching that
stream ask the store first for a while, and go back to trusting the cache when it has been
right that long.

"Another process" is what it is for; a thread of this one whose save has committed but not yet
reached the cache looks the same, and marks the stream too. Either way the cost is a read of
versions per decision for the window, never a decision on stale state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from uuid import UUID

from booking.clock import Clock

WINDOW = timedelta(seconds=30)
MAX_TRACKED = 100_000  # streams remembered at once; past it the expired go, or else all of them


class RecentlyMoved:
    def __init__(self, clock: Clock, window: timedelta = WINDOW) -> None:
        self.clock, self.window = clock, window
        self._seen: dict[UUID, datetime] = {}
        self._lock = threading.Lock()

    def any(self, stream_ids: Iterable[UUID]) -> bool:
        """Whether one of these streams was found moved elsewhere within the window."""
        now = self.clock.now()
        with self._lock:
            return any(now - self._seen.get(i, now - self.window) < self.window for i in stream_ids)

    def note(self, found: Mapping[UUID, int], held: Callable[[UUID], int | None]) -> None:
        """After reading the store's versions: mark the streams the cache holds behind them."""
        behind = [i for i, version in found.items() if (h := held(i)) is not None and h < version]
        if not behind:
            return
        now = self.clock.now()
        with self._lock:
            if len(self._seen) >= MAX_TRACKED:
                self._seen = {i: t for i, t in self._seen.items() if now - t < self.window}
                if len(self._seen) >= MAX_TRACKED // 2:
                    self._seen = {}  # forgetting costs a collision each, never a wrong answer
            for i in behind:
                self._seen[i] = now
