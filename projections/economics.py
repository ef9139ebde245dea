"""Call economics: one row per call — when it started, its language, how long it took, what it
cost when the platform reported it, and how many bookings it made. Rows carry no patient data.

Pricing happens when the view is read, not here: a call without a reported cost is priced at the
per-minute rate the service runs with (BOOKING_VOICE_CENTS_PER_MINUTE), so changing the rate
reprices old calls without a rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from psycopg import Cursor

from projections.base import Apply, Names, Projection, Table

STARTED = "booking:Call.Started"
DESCRIBED = "booking:Call.Described"
TOOL_CALLED = "booking:Call.ToolCalled"
ENDED = "booking:Call.Ended"

COLUMNS = """
    call_uuid uuid NOT NULL,
    call_id text NOT NULL,
    started_at timestamptz NOT NULL,
    language text,
    ended boolean NOT NULL DEFAULT false,
    duration_seconds integer,
    cost_cents bigint,
    bookings integer NOT NULL DEFAULT 0,
    position bigint NOT NULL,
    PRIMARY KEY (tenant_id, call_uuid)
"""


def _handlers(names: Names) -> dict[str, Apply]:
    table = names("call_economics")

    def started(curs: Cursor[Any], e: Any, position: int) -> None:
        curs.execute(
            f"INSERT INTO {table} (tenant_id, call_uuid, call_id, started_at, language, position)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (e.tenant_id, e.originator_id, e.call_id, e.started_at, e.language, position),
        )

    def described(curs: Cursor[Any], e: Any, position: int) -> None:
        curs.execute(
            f"UPDATE {table} SET language = coalesce(%s, language), position = %s"
            " WHERE call_uuid = %s",
            (e.language, position, e.originator_id),
        )

    def tool_called(curs: Cursor[Any], e: Any, position: int) -> None:
        if e.tool == "book" and e.status < 400 and not e.replayed:
            curs.execute(
                f"UPDATE {table} SET bookings = bookings + 1, position = %s WHERE call_uuid = %s",
                (position, e.originator_id),
            )

    def ended(curs: Cursor[Any], e: Any, position: int) -> None:
        curs.execute(
            f"UPDATE {table} SET ended = true, duration_seconds = %s, cost_cents = %s,"
            " position = %s WHERE call_uuid = %s",
            (e.duration_seconds, e.cost_cents, position, e.originator_id),
        )

    return {STARTED: started, DESCRIBED: described, TOOL_CALLED: tool_called, ENDED: ended}


ECONOMICS = Projection(
    name="economics",
    tables=(Table("call_economics", COLUMNS, ("(tenant_id, started_at)", "(call_uuid)")),),
    make_handlers=_handlers,
)


# -- the answer ----------------------------------------------------------------------------------


def cents(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass
class Tally:
    """Calls, seconds, exact cost and bookings of a group of calls."""

    calls: int = 0
    seconds: int = 0
    cost: Decimal = field(default_factory=Decimal)
    bookings: int = 0

    def add(self, calls: int, seconds: int, cost: Decimal, bookings: int) -> None:
        self.calls += calls
        self.seconds += seconds
        self.cost += cost
        self.bookings += bookings

    @property
    def minutes(self) -> float:
        return float((Decimal(self.seconds) / 60).quantize(Decimal("0.01"), ROUND_HALF_UP))

    @property
    def cost_cents(self) -> int:
        return cents(self.cost)

    @property
    def cost_per_booking_cents(self) -> int | None:
        return cents(self.cost / self.bookings) if self.bookings else None


@dataclass
class Economics:
    total: Tally
    by_language: dict[str, Tally]
    by_day: dict[str, Tally]


def economics(
    curs: Cursor[Any], start: datetime, end: datetime, timezone: str, cents_per_minute: Decimal
) -> Economics:
    """Calls started in [start, end), grouped by the tenant's local day and language.

    A call's cost is what it reported, else its minutes at ``cents_per_minute``; each figure is
    rounded to whole cents once, from the exact sum of its group.
    """
    curs.execute(
        "SELECT (started_at AT TIME ZONE %s)::date AS day,"
        " coalesce(lower(split_part(language, '-', 1)), 'unknown') AS language,"
        " count(*) AS calls, coalesce(sum(duration_seconds), 0) AS seconds,"
        " coalesce(sum(cost_cents), 0) AS reported,"
        " coalesce(sum(duration_seconds) FILTER (WHERE cost_cents IS NULL), 0) AS unpriced,"
        " coalesce(sum(bookings), 0) AS bookings"
        " FROM call_economics WHERE started_at >= %s AND started_at < %s"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        (timezone, start, end),
    )
    result = Economics(Tally(), {}, {})
    for row in curs.fetchall():
        cost = Decimal(row["reported"]) + Decimal(row["unpriced"]) * cents_per_minute / 60
        figures = (int(row["calls"]), int(row["seconds"]), cost, int(row["bookings"]))
        result.total.add(*figures)
        result.by_language.setdefault(row["language"], Tally()).add(*figures)
        result.by_day.setdefault(row["day"].isoformat(), Tally()).add(*figures)
    return result
