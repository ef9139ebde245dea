"""Per-token request rate limit: a token bucket refilled at BOOKING_RATE_LIMIT_PER_SECOND, holding
twice that for bursts. In-process: each API replica limits on its own."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from litestar.exceptions import TooManyRequestsException


class RateLimiter:
    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(per_second)
        self.capacity = 2.0 * per_second
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def check(self, principal: str) -> None:
        """Take one request from ``principal``'s bucket or raise 429 with Retry-After."""
        if self.rate <= 0:
            return
        now = self.clock()
        with self.lock:
            tokens, at = self.buckets.get(principal, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self.buckets[principal] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise TooManyRequestsException(
                    f"more than {self.rate:g} requests per second for this token",
                    headers={"Retry-After": str(max(1, wait))},
                )
            self.buckets[principal] = (tokens - 1.0, now)
            if len(self.buckets) > 100_000:  # forget idle principals; a full bucket is the default
                self.buckets = {k: v for k, v in self.buckets.items() if v[0] < self.capacity}
