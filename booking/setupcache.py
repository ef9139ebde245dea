"""A cache of the clinic's setup (tenant, providers, types, hours).

Screens and searches (availability) may read setup up to ``ttl`` seconds old. Decisions (hold,
book, reschedule) use ``fresh``: one query compares the cached versions with the event store's,
and anything changed is reloaded, so a booking is always decided against the stored setup.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from booking.store import SchedulingApp, Versions


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

    def fresh(self, *aggregate_ids: UUID, versions: Versions | None = None) -> list[Any | None]:
        """The aggregates as the event store has them now (None where one does not exist).

        ``versions``: the store's versions, already read in this request (they must include
        every id asked for); otherwise they are read here.
        """
        if versions is None or not all(versions.knows(i) for i in aggregate_ids):
            versions = self.store.versions(aggregate_ids)
        stored = versions.found
        now = self.clock()
        found: list[Any | None] = []
        for aggregate_id in aggregate_ids:
            version = stored.get(aggregate_id)
            if version is None:
                found.append(None)
                continue
            with self._lock:
                hit = self._entries.get(aggregate_id)
            if hit is not None and hit[1].version == version:
                found.append(hit[1])
                continue
            aggregate: Any = self.store.repository.get(aggregate_id, deepcopy_from_cache=False)
            with self._lock:
                self._entries[aggregate_id] = (now, aggregate)
            found.append(aggregate)
        return found

    def cached_version(self, aggregate_id: UUID) -> int | None:
        """The version held here, however old; None when nothing is held."""
        with self._lock:
            hit = self._entries.get(aggregate_id)
        return None if hit is None else int(hit[1].version)

    def forget(self, aggregate_id: UUID) -> None:
        with self._lock:
            self._entries.pop(aggregate_id, None)
