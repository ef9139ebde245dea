"""Time as the domain sees it. Injectable so tests can move past a hold's expiry without sleeping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """Real time plus an offset that tests move forward; thread-safe."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, **kwargs: float) -> None:
        """Move the clock forward; it keeps running from there."""
        with self._lock:
            self._offset += timedelta(**kwargs)
