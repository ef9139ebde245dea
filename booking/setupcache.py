"""A short-lived cache of the clinic's setup (tenant, providers, types, hours) for reads.

Setup changes rarely and is not part of any booking's consistency boundary: a booking collides
with other bookings on its ProviderDay, never with an hours change. Reading setup from a cache
that is at most ``ttl`` seconds old (and dropped at once when this process changes it) saves a
database round trip per aggregate on every request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from booking.store import SchedulingApp


class SetupCache:
    def __init__(
        self, store: SchedulingApp, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[UUID, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, aggregate_id: UUID) -> Any | None:
        """The aggregate (read-only: never mutate it), or None when it does not exist."""
        now = self.clock()
        with self._lock:
            hit = self._entries.get(aggregate_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        try:
            aggregate: Any = self.store.repository.get(aggregate_id, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            return None  # not cached: a provider created a moment later must be seen at once
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[aggregate_id] = (now, aggregate)
        return aggregate

    def forget(self, aggregate_id: UUID) -> None:
        with self._lock:
            self._entries.pop(aggregate_id, None)
